"""Store new payments once: D10 reuse, D11 idempotency keys and races between requests."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import attrs

from app.billing.errors import (
    IdempotencyKeyRace,
    IdempotencyKeyReused,
    OrderLapsed,
    PaymentNotFound,
    PriceChanged,
    RenewalNoLongerDue,
    TooManyOpenQuotes,
)
from app.billing.price_in_force import price_in_force_or_none, refuse_deleted_vm
from app.billing.rails import PaymentRails
from domain.credit import metadata_dict, payment_meta
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.errors import DomainError
from domain.lifecycle import never_paid_cleanup_due
from domain.model import Json, Subscription, SubscriptionPayment
from domain.price_basis import PRICE_KEY, PriceBasis
from domain.subscription import (
    INTERVALS_KEY,
    is_reusable_pending_payment,
    metadata_interval_count,
)
from domain.switch_off import refuse_switched_off
from domain.unreadable import Unreadable
from domain.wallet_claim import claim_is_for
from ports.storage import (
    IdempotencyRecord,
    MetadataKey,
    PendingCount,
    PendingKind,
    PricedItems,
    UnitOfWork,
    UnitOfWorkFactory,
)

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class Reuse:
    """What a pending payment must match to be returned instead of a new one (D10)."""

    subscription_id: int
    method: PaymentMethod
    payment_type: SubscriptionPaymentType
    interval_count: int
    #: the subscription's expiry: an invoice an automatic renewal's wallet was asked to pay
    #: for another period is not handed out again (`domain.wallet_claim.claim_is_for`): paid,
    #: it would buy no time
    expires: datetime | None

    def wants(self, metadata: Json) -> bool:
        """Whether a pending payment with this `metadata` may be handed back (with the
        method, type and pendency `newest_pending` checks): its count, and no stale claim."""
        return metadata_interval_count(metadata) == self.interval_count and claim_is_for(
            metadata, self.expires
        )


@attrs.frozen(kw_only=True)
class AmountReuse:
    """A pending LNURL invoice for the same subscription and msat amount (D25).

    Only one with at least `min_left` of its life left is returned, so a wallet is never
    handed an invoice that expires before it can be paid.
    """

    subscription_id: int
    amount_msat: int
    min_left: timedelta = timedelta(seconds=60)

    def matches(self, payment: SubscriptionPayment, now: datetime) -> bool:
        return (
            payment.subscription_id == self.subscription_id
            and payment.payment_method is PaymentMethod.LIGHTNING
            and payment.payment_type is SubscriptionPaymentType.RENEWAL
            and payment.is_pending(now + self.min_left)
            and payment_meta(payment).get(AMOUNT_MSAT_KEY) == self.amount_msat
        )


#: `metadata` key of an LNURL payment: the msat amount the wallet asked an invoice for.
AMOUNT_MSAT_KEY = "amount_msat"


def is_lnurl_payment(payment: SubscriptionPayment) -> bool:
    """A pay-what-you-want LNURL invoice (its metadata names the msat amount asked for)."""
    return AMOUNT_MSAT_KEY in payment_meta(payment)


@attrs.frozen(kw_only=True)
class Locked:
    """What a check under the subscription's lock sees (`UnderLock`)."""

    uow: UnitOfWork  # the storing transaction
    sub: Subscription | None  # as locked (None: gone)
    payment: SubscriptionPayment  # the new one, not stored yet
    now: datetime
    live_quotes: int | None  # as the price read counted them (None: not counted)


@attrs.frozen
class UnderLock:
    """A check `store_payment` makes under the subscription's lock, in the storing
    transaction: it refuses by raising (nothing is stored, the new invoice or order is
    cancelled) or writes beside the new row (e.g. debits the credit it applies). Checks run
    in the order given, just before a new payment is inserted (not when a rival's payment
    or a replay is returned instead); one `rivals_too` runs before a rival's payment is
    looked for, so it refuses that one too. `counts_quotes`: the price read counts the
    subscription's live quotes for it (`Locked.live_quotes`), in the same statement."""

    check: Callable[[Locked], Awaitable[None]]
    rivals_too: bool = False
    counts_quotes: bool = False


