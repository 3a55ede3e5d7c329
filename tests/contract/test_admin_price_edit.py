"""An admin's change of a line item's price on memory, SQLite and MariaDB: written to the VM's
history with who changed it and the old and new price, in the edit's own transaction, as an
expiry edit is; an edit that leaves the price as it is writes nothing."""

from __future__ import annotations

from typing import Any, cast

from app.admin.subscriptions import LineItemPatch, update_line_item
from domain.enums import SubscriptionType, VmHistoryActionType
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


async def test_a_change_of_what_an_item_sells_is_a_price_change(shop: Shop) -> None:
    """Review r7: an IP-range item's `prefix_size` decides the block it is given, so a /24
    edited to a /22 is a new price: written to the history, the pending quote expired."""
    vm, _ = await _paid_item(shop)
    sub = await shop.subscription(vm)
    quote = await shop.renew(vm)  # before the item: space 7 is made up, not to be judged
    config = {"ip_space_pricing_id": 1, "available_ip_space_id": 7, "prefix_size": 24}
    async with shop.factory() as uow:
        # the port adds line items only with their subscription; every store's repo can
        ip_item = await cast(Any, uow.line_items).add(
            LineItem(
                id=0,
                subscription_id=sub.id,
                subscription_type=SubscriptionType.IP_RANGE,
                name="IP Range: /24",
                amount=900,
                configuration=config,
            )
        )
        await uow.commit()

    await _edit(shop, ip_item, configuration={**config, "prefix_size": 22})

    [entry] = await _edits(shop, vm)
    assert entry.metadata is not None and isinstance(entry.metadata, dict)
    record = entry.metadata[PRICE_EDIT_KEY]
    assert record["from"]["supplies"] == {"available_ip_space_id": 7, "prefix_size": 24}
    assert record["to"]["supplies"] == {"available_ip_space_id": 7, "prefix_size": 22}
    assert record["to"]["amount"] == 900
    assert entry.description is not None
    assert "supply from /24 of IP space 7 to /22 of IP space 7" in entry.description
    async with shop.factory() as uow:
        stale = await uow.payments.get(quote.id)
    assert stale is not None and stale.expires <= shop.clock.now()
    # a configuration key that sells nothing else (the tier's id) is no price change
    await _edit(
        shop, ip_item, configuration={**config, "prefix_size": 22, "ip_space_pricing_id": 2}
    )
    assert len(await _edits(shop, vm)) == 1
