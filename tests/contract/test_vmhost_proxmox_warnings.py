"""Proxmox tasks that end `WARNINGS: n` did their work; other exit statuses are errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import pytest

from adapters.vmhost.proxmox import ProxmoxVmHost
from adapters.vmhost.proxmox_api import TaskFailed
from domain.model import GIB
from tests.contract import test_vmhost_proxmox
from tests.contract.test_vmhost import info, vm
from tests.contract.test_vmhost_proxmox import Node
from tests.fakes.fake_proxmox import NODE, FakeProxmox

node = test_vmhost_proxmox.node  # the fake node and its host, as the adapter's own tests


async def test_a_create_whose_every_task_warns_builds_and_boots_the_vm(
    node: Node, caplog: pytest.LogCaptureFixture
) -> None:
    node.fake.warn_tasks()  # create, resize, start: each ends `WARNINGS: 1`
    with caplog.at_level(logging.WARNING, logger="adapters.vmhost.proxmox_api"):
        await node.host.create_vm(info(1))
    guest = node.fake.guests[101]
    assert (guest.status, guest.disk_size) == ("running", 40 * GIB)
    assert node.fake.calls("DELETE", "/qemu/101") == []
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(":qmcreate:101:" in m and NODE in m and "WARNINGS: 1" in m for m in warned)


Call = Callable[[ProxmoxVmHost], Awaitable[object]]


async def _stop_then_start(host: ProxmoxVmHost) -> None:
    await host.stop_vm(vm(1))
    await host.start_vm(vm(1))


@pytest.mark.parametrize(
    ("kind", "call", "done"),
    [
        ("qmstart", _stop_then_start, lambda f: f.guests[101].status == "running"),
        ("qmstop", lambda h: h.stop_vm(vm(1)), lambda f: f.guests[101].status == "stopped"),
        ("qmreset", lambda h: h.restart_vm(vm(1)), lambda f: f.guests[101].status == "running"),
        ("qmdestroy", lambda h: h.delete_vm(vm(1)), lambda f: 101 not in f.guests),
        (
            "resize",
            lambda h: h.resize_vm(info(1, disk=80 * GIB)),
            lambda f: f.guests[101].disk_size == 80 * GIB,
        ),
        (
            "qmconfig",
            lambda h: h.resize_vm(info(1, cpu=4)),
            lambda f: f.guests[101].config["cores"] == "4",
        ),
        ("qmconfig", lambda h: h.reinstall_vm(info(1)), lambda f: "scsi0" in f.guests[101].config),
    ],
    ids=["start", "stop", "restart", "delete", "resize-disk", "resize-config", "reinstall"],
)
async def test_an_operation_whose_task_warns_succeeds(
    node: Node, kind: str, call: Call, done: Callable[[FakeProxmox], bool]
) -> None:
    await node.host.create_vm(info(1))
    node.fake.warn_tasks(kind)
    await call(node.host)
    assert done(node.fake)
    assert any(t.exit_status == "WARNINGS: 1" for t in node.fake.tasks.values() if t.kind == kind)


@pytest.mark.parametrize(
    "exit_status",
    ["VM 101 qmp command 'quit' failed - got timeout", "unexpected status", "WARN", ""],
)
async def test_any_other_exit_status_is_a_fatal_task_failure(node: Node, exit_status: str) -> None:
    await node.host.create_vm(info(1))
    node.fake.task_exit["qmstop"] = exit_status
    with pytest.raises(TaskFailed, match="Task finished with error: ") as caught:
        await node.host.stop_vm(vm(1))
    assert (caught.value.exit_status, caught.value.transient) == (exit_status, False)


async def test_a_failed_create_task_removes_the_guest_it_left(node: Node) -> None:
    """The node accepted the create, the task failed: the guest goes at once, not at the
    next VM check (which would find a leftover to delete before building again)."""
    node.fake.task_exit["qmcreate"] = "unable to create VM 101 - lvcreate failed: out of space"
    with pytest.raises(TaskFailed, match="out of space") as caught:
        await node.host.create_vm(info(1))
    assert caught.value.transient is False
    assert 101 not in node.fake.guests
    assert len(node.fake.calls("DELETE", "/qemu/101")) == 1
    assert node.fake.calls("POST", "/qemu/101/status/start") == []


async def test_a_failed_create_task_still_reports_its_error_when_the_removal_fails(
    node: Node,
) -> None:
    """The create's error is what the spawn sees, not the removal's."""
    node.fake.task_exit["qmcreate"] = "unable to create VM 101 - lvcreate failed: out of space"
    node.fake.task_exit["qmdestroy"] = "storage busy"
    with pytest.raises(TaskFailed, match="out of space"):
        await node.host.create_vm(info(1))
    assert len(node.fake.calls("DELETE", "/qemu/101")) == 1  # tried; else the VM check does
