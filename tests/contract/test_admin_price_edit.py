"""An admin's change of a line item's price on memory, SQLite and MariaDB: written to the VM's
history with who changed it and the old and new price, in the edit's own transaction, as an
expiry edit is; an edit that leaves the price as it is writes nothing."""

from __future__ import annotations

from app.admin.subscriptions import LineItemPatch, update_line_item
from domain.enums import VmHistoryActionType
from domain.model import LineItem, Vm, VmHistory
from domain.price_edit import PRICE_EDIT_KEY
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import BOB, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: the admin who edits (a user that exists: the history names them)
ADMIN = BOB


async def _paid_item(shop: Shop) -> tuple[Vm, LineItem]:
    """ALICE's VM, its month paid, and its line item."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    async with shop.factory() as uow:
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert item is not None
    return vm, item


async def _edit(shop: Shop, item: LineItem, **fields: object) -> LineItem:
    return await update_line_item(
        shop.factory,
        item.id,
        LineItemPatch(**fields),  # type: ignore[arg-type]
        clock=shop.clock,
        rails=None,
        admin_id=ADMIN,
    )


async def _edits(shop: Shop, vm: Vm) -> list[VmHistory]:
    entries = await shop.history(vm, VmHistoryActionType.STATE_CHANGED)
    return [e for e in entries if isinstance(e.metadata, dict) and PRICE_EDIT_KEY in e.metadata]


async def test_a_price_change_is_written_to_the_vms_history(shop: Shop) -> None:
    """Review: an expiry edit left a history entry, a price edit none, so a lowered price
    could not be traced to whoever lowered it. Now who, from what, to what."""
    vm, item = await _paid_item(shop)
    sub = await shop.subscription(vm)

    await _edit(shop, item, amount=item.amount + 100, name="bigger")

    [entry] = await _edits(shop, vm)
    assert entry.initiated_by_user == ADMIN
    assert entry.timestamp == shop.clock.now()
    was = {"amount": item.amount, "setup_amount": item.setup_amount}
    now = {"amount": item.amount + 100, "setup_amount": item.setup_amount}
    assert entry.metadata == {
        "admin_action": True,
        "admin_user_id": ADMIN,
        PRICE_EDIT_KEY: {"line_item_id": item.id, "currency": sub.currency, "from": was, "to": now},
    }
    assert entry.previous_state == {"line_item_id": item.id, **was}
    assert entry.new_state == {"line_item_id": item.id, **now}
    assert entry.description is not None
    assert f"by admin #{ADMIN}" in entry.description and "setup fee" not in entry.description
    assert f"price from {sub.currency} " in entry.description


async def test_a_setup_fee_change_is_written_too(shop: Shop) -> None:
    vm, item = await _paid_item(shop)

    await _edit(shop, item, setup_amount=item.setup_amount + 250)

    [entry] = await _edits(shop, vm)
    assert entry.metadata is not None and isinstance(entry.metadata, dict)
    record = entry.metadata[PRICE_EDIT_KEY]
    assert record["from"]["setup_amount"] == item.setup_amount
    assert record["to"]["setup_amount"] == item.setup_amount + 250
    assert entry.description is not None and "setup fee from" in entry.description
    assert "price from" not in entry.description


async def test_an_edit_that_keeps_the_price_writes_nothing(shop: Shop) -> None:
    """The admin UI sends every field back: a rename with the same amounts is no price edit."""
    vm, item = await _paid_item(shop)
    before = len(await shop.history(vm))

    await _edit(shop, item, name="renamed", amount=item.amount, setup_amount=item.setup_amount)
    await _edit(shop, item, description="a note")

    assert await _edits(shop, vm) == []
    assert len(await shop.history(vm)) == before
