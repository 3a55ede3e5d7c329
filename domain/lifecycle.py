"""Lifecycle rules: expiring-soon window, grace, unpaid cleanup, due actions, states (§9–10)."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

import attrs

from domain.errors import IllegalStateTransition, InvalidInput
from domain.intervals import Interval, require_utc
from domain.model import Subscription, Vm
from domain.switch_off import winds_down

#: the longest expiring-soon lead (D16); it is capped at half the interval.
EXPIRING_SOON_LEAD = timedelta(days=1)

#: an order never paid is cleaned up once it is older than this (D17).
UNPAID_CLEANUP_AFTER = timedelta(hours=1)

#: (age in whole days at most, grace in days), in order; older falls to `delete_after` (D16).
GRACE_TIERS: tuple[tuple[int, int], ...] = ((1, 1), (7, 2), (28, 7), (180, 14))

_DAY = timedelta(days=1)


def expiring_soon_window(interval: Interval, expires: datetime) -> timedelta:
    """How long before `expires` the subscription counts as expiring soon (D16).

    One day, capped at half the interval, so a daily plan is not auto-renewed seconds after
    purchase (a fresh expiry of now + 1 day would otherwise already be inside the window).
    The interval is measured as the calendar period that ends at `expires` (D7).
    """
    half = timedelta(seconds=interval.seconds_of_period_ending(expires)) / 2
    return min(EXPIRING_SOON_LEAD, half)


def is_expiring_soon(sub: Subscription, now: datetime) -> bool:
    """Paid, not yet expired, and inside the window: `expires − window < now < expires`."""
    now = require_utc(now)
    if sub.expires is None:
        return False
    window = expiring_soon_window(sub.interval, sub.expires)
    return sub.expires - window < now < sub.expires


#: retries of an auto-renewal attempt that failed before any payment request reached the
#: wallet, for a passing cause (no fresh exchange rate, the node unreachable), per period
AUTO_RENEW_RETRIES = 16
#: the wait before the first such retry; it doubles after each failure, up to the longest
AUTO_RENEW_FIRST_RETRY = timedelta(minutes=5)
AUTO_RENEW_LONGEST_WAIT = timedelta(hours=2)


def auto_renew_retry_at(sub: Subscription, failed_at: datetime, failures: int) -> datetime | None:
    """When an auto-renewal that failed at `failed_at` (the period's `failures`-th failure,
    every one before the wallet was asked) may be tried again: 5 minutes later, doubling
    after each failure up to 2 hours. None when it may not: `AUTO_RENEW_RETRIES` are used
    up, or the retry would fall in the second half of the expiring-soon window, which is
    left to the user (told of the failure then) to renew by hand before the expiry."""
    failed_at = require_utc(failed_at)
    if sub.expires is None or failures < 1 or failures > AUTO_RENEW_RETRIES:
        return None
    wait = min(AUTO_RENEW_FIRST_RETRY * (1 << (failures - 1)), AUTO_RENEW_LONGEST_WAIT)
    retry = failed_at + wait
    expires = require_utc(sub.expires)
    if retry > expires - expiring_soon_window(sub.interval, expires) / 2:
        return None
    return retry


def is_expired(sub: Subscription, now: datetime) -> bool:
    """The paid time is over: `expires <= now` (paid time covers `[.., expires)`)."""
    return sub.expires is not None and sub.expires <= require_utc(now)


def subscription_age(sub: Subscription) -> timedelta | None:
    """How long the subscription had been paid for: `expires − created` (D16); None if unpaid.

    The reference's later releases measure `now − created`, which keeps growing during the
    grace period and so moves the deadline it is measuring; `expires − created` fixes it.
    """
    if sub.expires is None:
        return None
    return require_utc(sub.expires) - require_utc(sub.created)


def _check_delete_after(days: int) -> int:
    if isinstance(days, bool) or not isinstance(days, int) or days < 0:
        raise InvalidInput(f"delete-after must be a whole number of days ≥ 0, got {days!r}")
    return days


def grace_period(age: timedelta, delete_after_days: int) -> timedelta:
    """Grace after expiry before deletion, growing with the subscription's age (D16).

    Age is counted in whole days, truncated (as the reference's `num_days()`): ≤ 1 → 1 day,
    ≤ 7 → 2, ≤ 28 → 7, ≤ 180 → 14, else `delete_after_days`. Truncation keeps a daily plan
    paid a few minutes after ordering (age 1 day and minutes) in the 1-day tier.
    """
    _check_delete_after(delete_after_days)
    days = max(age // _DAY, 0)
    for most, grace in GRACE_TIERS:
        if days <= most:
            return timedelta(days=grace)
    return timedelta(days=delete_after_days)


def deletion_due_at(sub: Subscription, delete_after_days: int) -> datetime | None:
    """The end of the grace period, `expires + grace(age)`; None for a never-paid one.

    Deletion is due once `now` is strictly after it (reference: `expires + G < now`).
    """
    age = subscription_age(sub)
    if sub.expires is None or age is None:
        return None
    return sub.expires + grace_period(age, delete_after_days)


def is_deletion_due(sub: Subscription, now: datetime, delete_after_days: int) -> bool:
    due = deletion_due_at(sub, delete_after_days)
    return due is not None and require_utc(now) > due


def never_paid_cleanup_due(sub: Subscription, has_pending_payment: bool, now: datetime) -> bool:
    """Whether the VM of a never-paid order is deleted now (D17).

    Never set up, never given an expiry (not `in_service`), no pending payment, and ordered
    strictly more than one hour ago. The expiry guard (not in the reference) spares a
    subscription that an admin extended or a legacy migration gave time without a paid
    payment.
    """
    now = require_utc(now)
    return (
        not sub.in_service
        and not has_pending_payment
        and now - require_utc(sub.created) > UNPAID_CLEANUP_AFTER
    )


class LifecycleAction(Enum):
    """A worker action on a subscription, done once per period (D15); values are stored."""

    #: N1 "Expiring Soon" (no auto-renewal possible).
    EXPIRING_SOON_NOTICE = "expiring_soon_notice"
    #: NWC auto-renewal; its outcome picks N2 "Auto-Renewed" or N3 "Expiring Soon" (failed).
    AUTO_RENEW_ATTEMPT = "auto_renew_attempt"
    #: N5 "Expired" and each VM line item's `on_expired` (stop the VM, history, N6).
    STOP_ON_EXPIRY = "stop_on_expiry"
    #: each non-VM line item's `on_expired` (IP-range allocations ended).
    DEACTIVATE_ADDONS = "deactivate_addons"
    #: `is_active = false` (deactivate_subscription), N4 and `on_grace_period_exceeded`.
    DELETE_AFTER_GRACE = "delete_after_grace"


@attrs.frozen(kw_only=True)
class DueAction:
    """An action due now; `period` (the `expires` it belongs to) makes it once-per-period."""

    subscription_id: int
    action: LifecycleAction
    period: datetime


def decide_lifecycle_actions(
    sub: Subscription, now: datetime, delete_after_days: int, auto_renew_enabled: bool
) -> list[DueAction]:
    """The actions due now, in §9.4's order; the worker claims each (id, action, period) once.

    Active subscriptions with an expiry are handled (the reference's lifecycle set), and so
    is one an admin switched off whose end is still to come (`domain.switch_off.winds_down`):
    it gets the after-expiry actions only, as an unpaid one does, and none before (it cannot
    be renewed, so neither an auto-renewal nor an "expiring soon" notice). Before expiry:
    inside the window, AUTO_RENEW_ATTEMPT when the subscription opted in and
    `auto_renew_enabled` (the caller's "a renewal can be attempted": NWC configured and the
    user has a wallet string), else EXPIRING_SOON_NOTICE. After expiry, within grace:
    STOP_ON_EXPIRY then DEACTIVATE_ADDONS. After grace: DELETE_AFTER_GRACE alone (deleting
    stops the VM, deactivating ends the add-ons). A paid, unexpired subscription never gets
    STOP or DELETE. Unlike the reference, no `last_check` is involved, so a fresh worker
    does not send an expired subscription an "Expiring Soon" notice (§9.4 first-run quirk)
    and the per-period claim stops the expiry branch from repeating every run.
    """
    now = require_utc(now)
    _check_delete_after(delete_after_days)
    if sub.expires is None or not (sub.is_active or winds_down(sub)):
        return []
    period = require_utc(sub.expires)

    def due(*actions: LifecycleAction) -> list[DueAction]:
        return [DueAction(subscription_id=sub.id, action=a, period=period) for a in actions]

    if now < period:
        if not sub.is_active or not is_expiring_soon(sub, now):
            return []
        if sub.auto_renewal_enabled and auto_renew_enabled:
            return due(LifecycleAction.AUTO_RENEW_ATTEMPT)
        return due(LifecycleAction.EXPIRING_SOON_NOTICE)
    if is_deletion_due(sub, now, delete_after_days):
        return due(LifecycleAction.DELETE_AFTER_GRACE)
    return due(LifecycleAction.STOP_ON_EXPIRY, LifecycleAction.DEACTIVATE_ADDONS)


class SubscriptionState(Enum):
    """Derived subscription state (§10.1)."""

    ORDERED = "ordered"
    ACTIVE = "active"
    EXPIRING_SOON = "expiring_soon"
    EXPIRED_IN_GRACE = "expired_in_grace"
    CANCELLED = "cancelled"


class VmState(Enum):
    """Derived VM state (§10.2)."""

    ORDERED = "ordered"
    CREATING = "creating"
    PROVISIONED = "provisioned"
    EXPIRED = "expired"
    DELETED = "deleted"


def subscription_state(sub: Subscription, now: datetime, grace: timedelta) -> SubscriptionState:
    """ORDERED without an expiry; CANCELLED when inactive or past `expires + grace`.

    Past the grace period the state is CANCELLED even before the worker has flipped
    `is_active`: the cancellation is due.
    """
    now = require_utc(now)
    if sub.expires is None:
        return SubscriptionState.ORDERED
    if not sub.is_active:
        return SubscriptionState.CANCELLED
    if now < sub.expires:
        if is_expiring_soon(sub, now):
            return SubscriptionState.EXPIRING_SOON
        return SubscriptionState.ACTIVE
    if now <= sub.expires + grace:
        return SubscriptionState.EXPIRED_IN_GRACE
    return SubscriptionState.CANCELLED


def vm_state(vm: Vm, sub: Subscription, now: datetime) -> VmState:
    """DELETED, else ORDERED (never paid), EXPIRED, CREATING (placeholder MAC) or PROVISIONED."""
    now = require_utc(now)
    if vm.deleted:
        return VmState.DELETED
    if sub.expires is None:
        return VmState.ORDERED
    if sub.expires <= now:
        return VmState.EXPIRED
    return VmState.PROVISIONED if vm.is_provisioned else VmState.CREATING


_S = SubscriptionState
_V = VmState

#: allowed subscription changes: payment (→ ACTIVE or EXPIRING_SOON if it bought little), time
#: passing, deactivation (admin, or the worker after grace). A payment that bought no time
#: (unvalued, D23) or an admin extension that stops short of now re-activates an ORDERED or
#: CANCELLED one still expired: → EXPIRED_IN_GRACE (§10.1 "admin extend: any"). Nothing
#: returns to ORDERED, and no change takes paid time back (ACTIVE ↛ EXPIRED_IN_GRACE).
SUBSCRIPTION_TRANSITIONS: dict[SubscriptionState, frozenset[SubscriptionState]] = {
    _S.ORDERED: frozenset({_S.ACTIVE, _S.EXPIRING_SOON, _S.EXPIRED_IN_GRACE}),
    _S.ACTIVE: frozenset({_S.EXPIRING_SOON, _S.CANCELLED}),
    _S.EXPIRING_SOON: frozenset({_S.ACTIVE, _S.EXPIRED_IN_GRACE, _S.CANCELLED}),
    _S.EXPIRED_IN_GRACE: frozenset({_S.ACTIVE, _S.EXPIRING_SOON, _S.CANCELLED}),
    _S.CANCELLED: frozenset({_S.ACTIVE, _S.EXPIRING_SOON, _S.EXPIRED_IN_GRACE}),
}

#: allowed VM changes (§10.2): first payment, spawn, expiry, renewal, deletion (unpaid
#: cleanup, grace, admin) and the late payment that un-deletes (D20 step 2); a first or late
#: payment that bought no time (D23) leaves the VM EXPIRED.
VM_TRANSITIONS: dict[VmState, frozenset[VmState]] = {
    _V.ORDERED: frozenset({_V.CREATING, _V.EXPIRED, _V.DELETED}),
    _V.CREATING: frozenset({_V.PROVISIONED, _V.EXPIRED, _V.DELETED}),
    _V.PROVISIONED: frozenset({_V.EXPIRED, _V.DELETED}),
    _V.EXPIRED: frozenset({_V.CREATING, _V.PROVISIONED, _V.DELETED}),
    _V.DELETED: frozenset({_V.CREATING, _V.PROVISIONED, _V.EXPIRED}),
}


def is_transition_allowed(
    current: SubscriptionState | VmState, target: SubscriptionState | VmState
) -> bool:
    """Staying put is always allowed; otherwise the table decides; kinds never mix."""
    if type(current) is not type(target):
        return False
    if current is target:
        return True
    if isinstance(current, SubscriptionState):
        return target in SUBSCRIPTION_TRANSITIONS[current]
    return target in VM_TRANSITIONS[current]


def check_transition(
    current: SubscriptionState | VmState, target: SubscriptionState | VmState
) -> None:
    """Raise IllegalStateTransition unless `current → target` is in the table."""
    if not is_transition_allowed(current, target):
        raise IllegalStateTransition(
            f"illegal transition {type(current).__name__}.{current.name} → "
            f"{type(target).__name__}.{target.name}"
        )


def stored_state(sub: Subscription, now: datetime) -> SubscriptionState:
    """The state a use case sees in storage: CANCELLED once deactivated; past the grace
    period an active subscription is still EXPIRED_IN_GRACE until the worker deactivates it
    (the grace deadline is the worker's to enforce, D16)."""
    return subscription_state(sub, now, _NO_GRACE_LIMIT)


#: a grace long enough that only deactivation makes a subscription CANCELLED
_NO_GRACE_LIMIT = timedelta(days=100 * 366)


def subscription_changed(before: Subscription, after: Subscription, now: datetime) -> Subscription:
    """THE LAW for subscriptions: every use case that changes one passes here (§10.1).

    Returns `after` when `before → after` at `now` is in `SUBSCRIPTION_TRANSITIONS`, else
    raises IllegalStateTransition (409) and the caller's transaction rolls back.
    """
    check_transition(stored_state(before, now), stored_state(after, now))
    return after


def deactivated(sub: Subscription, now: datetime) -> Subscription:
    """The subscription switched off (worker after grace, admin): CANCELLED."""
    return subscription_changed(sub, attrs.evolve(sub, is_active=False), now)


def vm_changed(
    before: tuple[Vm, Subscription], after: tuple[Vm, Subscription], now: datetime
) -> Vm:
    """THE LAW for VMs: every use case that changes a VM's state passes here (§10.2).

    Each side is the VM with its subscription; returns the VM after, or raises
    IllegalStateTransition (409) when `VM_TRANSITIONS` does not allow the change.
    """
    check_transition(vm_state(*before, now), vm_state(*after, now))
    return after[0]


def vm_deleted(vm: Vm, sub: Subscription, now: datetime) -> Vm:
    """The VM soft-deleted (unpaid cleanup, grace, admin): → DELETED through `vm_changed`."""
    return vm_changed((vm, sub), (attrs.evolve(vm, deleted=True), sub), now)
