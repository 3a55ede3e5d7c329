"""The owner's VM edits (PATCH /vm/{id}) never undo what another transaction committed
between their read and their write (review r5), on MariaDB, where the two interleave: a
renewal's paid time, an upgrade's template, a deletion's released address.

The edit reads the VM without a lock; a hook pauses it right after that read while the other
writer commits, which is the interleaving any await point allows in production. Memory and
SQLite serialise the two writers (the paused edit would hold up the other), so the race is
MariaDB's only; the narrow writes themselves are checked on every backend in
`tests/contract/test_narrow_writes.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from app import vm_actions
from app.billing import booked_records, catalogue, upgrades
from domain.model import IpAssignment, Subscription, Vm
from ports.storage import UnitOfWork
from tests.contract import storage_backends
from tests.http.apiapp import ALICE, ApiClient
from tests.http.backend_apps import backend, c, database
from tests.http.vm_helpers import add_key, paid_vm, renew, settle, subscription_of

__all__ = ["backend", "c", "database"]

pytestmark = storage_backends.only("mysql")
GUARD_S = 20


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[asyncio.Event, asyncio.Event]]:
    """(read, go): the edit sets `read` once it has read the VM and waits for `go`."""
    read, go = asyncio.Event(), asyncio.Event()

    async def owned_vm(uow: UnitOfWork, vm_id: int, user_id: int | None) -> Vm:
        vm = await catalogue.owned_vm(uow, vm_id, user_id)
        read.set()
        await asyncio.wait_for(go.wait(), GUARD_S)
        return vm

    monkeypatch.setattr(vm_actions, "owned_vm", owned_vm)
    yield read, go


async def _edit_around(
    c: ApiClient,
    vm_id: int,
    body: dict[str, Any],
    paused: tuple[asyncio.Event, asyncio.Event],
    meanwhile: Callable[[], Awaitable[None]],
) -> None:
    """PATCH the VM with `body`, running `meanwhile` between the edit's read and its write."""
    read, go = paused
    edit = asyncio.create_task(c.call("PATCH", f"/api/v1/vm/{vm_id}", key=ALICE, json=body))
    await asyncio.wait_for(read.wait(), GUARD_S)
    await asyncio.wait_for(meanwhile(), GUARD_S)
    go.set()
    resp = await asyncio.wait_for(edit, GUARD_S)
    assert resp.status == 200, await resp.text()


async def test_a_renewal_paid_during_an_auto_renewal_toggle_keeps_its_time(
    c: ApiClient, paused: tuple[asyncio.Event, asyncio.Event]
) -> None:
    vm = await paid_vm(c, ALICE)
    payment = await renew(c, ALICE, vm["id"])
    paid_until = (await subscription_of(c.api, vm["id"])).expires
    renewed = []

    async def pay() -> None:
        assert (await settle(c.api, payment["id"])).completed
        renewed.append((await subscription_of(c.api, vm["id"])).expires)

    await _edit_around(c, vm["id"], {"auto_renewal_enabled": True}, paused, pay)
    after = await subscription_of(c.api, vm["id"])
    assert after.auto_renewal_enabled is True
    assert paid_until is not None and renewed[0] is not None and renewed[0] > paid_until
    assert after.expires == renewed[0], "the paid month was lost"


async def test_an_upgrade_paid_during_a_key_change_keeps_its_template(
    c: ApiClient, paused: tuple[asyncio.Event, asyncio.Event]
) -> None:
    vm = await paid_vm(c, ALICE)
    second = await add_key(c.api, ALICE, name="second")
    up = await c.call("POST", f"/api/v1/vm/{vm['id']}/upgrade", key=ALICE, json={"cpu": 2})
    assert up.status == 200, await up.text()
    payment = (await up.json())["data"]

    async def pay() -> None:
        assert (await settle(c.api, payment["id"])).completed

    await _edit_around(c, vm["id"], {"ssh_key_id": second.id}, paused, pay)
    async with c.api.store() as uow:
        after = await uow.vms.get(vm["id"])
    assert after is not None and after.ssh_key_id == second.id
    assert after.template_id is None and after.custom_template_id is not None, (
        "the paid upgrade was reverted by the key change"
    )


async def test_a_reverse_dns_edit_during_the_vms_deletion_leaves_the_address_released(
    c: ApiClient, paused: tuple[asyncio.Event, asyncio.Event]
) -> None:
    vm = await paid_vm(c, ALICE)
    async with c.api.store() as uow:
        ip_range = (await uow.ip_ranges.list_by_region(c.demo.region))[0]
        address = await uow.ip_assignments.add(
            IpAssignment(id=0, vm_id=vm["id"], ip_range_id=ip_range.id, ip="185.18.221.9")
        )
        await uow.commit()

    async def release() -> None:  # what the VM's deletion does to its addresses
        async with c.api.store() as uow:
            await uow.ip_assignments.delete(address.id)
            await uow.commit()

    await _edit_around(c, vm["id"], {"reverse_dns": "vm.example"}, paused, release)
    async with c.api.store() as uow:
        after = await uow.ip_assignments.get(address.id)
    assert after is not None and after.deleted, "the released address was brought back"


async def test_a_key_change_during_an_upgrade_booking_is_not_overwritten(
    c: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The booking of an upgrade writes the VM's row whole (the template switch), from the
    copy it read under the subscription's lock: the key change waits for that lock, and
    lands after the booking. Without it the edit's row write meets the booking's (its
    history entry holds the VM row shared): a deadlock, the edit refused with 503, or,
    landing just before that entry, a key the booking's copy writes back."""
    vm = await paid_vm(c, ALICE)
    second = await add_key(c.api, ALICE, name="second")
    up = await c.call("POST", f"/api/v1/vm/{vm['id']}/upgrade", key=ALICE, json={"cpu": 2})
    assert up.status == 200, await up.text()
    payment = (await up.json())["data"]
    booking_read, go, edit_read = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def upgrade_in(uow: UnitOfWork, *args: Any) -> Any:
        booking_read.set()  # the booking holds the lock and has read the VM
        await asyncio.wait_for(go.wait(), GUARD_S)
        return await upgrades.upgrade_in(uow, *args)

    async def subscription_of(uow: UnitOfWork, vm: Vm) -> Subscription:
        edit_read.set()  # the edit is about to take the lock
        return await catalogue.subscription_of(uow, vm)

    monkeypatch.setattr(booked_records, "upgrade_in", upgrade_in)
    monkeypatch.setattr(vm_actions, "subscription_of", subscription_of)
    booking = asyncio.create_task(settle(c.api, payment["id"]))
    await asyncio.wait_for(booking_read.wait(), GUARD_S)
    edit = asyncio.create_task(
        c.call("PATCH", f"/api/v1/vm/{vm['id']}", key=ALICE, json={"ssh_key_id": second.id})
    )
    waiting = asyncio.create_task(edit_read.wait())
    await asyncio.wait({edit, waiting}, timeout=GUARD_S, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    go.set()
    assert (await asyncio.wait_for(booking, GUARD_S)).completed
    resp = await asyncio.wait_for(edit, GUARD_S)
    assert resp.status == 200, await resp.text()  # 503: the edit deadlocked with the booking
    async with c.api.store() as uow:
        after = await uow.vms.get(vm["id"])
    assert after is not None and after.custom_template_id is not None
    assert after.ssh_key_id == second.id, "the key change was overwritten by the booking"
