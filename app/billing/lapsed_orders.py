"""Card orders whose quote lapsed unpaid are cancelled at their provider, once, by the worker."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Protocol

from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment
from ports.clock import Clock
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
#: passes a cancel may fail in (provider down) before the sweep gives up on that order.
MAX_ATTEMPTS: Final = 10
#: lapsed orders looked at per pass; a backlog (orders made before providers expired them
#: by themselves) drains over the following passes.
BATCH: Final = 100
#: most orders read for one second that lapsed more than a batch at once.
_SECOND_MAX: Final = 100_000


#: completes a payment its provider says is paid (`complete_payment`: exactly once).
Complete = Callable[[SubscriptionPayment], Awaitable[object]]


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
    lost (or is late): with `complete` it is completed now (exactly once, as its webhook
    would; the late-payment rules apply), so a customer's payment is never left unbooked
    because one webhook did not arrive.

    Each pass walks the payments that lapsed since the last (a worker cursor on `expires`),
    under a worker lease, with no transaction open during a provider call. An order the
    provider says is paid is not cancelled (completed with `complete`, else left to its
    webhook; logged for the operator); one completed meanwhile is refused by the provider's
    cancel, which the gateway takes quietly. A provider outage stops the pass at that order,
    which is tried again next pass; after `MAX_ATTEMPTS` failed passes (counted in this
    process) it is given up, logged.
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
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._rails = rails
        self._batch = batch
        self._grace = grace
        self._complete = complete
        self._attempts: dict[bytes, int] = {}

    async def run(self) -> int:
        """One pass; how many orders were cancelled (or found finished) at their provider."""
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
            return await self._sweep(methods, now - self._grace)
        finally:
            async with self._uow_factory() as uow:
                await uow.worker_leases.release(LEASE, token)
                await uow.commit()

    async def _sweep(self, methods: Sequence[PaymentMethod], until: datetime) -> int:
        async with self._uow_factory() as uow:
            seen = await uow.worker_cursors.get(CURSOR) or 0
        lapsed, position = await self._next(methods, seen, until)
        done = 0
        for payment in lapsed:
            if not await self._end(payment):
                # retried from there next pass (with those of its second already dealt
                # with: a repeated cancel is quiet at every provider)
                position = _second(payment) - 1
                break
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

    async def _end(self, payment: SubscriptionPayment) -> bool:
        """Cancel one lapsed order unless its provider says it is paid; False: the provider
        failed and the order is tried again next pass."""
        ref, method = payment.id.hex(), payment.payment_method
        try:
            if await self._rails.provider_says_paid(method, payment.external_id or ""):
                if self._complete is None:
                    log.warning(
                        "card payment %s lapsed unpaid here but %s says it is paid; left for "
                        "its webhook (or an operator) to complete",
                        ref,
                        method.display_name,
                    )
                    return True
                log.warning(
                    "card payment %s lapsed unpaid here but %s says it is paid (its webhook "
                    "did not arrive): completing it",
                    ref,
                    method.display_name,
                )
                await self._complete(payment)
                return True
            await self._rails.cancel(payment)
        except Exception as err:
            attempts = self._attempts.get(payment.id, 0) + 1
            reason = getattr(err, "message", None) or repr(err)
            if attempts >= MAX_ATTEMPTS:
                self._attempts.pop(payment.id, None)
                log.error("gave up cancelling lapsed order of payment %s: %s", ref, reason)
                return True
            self._attempts[payment.id] = attempts
            log.warning("could not cancel lapsed order of payment %s: %s", ref, reason)
            return False
        self._attempts.pop(payment.id, None)
        log.info("cancelled the lapsed %s order of payment %s", method.display_name, ref)
        return True


def _second(payment: SubscriptionPayment) -> int:
    return int(payment.expires.timestamp())


def _end_of(second: int) -> datetime:
    """The last instant of unix second `second`: `expires > _end_of(n)` starts at n + 1."""
    return datetime.fromtimestamp(second, UTC) + timedelta(microseconds=999_999)
