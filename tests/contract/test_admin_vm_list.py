"""`Vms.list_page` on every storage: an admin's VM list filtered, counted and paged the same."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from domain.model import Host, Region, Vm
from ports.storage import VmListFilter
from tests.contract.storage_backends import Backend, at, backend, database, seed_world
from tests.sql_events import listening

__all__ = ["backend", "database"]


@attrs.frozen
class Fleet:
    """Alice's and Bob's VMs on two hosts in two regions, some soft-deleted."""

    alice: int
    bob: int
    alice_key: bytes
    bob_key: bytes
    eu: int
    us: int
    h1: int
    h2: int
    vms: dict[str, int]


async def _fleet(backend: Backend) -> Fleet:
    async with backend.factory() as uow:
        world = await seed_world(uow)
        us = await uow.regions.add(
            Region(id=0, name="us", enabled=True, company_id=world.company.id)
        )
        h2 = await uow.hosts.add(attrs.evolve(world.host, id=0, name="h2", region_id=us.id))
        bob = await uow.users.get_or_create_by_pubkey(b"\x02" * 32, at(1))

        async def vm(user_id: int, host: Host, deleted: bool = False) -> int:
            added = await uow.vms.add(
                attrs.evolve(world.vm, id=0, user_id=user_id, host_id=host.id)
            )
            if deleted:
                await uow.vms.delete(added.id)
            return added.id

        alice = world.user.id
        vms = {
            "a1": world.vm.id,
            "a2": await vm(alice, h2),
            "b1": await vm(bob.id, world.host),
            "b2_deleted": await vm(bob.id, h2, deleted=True),
            "a1_deleted": await vm(alice, world.host, deleted=True),
        }
        await uow.commit()
    return Fleet(
        alice, bob.id, world.user.pubkey, bob.pubkey, world.region.id, us.id,
        world.host.id, h2.id, vms,
    )  # fmt: skip


async def _listed(
    backend: Backend, which: VmListFilter, limit: int = 50, offset: int = 0
) -> tuple[list[int], int]:
    async with backend.factory() as uow:
        page = await uow.vms.list_page(which, limit, offset)
    assert all(isinstance(vm, Vm) for vm in page.items)
    return [vm.id for vm in page.items], page.total


def _ids(fleet: Fleet, *names: str) -> list[int]:
    """The named VMs' ids, newest first (the list's order)."""
    return sorted((fleet.vms[n] for n in names), reverse=True)


async def test_each_filter_and_their_combinations(backend: Backend) -> None:
    f = await _fleet(backend)
    every = ("a1", "a2", "b1", "b2_deleted", "a1_deleted")
    cases: list[tuple[dict[str, Any], tuple[str, ...]]] = [
        ({}, ("a1", "a2", "b1")),
        ({"include_deleted": True}, every),
        ({"user_id": f.alice}, ("a1", "a2")),
        ({"user_id": f.alice, "include_deleted": True}, ("a1", "a2", "a1_deleted")),
        ({"owner_pubkey": f.bob_key}, ("b1",)),
        ({"owner_pubkey": f.bob_key, "include_deleted": True}, ("b1", "b2_deleted")),
        ({"owner_pubkey": b"\x09" * 32}, ()),
        ({"owner_pubkey": f.alice_key, "user_id": f.bob}, ()),
        ({"owner_pubkey": f.alice_key, "user_id": f.alice}, ("a1", "a2")),
        ({"host_id": f.h1}, ("a1", "b1")),
        ({"region_id": f.us}, ("a2",)),
        ({"region_id": f.us, "include_deleted": True}, ("a2", "b2_deleted")),
        ({"region_id": f.eu, "host_id": f.h2}, ()),
        ({"user_id": f.alice, "region_id": f.eu, "include_deleted": True}, ("a1", "a1_deleted")),
        ({"user_id": 999_999}, ()),
        ({"host_id": 999_999, "include_deleted": True}, ()),
        ({"region_id": 999_999}, ()),
    ]
    for fields, names in cases:
        expected = _ids(f, *names)
        assert await _listed(backend, VmListFilter(**fields)) == (expected, len(expected)), fields


async def test_pages_by_id_descending_with_the_whole_total(backend: Backend) -> None:
    f = await _fleet(backend)
    every = _ids(f, "a1", "a2", "b1", "b2_deleted", "a1_deleted")
    which = VmListFilter(include_deleted=True)
    assert await _listed(backend, which, 2, 0) == (every[:2], 5)
    assert await _listed(backend, which, 2, 2) == (every[2:4], 5)
    assert await _listed(backend, which, 2, 4) == (every[4:], 5)
    assert await _listed(backend, which, 2, 5) == ([], 5)  # past the end: the total still
    assert await _listed(backend, which, 50, 99) == ([], 5)
    assert await _listed(backend, VmListFilter(user_id=999_999), 2, 3) == ([], 0)


async def test_a_page_is_one_statement_whatever_the_filters(backend: Backend) -> None:
    """The total comes with the page's rows; only a page past the end counts apart."""
    if backend.engine is None:
        pytest.skip("memory storage runs no SQL")
    f = await _fleet(backend)
    statements: list[str] = []
    which = VmListFilter(
        user_id=f.alice, owner_pubkey=f.alice_key, host_id=f.h1, region_id=f.eu,
        include_deleted=True,
    )  # fmt: skip
    with listening(backend.engine, "before_cursor_execute", lambda *a: statements.append(a[2])):
        assert await _listed(backend, which, 1, 1) == (_ids(f, "a1"), 2)
        assert len(statements) == 1, statements
        assert await _listed(backend, which, 1, 2) == ([], 2)
        assert len(statements) == 3, statements
