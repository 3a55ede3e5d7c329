"""The storing transaction's D23 re-check on memory, SQLite and MariaDB, when given what the
quote was priced from (`priced_for_update(seen=…)`, issue 10): nothing changed, it builds no
records again; anything that prices the subscription changed between the quote and the lock,
it prices what is stored now, so a renewal whose price moved while its invoice was made is
refused (`PriceChanged`), one whose VM was deleted meanwhile too (`VmDeleted`), and one whose
change moves no price is stored."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest

from adapters.mysql.billing_repos import SqlLineItems
from app.billing.errors import PriceChanged, VmDeleted
from app.billing.renewal import renew
from domain.enums import PaymentMethod, SubscriptionType
from domain.model import LineItem, SubscriptionPayment, Vm
from domain.subscription import INTERVALS_KEY
from ports.storage import MetadataKey, NewestPending, PendingCount, PricedItems, UnitOfWork
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop

Change = Callable[[UnitOfWork, Vm], Awaitable[None]]


async def _paid(shop: Shop) -> Vm:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    shop.clock.advance(timedelta(days=1))
    return vm


async def _pubkey(shop: Shop) -> bytes:
    async with shop.factory() as uow:
        user = await uow.users.get(ALICE)
    assert user is not None
    return user.pubkey


async def _quoted_read(shop: Shop, vm: Vm) -> PricedItems:
    """What an owner-key renewal prices a new quote from (`priced_of_owned_vm`)."""
    newest = NewestPending(
        PaymentMethod.LIGHTNING, shop.clock.now(), MetadataKey(INTERVALS_KEY, 7), quotes=True
    )
    pubkey = await _pubkey(shop)
    async with shop.factory() as uow:
        found = await uow.line_items.priced_of_owned_vm(vm.id, pubkey, newest, credit=True)
    assert found is not None
    return found.priced


async def _cost_plan(uow: UnitOfWork, _vm: Vm) -> None:
    plan = await uow.cost_plans.get(1)
    assert plan is not None
    await uow.cost_plans.update(attrs.evolve(plan, amount=plan.amount + 1))


async def _plan_renamed(uow: UnitOfWork, _vm: Vm) -> None:
    plan = await uow.cost_plans.get(1)
    assert plan is not None
    await uow.cost_plans.update(attrs.evolve(plan, name="renamed"))


async def _moved_to_another_plan(uow: UnitOfWork, vm: Vm) -> None:
    """The VM on another template with its own plan (an upgrade completed, an admin move)."""
    plan = await uow.cost_plans.get(1)
    template = await uow.templates.get(1)
    assert plan is not None and template is not None
    dearer = await uow.cost_plans.add(attrs.evolve(plan, id=0, name="dearer", amount=999))
    other = await uow.templates.add(
        attrs.evolve(template, id=0, name="Other", cost_plan_id=dearer.id)
    )
    await uow.vms.update(attrs.evolve(vm, template_id=other.id))


async def _template_on_another_plan(uow: UnitOfWork, _vm: Vm) -> None:
    plan = await uow.cost_plans.get(1)
    template = await uow.templates.get(1)
    assert plan is not None and template is not None
    yearly = await uow.cost_plans.add(
        attrs.evolve(plan, id=0, name="yearly", amount=plan.amount * 12, interval_amount=12)
    )
    await uow.templates.update(attrs.evolve(template, cost_plan_id=yearly.id))


async def _item_added(uow: UnitOfWork, vm: Vm) -> None:
    """A second line item (EUR 5.00 a month) on the VM's subscription: made on a subscription
    of its own, then moved (the ports add items with their subscription only)."""
    [item] = await _items(uow, vm)
    sub = await uow.subscriptions.get(item.subscription_id)
    assert sub is not None
    extra = attrs.evolve(item, id=0, subscription_type=SubscriptionType.IP_RANGE, amount=500)
    _, [added] = await uow.subscriptions.add_with_line_items(attrs.evolve(sub, id=0), [extra])
    await uow.line_items.update(attrs.evolve(added, subscription_id=sub.id))


async def _item_amount(uow: UnitOfWork, vm: Vm) -> None:
    """A second item's amount changed (its item added before the quote, by `_item_added`)."""
    items = await _items(uow, vm)
    extra = max(items, key=lambda item: item.id)
    await uow.line_items.update(attrs.evolve(extra, amount=extra.amount + 100))


