"""Expiring-soon window, grace tiers, unpaid cleanup, due actions and states (D15–D17, §9–10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import IntervalType
from domain.errors import IllegalStateTransition, InvalidInput
from domain.intervals import Interval
from domain.lifecycle import (
    SUBSCRIPTION_TRANSITIONS,
    VM_TRANSITIONS,
    DueAction,
    LifecycleAction,
    SubscriptionState,
    VmState,
    check_transition,
    deactivated,
    decide_lifecycle_actions,
    deletion_due_at,
    expiring_soon_window,
    grace_period,
    is_deletion_due,
    is_expired,
    is_expiring_soon,
    is_transition_allowed,
    never_paid_cleanup_due,
    stored_state,
    subscription_age,
    subscription_changed,
    subscription_state,
    vm_changed,
    vm_deleted,
    vm_state,
)
from domain.model import PLACEHOLDER_MAC, Subscription, Vm

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
A = LifecycleAction


def subscription(**changes: Any) -> Subscription:
    fields: dict[str, Any] = {
        "id": 7,
        "user_id": 1,
        "company_id": 1,
        "name": "VM1 subscription",
        "created": NOW - timedelta(days=365),
        "currency": "EUR",
        "is_active": True,
        "is_setup": True,
        "expires": NOW + timedelta(days=10),
    }
    fields.update(changes)
    return Subscription(**fields)


def vm(**changes: Any) -> Vm:
    fields: dict[str, Any] = {
        "id": 1,
        "host_id": 1,
        "user_id": 1,
        "image_id": 1,
        "template_id": 1,
        "custom_template_id": None,
        "ssh_key_id": 1,
        "disk_id": 1,
        "subscription_line_item_id": 1,
        "mac_address": "52:54:00:12:34:56",
    }
    fields.update(changes)
    return Vm(**fields)


def actions(
    sub: Subscription, now: datetime = NOW, delete_after: int = 3, auto: bool = False
) -> list[LifecycleAction]:
    return [d.action for d in decide_lifecycle_actions(sub, now, delete_after, auto)]


# --- expiring-soon window (D16) ---------------------------------------------------------


def test_window_is_one_day_for_a_monthly_or_yearly_plan() -> None:
    assert expiring_soon_window(Interval(IntervalType.MONTH), NOW) == DAY
    assert expiring_soon_window(Interval(IntervalType.YEAR), NOW) == DAY
    assert expiring_soon_window(Interval(IntervalType.DAY, 2), NOW) == DAY


def test_window_is_capped_at_half_a_daily_plan() -> None:
    assert expiring_soon_window(Interval(IntervalType.DAY), NOW) == timedelta(hours=12)


def test_a_daily_plan_just_bought_is_not_expiring_soon() -> None:
    """The incident: 1-day plan, 1-day lead → auto-renewed seconds after purchase."""
    daily = subscription(interval_type=IntervalType.DAY, expires=NOW + DAY)
    assert not is_expiring_soon(daily, NOW)
    assert actions(daily, auto=True) == []
    assert not is_expiring_soon(daily, NOW + timedelta(hours=12))
    assert is_expiring_soon(daily, NOW + timedelta(hours=12) + SECOND)


def test_expiring_soon_is_strictly_inside_the_last_day() -> None:
    sub = subscription(expires=NOW + DAY)
    assert not is_expiring_soon(sub, NOW)
    assert is_expiring_soon(sub, NOW + SECOND)
    assert is_expiring_soon(sub, NOW + DAY - SECOND)
    assert not is_expiring_soon(sub, NOW + DAY)
    assert not is_expiring_soon(subscription(expires=None), NOW)


def test_expired_means_expiry_reached() -> None:
    assert not is_expired(subscription(expires=NOW + SECOND), NOW)
    assert is_expired(subscription(expires=NOW), NOW)
    assert not is_expired(subscription(expires=None), NOW)


# --- grace period tiers (D16) -------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "grace_days"),
    [
        (timedelta(0), 1),
        (DAY, 1),
        (2 * DAY - SECOND, 1),  # whole days: still 1
        (2 * DAY, 2),
        (7 * DAY, 2),
        (8 * DAY - SECOND, 2),
        (8 * DAY, 7),
        (28 * DAY, 7),
        (29 * DAY - SECOND, 7),
        (29 * DAY, 14),
        (180 * DAY, 14),
        (181 * DAY - SECOND, 14),
        (181 * DAY, 3),
        (3650 * DAY, 3),
        (-DAY, 1),
    ],
)
def test_grace_grows_with_age_in_whole_days(age: timedelta, grace_days: int) -> None:
    assert grace_period(age, 3) == timedelta(days=grace_days)


def test_old_subscriptions_get_the_configured_delete_after_even_zero_or_more() -> None:
    assert grace_period(365 * DAY, 0) == timedelta(0)
    assert grace_period(365 * DAY, 30) == timedelta(days=30)
    assert grace_period(180 * DAY, 30) == timedelta(days=14)


@pytest.mark.parametrize("bad", [-1, True, "3", None])
def test_delete_after_must_be_non_negative_days(bad: object) -> None:
    with pytest.raises(InvalidInput):
        grace_period(DAY, bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        decide_lifecycle_actions(subscription(), NOW, bad, False)  # type: ignore[arg-type]


def test_age_is_how_long_the_subscription_was_paid_for() -> None:
    sub = subscription(created=NOW - 40 * DAY, expires=NOW - 10 * DAY)
    assert subscription_age(sub) == 30 * DAY
    assert subscription_age(subscription(expires=None)) is None


def test_deletion_is_due_strictly_after_expiry_plus_grace() -> None:
    young = subscription(created=NOW - 5 * DAY, expires=NOW - DAY)  # age 4 days → grace 2
    assert deletion_due_at(young, 3) == NOW + DAY
    assert not is_deletion_due(young, NOW + DAY, 3)
    assert is_deletion_due(young, NOW + DAY + SECOND, 3)
    old = subscription(expires=NOW - DAY)  # age 364 days → delete_after
    assert deletion_due_at(old, 3) == NOW + 2 * DAY
    assert deletion_due_at(subscription(expires=None), 3) is None
    assert not is_deletion_due(subscription(expires=None), NOW, 3)


def test_deadline_does_not_move_while_in_grace() -> None:
    sub = subscription(created=NOW - 30 * DAY, expires=NOW - 3 * DAY)
    assert deletion_due_at(sub, 3) == NOW - 3 * DAY + timedelta(days=7)


# --- never-paid cleanup (D17) -----------------------------------------------------------


def unpaid(**changes: Any) -> Subscription:
    return subscription(**{"is_setup": False, "is_active": False, "expires": None, **changes})


def test_an_unpaid_order_is_cleaned_up_strictly_after_one_hour() -> None:
    assert not never_paid_cleanup_due(unpaid(created=NOW - HOUR), False, NOW)
    assert never_paid_cleanup_due(unpaid(created=NOW - HOUR - SECOND), False, NOW)
    assert not never_paid_cleanup_due(unpaid(created=NOW - HOUR + SECOND), False, NOW)


def test_a_pending_payment_spares_an_unpaid_order() -> None:
    assert not never_paid_cleanup_due(unpaid(created=NOW - DAY), True, NOW)


def test_a_paid_order_is_never_cleaned_up_as_unpaid() -> None:
    assert not never_paid_cleanup_due(subscription(created=NOW - DAY), False, NOW)
    lapsed = subscription(created=NOW - DAY, expires=NOW - HOUR, is_active=False)
    assert not never_paid_cleanup_due(lapsed, False, NOW)


def test_an_order_given_time_without_payment_is_not_cleaned_up() -> None:
    """Admin-extended or legacy-migrated: is_setup = 0 but an expiry exists."""
    assert not never_paid_cleanup_due(unpaid(created=NOW - DAY, expires=NOW + DAY), False, NOW)


# --- due actions (D15, §9.4) --------------------------------------------------------------


def test_nothing_is_due_well_before_expiry() -> None:
    assert actions(subscription(expires=NOW + 2 * DAY), auto=True) == []


def test_inside_the_window_a_notice_is_due_tagged_with_the_period() -> None:
    sub = subscription(expires=NOW + HOUR)
    assert decide_lifecycle_actions(sub, NOW, 3, False) == [
        DueAction(subscription_id=7, action=A.EXPIRING_SOON_NOTICE, period=NOW + HOUR)
    ]


def test_inside_the_window_auto_renewal_replaces_the_notice_when_opted_in_and_possible() -> None:
    opted_in = subscription(expires=NOW + HOUR, auto_renewal_enabled=True)
    assert actions(opted_in, auto=True) == [A.AUTO_RENEW_ATTEMPT]
    assert actions(opted_in, auto=False) == [A.EXPIRING_SOON_NOTICE]
    assert actions(subscription(expires=NOW + HOUR), auto=True) == [A.EXPIRING_SOON_NOTICE]


def test_at_the_moment_of_expiry_stop_and_addon_deactivation_are_due() -> None:
    sub = subscription(expires=NOW)
    assert actions(sub) == [A.STOP_ON_EXPIRY, A.DEACTIVATE_ADDONS]


def test_within_grace_stop_is_due_for_that_period_only() -> None:
    sub = subscription(expires=NOW - DAY)
    due = decide_lifecycle_actions(sub, NOW, 3, True)
    assert [d.action for d in due] == [A.STOP_ON_EXPIRY, A.DEACTIVATE_ADDONS]
    assert {d.period for d in due} == {NOW - DAY}


def test_after_grace_only_deletion_is_due() -> None:
    sub = subscription(expires=NOW - 3 * DAY - SECOND)  # old: grace = delete_after = 3
    assert actions(sub) == [A.DELETE_AFTER_GRACE]
    assert actions(subscription(expires=NOW - 3 * DAY)) == [A.STOP_ON_EXPIRY, A.DEACTIVATE_ADDONS]


def test_with_delete_after_zero_an_old_subscription_is_deleted_right_after_expiry() -> None:
    assert actions(subscription(expires=NOW), delete_after=0) == [
        A.STOP_ON_EXPIRY,
        A.DEACTIVATE_ADDONS,
    ]
    assert actions(subscription(expires=NOW - SECOND), delete_after=0) == [A.DELETE_AFTER_GRACE]


def test_a_young_subscription_uses_its_tier_not_delete_after() -> None:
    young = subscription(created=NOW - 3 * DAY, expires=NOW - DAY - SECOND)  # age < 2 d → 1 d
    assert actions(young, delete_after=30) == [A.DELETE_AFTER_GRACE]


def test_an_already_expired_subscription_never_gets_an_expiring_soon_notice() -> None:
    """The reference's first-run quirk (last_check = epoch) is not reproduced."""
    assert A.EXPIRING_SOON_NOTICE not in actions(subscription(expires=NOW - HOUR))
    assert A.AUTO_RENEW_ATTEMPT not in actions(
        subscription(expires=NOW - HOUR, auto_renewal_enabled=True), auto=True
    )


