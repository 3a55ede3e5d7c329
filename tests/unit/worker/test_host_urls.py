"""Proxmox hosts stored with a clear-text http:// URL (refused by the client since): the
worker's first VM check tells the operator once, in the log and as an admin notice."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import attrs
import pytest

from adapters.notify.memory import RecordingNotifier
from app.worker.jobs import QueuedNotifier, build_handlers
from app.worker.loop import drain
from domain.enums import VmHostKind
from domain.model import GIB, Host
from ports.jobs import CheckVms
from tests.unit.worker.world import World


async def _host(world: World, name: str, ip: str, kind: VmHostKind = VmHostKind.PROXMOX) -> Host:
    async with world.shop.factory() as uow:
        host = await uow.hosts.add(
            Host(
                id=0,
                kind=kind,
                region_id=1,
                name=name,
                ip=ip,
                cpu=16,
                memory=64 * GIB,
                enabled=name != "pve-off",
                api_token="root@pam!lnvps=secret",
            )
        )
        await uow.commit()
    return host


async def test_each_clear_text_proxmox_host_is_reported_once_at_the_first_vm_check(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    clear = await _host(world, "pve-clear", "http://10.0.0.5:8006")
    off = await _host(world, "pve-off", "http://pve2.example.net:8006/")  # disabled: too
    await _host(world, "pve-tls", "https://10.0.0.6:8006")
    await _host(world, "pve-tunnel", "http://127.0.0.1:8006")
    await _host(world, "kvm", "qemu+ssh://root@10.0.0.7/system", VmHostKind.LIBVIRT)
    delivered = RecordingNotifier()
    deps = attrs.evolve(world.deps, notifier=QueuedNotifier(world.queue))
    handlers = build_handlers(deps, delivery=delivered, min_check_gap=timedelta(0))

    with caplog.at_level(logging.ERROR):
        for _ in range(3):  # the first check at worker start, then the periodic ones
            await world.queue.send(CheckVms())
            await drain(world.queue, handlers)
            world.advance(timedelta(minutes=1))

    operator = [r.getMessage() for r in caplog.records if "OPERATOR:" in r.getMessage()]
    assert len(operator) == 2
    assert [n.user_id for n in delivered.sent] == [None, None]  # admin notices, once each
    for host, notice, line in zip((clear, off), delivered.sent, operator, strict=True):
        assert f"#{host.id} ({host.name})" in notice.message and host.ip in notice.message
        assert "https://" in notice.message and host.name in notice.title
        assert f"#{host.id} ({host.name})" in line and "https://" in line
        assert "secret" not in notice.message + line  # the token never goes out


async def test_a_failed_host_read_is_tried_again_at_the_next_check(world: World) -> None:
    await _host(world, "pve-clear", "http://10.0.0.5:8006")
    real_factory = world.shop.factory
    calls = {"n": 0}

    def flaky_factory() -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("database away")
        return real_factory()

    delivered = RecordingNotifier()
    deps = attrs.evolve(world.deps, notifier=QueuedNotifier(world.queue), uow_factory=flaky_factory)
    handlers = build_handlers(deps, delivery=delivered, min_check_gap=timedelta(0))
    for _ in range(2):
        await world.queue.send(CheckVms())
        await drain(world.queue, handlers)
    assert [n.title for n in delivered.sent] == ["Proxmox host pve-clear unusable: http:// URL"]