def same_period(period: datetime) -> UnderLock:
    """A renewal for the period ending at `period` only (`refuse_moved_period`)."""

    async def check(at: Locked) -> None:
        refuse_moved_period(at.sub, period)

    return UnderLock(check, rivals_too=True)


def quote_cap(cap: int) -> UnderLock:
    """No new quote while the subscription holds `cap` live ones (`refuse_over_cap`): under
    the lock, so two racing requests cannot both take the last place."""

    async def check(at: Locked) -> None:
        await refuse_over_cap(at.uow, at.payment.subscription_id, at.now, cap, at.live_quotes)

    return UnderLock(check, counts_quotes=True)


@attrs.frozen(kw_only=True)
class Idempotency:
    user_id: int
    key: str
    fingerprint: bytes


@attrs.frozen
class FirstPending:
    """What a read made alongside found for `NewestPending(reuse.method, now,
    reuse_narrowing(reuse.interval_count))`: the payment the reuse lookup tests first, or
    None (then there is none to test)."""

    payment: SubscriptionPayment | None


async def pending_match(
    uow: UnitOfWork,
    reuse: Reuse | AmountReuse,
    now: datetime,
    first: FirstPending | None = None,
) -> SubscriptionPayment | None:
    """The newest pending payment `reuse` may hand back instead of a new one (D10, D25).

    `first` (for a `Reuse`, see `FirstPending`): with no payment, there is none; with one
    it accepts, that one (the newest it could accept); else the lookup runs.
    """
    if isinstance(reuse, AmountReuse):
        amount = reuse.amount_msat
        kind = PendingKind(
            reuse.subscription_id, PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL
        )
        return await uow.payments.newest_pending(
            kind,
            now + reuse.min_left,  # `is_pending(now + min_left)`: enough life left to pay it
            lambda meta: metadata_dict(meta).get(AMOUNT_MSAT_KEY) == amount,
        )
    if reuse.payment_type is SubscriptionPaymentType.UPGRADE:
        return None  # never reused (D10)
    count = reuse.interval_count
    if first is not None:
        found = first.payment
        if found is None:
            return None
        if is_reusable_pending_payment(
            found,
            subscription_id=reuse.subscription_id,
            method=reuse.method,
            payment_type=reuse.payment_type,
            interval_count=count,
            now=now,
        ) and claim_is_for(found.metadata, reuse.expires):
            return found
    kind = PendingKind(reuse.subscription_id, reuse.method, reuse.payment_type)
    return await uow.payments.newest_pending(kind, now, reuse.wants, reuse_narrowing(count))


def reuse_narrowing(interval_count: int) -> MetadataKey:
    """What a reusable payment's metadata holds at most (`pending_match` tests it exactly)."""
    return MetadataKey(INTERVALS_KEY, interval_count)


def _candidates(
    reuse: Reuse | AmountReuse | None, now: datetime, quotes: bool
) -> PendingCount | None:
    """The count that, at 0, shows `pending_match(reuse, now)` would find nothing (same
    narrowing, same transaction), with the live quotes if `quotes`; None where it has no
    such count."""
    if isinstance(reuse, Reuse) and reuse.payment_type is not SubscriptionPaymentType.UPGRADE:
        return PendingCount(now, reuse_narrowing(reuse.interval_count), quotes=quotes)
    return None


async def replay(uow: UnitOfWork, idem: Idempotency | None) -> SubscriptionPayment | None:
    """The payment an earlier request with this key produced, or None for a new key (D11)."""
    if idem is None:
        return None
    record = await uow.idempotency_keys.get(idem.user_id, idem.key)
    if record is None:
        return None
    if record.request_hash != idem.fingerprint:
        raise IdempotencyKeyReused("Idempotency-Key was already used with another request")
    payment = None if record.payment_id is None else await uow.payments.get(record.payment_id)
    if payment is None:
        raise PaymentNotFound("Payment not found")
    return payment


