"""Pending upgrade quotes when an admin edits the subscription's line items, on memory, SQLite
and MariaDB: an amount edit ends them (whether an upgrade may re-bill the other items depends
on those amounts), an edit of no amount leaves them, a quote stored after such an edit is
judged again, and money for an ended quote that arrives anyway becomes account credit."""

from __future__ import annotations

from typing import Any, cast

import attrs
import pytest

from app.admin.deletes import StillInUse, delete_line_item
from app.admin.subscriptions import LineItemPatch, update_line_item
from app.billing.errors import PriceChanged, UpgradeWouldRebill
from domain.credit import payment_meta
from domain.enums import IntervalType, SubscriptionType
from domain.enums import VmHistoryActionType as H
from domain.intervals import Interval
from domain.model import LineItem, SubscriptionPayment, Vm
from domain.money import Currency
from domain.overpayment import excess_value
from domain.price_basis import CREDIT_KEY
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import BOB
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world


def _eur_rounded_down(payment: SubscriptionPayment) -> int:
    """The payment's msat in EUR cents, exactly and rounded down, as its credit is valued."""
    value = excess_value(payment.amount, Currency.EUR, payment.rate)
    assert value is not None
    return value


YEARLY = Interval(IntervalType.YEAR, 1)


async def _yearly_vm_with_free_item(world: World) -> tuple[Vm, LineItem]:
    """A VM on a yearly plan (EUR 12.00) with a free IP range beside it: its upgrade (to
    monthly custom pricing) re-bills nothing, so it may be quoted."""
    async with world.shop.factory() as uow:
        plan = await uow.cost_plans.get(1)
        assert plan is not None
        await uow.cost_plans.update(
            attrs.evolve(plan, amount=1200, interval_type=IntervalType.YEAR, interval_amount=1)
        )
        await uow.commit()
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        # the port adds line items only with their subscription; both stores' repos can
        item = await cast(Any, uow.line_items).add(
            LineItem(
                id=0,
                subscription_id=sub.id,
                subscription_type=SubscriptionType.IP_RANGE,
                name="203.0.113.8/29",
                amount=0,
            )
        )
        await uow.commit()
    return vm, cast(LineItem, item)


async def _upgrade(world: World, vm: Vm) -> SubscriptionPayment:
    return await upgrade_payment(world.shop, vm)


async def _edit(world: World, item: LineItem, **fields: Any) -> None:
    shop = world.shop
    await update_line_item(
        shop.factory,
        item.id,
        LineItemPatch(**fields),
        clock=shop.clock,
        rails=shop.rails,
        admin_id=BOB,  # not the owner (ALICE)
    )


async def test_an_amount_edit_ends_pending_upgrades_and_a_late_payment_is_credit(
    world: World,
) -> None:
    """The free range is priced EUR 6.00 a year while an upgrade quote is pending: the
    upgrade would now bill it monthly, so the edit expires the quote in its transaction and
    cancels it at the node; a new quote is refused. The node had settled it already: the
    money is booked as account credit once, and neither the VM nor the subscription's
    interval changes."""
    vm, item = await _yearly_vm_with_free_item(world)
    upgrade = await _upgrade(world, vm)

    await _edit(world, item, amount=600)

    assert (await world.shop.payment(upgrade.id)).expires == world.now
    assert world.shop.node.cancelled == [upgrade.id]
    with pytest.raises(UpgradeWouldRebill):
        await _upgrade(world, vm)

    assert (await world.complete(upgrade)).completed  # settled before the cancel
    paid = await world.shop.payment(upgrade.id)
    [why] = payment_meta(paid)[CREDIT_KEY]["changes"]
    assert "can no longer be made" in why and "1 year" in why
    assert await world.shop.balance("EUR") == _eur_rounded_down(paid) > 0
    sub = await world.sub(vm)
    assert sub.interval == YEARLY
    assert (await world.shop.vm(vm.id)).template_id == vm.template_id
    assert await world.history(vm, H.CONFIGURATION_CHANGED) == []
    assert not (await world.complete(upgrade)).completed  # booked once


async def test_an_edit_of_no_amount_leaves_pending_upgrades(world: World) -> None:
    """A rename or a new description prices nothing: the upgrade quote stays payable, is
    applied when paid, and nothing is cancelled."""
    vm, item = await _yearly_vm_with_free_item(world)
    upgrade = await _upgrade(world, vm)

    await _edit(world, item, name="/29 block", description="kept free")

    assert (await world.shop.payment(upgrade.id)).expires > world.now
    assert world.shop.node.cancelled == []
    assert (await world.complete(upgrade)).completed
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1


async def test_an_item_is_not_deleted_under_a_pending_upgrade(world: World) -> None:
    vm, item = await _yearly_vm_with_free_item(world)
    upgrade = await _upgrade(world, vm)
    with pytest.raises(StillInUse):
        await delete_line_item(world.shop.factory, world.clock, item.id, admin_id=BOB)
    assert (await world.shop.payment(upgrade.id)).expires > world.now


async def test_an_amount_edit_while_the_upgrade_invoice_is_made_refuses_it(
    world: World,
) -> None:
    """The edit commits between the quote's planning and its storing: its sweep could not
    see the quote yet, so storing judges the item set again under the subscription's lock
    (409, nothing stored) and cancels the invoice just made."""
    vm, item = await _yearly_vm_with_free_item(world)
    node = world.shop.node
    make_invoice = node.create_invoice

    async def racing(amount_msat: int, memo: str, expiry_seconds: int) -> Any:
        invoice = await make_invoice(amount_msat, memo, expiry_seconds)
        await _edit(world, item, amount=600)
        return invoice

    node.create_invoice = racing  # type: ignore[method-assign]
    before = list(node.invoices)
    with pytest.raises(PriceChanged):
        await _upgrade(world, vm)
    [made] = [h for h in node.invoices if h not in before]
    assert node.cancelled == [made]
    assert [p.is_paid for p in await world.shop.payments(vm)] == [True]
