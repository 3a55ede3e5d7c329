"""Payment type, applying a paid payment (D20, D9, D12) and pending-payment reuse (D10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import IntervalType, PaymentMethod, SubscriptionPaymentType
from domain.errors import (
    IntervalCountOutOfRange,
    InvalidInput,
    NegativeTimeValue,
    PaymentAlreadyCompleted,
    PaymentNotForSubscription,
)
from domain.model import Subscription, SubscriptionPayment
from domain.subscription import (
    apply_paid_payment,
    mark_paid,
    payment_interval_count,
    payment_type_for,
    pick_reusable_payment,
    renewal_metadata,
)
from domain.subscription import is_reusable_pending_payment as reusable

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
PURCHASE = SubscriptionPaymentType.PURCHASE
RENEWAL = SubscriptionPaymentType.RENEWAL
UPGRADE = SubscriptionPaymentType.UPGRADE
LIGHTNING = PaymentMethod.LIGHTNING
REVOLUT = PaymentMethod.REVOLUT


def subscription(**changes: Any) -> Subscription:
    fields: dict[str, Any] = {
        "id": 7,
        "user_id": 1,
        "company_id": 1,
        "name": "VM1 subscription",
        "created": NOW - timedelta(days=40),
        "currency": "EUR",
    }
    fields.update(changes)
    return Subscription(**fields)


def payment(**changes: Any) -> SubscriptionPayment:
    fields: dict[str, Any] = {
        "id": b"\x01" * 32,
        "subscription_id": 7,
        "user_id": 1,
        "created": NOW - timedelta(minutes=1),
        "expires": NOW + timedelta(minutes=9),
        "amount": 38_000_000,
        "currency": "BTC",
        "payment_method": LIGHTNING,
        "payment_type": RENEWAL,
        "external_data": "lnbc…",
        "rate": Decimal(100_000),
        "time_value": 86_400,
    }
    fields.update(changes)
    return SubscriptionPayment(**fields)


ACTIVE = subscription(expires=NOW + timedelta(days=10), is_active=True, is_setup=True)
LAPSED = subscription(expires=NOW - timedelta(days=3), is_active=True, is_setup=True)
CANCELLED = subscription(expires=NOW - timedelta(days=30), is_active=False, is_setup=True)
ORDERED = subscription()

# --- Purchase or Renewal ---------------------------------------------------------------


def test_a_subscription_not_yet_set_up_is_bought_with_a_purchase() -> None:
    assert payment_type_for(ORDERED) is PURCHASE


def test_a_set_up_subscription_is_renewed_with_a_renewal_even_when_lapsed() -> None:
    assert payment_type_for(ACTIVE) is RENEWAL
    assert payment_type_for(CANCELLED) is RENEWAL


# --- applying a paid payment (D20) -------------------------------------------------------


def test_first_payment_sets_expiry_from_now_and_activates_and_sets_up() -> None:
    after = apply_paid_payment(ORDERED, payment(payment_type=PURCHASE), NOW)
    assert after.expires == NOW + timedelta(days=1)
    assert after.is_active and after.is_setup


def test_payment_on_an_active_subscription_extends_from_its_expiry() -> None:
    after = apply_paid_payment(ACTIVE, payment(time_value=3600), NOW)
    assert after.expires == NOW + timedelta(days=10, hours=1)


def test_two_payments_stack() -> None:
    once = apply_paid_payment(ACTIVE, payment(time_value=86_400), NOW)
    twice = apply_paid_payment(once, payment(id=b"\x02" * 32, time_value=86_400), NOW)
    assert twice.expires == NOW + timedelta(days=12)


def test_payment_after_lapse_extends_from_now_not_from_the_old_expiry() -> None:
    after = apply_paid_payment(LAPSED, payment(time_value=86_400), NOW)
    assert after.expires == NOW + timedelta(days=1)


def test_payment_reactivates_a_cancelled_subscription_from_now() -> None:
    after = apply_paid_payment(CANCELLED, payment(time_value=60), NOW)
    assert after.is_active
    assert after.expires == NOW + timedelta(seconds=60)


def test_time_value_zero_keeps_an_active_expiry_and_sets_a_lapsed_one_to_now() -> None:
    assert apply_paid_payment(ACTIVE, payment(time_value=0), NOW).expires == ACTIVE.expires
    after = apply_paid_payment(LAPSED, payment(time_value=0), NOW)
    assert after.expires == NOW
    assert after.is_active


def test_no_time_value_adds_one_calendar_interval_with_month_end_clamping() -> None:
    monthly = subscription(expires=NOW, is_active=True, is_setup=True)  # 31 Jan
    assert apply_paid_payment(monthly, payment(time_value=None), NOW).expires == datetime(
        2026, 2, 28, 12, tzinfo=UTC
    )


def test_no_time_value_in_a_leap_year_clamps_to_29_february() -> None:
    leap_now = datetime(2028, 1, 31, 12, tzinfo=UTC)
    after = apply_paid_payment(ORDERED, payment(time_value=None), leap_now)
    assert after.expires == datetime(2028, 2, 29, 12, tzinfo=UTC)


def test_no_time_value_uses_the_subscriptions_own_interval() -> None:
    quarterly = subscription(interval_amount=3, interval_type=IntervalType.MONTH)
    after = apply_paid_payment(quarterly, payment(time_value=None), NOW)
    assert after.expires == datetime(2026, 4, 30, 12, tzinfo=UTC)
    yearly = subscription(
        interval_type=IntervalType.YEAR, expires=datetime(2028, 2, 29, tzinfo=UTC)
    )
    after = apply_paid_payment(yearly, payment(time_value=None), NOW)
    assert after.expires == datetime(2029, 2, 28, tzinfo=UTC)
    daily = subscription(interval_type=IntervalType.DAY, interval_amount=2)
    assert apply_paid_payment(daily, payment(time_value=None), NOW).expires == NOW + timedelta(
        days=2
    )


def test_stacked_interval_payments_step_from_the_clamped_expiry() -> None:
    first = apply_paid_payment(ORDERED, payment(time_value=None), NOW)  # 31 Jan → 28 Feb
    second = apply_paid_payment(first, payment(time_value=None), NOW)  # 28 Feb → 28 Mar
    assert second.expires == datetime(2026, 3, 28, 12, tzinfo=UTC)


def test_applying_leaves_every_other_field_alone() -> None:
    after = apply_paid_payment(ACTIVE, payment(), NOW)
    assert ACTIVE.expires is not None
    assert after == subscription(
        expires=ACTIVE.expires + timedelta(days=1), is_active=True, is_setup=True
    )


def test_an_upgrade_never_changes_expiry_even_with_a_time_value() -> None:
    for tv in (0, 86_400, None):
        assert apply_paid_payment(ACTIVE, payment(payment_type=UPGRADE, time_value=tv), NOW) == (
            ACTIVE
        )


def test_an_upgrade_never_reactivates_or_extends_a_lapsed_subscription() -> None:
    """The reference set `expires = now` and `is_active = true` here (§14); D12 forbids it."""
    assert apply_paid_payment(LAPSED, payment(payment_type=UPGRADE, time_value=0), NOW) == LAPSED
    assert (
        apply_paid_payment(CANCELLED, payment(payment_type=UPGRADE, time_value=0), NOW) == CANCELLED
    )


def test_an_upgrade_does_not_set_up_a_subscription() -> None:
    assert apply_paid_payment(ORDERED, payment(payment_type=UPGRADE), NOW) == ORDERED


def test_an_upgrade_given_as_its_integer_code_is_still_an_upgrade() -> None:
    upgrade = payment(payment_type=2, time_value=0)
    assert apply_paid_payment(LAPSED, upgrade, NOW) == LAPSED


def test_an_already_paid_payment_cannot_be_applied_again() -> None:
    with pytest.raises(PaymentAlreadyCompleted) as caught:
        apply_paid_payment(ACTIVE, payment(is_paid=True, paid_at=NOW), NOW)
    assert caught.value.kind == "conflict"
    with pytest.raises(PaymentAlreadyCompleted):
        apply_paid_payment(ACTIVE, payment(payment_type=UPGRADE, is_paid=True), NOW)


def test_a_payment_of_another_subscription_is_refused() -> None:
    with pytest.raises(PaymentNotForSubscription):
        apply_paid_payment(ACTIVE, payment(subscription_id=8), NOW)


def test_a_negative_time_value_is_refused_so_expiry_never_moves_back() -> None:
    with pytest.raises(NegativeTimeValue):
        apply_paid_payment(ACTIVE, payment(time_value=-1), NOW)


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidInput):
        apply_paid_payment(ACTIVE, payment(), datetime(2026, 1, 1))  # noqa: DTZ001


def test_mark_paid_sets_paid_and_paid_at_once() -> None:
    paid = mark_paid(payment(), NOW)
    assert paid.is_paid and paid.paid_at == NOW
    with pytest.raises(PaymentAlreadyCompleted, match="Payment is already completed"):
        mark_paid(paid, NOW)


subscriptions = st.builds(
    subscription,
    expires=st.none()
    | st.integers(min_value=-400 * 86_400, max_value=400 * 86_400).map(
        lambda s: NOW + timedelta(seconds=s)
    ),
    is_active=st.booleans(),
    is_setup=st.booleans(),
    interval_type=st.sampled_from(list(IntervalType)),
    interval_amount=st.integers(min_value=1, max_value=12),
)
time_values = st.none() | st.integers(min_value=0, max_value=10 * 366 * 86_400)


@given(subscriptions, time_values, st.sampled_from(list(SubscriptionPaymentType)))
def test_expiry_never_moves_backwards(
    sub: Subscription, tv: int | None, kind: SubscriptionPaymentType
) -> None:
    after = apply_paid_payment(sub, payment(time_value=tv, payment_type=kind), NOW)
    if sub.expires is not None:
        assert after.expires is not None and after.expires >= sub.expires
    if kind is not UPGRADE:
        assert after.expires is not None and after.expires >= NOW
        assert after.is_active and after.is_setup


@given(
    st.integers(min_value=0, max_value=400 * 86_400),
    st.integers(min_value=0, max_value=86_400 * 40),
    st.integers(min_value=1, max_value=12),
)
def test_n_payments_of_t_seconds_add_exactly_n_times_t_to_an_active_subscription(
    ahead: int, t: int, n: int
) -> None:
    sub = subscription(expires=NOW + timedelta(seconds=ahead), is_active=True, is_setup=True)
    after = sub
    for i in range(n):
        after = apply_paid_payment(after, payment(id=bytes([i]) * 32, time_value=t), NOW)
    assert after.expires == NOW + timedelta(seconds=ahead + n * t)


# --- interval count of a payment (D10) --------------------------------------------------


def test_renewal_metadata_records_the_interval_count() -> None:
    assert renewal_metadata(3) == {"intervals": 3}
    with pytest.raises(IntervalCountOutOfRange):
        renewal_metadata(0)


@pytest.mark.parametrize(
    ("metadata", "count"),
    [
        ({"intervals": 3}, 3),
        ('{"intervals": 12}', 12),
        (b'{"intervals": 2}', 2),
        (None, 1),
        ("null", 1),
        ({}, 1),
        ({"new_cpu": 4, "new_memory": None, "new_disk": None}, 1),
        ({"intervals": 0}, None),
        ({"intervals": 121}, None),
        ({"intervals": True}, None),
        ({"intervals": "3"}, None),
        ({"intervals": 3.0}, None),
        ("{not json", None),
        ([3], None),
        ("3", None),
    ],
)
def test_interval_count_is_read_from_metadata_and_defaults_to_one(
    metadata: object, count: int | None
) -> None:
    assert payment_interval_count(payment(metadata=metadata)) == count


# --- reuse of a pending payment (D10) ---------------------------------------------------

ASK: dict[str, Any] = {
    "subscription_id": 7,
    "method": LIGHTNING,
    "payment_type": RENEWAL,
    "interval_count": 1,
    "now": NOW,
}


def test_a_pending_payment_of_the_same_kind_is_reused() -> None:
    assert reusable(payment(), **ASK)
    assert reusable(payment(payment_type=PURCHASE), **{**ASK, "payment_type": PURCHASE})
    assert reusable(payment(metadata={"intervals": 3}), **{**ASK, "interval_count": 3})


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"payment_method": REVOLUT}, "other method"),
        ({"payment_type": PURCHASE}, "other type"),
        ({"metadata": {"intervals": 2}}, "other count"),
        ({"subscription_id": 8}, "other subscription"),
        ({"expires": NOW}, "expired exactly now"),
        ({"expires": NOW - timedelta(seconds=1)}, "expired"),
        ({"is_paid": True}, "paid"),
        ({"metadata": "{broken"}, "count unknown"),
    ],
)
def test_a_payment_that_differs_is_not_reused(changes: dict[str, Any], why: str) -> None:
    assert not reusable(payment(**changes), **ASK), why


def test_upgrade_payments_are_never_reused() -> None:
    upgrade = payment(payment_type=UPGRADE, time_value=0)
    assert not reusable(upgrade, **{**ASK, "payment_type": UPGRADE})
    assert not reusable(upgrade, **ASK)


def test_a_renewal_asked_for_n_intervals_does_not_reuse_a_single_interval_payment() -> None:
    assert not reusable(payment(metadata=None), **{**ASK, "interval_count": 3})
    assert reusable(payment(metadata=None), **ASK)


def test_reuse_refuses_a_bad_interval_count() -> None:
    with pytest.raises(IntervalCountOutOfRange):
        reusable(payment(), **{**ASK, "interval_count": 0})


def test_pick_returns_the_newest_reusable_payment() -> None:
    older = payment(id=b"\x01" * 32, created=NOW - timedelta(minutes=5))
    newer = payment(id=b"\x02" * 32, created=NOW - timedelta(minutes=2))
    newest_but_paid = payment(id=b"\x03" * 32, created=NOW - timedelta(minutes=1), is_paid=True)
    newest_other_method = payment(
        id=b"\x04" * 32, created=NOW - timedelta(seconds=5), payment_method=REVOLUT
    )
    for order in ([older, newer, newest_but_paid, newest_other_method], [newer, older]):
        assert pick_reusable_payment(order, **ASK) == newer


def test_pick_returns_none_when_nothing_matches() -> None:
    assert pick_reusable_payment([], **ASK) is None
    assert pick_reusable_payment([payment(is_paid=True)], **ASK) is None


def test_pick_keeps_the_first_of_equally_new_payments() -> None:
    a = payment(id=b"\x0a" * 32)
    b = payment(id=b"\x0b" * 32)
    assert pick_reusable_payment([a, b], **ASK) is a