async def remember(
    uow: UnitOfWork, idem: Idempotency | None, payment: SubscriptionPayment, now: datetime
) -> None:
    if idem is not None:
        record = IdempotencyRecord(
            key=idem.key,
            user_id=idem.user_id,
            request_hash=idem.fingerprint,
            payment_id=payment.id,
            created=now,
        )
        if not await uow.idempotency_keys.put(record):
            raise IdempotencyKeyRace("Idempotency-Key is being used by another request")


async def store_payment(
    uow_factory: UnitOfWorkFactory,
    rails: PaymentRails,
    payment: SubscriptionPayment,
    now: datetime,
    *,
    reuse: Reuse | AmountReuse | None,
    idem: Idempotency | None,
    checks: Sequence[UnderLock] = (),
    priced_from: PricedItems | None = None,
) -> SubscriptionPayment:
    """Store a new payment unless a rival request stored an equivalent one meanwhile.

    The provider call happens outside any transaction; if another request won the race (a
    reusable payment or the same idempotency key appeared), that one is returned and ours is
    cancelled at its provider, so a user never holds two live invoices for one request. If
    storing fails, the unstored invoice or order is cancelled too before the error goes on.
    A quote whose price changed while its invoice was made (an upgrade or admin change
    committed in between) is refused the same way (`PriceChanged`, 409, D23): the sweep
    that ended stale quotes could not see it yet; so is a quote of a subscription an admin
    switched off meanwhile (`SubscriptionSwitchedOff`, 422). `checks` are judged under the same lock
    (`UnderLock`: a renewal's period, the live-quote cap, the credit it spends).
    `priced_from`: what the quote was priced from, if the caller has it (the locked re-check
    then builds no records again where nothing it is priced from changed:
    `LineItems.priced_for_update`'s `seen`).
    """
    try:
        async with uow_factory() as uow:
            # serialises stores for one subscription; the checks below read after the lock,
            # so they see a rival request's committed payment (MariaDB snapshots at first read)
            counts = _candidates(reuse, now, any(c.counts_quotes for c in checks))
            sub, candidates, quotes = await _check_price(uow, payment, counts, priced_from)
            refuse_lapsed_order(sub, now)
            refuse_switched_off(sub)  # switched off after its quote: no invoice stored
            at = Locked(uow=uow, sub=sub, payment=payment, now=now, live_quotes=quotes)
            await _judge(checks, at, rivals_too=True)
            winner = await replay(uow, idem)
            if winner is None and reuse is not None and candidates != 0:
                winner = await pending_match(uow, reuse, now)
            if winner is None:
                await _judge(checks, at, rivals_too=False)
                await uow.payments.add(payment)
                await remember(uow, idem, payment, now)
            elif (
                idem is not None and await uow.idempotency_keys.get(idem.user_id, idem.key) is None
            ):
                await remember(uow, idem, winner, now)
            await uow.commit()
    except Exception:
        await _cancel_quietly(rails, payment)
        raise
    if winner is None:
        return payment
    await _cancel_quietly(rails, payment)
    return winner


async def _judge(checks: Sequence[UnderLock], at: Locked, *, rivals_too: bool) -> None:
    for under_lock in checks:
        if under_lock.rivals_too is rivals_too:
            await under_lock.check(at)


