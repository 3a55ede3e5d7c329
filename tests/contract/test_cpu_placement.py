"""Review r16 #2 on memory, SQLite and MariaDB: a VM is built only on a host whose CPU its offer
asks for (maker, architecture, features), on an order and when a late payment brings it back;
with no such host free the order is refused and the payment credited, as when a region is full."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from app.billing.errors import NoHostAvailable
from app.billing.placement import NO_HOST
from domain.enums import CpuArch, CpuMfg
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_unrestorable_payment import (
    _admin_notice,
    _assert_credited_once,
    _assert_moved,
    _deleted_with_late_renewal,
    _lapsed_order,
    _room_for_one,
)
from tests.unit.billing.world import ALICE, BOB, PRICING, TEMPLATE, add_host
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")

AMD = {"cpu_mfg": CpuMfg.AMD, "cpu_arch": CpuArch.X86_64, "cpu_features": ("AES", "AVX2")}
INTEL = {"cpu_mfg": CpuMfg.INTEL, "cpu_arch": CpuArch.X86_64}


async def _edit(world: World, rows: str, row_id: int, **changes: Any) -> None:
    """Row `row_id` of the `rows` repository (hosts, templates, custom_pricing) changed."""
    async with world.shop.factory() as uow:
        repo = getattr(uow, rows)
        row = await repo.get(row_id)
        assert row is not None
        await repo.update(attrs.evolve(row, **changes))
        await uow.commit()


async def _host(world: World, n: int, cpu: int, kind: dict[str, Any]) -> int:
    """Another host `h{n}` of region 1 (one 2 TiB SSD), `cpu` cores of CPU `kind`."""
    async with world.shop.factory() as uow:
        host = await add_host(uow, region_id=1, name=f"h{n}", ip=f"10.0.0.{n}")
        await uow.hosts.update(attrs.evolve(host, cpu=cpu, **kind))
        await uow.commit()
    return host.id


async def _intel_and_amd(world: World, amd_cpu: int) -> int:
    """Host 1 made a 16-core Intel host without features, and an AMD host with AES and AVX2
    of `amd_cpu` cores beside it (less room: an offer naming no CPU goes to host 1); the
    AMD host's id. Orders take no D25 host share here: not what is tested."""
    world.shop.unpaid_room = NO_UNPAID_ROOM_LIMITS
    await _edit(world, "hosts", 1, **INTEL)
    return await _host(world, 2, amd_cpu, AMD)


async def _vm_hosts(world: World, user_id: int) -> list[int]:
    async with world.shop.factory() as uow:
        return [vm.host_id for vm in (await uow.vms.list_by_user(user_id, 100)).items]


async def test_an_amd_priced_order_lands_on_the_amd_host_and_is_refused_when_it_is_full(
    world: World,
) -> None:
    amd = await _intel_and_amd(world, amd_cpu=2)  # room for one custom VM of 2 cores
    await _edit(world, "custom_pricing", PRICING, cpu_mfg=CpuMfg.AMD)

    first = await world.shop.order_custom()
    assert first.host_id == amd

    with pytest.raises(NoHostAvailable, match=NO_HOST):
        await world.shop.order_custom()  # the Intel host's room is not for it
    assert await _vm_hosts(world, ALICE) == [amd]
    assert (await world.shop.order(BOB)).host_id == 1  # a template naming no CPU still fits


async def test_a_template_with_cpu_features_lands_on_a_host_that_has_them(world: World) -> None:
    amd = await _intel_and_amd(world, amd_cpu=4)
    await _edit(world, "templates", TEMPLATE, cpu_features=("AVX2",))

    assert (await world.shop.order()).host_id == amd

    await _edit(world, "templates", TEMPLATE, cpu_features=("AVX512",))
    with pytest.raises(NoHostAvailable, match=NO_HOST):
        await world.shop.order()


async def test_a_late_payment_brings_a_deleted_vm_back_on_a_host_of_its_offers_cpu(
    world: World,
) -> None:
    """Its own host, enabled and empty, is Intel now and its template asks for AMD: it is
    built anew on the AMD host, though the Intel one has more room."""
    vm, renewal = await _deleted_with_late_renewal(world)
    amd = await _intel_and_amd(world, amd_cpu=4)
    await _edit(world, "templates", TEMPLATE, cpu_mfg=CpuMfg.AMD)

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed
    await _assert_moved(world, vm, amd)


async def test_no_host_of_its_offers_cpu_has_room_the_late_payment_becomes_credit(
    world: World,
) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _intel_and_amd(world, amd_cpu=1)  # too small for the VM's 2 cores
    await _edit(world, "templates", TEMPLATE, cpu_mfg=CpuMfg.AMD)
    sub_before = await world.sub(vm)

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed
    await _assert_credited_once(world, vm, sub_before, renewal)
    assert (
        f"host {vm.host_id} lacks the CPU the offer of VM {vm.id} asks for; "
        "no other host of region 1 has room for it"
    ) in _admin_notice(world)


async def test_a_late_order_whose_room_was_taken_moves_to_a_host_of_its_offers_cpu(
    world: World,
) -> None:
    """Its own host full, a roomy Intel host and a smaller AMD host beside it: the AMD one."""
    vm, invoice = await _lapsed_order(world)
    await _room_for_one(world, vm)
    await world.shop.order(BOB)  # its order window is over: this one gets its room
    await _edit(world, "templates", TEMPLATE, cpu_mfg=CpuMfg.AMD)
    await _host(world, 3, 16, INTEL)
    amd = await _host(world, 2, 4, AMD)

    report = await world.complete(invoice)
    await world.run_jobs()

    assert report.completed
    await _assert_moved(world, vm, amd)
