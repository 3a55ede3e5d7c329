"""Card orders whose quote lapsed unpaid are cancelled at their provider, once, by the worker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from app.settlement_retries import Strikes, passing, refused_by_rule
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment
from ports.clock import Clock
from ports.payment_rail import RailUnavailable
from ports.storage import UnitOfWorkFactory

log = logging.getLogger(__name__)

#: the worker cursor: unix second up to which every lapsed card order has been seen to.
CURSOR: Final = "lapsed-card-orders"
#: the lease that keeps two workers from sweeping the same orders at once.
LEASE: Final = "lapsed-card-orders"
#: a lease older than this belongs to a worker that died mid-sweep.
LEASE_STALE: Final = timedelta(minutes=15)
#: how long after its quote lapsed an order is left alone: the provider's own expiry (which
#: runs a few minutes late) and a webhook still on its way get their chance first.
GRACE: Final = timedelta(minutes=5)
#: passes a cancel may fail in (provider down) before the sweep gives up on that order. An
#: order its provider says is paid is never given up: its completion is retried every pass.
MAX_ATTEMPTS: Final = 10
#: an order its provider says is paid is completed only if its quote lapsed within this
#: window. Providers keep saying "paid" after a refund (a Stripe session stays
#: `payment_status == "paid"`, a Revolut order `completed`), so an order paid long ago that
#: the operator has refunded or settled by hand must not be booked now (adding time, or
#: re-creating a deleted VM, D24): an older one is reported to the admins to check by hand.
COMPLETE_WITHIN: Final = timedelta(days=7)
#: lapsed orders looked at per pass; a backlog (orders made before providers expired them
#: by themselves) drains over the following passes.
BATCH: Final = 100
#: most orders read for one second that lapsed more than a batch at once.
_SECOND_MAX: Final = 100_000


#: completes a payment its provider says is paid (`complete_payment`: exactly once).
Complete = Callable[[SubscriptionPayment], Awaitable[object]]
#: tells the admins (title, message) about a paid order the sweep did not book, or an order
#: it gave up on; raising means not told (the sweep tries again next pass).
Report = Callable[[str, str], Awaitable[object]]


class OrderRails(Protocol):
    """What the sweep needs of the rails (`PaymentRails`)."""

    def order_methods(self) -> tuple[PaymentMethod, ...]: ...

    async def provider_says_paid(self, method: PaymentMethod, external_id: str) -> bool | None: ...

    async def cancel(self, payment: SubscriptionPayment) -> None: ...


class LapsedOrders:
    """Cancels, at its own provider, each card order (Revolut, Stripe) whose quote lapsed
    unpaid: an order made before the provider expired orders by itself, or one whose
    provider expiry was clamped (a Stripe session lives at least 30 minutes), must not stay
    payable. Lightning invoices expire at the node and bank transfers open nothing, so
    neither is swept.

    An order the provider says is paid though it is unpaid here is one whose webhook was
    lost (or is late). It is never cancelled, and never given up:

    * its quote lapsed within `complete_within` (`COMPLETE_WITHIN`): with `complete` it is
      completed now (exactly once, as its webhook would; the late-payment rules apply), so a
      customer's payment is never left unbooked because one webhook did not arrive. A
      completion refused for good by a rule of the domain (`refused_for_good`) is reported
      to the admins with `report` and logged ("OPERATOR:"), and the sweep goes on; so is one
      that failed `Strikes.limit` passes in a row with a conflict or an unexpected error (a
      bug, a broken row), so that one order cannot hold up every order behind it; an outage
      (`passing`: storage busy, the provider or the network down) stops the pass at that
      order, which is tried again next pass, however many passes it takes;
    * older: it is neither completed nor cancelled but reported to the admins to check by
      hand (the provider may be showing a payment already refunded or settled by hand).

    A report that cannot be sent stops the pass there too, so no paid order is passed over
    untold.

    Each pass walks the payments that lapsed since the last (a worker cursor on `expires`),
    under a worker lease, with no transaction open during a provider call. One completed
    meanwhile is refused by the provider's cancel, which the gateway takes quietly. A
    provider outage while asking or cancelling stops the pass at that order, which is tried
    again next pass; after `MAX_ATTEMPTS` failed passes (counted in this process) it is given
    up (cancelling only: an order known to be paid is not), logged and reported.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        rails: OrderRails,
        *,
        batch: int = BATCH,
        grace: timedelta = GRACE,
        complete: Complete | None = None,
        report: Report | None = None,
        complete_within: timedelta = COMPLETE_WITHIN,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._rails = rails
        self._batch = batch
        self._grace = grace
        self._complete = complete
        self._report = report
        self._complete_within = complete_within
        #: failed passes of each order not (yet) known to be paid, given up at
        #: `MAX_ATTEMPTS`; in memory, like `_strikes`
        self._attempts = Strikes(MAX_ATTEMPTS)
        #: orders seen paid at their provider and not dealt with yet: never given up
        self._paid: set[bytes] = set()
        #: failed completions in a row of each paid order (conflicts, bugs); in memory: a
        #: restart only starts the count again
        self._strikes = Strikes()

    async def run(self) -> int:
        """One pass; how many orders were dealt with (cancelled, found finished, completed or
        reported) at their provider."""
        methods = self._rails.order_methods()
        if not methods:
            return 0
        now = self._clock.now()
        async with self._uow_factory() as uow:
            token = await uow.worker_leases.take(LEASE, now, now - LEASE_STALE)
            await uow.commit()
        if token is None:
            log.info("lapsed card orders are being swept by another worker")
            return 0
        try:
            return await self._sweep(methods, now)
        finally:
            async with self._uow_factory() as uow:
                await uow.worker_leases.release(LEASE, token)
                await uow.commit()

    async def _sweep(self, methods: Sequence[PaymentMethod], now: datetime) -> int:
        async with self._uow_factory() as uow:
            seen = await uow.worker_cursors.get(CURSOR) or 0
        lapsed, position = await self._next(methods, seen, now - self._grace)
        done = 0
        for payment in lapsed:
            if not await self._end(payment, now):
                # retried from there next pass (with those of its second already dealt
                # with: a repeated cancel is quiet at every provider)
                position = _second(payment) - 1
                break
            self._attempts.clear(payment.id)
            self._paid.discard(payment.id)
            done += 1
        if position > seen:
            async with self._uow_factory() as uow:
                await uow.worker_cursors.advance(CURSOR, position)
                await uow.commit()
        return done

    async def _next(
        self, methods: Sequence[PaymentMethod], seen: int, until: datetime
    ) -> tuple[list[SubscriptionPayment], int]:
        """The lapsed orders after second `seen`, about a batch of them and only whole
        seconds (payments are stored to the second), and the second the cursor moves to
        once all of them are dealt with."""
        async with self._uow_factory() as uow:
            found = await uow.payments.list_lapsed_unpaid(
                methods, _end_of(seen), until, self._batch + 1
            )
        if len(found) <= self._batch:
            return found, int(until.timestamp())
        cut = _second(found[self._batch])
        whole = [payment for payment in found[: self._batch] if _second(payment) < cut]
        if whole:
            return whole, cut - 1
        # more than a batch lapsed within one second: that whole second, however many
        async with self._uow_factory() as uow:
            found = await uow.payments.list_lapsed_unpaid(
                methods, _end_of(cut - 1), min(until, _end_of(cut)), _SECOND_MAX
            )
        return found, cut

    async def _end(self, payment: SubscriptionPayment, now: datetime) -> bool:
        """Cancel one lapsed order unless its provider says it is paid (then `_booked`);
        False: it is tried again next pass."""
        ref, method = payment.id.hex(), payment.payment_method
        step = "ask whether it is paid"
        try:
            paid = bool(await self._rails.provider_says_paid(method, payment.external_id or ""))
            if not paid:
                step = "cancel it"
                await self._rails.cancel(payment)
        except Exception as err:
            return await self._failed(payment, step, err)
        if paid:
            self._paid.add(payment.id)
            return await self._booked(payment, now)
        log.info("cancelled the lapsed %s order of payment %s", method.display_name, ref)
        return True

    async def _failed(self, payment: SubscriptionPayment, step: str, err: Exception) -> bool:
        """A provider call failed: tried again next pass, or given up after `MAX_ATTEMPTS`
        passes unless the order was seen paid."""
        ref, provider = payment.id.hex(), payment.payment_method.display_name
        reason = _reason(err)
        if payment.id in self._paid:  # seen paid on an earlier pass: never given up
            log.warning(
                "could not %s (%s order %s of paid payment %s): %s; tried again next pass",
                step,
                provider,
                payment.external_id,
                ref,
                reason,
            )
            return False
        attempts = self._attempts.add(payment.id)
        if not self._attempts.out(attempts):
            log.warning(
                "could not %s (lapsed %s order %s of payment %s): %s; tried again next pass",
                step,
                provider,
                payment.external_id,
                ref,
                reason,
            )
            return False
        log.error(
            "OPERATOR: gave up cancelling the lapsed %s order %s of payment %s after %d "
            "failed passes (last: could not %s: %s); it may still be payable, or paid, at %s: "
            "check it there",
            provider,
            payment.external_id,
            ref,
            attempts,
            step,
            reason,
            provider,
        )
        return await self._tell(
            payment,
            f"Lapsed {provider} order of payment {ref[:16]}… given up",
            f"The worker gave up cancelling the lapsed {provider} order {payment.external_id} "
            f"of payment {ref} after {attempts} failed passes (last: could not {step}: "
            f"{reason}). The order may still be payable, or even paid, at {provider}: check "
            "it there, cancel it, or complete the payment by hand (admin: complete payment) "
            "if it was paid.",
        )

    async def _booked(self, payment: SubscriptionPayment, now: datetime) -> bool:
        """An order its provider says is paid: completed if recent, else reported; False:
        tried again next pass (never given up)."""
        ref, provider = payment.id.hex(), payment.payment_method.display_name
        if payment.expires < now - self._complete_within:
            reason = (
                f"its quote lapsed on {payment.expires:%Y-%m-%d %H:%M} UTC, more than "
                f"{self._complete_within.days} days ago: too old to complete automatically "
                "(the provider also says paid after a refund)"
            )
            log.error(
                "OPERATOR: card payment %s is paid at %s (order %s) but NOT completed here: "
                "%s; check it by hand",
                ref,
                provider,
                payment.external_id,
                reason,
            )
            return await self._tell(
                payment,
                f"Old {provider} payment {ref[:16]}… paid there, not booked",
                f"{provider} says order {payment.external_id} of payment {ref} is paid, but "
                f"it was never completed here and {reason}. It was neither completed nor "
                f"cancelled. Check it by hand at {provider}: if it was refunded or settled "
                "already, nothing is to be done; if the customer's payment stands, complete "
                "it by hand (admin: complete payment) or settle it with the customer.",
            )
        if self._complete is None:
            log.warning(
                "card payment %s lapsed unpaid here but %s says it is paid; left for its "
                "webhook (or an operator) to complete",
                ref,
                provider,
            )
            return True
        log.warning(
            "card payment %s lapsed unpaid here but %s says it is paid (its webhook did not "
            "arrive): completing it",
            ref,
            provider,
        )
        try:
            await self._complete(payment)
        except Exception as err:
            reason = _reason(err)
            if not self._given_up(payment, err):
                log.warning(
                    "could not complete card payment %s, paid at %s (order %s): %s; tried "
                    "again next pass",
                    ref,
                    provider,
                    payment.external_id,
                    reason,
                    exc_info=not passing(err) and not refused_by_rule(err),
                )
                return False
            log.error(
                "OPERATOR: card payment %s is paid at %s (order %s) but completing it was "
                "refused: %s: %s",
                ref,
                provider,
                payment.external_id,
                type(err).__name__,
                reason,
            )
            told = await self._tell(
                payment,
                f"{provider} payment {ref[:16]}… paid but not completed",
                f"{provider} says order {payment.external_id} of payment {ref} is paid (its "
                f"webhook did not arrive), but completing it was refused: "
                f"{type(err).__name__}: {reason}\nThe customer's money has arrived and "
                "bought nothing yet. Remove the cause and complete the payment by hand "
                "(admin: complete payment), or settle it with the customer.",
            )
            if told:
                self._strikes.clear(payment.id)
            return told
        self._strikes.clear(payment.id)
        return True

    def _given_up(self, payment: SubscriptionPayment, err: Exception) -> bool:
        """Whether completing this paid order stops being retried and goes to the admins: at
        once when a rule refused it for good; after `Strikes.limit` passes in a row for a
        conflict or an unexpected error (a bug, a broken row), so one order cannot hold up
        the sweep of every order behind it; never for an outage (`passing`)."""
        return self._strikes.judge(payment.id, err)[0]

    async def _tell(self, payment: SubscriptionPayment, title: str, message: str) -> bool:
        """Report to the admins; False (tried again next pass) when the report fails."""
        if self._report is None:
            return True
        try:
            await self._report(title, message)
        except Exception:
            log.exception(
                "could not report payment %s to the admins; tried again next pass",
                payment.id.hex(),
            )
            return False
        return True


def _reason(err: Exception) -> str:
    """The failure for the operator: a provider's own words where it failed (the error's
    message is the generic one users get, D19; its cause is what the provider said)."""
    if isinstance(err.__cause__, RailUnavailable):
        return str(err.__cause__)
    return getattr(err, "message", None) or repr(err)


def _second(payment: SubscriptionPayment) -> int:
    return int(payment.expires.timestamp())


def _end_of(second: int) -> datetime:
    """The last instant of unix second `second`: `expires > _end_of(n)` starts at n + 1."""
    return datetime.fromtimestamp(second, UTC) + timedelta(microseconds=999_999)
