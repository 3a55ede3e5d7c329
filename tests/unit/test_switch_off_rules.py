"""An admin's switch-off: what it means for the lifecycle, renewals and payments (pure rules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest

from domain.enums import PaymentMethod, SubscriptionPaymentType, SwitchedOff
from domain.errors import SubscriptionSwitchedOff
from domain.lifecycle import LifecycleAction, decide_lifecycle_actions
from domain.model import Subscription, SubscriptionPayment
from domain.subscription import apply_paid_payment
from domain.switch_off import (
    admin_edited,
    ended,
    is_switched_off,
    refuse_switched_off,
    switched_off_now,
    winds_down,
)

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SECOND = timedelta(seconds=1)
A = LifecycleAction
OFF = SwitchedOff.WINDING_DOWN


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
        "expires": NOW + 10 * DAY,
        "auto_renewal_enabled": True,
    }
    fields.update(changes)
    return Subscription(**fields)


def actions(sub: Subscription, now: datetime = NOW) -> list[LifecycleAction]:
    return [d.action for d in decide_lifecycle_actions(sub, now, 3, True)]


def test_a_winding_down_subscription_gets_no_notice_nor_auto_renewal_before_expiry() -> None:
    sub = subscription(is_active=False, switched_off=OFF, expires=NOW + HOUR)
    assert actions(sub) == []
    assert actions(attrs.evolve(sub, is_active=True, switched_off=None)) == [A.AUTO_RENEW_ATTEMPT]


def test_a_winding_down_subscription_is_stopped_at_expiry_and_deleted_after_grace() -> None:
    at_expiry = subscription(is_active=False, switched_off=OFF, expires=NOW)
    assert actions(at_expiry) == [A.STOP_ON_EXPIRY, A.DEACTIVATE_ADDONS]
    past_grace = subscription(is_active=False, switched_off=OFF, expires=NOW - 3 * DAY - SECOND)
    due = decide_lifecycle_actions(past_grace, NOW, 3, False)
    assert [d.action for d in due] == [A.DELETE_AFTER_GRACE]
    assert {d.period for d in due} == {NOW - 3 * DAY - SECOND}  # once per period (D15)


@pytest.mark.parametrize("state", [None, SwitchedOff.ENDED])
def test_other_inactive_subscriptions_have_no_lifecycle_actions(
    state: SwitchedOff | None,
) -> None:
    """A cancelled one (grace deletion, a VM deletion) and a switched-off one already ended."""
    for expires in (NOW - 30 * DAY, NOW, NOW + HOUR):
        assert actions(subscription(is_active=False, switched_off=state, expires=expires)) == []


def test_only_true_to_false_switches_off() -> None:
    active = subscription()
    off = admin_edited(active, attrs.evolve(active, is_active=False))
    assert off.switched_off is OFF and winds_down(off) and switched_off_now(active, off)
    cancelled = subscription(is_active=False)
    edited = admin_edited(cancelled, attrs.evolve(cancelled, name="renamed"))
    assert edited.switched_off is None and not switched_off_now(cancelled, edited)
    again = admin_edited(off, attrs.evolve(off, is_active=False, name="renamed"))
    assert again.switched_off is OFF and not switched_off_now(off, again)
    finished = ended(off)
    assert admin_edited(finished, finished).switched_off is SwitchedOff.ENDED


@pytest.mark.parametrize("state", [OFF, SwitchedOff.ENDED])
def test_switching_on_again_clears_the_switch_off(state: SwitchedOff) -> None:
    off = subscription(is_active=False, switched_off=state)
    on = admin_edited(off, attrs.evolve(off, is_active=True))
    assert on.is_active and on.switched_off is None and not is_switched_off(on)
    refuse_switched_off(on)


def test_ended_records_the_end_of_a_winding_down_one_only() -> None:
    assert ended(subscription(is_active=False, switched_off=OFF)).switched_off is (
        SwitchedOff.ENDED
    )
    plain = subscription(is_active=False)
    assert ended(plain) is plain


def _renewal(sub: Subscription) -> SubscriptionPayment:
    return SubscriptionPayment(
        id=b"\x01" * 32,
        subscription_id=sub.id,
        user_id=sub.user_id,
        created=NOW - HOUR,
        expires=NOW + HOUR,
        amount=1000,
        currency="EUR",
        payment_method=PaymentMethod.LIGHTNING,
        payment_type=SubscriptionPaymentType.RENEWAL,
        external_data="lnbc1",
        is_paid=False,
        rate=Decimal(1),
    )


@pytest.mark.parametrize("state", [OFF, SwitchedOff.ENDED])
def test_a_renewal_never_switches_a_switched_off_subscription_on(state: SwitchedOff) -> None:
    sub = subscription(is_active=False, switched_off=state, expires=NOW - DAY)
    with pytest.raises(SubscriptionSwitchedOff, match="switched off by an administrator"):
        refuse_switched_off(sub)
    with pytest.raises(SubscriptionSwitchedOff):
        apply_paid_payment(sub, _renewal(sub), NOW)
    cancelled = attrs.evolve(sub, switched_off=None)  # a cancelled one is renewed (D24)
    assert apply_paid_payment(cancelled, _renewal(cancelled), NOW).is_active