async def _check_price(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    candidates: PendingCount | None,
    seen: PricedItems | None = None,
) -> tuple[Subscription | None, int | None, int | None]:
    """Lock the subscription, then refuse a quote made against another price than now's, or
    one of a VM deleted since (`refuse_deleted_vm`); the subscription as locked, and the
    price read's count of `candidates` and of live quotes (None: not counted)."""
    quoted = PriceBasis.from_json(payment_meta(payment).get(PRICE_KEY))
    if quoted is None:
        return await uow.subscriptions.get_for_update(payment.subscription_id), None, None
    locked = await uow.line_items.priced_for_update(payment.subscription_id, candidates, seen)
    if locked is None:
        return None, None, None
    sub, read = locked.subscription, locked.priced
    if read is not None:  # deleted since the quote (an admin's delete committed meanwhile)
        refuse_deleted_vm(read)
    purchase = payment.payment_type is SubscriptionPaymentType.PURCHASE and not sub.is_setup
    current = await price_in_force_or_none(uow, sub, purchase=purchase, read=read)
    if current is not None and not current.same_price(quoted):
        raise PriceChanged("The price changed while the invoice was made; please ask again")
    if read is None:
        return sub, None, None
    return sub, read.pending, read.live_quotes


def refuse_lapsed_order(sub: Subscription | None, now: datetime) -> None:
    """No new invoice for a never-paid order past its payment window (`OrderLapsed`, 422),
    even while an invoice asked for within the window is still pending (D17, D25).

    A pending invoice keeps the order's room (`order_lapsed`), so an invoice issued after the
    window would let it hold room unchecked, and a chain of them (a new interval count each
    time defeats D10 reuse) for ever. Refusing them all past the window ends every invoice
    of a never-paid order by the window plus the longest invoice lifetime; its room is held
    only to the window plus a Lightning invoice's lifetime (`UNPAID_HOLD_LIMIT`: a bank
    transfer's days hold nothing), and the never-paid cleanup deletes the VM once its last
    invoice has expired. Asking again for an invoice of the window still gets that one
    (D10). Judged in `store_payment` under the subscription's lock, which the never-paid
    cleanup and the booking take too; `renew` asks first, before an invoice is made at the
    rail, so a refusal costs no invoice to create and cancel."""
    if sub is not None and never_paid_cleanup_due(sub, False, now):
        raise OrderLapsed("This order was not paid in time; please order again")


def refuse_moved_period(sub: Subscription | None, period: datetime | None) -> None:
    """With `period` (the expiry a renewal is for: the worker's automatic renewal), refuse
    once the subscription's expiry is another one (`RenewalNoLongerDue`, 409): a renewal paid
    since moved it, and this one would buy an interval nobody asked for. Judged in
    `store_payment` under the subscription's lock, which completing a payment takes too, so a
    payment completing at the same moment is either seen here or comes after this one is
    stored; `renew` asks first, before an invoice is made at the rail or a pending one reused."""
    if period is not None and (sub is None or sub.expires != period):
        raise RenewalNoLongerDue("The subscription was renewed meanwhile; nothing to renew")


async def refuse_over_cap(
    uow: UnitOfWork, subscription_id: int, now: datetime, cap: int, counted: int | None = None
) -> None:
    """Refuse one more quote when the subscription holds `cap` live ones already
    (`TooManyOpenQuotes`, 422 as D25's caps on unpaid things): asking again for a live
    renewal still gets it (D10; an upgrade is never reused, so each one takes a place), and a
    place frees when one is paid or expires.
    `counted`: `Payments.count_live_quotes` as a read of this transaction at `now` already
    made it (None: counted here, one statement)."""
    if counted is None:
        counted = await uow.payments.count_live_quotes(subscription_id, now)
    if counted >= cap:
        raise TooManyOpenQuotes(
            f"This subscription already has {cap} open invoices: pay one of them, ask for the"
            " same renewal again, or try again when one expires"
        )


def at_provider(payment: SubscriptionPayment) -> bool:
    """Made at a provider (not a quote the balance covers): an invoice or order to cancel."""
    data = payment.external_data
    return isinstance(data, Unreadable) or bool(data) or payment.external_id is not None


async def _cancel_quietly(rails: PaymentRails, payment: SubscriptionPayment) -> None:
    if not at_provider(payment):
        return  # never reached a provider (paid from credit): nothing to cancel
    try:
        await rails.cancel(payment)
    except DomainError as err:
        log.warning("could not cancel unused payment %s: %s", payment.id.hex(), err.message)