async def _vm_deleted(uow: UnitOfWork, vm: Vm) -> None:
    await uow.vms.delete(vm.id)


async def _vm_renamed(uow: UnitOfWork, vm: Vm) -> None:
    await uow.vms.update(attrs.evolve(vm, ref_code="renamed"))


async def _user_country(uow: UnitOfWork, _vm: Vm) -> None:
    user = await uow.users.get(ALICE)
    assert user is not None
    await uow.users.update(attrs.evolve(user, country_code="DE"))


async def _seller_renamed(uow: UnitOfWork, _vm: Vm) -> None:
    company = await uow.companies.get(1)
    assert company is not None
    await uow.companies.update(attrs.evolve(company, name="Renamed Ltd"))


async def _items(uow: UnitOfWork, vm: Vm) -> list[LineItem]:
    sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
    assert sub is not None
    return await uow.line_items.list_by_subscription(sub.id)


#: every kind of change to what the pricing read reads, and whether it moves the price
CHANGES: list[tuple[Change, bool]] = [
    (_cost_plan, True),
    (_moved_to_another_plan, True),
    (_template_on_another_plan, True),
    (_item_added, True),
    (_plan_renamed, False),
    (_vm_renamed, False),
    (_user_country, False),
    (_seller_renamed, False),
]
CHANGE_IDS = [change.__name__.strip("_") for change, _ in CHANGES]


async def test_nothing_changed_the_locked_read_holds_the_quotes_records(shop: Shop) -> None:
    """The locked read's records are those of the read the quote was priced from (not built
    again), its counts are read under the lock, its credit is not read."""
    vm = await _paid(shop)
    seen = await _quoted_read(shop, vm)
    sub = await shop.subscription(vm)
    counted = PendingCount(shop.clock.now(), MetadataKey(INTERVALS_KEY, 7), quotes=True)
    async with shop.factory() as uow:
        locked = await uow.line_items.priced_for_update(sub.id, counted, seen)
        fresh = await uow.line_items.list_priced(sub.id, pending=counted)
        await uow.commit()
    assert locked is not None and locked.priced is not None
    assert locked.subscription == sub
    assert locked.priced == fresh  # the same values as a read of its own
    assert locked.priced.items is seen.items and locked.priced.user is seen.user
    assert locked.priced.vms is seen.vms and locked.priced.seller is seen.seller
    assert seen.credit == 0 and locked.priced.credit is None
    assert (locked.priced.pending, locked.priced.live_quotes) == (0, 0)


@pytest.mark.parametrize(("change", "moves_price"), CHANGES, ids=CHANGE_IDS)
async def test_anything_changed_the_locked_read_reads_it_anew(
    shop: Shop, change: Change, moves_price: bool
) -> None:
    vm = await _paid(shop)
    seen = await _quoted_read(shop, vm)
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        await change(uow, vm)
        await uow.commit()
    async with shop.factory() as uow:
        locked = await uow.line_items.priced_for_update(sub.id, None, seen)
        fresh = await uow.line_items.list_priced(sub.id)
        await uow.commit()
    assert locked is not None and locked.priced is not None
    assert locked.priced == fresh != attrs.evolve(seen, credit=None, live_quotes=None)
    assert locked.priced.items is not seen.items


async def _racing_renewal(shop: Shop, vm: Vm, change: Change) -> SubscriptionPayment:
    """An owner-key renewal (the HTTP route's) for 7 months, `change` committed by another
    transaction while its invoice is made (after its quote, before its lock)."""
    make_invoice = shop.node.create_invoice

    async def racing(amount_msat: int, memo: str, expiry_seconds: int) -> Any:
        invoice = await make_invoice(amount_msat, memo, expiry_seconds)
        fresh = await shop.vm(vm.id)
        async with shop.factory() as uow:
            await change(uow, fresh)
            await uow.commit()
        return invoice

    shop.node.create_invoice = racing  # type: ignore[method-assign]
    return await renew(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=None,
        owner_key=await _pubkey(shop),
        vm_id=vm.id,
        intervals=7,
    )