def test_inactive_or_never_paid_subscriptions_have_no_lifecycle_actions() -> None:
    assert actions(subscription(is_active=False, expires=NOW - 30 * DAY)) == []
    assert actions(subscription(is_active=False, expires=NOW + HOUR)) == []
    assert actions(unpaid(created=NOW - DAY)) == []


def test_a_renewal_opens_a_new_period() -> None:
    before = decide_lifecycle_actions(subscription(expires=NOW + HOUR), NOW, 3, False)
    renewed = subscription(expires=NOW + HOUR + timedelta(days=31))
    later = NOW + timedelta(days=31)
    after = decide_lifecycle_actions(renewed, later, 3, False)
    assert [d.action for d in after] == [A.EXPIRING_SOON_NOTICE]
    assert before[0].period != after[0].period


paid_offsets = st.integers(min_value=1, max_value=400 * 86_400)
any_offsets = st.integers(min_value=-400 * 86_400, max_value=400 * 86_400)


@given(
    paid_offsets,
    st.sampled_from(list(IntervalType)),
    st.booleans(),
    st.booleans(),
    st.integers(min_value=0, max_value=60),
)
def test_a_paid_unexpired_subscription_never_gets_stop_or_delete(
    ahead: int, unit: IntervalType, opted: bool, auto: bool, delete_after: int
) -> None:
    sub = subscription(
        expires=NOW + timedelta(seconds=ahead), interval_type=unit, auto_renewal_enabled=opted
    )
    due = {d.action for d in decide_lifecycle_actions(sub, NOW, delete_after, auto)}
    assert not due & {A.STOP_ON_EXPIRY, A.DEACTIVATE_ADDONS, A.DELETE_AFTER_GRACE}
    assert len(due) <= 1


