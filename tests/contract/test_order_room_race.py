"""Orders of different users racing for a host's last room, on memory, SQLite and MariaDB."""

from __future__ import annotations

import asyncio

import attrs
import pytest

from app.billing.errors import NoHostAvailable
from app.billing.ordering import OrderTerms, order_custom_vm, order_vm
from domain.enums import DiskInterface, DiskType
from domain.model import GIB, SshKey, User, Vm
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from ports.storage import UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import engine_on, sql_factory
from tests.contract.storage_backends import Database
from tests.unit.billing.world import IMAGE, PRICING, START, TEMPLATE
from tests.unit.worker.world import World

database = storage_backends.database
RACERS = 8


# pytest fixture: the worker world over this module's backend
world = lifecycle_world.world


async def _room_for_one(world: World) -> None:
    """The region's only host: 2 vCPU, so one 2-vCPU VM (Tiny or the custom spec) fits."""
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(1)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, cpu=2))
        await uow.commit()


async def _buyers(world: World) -> list[OrderTerms]:
    """RACERS new users, each with an SSH key of their own."""
    terms = []
    async with world.shop.factory() as uow:
        for n in range(RACERS):
            user = await uow.users.add(User(id=0, pubkey=bytes([0x40 + n]) * 32, created=START))
            key = await uow.ssh_keys.add(
                SshKey(id=0, name="k", user_id=user.id, created=START, key_data="ssh-ed25519 A")
            )
            terms.append(
                OrderTerms(
                    user_id=user.id,
                    image_id=IMAGE,
                    ssh_key_id=key.id,
                    unpaid_room=NO_UNPAID_ROOM_LIMITS,  # the host's capacity is raced for
                )
            )
        await uow.commit()
    return terms


async def _order(factory: UnitOfWorkFactory, world: World, terms: OrderTerms, kind: str) -> Vm:
    if kind == "template":
        return await order_vm(factory, world.clock, terms, TEMPLATE)
    return await order_custom_vm(
        factory,
        world.clock,
        terms,
        PRICING,
        cpu=2,
        memory=2 * GIB,
        disk=64 * GIB,
        disk_type=DiskType.SSD,
        disk_interface=DiskInterface.PCIE,
    )


async def _vm_count(world: World) -> int:
    async with world.shop.factory() as uow:
        return len(await uow.vms.list_active())


@pytest.mark.parametrize("kind", ["template", "custom"])
async def test_eight_users_racing_for_the_last_room_place_exactly_one_vm(
    world: World, database: Database, kind: str
) -> None:
    """Before the region lock, MariaDB let every order read the same free room and place a
    VM on it (each snapshot was fixed before any rival committed): the host was oversold."""
    await _room_for_one(world)
    buyers = await _buyers(world)

    async def race(factory: UnitOfWorkFactory) -> list[Vm | BaseException]:
        return await asyncio.gather(
            *(_order(factory, world, terms, kind) for terms in buyers), return_exceptions=True
        )

    if database.url is None:
        results = await race(world.shop.factory)
    else:  # a separate engine: every order on its own pooled connection
        async with engine_on(database) as engine:
            results = await race(sql_factory(engine))
    made = [r for r in results if isinstance(r, Vm)]
    refused = [r for r in results if isinstance(r, NoHostAvailable)]
    assert (len(made), len(refused)) == (1, RACERS - 1), results
    assert await _vm_count(world) == 1
