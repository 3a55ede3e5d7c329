"""The payments behind a VM's paid time, read from its history, for refunds (what was paid)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import attrs

from app.billing.booked_records import paid_period
from domain.credit import payment_meta
from domain.enums import SubscriptionPaymentType, VmHistoryActionType
from domain.errors import DomainError
from domain.intervals import require_utc
from domain.model import Subscription, SubscriptionPayment, VmHistory
from domain.money import Currency
from domain.paid_periods import PaidPeriod, PaidUpgrade
from domain.paid_value import paid_for_time
from domain.upgrade import quoted_expiry
from ports.storage import UnitOfWork


async def _payment(uow: UnitOfWork, sub: Subscription, key: object) -> SubscriptionPayment | None:
    """The subscription's payment whose id in hex is `key` (None: none, or not readable)."""
    try:
        payment = await uow.payments.get(bytes.fromhex(key)) if isinstance(key, str) else None
    except ValueError:
        return None
    return payment if payment is not None and payment.subscription_id == sub.id else None


def _recorded_expiry(entry: VmHistory) -> datetime | None:
    after = entry.new_state
    raw = after.get("expires") if isinstance(after, dict) else None
    try:
        return require_utc(datetime.fromisoformat(raw)) if isinstance(raw, str) else None
    except (ValueError, DomainError):
        return None


def _expiry_before(history: Sequence[VmHistory], entry: VmHistory) -> datetime | None:
    """The expiry the history last recorded before `entry` (a renewal, an extension or a
    refund's cut), for an upgrade that did not record the expiry it was quoted to."""
    older = [(e.id, at) for e in history if e.id < entry.id and (at := _recorded_expiry(e))]
    return max(older, key=lambda pair: pair[0])[1] if older else None


async def paid_periods_of(
    uow: UnitOfWork,
    sub: Subscription,
    history: Sequence[VmHistory],
    at: datetime,
    target: Currency,
) -> list[PaidPeriod]:
    """The periods the history's Renewed entries record (`paid_period`), each still holding
    time after `at` with what its payment carried for it (`paid_for_time`, in the
    subscription's currency; None when its payment is missing or cannot be valued)."""
    periods = []
    for period in (p for p in map(paid_period, history) if p is not None):
        if period.end > at:
            payment = await _payment(uow, sub, period.key)
            paid = None if payment is None else paid_for_time(payment, target)
            period = attrs.evolve(period, paid=paid)
        periods.append(period)
    return periods


async def paid_upgrades_of(
    uow: UnitOfWork,
    sub: Subscription,
    history: Sequence[VmHistory],
    at: datetime,
    target: Currency,
) -> list[PaidUpgrade]:
    """The upgrades booked on the VM (its PaymentReceived entries of Upgrade payments; an
    upgrade booked as account credit has none), each from its booking to the expiry it was
    quoted to (or, not recorded, the one the history last recorded before it), with what it
    paid. One that ended by `at` is left out; one whose payment or span cannot be read is
    kept with `paid` None (what it paid is not known)."""
    renewed = {p.key for p in map(paid_period, history) if p is not None}
    out = []
    for entry in history:
        meta = entry.metadata if isinstance(entry.metadata, dict) else {}
        key = meta.get("payment_id")
        if entry.action_type is not VmHistoryActionType.PAYMENT_RECEIVED:
            continue
        if not isinstance(key, str) or key in renewed:  # a renewal's, or no payment named
            continue
        payment = await _payment(uow, sub, key)
        if payment is not None and payment.payment_type is not SubscriptionPaymentType.UPGRADE:
            continue
        quoted = quoted_expiry(payment_meta(payment)) if payment is not None else None
        end = quoted or _expiry_before(history, entry)
        if end is not None and end <= at:
            continue
        paid = None if payment is None or end is None else paid_for_time(payment, target)
        start = entry.timestamp
        out.append(PaidUpgrade(key=key, order=entry.id, start=start, end=end or start, paid=paid))
    return out