@given(any_offsets, st.integers(min_value=0, max_value=60))
def test_every_due_action_is_tagged_with_the_current_expiry(offset: int, delete_after: int) -> None:
    sub = subscription(expires=NOW + timedelta(seconds=offset))
    for due in decide_lifecycle_actions(sub, NOW, delete_after, True):
        assert due.period == sub.expires
        assert due.subscription_id == sub.id


# --- states (§10) -------------------------------------------------------------------------

S, V = SubscriptionState, VmState
GRACE = 3 * DAY


@pytest.mark.parametrize(
    ("sub", "state"),
    [
        (unpaid(), S.ORDERED),
        (subscription(expires=NOW + 2 * DAY), S.ACTIVE),
        (subscription(expires=NOW + HOUR), S.EXPIRING_SOON),
        (subscription(expires=NOW), S.EXPIRED_IN_GRACE),
        (subscription(expires=NOW - GRACE), S.EXPIRED_IN_GRACE),
        (subscription(expires=NOW - GRACE - SECOND), S.CANCELLED),
        (subscription(expires=NOW + 2 * DAY, is_active=False), S.CANCELLED),
        (subscription(expires=NOW - 30 * DAY, is_active=False), S.CANCELLED),
    ],
)
def test_subscription_state_is_derived_from_expiry_activity_and_grace(
    sub: Subscription, state: SubscriptionState
) -> None:
    assert subscription_state(sub, NOW, GRACE) is state


