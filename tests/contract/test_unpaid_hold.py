"""D17/D25 on memory, SQLite and MariaDB: a never-paid order holds its host's room for its
window and a Lightning invoice's lifetime at most, whatever rail its invoice is on."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import attrs
import pytest

from adapters.fiat.bank_transfer import BankTransferRail
from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.admin.payments import complete_bank_transfer
from app.billing.errors import NoHostAvailable
from app.billing.rails import PaymentRails
from app.billing.reserved import UNPAID_HOLD_LIMIT
from app.worker.jobs import build_handlers
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.lifecycle import UNPAID_CLEANUP_AFTER
from domain.model import SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from tests.contract import storage_backends
from tests.contract.lifecycle_world import (
    empty_tables,
    reserving_vms,
    sql_factory,
    world_over,
)
from tests.contract.storage_backends import Database, engine_for
from tests.unit.billing.world import BOB
from tests.unit.worker.world import DAY, World

database = storage_backends.database
MINUTE = timedelta(minutes=1)
ADMIN = 1


def _with_bank_transfer(world: World) -> World:
    """The shop's rails with a bank transfer (7 days to pay), as the worker is wired."""
    shop = world.shop
    shop.rails = PaymentRails(
        shop.node,
        {PaymentMethod.REVOLUT: shop.revolut},
        rails=[BankTransferRail({"iban": "IE29AIBK93115212345678"})],
    )
    world.deps = attrs.evolve(world.deps, payment_canceller=shop.rails)
    world.handlers = build_handlers(world.deps)
    return world


@pytest.fixture
async def world(database: Database) -> AsyncIterator[World]:
    if database.url is None:
        yield _with_bank_transfer(await world_over(MemoryUnitOfWorkFactory()))
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        yield _with_bank_transfer(await world_over(sql_factory(engine)))


async def _room_for_one(world: World) -> None:
    """Shrink the one host to the CPUs of one Tiny VM (2), which one unpaid order may take
    whole (no D25 host share: what is tested here is how long an order holds it)."""
    world.shop.unpaid_room = NO_UNPAID_ROOM_LIMITS
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(1)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, cpu=2))
        await uow.commit()


async def _holds_room(world: World, vm: Vm) -> bool:
    async with world.shop.factory() as uow:
        return vm.id in {v.id for v in await reserving_vms(uow, world.now)}


async def _bank_quoted_order(world: World) -> tuple[Vm, SubscriptionPayment]:
    """A never-paid order on a host with room for it alone, a bank transfer asked for in its
    window's last minutes (payable for 7 days)."""
    await _room_for_one(world)
    vm = await world.shop.order()
    world.at((await world.sub(vm)).created + UNPAID_CLEANUP_AFTER - 5 * MINUTE)
    bank = await world.shop.renew(vm, method=PaymentMethod.BANK_TRANSFER, user_id=None)
    assert bank.expires - world.now == 7 * DAY
    return vm, bank


async def _pay_by_bank(world: World, bank: SubscriptionPayment) -> SubscriptionPayment:
    assert bank.external_id is not None
    paid = await complete_bank_transfer(
        world.shop.factory,
        world.clock,
        world.shop.rails,
        world.queue,
        reference=bank.external_id,
        admin_id=ADMIN,
    )
    await world.run_jobs()
    return paid


async def _paid_order_of_bob(world: World) -> Vm:
    bob = await world.shop.order(BOB)
    assert (await world.complete(await world.renew(bob))).completed
    await world.run_jobs()
    return bob


async def test_a_bank_transfer_quote_holds_the_room_no_longer_than_the_short_rail(
    world: World,
) -> None:
    """The reviewer's attack: the room is held in the window, then free although the bank
    transfer stays payable for days; the cleanup keeps the VM while it is pending (D17)."""
    vm, bank = await _bank_quoted_order(world)
    created = (await world.sub(vm)).created
    world.at(created + UNPAID_HOLD_LIMIT - MINUTE)
    assert await _holds_room(world, vm)
    with pytest.raises(NoHostAvailable):
        await world.shop.order(BOB)

    world.at(created + UNPAID_HOLD_LIMIT + MINUTE)
    assert not await _holds_room(world, vm)
    assert (await world.vm_check()).deleted == []  # a payment is pending: kept (D17)
    await world.shop.order(BOB)  # the room is free for a paying customer

    world.at(bank.expires + MINUTE)  # the transfer never came
    assert vm.id in (await world.vm_check()).deleted


async def test_three_days_on_the_room_is_free(world: World) -> None:
    vm, _bank = await _bank_quoted_order(world)
    world.advance(3 * DAY)
    assert not await _holds_room(world, vm)
    await world.shop.order(BOB)


async def test_a_late_bank_transfer_without_room_becomes_credit(world: World) -> None:
    """Decided: a slow payment after the hold books like any never-paid order paid after its
    window (D25): its room was given away, so its value is account credit, nothing set up."""
    vm, bank = await _bank_quoted_order(world)
    world.at((await world.sub(vm)).created + UNPAID_HOLD_LIMIT + MINUTE)
    bob = await _paid_order_of_bob(world)  # takes the room the order let go
    world.advance(2 * DAY)
    sub_before = await world.sub(vm)

    paid = await _pay_by_bank(world, bank)

    assert paid.is_paid and paid.time_value == 0
    credit = payment_meta(paid)[CREDIT_KEY]
    assert credit["mode"] == "unrestorable" and credit["seconds"] == 0
    assert await world.sub(vm) == sub_before  # never set up, no expiry
    assert world.host_state(vm.id) is None
    async with world.shop.factory() as uow:
        balance = (await uow.credit_ledger.balances(sub_before.user_id)).get("EUR", 0)
    assert balance == paid.amount
    assert await _holds_room(world, bob)
    assert not await _holds_room(world, vm)


async def test_a_late_bank_transfer_with_room_sets_the_vm_up(world: World) -> None:
    vm, bank = await _bank_quoted_order(world)
    world.advance(2 * DAY)

    await _pay_by_bank(world, bank)

    sub = await world.sub(vm)
    assert sub.is_setup and sub.expires is not None
    assert world.host_state(vm.id) == "running"
    assert await _holds_room(world, vm)
    with pytest.raises(NoHostAvailable):
        await world.shop.order(BOB)


async def test_control_a_lightning_invoice_of_the_window_holds_the_room_until_paid(
    world: World,
) -> None:
    """The short rail's invoice asked for in the window's last minute is still payable with
    its room, past the hour, and the VM paid keeps its room for good."""
    await _room_for_one(world)
    vm = await world.shop.order()
    created = (await world.sub(vm)).created
    world.at(created + UNPAID_CLEANUP_AFTER - MINUTE)
    invoice = await world.renew(vm)
    world.at(invoice.expires - MINUTE)
    assert world.now > created + UNPAID_CLEANUP_AFTER
    assert await _holds_room(world, vm)
    with pytest.raises(NoHostAvailable):
        await world.shop.order(BOB)

    report = await world.complete(invoice)
    await world.run_jobs()

    assert report.completed and (await world.sub(vm)).is_setup
    assert world.host_state(vm.id) == "running"
    world.advance(3 * DAY)
    assert await _holds_room(world, vm)
    with pytest.raises(NoHostAvailable):
        await world.shop.order(BOB)
