"""A use case that writes back a row it read takes the subscription's lock as its transaction's
first statement, then reads (review r5), on MariaDB.

MariaDB fixes a transaction's snapshot at its first plain read: a row read before the lock,
or read again after it in the same transaction, is the row as it was before the lock waited,
and writing it back whole undoes what the lock's holder committed. A hook pauses the use case
right before it takes the lock while the other writer commits (the interleaving any await
point allows in production). Memory and SQLite serialise whole units of work, so the race is
MariaDB's only.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.admin.deletes import StillInUse, delete_line_item
from app.admin.subscriptions import LineItemPatch, update_line_item
from app.billing.upgrades import apply_upgrade, create_upgrade_payment
from domain.enums import SubscriptionType
from domain.enums import VmHistoryActionType as H
from domain.model import GIB, LineItem, Subscription, Vm
from domain.upgrade import UpgradeConfig
from ports.storage import UnitOfWork, UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.storage_backends import new_payment, new_subscription
from tests.unit.billing.world import ALICE, BOB
from tests.unit.worker.world import World

GUARD_S = 20
# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database
# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world

pytestmark = storage_backends.only("mysql")


class PausedBeforeLock:
    """A unit-of-work factory whose first subscription lock waits, once, until `go` is set
    (`reached` is set then): what the use case read before it is fixed by then."""

    def __init__(self, inner: UnitOfWorkFactory) -> None:
        self.inner = inner
        self.reached, self.go = asyncio.Event(), asyncio.Event()
        self._armed = True

    def __call__(self) -> UnitOfWork:
        uow = self.inner()
        original = uow.subscriptions.get_for_update

        async def paused(subscription_id: int) -> Subscription | None:
            if self._armed:
                self._armed = False
                self.reached.set()
                await asyncio.wait_for(self.go.wait(), GUARD_S)
            return await original(subscription_id)

        setattr(uow.subscriptions, "get_for_update", paused)  # noqa: B010
        return uow


async def _vm_and_item(world: World, vm: Vm) -> tuple[Vm, int]:
    async with world.shop.factory() as uow:
        current = await uow.vms.get(vm.id)
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert current is not None and item is not None
    return current, item.amount


async def test_a_second_delivery_of_an_upgrade_job_applies_it_once(world: World) -> None:
    """Two deliveries of one legacy ProcessVmUpgrade: the second read the VM before the
    first committed the conversion, and finds it made once it holds the lock."""
    vm = await world.paid_vm()
    cfg = UpgradeConfig(new_memory=4 * GIB)
    paused = PausedBeforeLock(world.shop.factory)
    second = asyncio.create_task(apply_upgrade(paused, world.clock, vm_id=vm.id, cfg=cfg))
    await asyncio.wait_for(paused.reached.wait(), GUARD_S)
    assert await apply_upgrade(world.shop.factory, world.clock, vm_id=vm.id, cfg=cfg)
    converted, amount = await _vm_and_item(world, vm)
    assert converted.template_id is None and converted.custom_template_id is not None

    paused.go.set()
    assert await asyncio.wait_for(second, GUARD_S) is None, "the upgrade was applied twice"
    assert await _vm_and_item(world, vm) == (converted, amount)
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1


async def test_an_admin_line_item_edit_keeps_the_price_an_upgrade_booked_meanwhile(
    world: World,
) -> None:
    vm = await world.paid_vm()
    _, before = await _vm_and_item(world, vm)
    shop = world.shop
    payment = await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates,
        user_id=ALICE, vm_id=vm.id, cfg=UpgradeConfig(new_memory=4 * GIB),
    )  # fmt: skip
    paused = PausedBeforeLock(shop.factory)
    edit = asyncio.create_task(
        update_line_item(
            paused,
            vm.subscription_line_item_id,
            LineItemPatch(name="renamed"),
            clock=shop.clock,
            rails=None,
            admin_id=BOB,
        )
    )
    await asyncio.wait_for(paused.reached.wait(), GUARD_S)
    await world.complete(payment)  # the upgrade's new price is booked while the edit waits
    _, upgraded = await _vm_and_item(world, vm)
    assert upgraded > before

    paused.go.set()
    edited = await asyncio.wait_for(edit, GUARD_S)
    assert (edited.name, edited.amount) == ("renamed", upgraded)
    async with shop.factory() as uow:
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert item is not None and item.amount == upgraded, "the upgrade's price was undone"


async def test_a_line_item_delete_sees_a_quote_made_while_it_waited(world: World) -> None:
    """A pending payment was priced with the item (D23): made while the delete waited for
    the lock, it is seen, and the item stays."""
    factory = world.shop.factory
    async with factory() as uow:
        item = LineItem(
            id=0,
            subscription_id=0,
            subscription_type=SubscriptionType.DNS_HOSTING,
            name="dns",
            amount=100,
        )
        sub, (stored,) = await uow.subscriptions.add_with_line_items(
            new_subscription(ALICE, 1), [item]
        )
        await uow.commit()
    paused = PausedBeforeLock(factory)
    deleting = asyncio.create_task(delete_line_item(paused, world.clock, stored.id, admin_id=BOB))
    await asyncio.wait_for(paused.reached.wait(), GUARD_S)
    async with factory() as uow:  # a renewal quoted meanwhile
        await uow.payments.add(
            new_payment(sub, created=world.now, expires=world.now + timedelta(hours=1))
        )
        await uow.commit()

    paused.go.set()
    with pytest.raises(StillInUse):
        await asyncio.wait_for(deleting, GUARD_S)
    async with factory() as uow:
        assert await uow.line_items.get(stored.id) == stored
