"""The VM check's statement budget on SQLite and MariaDB: the same count for 1 or 30 VMs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import cast

import attrs
import pytest

from adapters.mysql.uow import SqlUnitOfWorkFactory
from app.worker.vmcheck import VmCheckReport
from domain.model import GIB, IpRange
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory, world_over
from tests.contract.storage_backends import Database, engine_for
from tests.http.test_statement_budgets import Counter, counting
from tests.unit.worker.world import World

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database

#: one VM check with every VM paid and in sync with its host (nothing to do): the lost
#: resizes, the live VMs, their subscriptions, the pending payments of the never-paid
#: orders old enough for the cleanup, the host. Was 3, and one more per VM (its
#: subscription) and per never-paid candidate (its pending payments): 6 and 35 here.
VM_CHECK_BUDGET = 5


@pytest.fixture
async def world(database: Database) -> AsyncIterator[World]:
    """The worker world on a SQL backend, its host and region roomy enough for 30 VMs."""
    if database.url is None:
        pytest.skip("memory storage runs no SQL")
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        world = await world_over(sql_factory(engine))
        async with world.shop.factory() as uow:
            host = await uow.hosts.get(1)
            assert host is not None
            await uow.hosts.update(attrs.evolve(host, cpu=256, memory=1024 * GIB))
            await uow.ip_ranges.add(
                IpRange(id=0, cidr="10.1.0.0/24", enabled=True, region_id=1, gateway="10.1.0.1/24")
            )
            await uow.commit()
        yield world


async def _checked(world: World) -> tuple[VmCheckReport, Counter]:
    engine = cast(SqlUnitOfWorkFactory, world.shop.factory).engine
    with counting(engine) as counter:
        report = await world.vm_check()
    return report, counter


async def test_the_vm_check_reads_a_fixed_number_of_statements_whatever_the_vms(
    world: World,
) -> None:
    # a never-paid order past the cleanup hour with a pending payment: a cleanup candidate
    # the pending-payment read keeps
    kept = await world.shop.order()
    world.advance(timedelta(minutes=55))
    await world.renew(kept)  # pending until 65 min: past the hour, its room is still held
    world.advance(timedelta(minutes=6))
    paid = [await world.paid_vm()]
    first, one = await _checked(world)
    paid += [await world.paid_vm() for _ in range(29)]
    second, thirty = await _checked(world)

    ids = [vm.id for vm in paid]
    assert (first.checked, second.checked) == (ids[:1], ids)
    for report in (first, second):
        assert (report.deleted, report.failed, report.resized) == ([], [], [])
    assert all(world.host_state(i) == "running" for i in ids)
    assert one.count == thirty.count == VM_CHECK_BUDGET, (one.statements, thirty.statements)
    assert one.commits == thirty.commits
    assert any("subscription_payment" in s for s in thirty.statements)
