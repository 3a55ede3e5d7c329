"""A payment booked as account credit (its VM cannot be restored or placed) touches no product."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs

from app.billing.booked_records import ProductRecords
from app.billing.completion import CompletedPayment
from domain.credit import Credit, CreditMode
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import SubscriptionPayment
from tests.unit.worker.world import new_world


async def test_the_records_leave_ip_ranges_to_the_booking() -> None:
    """The booking gives or turns back on IP ranges itself, before it knows whether the
    payment buys time (`ip_allocation`); the products' records touch none, credited or not."""
    world = await new_world()
    sub, sold = await world.ip_range_subscription()
    now = world.now
    async with world.shop.factory() as uow:
        await uow.ip_range_subscriptions.set_active(sold.id, False, now)
        items = await uow.line_items.list_by_subscription(sub.id)
        await uow.commit()
    paid = SubscriptionPayment(
        id=b"\x01" * 32,
        subscription_id=sub.id,
        user_id=sub.user_id,
        created=now - timedelta(hours=1),
        expires=now,
        amount=1000,
        currency="EUR",
        payment_method=PaymentMethod.REVOLUT,
        payment_type=SubscriptionPaymentType.RENEWAL,
        external_data="",
        rate=Decimal(1),
        is_paid=True,
        paid_at=now,
    )
    credited = Credit(mode=CreditMode.UNRESTORABLE, base=now, new_expiry=now, changes=("why",))
    done = CompletedPayment(
        payment=paid,
        subscription_before=sub,
        subscription=sub,
        line_items=items,
        revived_vms=0,
        cancelled_upgrades=[],
        credit=credited,
    )
    records = ProductRecords()

    async with world.shop.factory() as uow:
        await records(uow, done)
        await uow.commit()
        [row] = await uow.ip_range_subscriptions.list_by_line_item(sold.subscription_line_item_id)

    assert not row.is_active
    assert records.paid_vm_ids == [] and records.problems == []
    by_value = attrs.evolve(done, credit=attrs.evolve(credited, mode=CreditMode.CALENDAR))
    async with world.shop.factory() as uow:
        await records(uow, by_value)
        [row] = await uow.ip_range_subscriptions.list_by_line_item(sold.subscription_line_item_id)
    assert not row.is_active and records.problems == []