@pytest.mark.parametrize(
    ("machine", "sub", "state"),
    [
        (vm(mac_address=PLACEHOLDER_MAC), unpaid(), V.ORDERED),
        (vm(mac_address=PLACEHOLDER_MAC), subscription(), V.CREATING),
        (vm(), subscription(), V.PROVISIONED),
        (vm(), subscription(expires=NOW), V.EXPIRED),
        (vm(mac_address=PLACEHOLDER_MAC), subscription(expires=NOW - DAY), V.EXPIRED),
        (vm(deleted=True), subscription(), V.DELETED),
        (vm(deleted=True, mac_address=PLACEHOLDER_MAC), unpaid(), V.DELETED),
    ],
)
def test_vm_state_is_derived_from_vm_and_subscription(
    machine: Vm, sub: Subscription, state: VmState
) -> None:
    assert vm_state(machine, sub, NOW) is state


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.ORDERED, S.ACTIVE),
        (S.ACTIVE, S.EXPIRING_SOON),
        (S.EXPIRING_SOON, S.ACTIVE),
        (S.EXPIRING_SOON, S.EXPIRED_IN_GRACE),
        (S.EXPIRED_IN_GRACE, S.ACTIVE),
        (S.EXPIRED_IN_GRACE, S.CANCELLED),
        (S.CANCELLED, S.ACTIVE),
        (S.ACTIVE, S.ACTIVE),
        (V.ORDERED, V.CREATING),
        (V.ORDERED, V.DELETED),
        (V.CREATING, V.PROVISIONED),
        (V.PROVISIONED, V.EXPIRED),
        (V.EXPIRED, V.PROVISIONED),
        (V.EXPIRED, V.DELETED),
        (V.DELETED, V.CREATING),
        (V.DELETED, V.PROVISIONED),
        # a payment that bought no time (D23), an admin extension short of now (§10.1)
        (S.ORDERED, S.EXPIRED_IN_GRACE),
        (S.CANCELLED, S.EXPIRED_IN_GRACE),
        (V.ORDERED, V.EXPIRED),
        (V.DELETED, V.EXPIRED),
    ],
)
def test_lifecycle_transitions_are_allowed(
    current: SubscriptionState | VmState, target: SubscriptionState | VmState
) -> None:
    check_transition(current, target)
    assert is_transition_allowed(current, target)


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.ACTIVE, S.ORDERED),
        (S.CANCELLED, S.ORDERED),
        (S.ORDERED, S.CANCELLED),
        (S.ACTIVE, S.EXPIRED_IN_GRACE),
        (V.PROVISIONED, V.CREATING),
        (V.PROVISIONED, V.ORDERED),
        (V.DELETED, V.ORDERED),
        (V.ORDERED, V.PROVISIONED),
        (S.ORDERED, V.ORDERED),
    ],
)
def test_illegal_transitions_raise_a_named_error(
    current: SubscriptionState | VmState, target: SubscriptionState | VmState
) -> None:
    assert not is_transition_allowed(current, target)
    with pytest.raises(IllegalStateTransition, match="illegal transition"):
        check_transition(current, target)


