"""The worker on a Proxmox node whose tasks end `WARNINGS: 1` (done, with a logged warning):
a paid VM is delivered once, and an expiry stop is recorded so a renewal starts the VM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import attrs
import pytest

from adapters.vmhost.proxmox import ProxmoxVmHost
from app.worker.context import WorkerDeps
from app.worker.jobs import build_handlers
from app.worker.lifecycle import check_subscriptions
from app.worker.loop import drain
from app.worker.vmcheck import check_vms
from domain.enums import VmHistoryActionType as H
from tests.contract.test_vmhost import proxmox_config
from tests.fakes.fake_proxmox import FakeProxmox
from tests.unit.worker.world import OneHost, World


@attrs.define
class Node:
    fake: FakeProxmox
    deps: WorkerDeps

    async def run_jobs(self, world: World) -> int:
        return await drain(world.queue, build_handlers(self.deps))


@pytest.fixture
async def node(world: World) -> AsyncIterator[Node]:
    fake = FakeProxmox(world.clock)
    async with fake.serve() as url:
        host = ProxmoxVmHost(proxmox_config(url), world.clock)
        yield Node(fake, attrs.evolve(world.deps, hosts=OneHost(host)))
        await host.aclose()


@pytest.mark.parametrize("kinds", [("qmcreate",), ()], ids=["create-warns", "every-task-warns"])
async def test_a_spawn_whose_create_warns_delivers_the_vm_once(
    world: World, node: Node, kinds: tuple[str, ...]
) -> None:
    node.fake.warn_tasks(*kinds)
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))
    await node.run_jobs(world)  # the SpawnVm the payment sent
    for _ in range(2):  # later VM checks find it built: nothing to do again
        report = await check_vms(node.deps)
        assert report.failed == []
        await node.run_jobs(world)

    assert (await world.shop.vm(vm.id)).is_provisioned
    assert len(node.fake.calls("POST", f"/nodes/{node.fake.node}/qemu")) == 1
    assert [p for m, p, _ in node.fake.requests if m == "DELETE"] == []
    assert node.fake.guests[100 + vm.id].status == "running"
    assert len(await world.history(vm, H.STARTED)) == 1


async def test_an_expiry_stop_that_warns_is_recorded_and_a_renewal_starts_the_vm(
    world: World, node: Node
) -> None:
    vm = await world.shop.order()
    await world.complete(await world.renew(vm))
    await node.run_jobs(world)
    guest = node.fake.guests[100 + vm.id]
    assert guest.status == "running"
    node.fake.warn_tasks("qmstop")

    expires = (await world.sub(vm)).expires
    assert expires is not None
    world.at(expires + timedelta(seconds=1))
    for _ in range(3):  # the stop is done by the first run, and only recorded once
        await check_subscriptions(node.deps)
        world.advance(timedelta(seconds=30))
    assert guest.status == "stopped"
    assert len(await world.history(vm, H.EXPIRED)) == 1
    assert len(node.fake.calls("POST", f"/qemu/{100 + vm.id}/status/stop")) == 1

    world.advance(timedelta(days=1))
    await world.complete(await world.renew(vm))  # the owner pays again
    await node.run_jobs(world)
    await check_vms(node.deps)
    await node.run_jobs(world)
    assert guest.status == "running"
