"""D25 room limits on memory, SQLite and MariaDB: what never-paid orders may hold, per buyer
and per host, under races too; paid work keeps the rest."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from fractions import Fraction

import attrs
import pytest

from app.billing.errors import NoHostAvailable
from app.billing.ordering import OrderTerms, order_custom_vm, order_vm
from domain.enums import DiskInterface, DiskType
from domain.model import GIB, SshKey, User, Vm
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS, UnpaidRoom, UnpaidRoomExceeded
from domain.upgrade import UpgradeConfig
from ports.storage import UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, sql_factory
from tests.contract.storage_backends import Database
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, ALICE_KEY, IMAGE, PRICING, START, TEMPLATE, add_host
from tests.unit.worker.world import World

database = storage_backends.database
MINUTE = timedelta(minutes=1)
RACERS = 8

# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world

#: a budget of 6 vCPUs per buyer, nothing else limited: three of the world's Tiny VMs (2 each)
SIX_CPUS = attrs.evolve(NO_UNPAID_ROOM_LIMITS, cpu=6)
#: half of each host for never-paid orders, no per-buyer budget
HALF_HOST = attrs.evolve(NO_UNPAID_ROOM_LIMITS, host_share=Fraction(1, 2))


def _alice(room: UnpaidRoom) -> OrderTerms:
    """Alice's terms with `room`; no `max-unpaid-vms` cap, so only the room limits judge."""
    return OrderTerms(
        user_id=ALICE, image_id=IMAGE, ssh_key_id=ALICE_KEY, max_unpaid=None, unpaid_room=room
    )


async def _tiny(factory: UnitOfWorkFactory, world: World, terms: OrderTerms) -> Vm:
    return await order_vm(factory, world.clock, terms, TEMPLATE)


async def _custom(world: World, terms: OrderTerms, cpu: int) -> Vm:
    return await order_custom_vm(
        world.shop.factory,
        world.clock,
        terms,
        PRICING,
        cpu=cpu,
        memory=2 * GIB,
        disk=64 * GIB,
        disk_type=DiskType.SSD,
        disk_interface=DiskInterface.PCIE,
    )


async def _written(world: World) -> tuple[int, int]:
    """(subscriptions, live VMs) in the store."""
    async with world.shop.factory() as uow:
        subs = (await uow.subscriptions.list_by_user(ALICE, 100)).total
        return subs, len(await uow.vms.list_active())


async def _buyers(world: World, n: int, first_byte: int = 0x40) -> list[OrderTerms]:
    """`n` new users with an SSH key each, their terms under `HALF_HOST`."""
    terms = []
    async with world.shop.factory() as uow:
        for i in range(n):
            user = await uow.users.add(
                User(id=0, pubkey=bytes([first_byte + i]) * 32, created=START)
            )
            key = await uow.ssh_keys.add(
                SshKey(id=0, name="k", user_id=user.id, created=START, key_data="ssh-ed25519 A")
            )
            terms.append(
                OrderTerms(
                    user_id=user.id, image_id=IMAGE, ssh_key_id=key.id, unpaid_room=HALF_HOST
                )
            )
        await uow.commit()
    return terms


async def test_an_order_past_the_buyers_unpaid_room_is_refused_before_anything_is_written(
    world: World,
) -> None:
    terms = _alice(SIX_CPUS)
    await _custom(world, terms, cpu=2)
    await _tiny(world.shop.factory, world, terms)  # 4 vCPUs held
    before = await _written(world)

    with pytest.raises(UnpaidRoomExceeded) as err:
        await _custom(world, terms, cpu=4)
    assert err.value.message.startswith("Your unpaid orders would hold 8 vCPUs (at most 6):")
    assert await _written(world) == before
    async with world.shop.factory() as uow:
        assert await uow.custom_templates.get(2) is None  # not even the custom spec

    await _custom(world, terms, cpu=2)  # exactly the budget
    with pytest.raises(UnpaidRoomExceeded):
        await _tiny(world.shop.factory, world, terms)


async def test_paid_and_lapsed_orders_cost_the_buyer_no_unpaid_room(world: World) -> None:
    """The budget counts what holds room (D25): a paid VM is no longer unpaid; an order past
    its window holds nothing, even before the worker deletes it; an invoice of the window
    keeps its order counted while it is pending, as it keeps the order's room."""
    terms = _alice(SIX_CPUS)
    first, second, _ = [await _tiny(world.shop.factory, world, terms) for _ in range(3)]
    with pytest.raises(UnpaidRoomExceeded):
        await _tiny(world.shop.factory, world, terms)
    await world.complete(await world.renew(first))  # paid: its 2 vCPUs leave the budget
    await _tiny(world.shop.factory, world, terms)
    with pytest.raises(UnpaidRoomExceeded):
        await _tiny(world.shop.factory, world, terms)

    world.advance(59 * MINUTE)
    await world.renew(second)  # pending 10 more minutes: second keeps its room
    world.advance(2 * MINUTE)  # the others ordered at the start have lapsed, not deleted
    async with world.shop.factory() as uow:
        assert len(await uow.vms.list_never_paid(user_id=ALICE)) == 3
    await _tiny(world.shop.factory, world, terms)  # second's 2 + this 2 + ...
    await _tiny(world.shop.factory, world, terms)  # ... + this 2: 6
    with pytest.raises(UnpaidRoomExceeded):
        await _tiny(world.shop.factory, world, terms)