async def _unpaid_count(shop: Shop, vm: Vm) -> int:
    return sum(not p.is_paid for p in await shop.payments(vm))


@pytest.mark.parametrize(("change", "moves_price"), CHANGES, ids=CHANGE_IDS)
async def test_a_renewal_whose_price_moved_while_its_invoice_was_made_is_refused(
    shop: Shop, change: Change, moves_price: bool
) -> None:
    vm = await _paid(shop)
    if not moves_price:
        stored = await _racing_renewal(shop, vm, change)
        assert not stored.is_paid and shop.node.cancelled == []
        assert [p.id for p in await shop.payments(vm) if not p.is_paid] == [stored.id]
        return
    with pytest.raises(PriceChanged):
        await _racing_renewal(shop, vm, change)
    assert len(shop.node.cancelled) == 1  # the unstored invoice is cancelled
    assert await _unpaid_count(shop, vm) == 0  # nothing stored


async def test_a_second_items_amount_changed_while_the_invoice_was_made_is_refused(
    shop: Shop,
) -> None:
    vm = await _paid(shop)
    async with shop.factory() as uow:
        await _item_added(uow, vm)
        await uow.commit()
    with pytest.raises(PriceChanged):
        await _racing_renewal(shop, vm, _item_amount)
    assert await _unpaid_count(shop, vm) == 0


async def test_a_renewal_whose_vm_was_deleted_while_its_invoice_was_made_is_refused(
    shop: Shop,
) -> None:
    vm = await _paid(shop)
    with pytest.raises(VmDeleted):
        await _racing_renewal(shop, vm, _vm_deleted)
    assert len(shop.node.cancelled) == 1
    assert await _unpaid_count(shop, vm) == 0


async def test_a_renewal_with_nothing_changed_is_stored_and_its_quotes_records_reused(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renewal hands its pricing read to the storing transaction's re-check, which
    builds no records again."""

    async def nothing(_uow: UnitOfWork, _vm: Vm) -> None:
        return None

    async with shop.factory() as uow:
        repo = type(uow.line_items)
    locked = repo.priced_for_update
    reused: list[bool] = []

    async def spied(self: Any, subscription_id: int, *args: Any) -> Any:
        found = await locked(self, subscription_id, *args)
        seen = args[1] if len(args) > 1 else None
        priced = None if found is None else found.priced
        reused.append(seen is not None and priced is not None and priced.items is seen.items)
        return found

    monkeypatch.setattr(repo, "priced_for_update", spied)
    vm = await _paid(shop)
    reused.clear()
    stored = await _racing_renewal(shop, vm, nothing)
    assert not stored.is_paid and shop.node.cancelled == []
    assert [p.id for p in await shop.payments(vm) if not p.is_paid] == [stored.id]
    assert reused == [True]


async def test_a_reused_invoice_builds_no_pricing_records(
    shop: Shop, database: storage_backends.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An owner-key renewal that hands back its pending invoice builds the line items only,
    not the buyer, seller and VM records (issue 10); a new quote builds them (and the re-check
    under the lock compares what it reads with them)."""
    vm = await _paid(shop)
    built: list[int] = []
    sql = database.url is not None
    if sql:
        real = SqlLineItems._priced_items

        def counted(self: SqlLineItems, *args: Any, **kwargs: Any) -> PricedItems:
            built.append(1)
            return real(self, *args, **kwargs)

        monkeypatch.setattr(SqlLineItems, "_priced_items", counted)
    key = await _pubkey(shop)
    first = await shop.renew(vm, user_id=None, owner_key=key)
    assert len(built) == 2 * sql  # the new quote's, and the D23 re-check's under the lock
    again = await shop.renew(vm, user_id=None, owner_key=key)
    assert again == first
    assert len(built) == 2 * sql  # none for the reused one
