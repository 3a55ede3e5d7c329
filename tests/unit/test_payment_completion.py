"""apply_payment: one transaction that pays, extends, revives and cancels rivals (D9, D12, D13)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

from adapters.memory.clock import FakeClock
from adapters.memory.storage import MemoryUnitOfWork, MemoryUnitOfWorkFactory
from app.billing.completion import apply_payment
from domain.credit import CreditMode
from domain.enums import SubscriptionPaymentType
from domain.model import Subscription, SubscriptionPayment
from tests.contract.storage_backends import World, at, new_payment, seed_world

UPGRADE = SubscriptionPaymentType.UPGRADE


def evolve(record: Any, **changes: Any) -> Any:
    return attrs.evolve(record, **changes)


async def _setup(
    factory: MemoryUnitOfWorkFactory, sub_changes: dict[str, Any], **payment: Any
) -> tuple[World, SubscriptionPayment]:
    async with factory() as uow:
        w = await seed_world(uow)
        sub: Subscription = evolve(w.subscription, **sub_changes)
        await uow.subscriptions.update(sub)
        paid = await uow.payments.add(new_payment(sub, **payment))
        await uow.commit()
    return evolve(w, subscription=sub), paid


async def _sub(factory: MemoryUnitOfWorkFactory, w: World) -> Subscription:
    async with factory() as uow:
        sub = await uow.subscriptions.get(w.subscription.id)
    assert sub is not None
    return sub


async def test_an_unknown_payment_completes_nothing() -> None:
    assert await apply_payment(MemoryUnitOfWorkFactory(), b"\x00" * 32, FakeClock(at(1))) is None


async def test_the_first_payment_sets_up_and_activates_from_now() -> None:
    factory = MemoryUnitOfWorkFactory()
    w, payment = await _setup(factory, {}, payment_type=SubscriptionPaymentType.PURCHASE)
    done = await apply_payment(factory, payment.id, FakeClock(at(5)))
    assert done is not None and done.is_first_payment and not done.is_upgrade
    # no price recorded with the quote: credited by value, 500 EUR at 500 EUR a month (D23),
    # on the grid of months from the subscription's creation (1 March 12:00): the 27 days
    # left of 1 March → 1 April, then 4/31 of 1 April → 1 May (30 days), floored; the
    # stored time_value is what was really added
    seconds = 27 * 86_400 + 4 * 30 * 86_400 // 31
    credit = {"mode": "by_value", "seconds": seconds, "intervals": "1"}
    assert done.payment == evolve(
        payment, is_paid=True, paid_at=at(5), time_value=seconds, metadata={"credit": credit}
    )
    assert done.line_items == [w.line_item]
    sub = await _sub(factory, w)
    expires = at(5) + timedelta(seconds=seconds)
    assert (sub.expires, sub.is_active, sub.is_setup) == (expires, True, True)
    assert done.subscription == sub and done.subscription_before == w.subscription


async def test_a_payment_extends_a_running_subscription_from_its_expiry_by_its_value() -> None:
    """The quote's `time_value` (an hour here) is an estimate: what counts is the money (D23)."""
    factory = MemoryUnitOfWorkFactory()
    live = {"is_active": True, "is_setup": True, "expires": at(10)}
    w, payment = await _setup(factory, live, time_value=3600, amount=250)
    done = await apply_payment(factory, payment.id, FakeClock(at(5)))
    assert done is not None and not done.is_first_payment
    # half of the 500 EUR monthly price: half of 10 March → 10 April (31 days)
    assert (await _sub(factory, w)).expires == at(10) + timedelta(days=15, hours=12)


async def test_without_a_current_price_the_quoted_time_value_is_credited() -> None:
    """A plan that can no longer be priced must not block the payment: what was quoted counts."""
    factory = MemoryUnitOfWorkFactory()
    live = {"is_active": True, "is_setup": True, "expires": at(10)}
    w, payment = await _setup(factory, live, time_value=3600, currency="XXX")
    async with factory() as uow:
        await uow.cost_plans.update(evolve(w.plan, currency="XXX"))  # unparseable: no price
        await uow.commit()
    done = await apply_payment(factory, payment.id, FakeClock(at(5)))
    assert done is not None and done.credit is not None and done.credit.needs_operator
    assert (await _sub(factory, w)).expires == at(10) + timedelta(hours=1)


async def test_a_lapsed_subscription_renews_from_now() -> None:
    factory = MemoryUnitOfWorkFactory()
    lapsed = {"is_active": False, "is_setup": True, "expires": at(2)}
    w, payment = await _setup(factory, lapsed)
    assert await apply_payment(factory, payment.id, FakeClock(at(5))) is not None
    sub = await _sub(factory, w)
    # by value from now (no price recorded), on the grid of months from 1 March 12:00
    assert (sub.expires, sub.is_active) == (
        at(1, month=4) + timedelta(seconds=4 * 30 * 86_400 // 31),
        True,
    )


async def test_an_upgrade_neither_extends_nor_revives_a_lapsed_subscription() -> None:
    factory = MemoryUnitOfWorkFactory()
    lapsed = {"is_active": False, "is_setup": True, "expires": at(2)}
    w, payment = await _setup(factory, lapsed, payment_type=UPGRADE, time_value=0)
    async with factory() as uow:
        await uow.vms.delete(w.vm.id)
        rival = await uow.payments.add(new_payment(w.subscription, payment_type=UPGRADE))
        await uow.commit()
    done = await apply_payment(factory, payment.id, FakeClock(at(5)))
    assert done is not None and done.is_upgrade and done.revived_vms == 0
    # not applied to the deleted VM: its value is credit (D24's race), the admins told
    assert done.credit is not None and done.credit.mode is CreditMode.UNRESTORABLE
    assert done.cancelled_upgrades == [rival]  # none of them can be applied either
    assert await _sub(factory, w) == w.subscription
    async with factory() as uow:
        vm = await uow.vms.get(w.vm.id)
        assert vm is not None and vm.deleted
        assert (await uow.payments.list_pending_for_subscription(w.subscription.id, at(5))) == []


async def test_a_failure_mid_completion_leaves_the_payment_unpaid() -> None:
    factory = MemoryUnitOfWorkFactory()
    w, payment = await _setup(factory, {})

    class Broken(MemoryUnitOfWork):
        def __init__(self) -> None:
            super().__init__(factory.db)

            async def fail(subscription_id: int) -> int:
                raise RuntimeError("host unreachable")

            self.vms.undelete_for_subscription = fail  # type: ignore[method-assign]

    with pytest.raises(RuntimeError):
        await apply_payment(Broken, payment.id, FakeClock(at(5)))
    async with factory() as uow:
        assert await uow.payments.get(payment.id) == payment
    assert await _sub(factory, w) == w.subscription
    assert await apply_payment(factory, payment.id, FakeClock(at(6))) is not None
