"""`GET /api/admin/v1/vms` runs the same statements for one VM and a thousand, whatever the
filters, on SQLite and MariaDB: filtered, counted and paged in SQL (it read every live VM, or
every VM of a user 500 at a time, and paged in Python)."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mysql import tables
from tests.http.admin.adminapp import ROOT
from tests.http.apiapp import ALICE, ApiClient
from tests.http.test_statement_budgets import (
    admin_statements,
    backend,
    database,
    one_paid_vm,
    sql,
    sql_admin,
)

__all__ = ["backend", "database", "sql", "sql_admin"]

#: VMs added to the first: more live ones than the old handler read per statement (500), a
#: quarter of them soft-deleted
MANY = 1000
#: the two admin-auth reads, the page with its total, and `vms_json`'s batched reads (the
#: VMs' rows, owners, hosts, regions, line items, payment counts)
ADMIN_VM_LIST_BUDGET = 9


async def _bulk_vms(engine: AsyncEngine, vm_id: int, count: int) -> None:
    """`count` copies of the VM's row in one INSERT, every fourth soft-deleted."""
    vm = tables.vm
    async with engine.begin() as conn:
        row = (await conn.execute(select(vm).where(vm.c.id == vm_id))).mappings().one()
        copy = {k: v for k, v in row.items() if k != "id"}
        rows = [{**copy, "deleted": n % 4 == 0} for n in range(count)]
        await conn.execute(insert(vm), rows)


async def test_the_admin_vm_list_costs_the_same_for_one_vm_and_many_with_each_filter(
    sql_admin: tuple[ApiClient, ApiClient, AsyncEngine],
) -> None:
    c, admin, engine = sql_admin
    vm_id = await one_paid_vm(c)
    async with c.api.store() as uow:
        vm = await uow.vms.get(vm_id)
        host = None if vm is None else await uow.hosts.get(vm.host_id)
    assert vm is not None and host is not None
    every = (
        f"user_id={vm.user_id}&pubkey={ALICE.pubkey_hex}&host_id={host.id}"
        f"&region_id={host.region_id}&include_deleted=true"
    )
    queries = {
        "none": "",
        "user": f"user_id={vm.user_id}",
        "pubkey": f"pubkey={ALICE.pubkey_hex}",
        "host": f"host_id={host.id}",
        "region": f"region_id={host.region_id}",
        "deleted": "include_deleted=true",
        "every": every,
        "second page": f"{every}&offset=50",
    }
    paths = {name: f"/vms?limit=50&{q}" for name, q in queries.items()}
    before = {name: await admin_statements(admin, engine, p) for name, p in paths.items()}
    await _bulk_vms(engine, vm_id, MANY)
    after = {name: await admin_statements(admin, engine, p) for name, p in paths.items()}
    # with one VM the second page is past the end (nothing to render): compared with the first
    del before["second page"]
    assert after == {**before, "second page": before["every"]}, (before, after)
    assert max(after.values()) <= ADMIN_VM_LIST_BUDGET, after
    for name, total in (("none", MANY * 3 // 4 + 1), ("every", MANY + 1)):
        resp = await admin.call("GET", "/api/admin/v1" + paths[name], key=ROOT)
        body = await resp.json()
        assert (len(body["data"]), body["total"]) == (50, total), name