def test_every_state_has_a_row_and_nothing_leads_back_to_ordered() -> None:
    assert set(SUBSCRIPTION_TRANSITIONS) == set(SubscriptionState)
    assert set(VM_TRANSITIONS) == set(VmState)
    assert all(S.ORDERED not in targets for targets in SUBSCRIPTION_TRANSITIONS.values())
    assert all(V.ORDERED not in targets for targets in VM_TRANSITIONS.values())


@given(any_offsets, st.integers(min_value=0, max_value=7 * 86_400))
def test_passing_time_only_moves_a_subscription_along_allowed_transitions(
    offset: int, step: int
) -> None:
    sub = subscription(expires=NOW + timedelta(seconds=offset))
    before = subscription_state(sub, NOW, GRACE)
    after = subscription_state(sub, NOW + timedelta(seconds=step), GRACE)
    order = [S.ACTIVE, S.EXPIRING_SOON, S.EXPIRED_IN_GRACE, S.CANCELLED]
    assert order.index(after) >= order.index(before)


# --- the law: use cases change states only through these (§10) ------------------------------


def test_stored_state_counts_an_active_subscription_past_grace_as_in_grace() -> None:
    """The grace deadline is the worker's to enforce: until it deactivates, no use case sees
    CANCELLED (it would make a payment's CANCELLED → ACTIVE and EXPIRED_IN_GRACE → ACTIVE
    depend on a setting the use case does not know)."""
    long_ago = subscription(expires=NOW - 400 * DAY)
    assert stored_state(long_ago, NOW) is S.EXPIRED_IN_GRACE
    assert stored_state(deactivated(long_ago, NOW), NOW) is S.CANCELLED


def test_the_law_refuses_taking_paid_time_back_and_un_paying() -> None:
    sub = subscription(expires=NOW + 10 * DAY)
    with pytest.raises(IllegalStateTransition, match=r"ACTIVE → SubscriptionState\.EXPIRED"):
        subscription_changed(sub, subscription(expires=NOW - DAY), NOW)
    with pytest.raises(IllegalStateTransition, match="ORDERED"):
        subscription_changed(sub, subscription(expires=None, is_setup=False), NOW)
    longer = subscription(expires=NOW + 40 * DAY)
    assert subscription_changed(sub, longer, NOW) is longer


def test_the_vm_law_allows_deletion_and_refuses_unprovisioning() -> None:
    sub = subscription()
    live = vm()
    assert vm_deleted(live, sub, NOW).deleted
    with pytest.raises(IllegalStateTransition, match=r"PROVISIONED → VmState\.CREATING"):
        vm_changed((live, sub), (vm(mac_address=PLACEHOLDER_MAC), sub), NOW)