async def test_one_buyers_concurrent_orders_never_pass_the_budget_together(
    world: World, database: Database
) -> None:
    """Judged under the buyer's row lock, as `max-unpaid-vms` is: 8 orders of 2 vCPUs at
    once against a budget of 6 leave exactly three."""
    terms = _alice(SIX_CPUS)

    async def race(factory: UnitOfWorkFactory) -> list[Vm | BaseException]:
        return await asyncio.gather(
            *(_tiny(factory, world, terms) for _ in range(RACERS)), return_exceptions=True
        )

    if database.url is None:
        results = await race(world.shop.factory)
    else:  # a separate engine: every order on its own pooled connection
        async with engine_on(database) as engine:
            results = await race(sql_factory(engine))
    made = [r for r in results if isinstance(r, Vm)]
    refused = [r for r in results if isinstance(r, UnpaidRoomExceeded)]
    assert (len(made), len(refused)) == (3, RACERS - 3), results
    assert (await _written(world))[1] == 3


async def test_never_paid_orders_hold_at_most_the_host_share(world: World) -> None:
    """Half of the 16-vCPU host: four Tiny orders; the fifth goes to another host with room,
    or nowhere (the same answer as a full host), though the first still has 8 vCPUs free."""
    buyers = await _buyers(world, 3)
    placed = [await _tiny(world.shop.factory, world, buyers[i // 2]) for i in range(4)]
    assert {vm.host_id for vm in placed} == {1}
    with pytest.raises(NoHostAvailable) as err:
        await _tiny(world.shop.factory, world, buyers[2])
    assert err.value.message == "No available hosts found"

    async with world.shop.factory() as uow:
        second = await add_host(uow, region_id=1, name="h2", ip="10.0.0.2")
        await uow.commit()
    assert (await _tiny(world.shop.factory, world, buyers[2])).host_id == second.id


async def test_paying_moves_an_order_out_of_the_share_and_paid_vms_use_the_rest(
    world: World,
) -> None:
    buyers = await _buyers(world, 2)
    placed = [await _tiny(world.shop.factory, world, buyers[i // 2]) for i in range(4)]
    with pytest.raises(NoHostAvailable):
        await _tiny(world.shop.factory, world, buyers[1])
    for vm in placed:  # paid: held as paid VMs now, beyond the unpaid share
        await world.complete(await world.renew(vm))
    more = [await _tiny(world.shop.factory, world, buyers[i // 2]) for i in range(4)]
    assert {vm.host_id for vm in more} == {1}  # 8 paid + 8 unpaid vCPUs: the host is full
    with pytest.raises(NoHostAvailable):
        await _tiny(world.shop.factory, world, buyers[1])


async def test_free_orders_cannot_take_the_room_a_paying_customers_upgrade_needs(
    world: World,
) -> None:
    """The incident: free keys ordered until the host was full and a paying customer got "no
    capacity". Now they stop at half the host, so growing Alice's paid VM by 6 vCPUs fits."""
    vm = await world.paid_vm()  # 2 of the 16 vCPUs, paid
    grabbers = await _buyers(world, 8)
    results: list[Vm | NoHostAvailable] = []
    for terms in grabbers:  # each would order until nothing fits
        for _ in range(3):
            try:
                results.append(await _tiny(world.shop.factory, world, terms))
            except NoHostAvailable as refused:
                results.append(refused)
    assert len([r for r in results if isinstance(r, Vm)]) == 4  # 8 vCPUs: the share

    shop = world.shop
    upgrade = await upgrade_payment(shop, vm, UpgradeConfig(new_cpu=8))
    assert (await world.complete(upgrade)).completed
    await world.run_jobs()
    async with shop.factory() as uow:
        grown = await uow.vms.get(vm.id)
        assert grown is not None and grown.custom_template_id is not None
        custom = await uow.custom_templates.get(grown.custom_template_id)
    assert custom is not None and custom.cpu == 8


async def test_orders_racing_for_the_shares_last_room_place_exactly_one(
    world: World, database: Database
) -> None:
    """Judged under the region lock every order takes before reading the hosts' room: 6 of
    the host's 8 unpaid vCPUs held, 8 buyers race for the last 2 (the host has 10 free)."""
    holders = await _buyers(world, 2)
    for i in range(3):
        await _tiny(world.shop.factory, world, holders[i // 2])
    racers = await _buyers(world, RACERS, first_byte=0x80)

    async def race(factory: UnitOfWorkFactory) -> list[Vm | BaseException]:
        return await asyncio.gather(
            *(_tiny(factory, world, terms) for terms in racers), return_exceptions=True
        )

    if database.url is None:
        results = await race(world.shop.factory)
    else:  # a separate engine: every order on its own pooled connection
        async with engine_on(database) as engine:
            results = await race(sql_factory(engine))
    made = [r for r in results if isinstance(r, Vm)]
    refused = [r for r in results if isinstance(r, NoHostAvailable)]
    assert (len(made), len(refused)) == (1, RACERS - 1), results
    assert (await _written(world))[1] == 4
