"""Subscription payment rules: purchase or renewal, applying a paid payment, reuse (D9–D12)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import attrs

from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.errors import NegativeTimeValue, PaymentAlreadyCompleted, PaymentNotForSubscription
from domain.intervals import (
    MAX_INTERVALS,
    MIN_INTERVALS,
    check_interval_count,
    renewal_base,
    require_utc,
)
from domain.lifecycle import subscription_changed
from domain.model import Subscription, SubscriptionPayment
from domain.switch_off import refuse_switched_off

#: key of the interval count in the `metadata` JSON of a Purchase or Renewal payment (D10).
INTERVALS_KEY = "intervals"


def payment_type_for(subscription: Subscription) -> SubscriptionPaymentType:
    """Renewal once a first payment has set the subscription up, Purchase before (§5.4 step 4)."""
    if subscription.is_setup:
        return SubscriptionPaymentType.RENEWAL
    return SubscriptionPaymentType.PURCHASE


def mark_paid(payment: SubscriptionPayment, now: datetime) -> SubscriptionPayment:
    """The payment flipped to paid at `now`; completing it twice is refused (D9)."""
    if payment.is_paid:
        raise PaymentAlreadyCompleted("Payment is already completed")
    return attrs.evolve(payment, is_paid=True, paid_at=require_utc(now))


def apply_paid_payment(
    subscription: Subscription,
    payment: SubscriptionPayment,
    now: datetime,
    *,
    new_expiry: datetime | None = None,
) -> Subscription:
    """The subscription after `payment` (still unpaid on input) is completed at `now` (§4 D20).

    Purchase and Renewal: from `base = max(coalesce(expires, now), now)` add `time_value`
    seconds (0 included) or, when it is None, one calendar interval of the subscription
    (month-end clamping); the subscription becomes active and set up. A lapsed subscription
    therefore extends from now and consecutive payments stack.

    Upgrade (D12): buys resources, not time. The subscription is returned unchanged: `expires`,
    `is_active` and `is_setup` stay as they are, whatever the payment's `time_value`, so a
    lapsed subscription is not re-activated (the reference set `expires = now` there).

    `new_expiry`, when given, is the expiry a Purchase or Renewal really buys, computed at
    completion (`domain.credit`, D6/D23); it replaces the `time_value` rule above, which
    stays for callers without a current price.

    A Purchase or Renewal never switches on a subscription an admin switched off
    (`SubscriptionSwitchedOff`): completion books such a payment as account credit before
    it gets here (`domain.switch_off`).

    Expiry never moves backwards: a negative `time_value` is refused. The caller still makes
    completion exactly-once in storage (`WHERE is_paid = 0`, D9); the check here is the
    in-memory half of it.
    """
    now = require_utc(now)
    if payment.is_paid:
        raise PaymentAlreadyCompleted("Payment is already completed")
    if payment.subscription_id != subscription.id:
        raise PaymentNotForSubscription(
            f"payment belongs to subscription {payment.subscription_id}, not {subscription.id}"
        )
    if payment.payment_type == SubscriptionPaymentType.UPGRADE:
        return subscription
    refuse_switched_off(subscription)
    base = renewal_base(subscription.expires, now)
    if new_expiry is not None:
        if require_utc(new_expiry) < base:
            raise NegativeTimeValue(f"new expiry {new_expiry} is before {base}")
    elif payment.time_value is None:
        new_expiry = subscription.interval.add_to(base)
    elif payment.time_value < 0:
        raise NegativeTimeValue(f"time_value must not be negative, got {payment.time_value}")
    else:
        new_expiry = base + timedelta(seconds=payment.time_value)
    after = attrs.evolve(subscription, expires=new_expiry, is_active=True, is_setup=True)
    return subscription_changed(subscription, after, now)


def renewal_metadata(interval_count: int) -> dict[str, int]:
    """The `metadata` to store on a new Purchase/Renewal payment: `{"intervals": n}` (D10)."""
    return {INTERVALS_KEY: check_interval_count(interval_count)}


def payment_interval_count(payment: SubscriptionPayment) -> int | None:
    """How many intervals a Purchase/Renewal payment buys, read from its `metadata` (D10).

    `{"intervals": n}` (a dict, or its JSON text) gives n. No metadata, or a JSON object
    without the key (payments made before this rule, or by the reference), counts as 1.
    Anything else (malformed JSON, a non-object, n outside 1..120) is None: such a payment is
    never reused, since what it buys cannot be known.
    """
    return metadata_interval_count(payment.metadata)


def metadata_interval_count(metadata: Any) -> int | None:
    """`payment_interval_count` of a payment whose `metadata` is this."""
    meta: Any = metadata
    if isinstance(meta, str | bytes | bytearray):
        try:
            meta = json.loads(meta)
        except ValueError:
            return None
    if meta is None:
        return 1
    if not isinstance(meta, dict):
        return None
    if INTERVALS_KEY not in meta:
        return 1
    count = meta[INTERVALS_KEY]
    if isinstance(count, bool) or not isinstance(count, int):
        return None
    return count if MIN_INTERVALS <= count <= MAX_INTERVALS else None


def is_reusable_pending_payment(
    payment: SubscriptionPayment,
    *,
    subscription_id: int,
    method: PaymentMethod,
    payment_type: SubscriptionPaymentType,
    interval_count: int,
    now: datetime,
) -> bool:
    """Whether a renewal request may return `payment` instead of a new one (D10).

    Same subscription, method, payment type (Purchase or Renewal) and interval count, and
    still pending (unpaid, `expires > now`). Upgrade payments are never reused: each one
    prices a different configuration.
    """
    check_interval_count(interval_count)
    now = require_utc(now)
    if payment_type == SubscriptionPaymentType.UPGRADE:
        return False
    return (
        payment.subscription_id == subscription_id
        and payment.payment_method == method
        and payment.payment_type == payment_type
        and payment.is_pending(now)
        and payment_interval_count(payment) == interval_count
    )


def pick_reusable_payment(
    payments: Iterable[SubscriptionPayment],
    *,
    subscription_id: int,
    method: PaymentMethod,
    payment_type: SubscriptionPaymentType,
    interval_count: int,
    now: datetime,
) -> SubscriptionPayment | None:
    """The newest (`created`) reusable pending payment, or None (D10); ties keep input order."""
    best: SubscriptionPayment | None = None
    for payment in payments:
        if is_reusable_pending_payment(
            payment,
            subscription_id=subscription_id,
            method=method,
            payment_type=payment_type,
            interval_count=interval_count,
            now=now,
        ) and (best is None or payment.created > best.created):
            best = payment
    return best
