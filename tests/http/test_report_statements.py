"""Statement budgets of the revenue and referral reports on SQLite and MariaDB: the same count
for one paid payment as for a hundred (review r20, issue 10)."""

from __future__ import annotations

import os

import attrs
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.invoice import document_number
from tests.http.admin.adminapp import ROOT
from tests.http.apiapp import ApiClient
from tests.http.test_statement_budgets import (
    backend,
    clone_vms,
    counting,
    database,
    one_paid_vm,
    sql,
    sql_admin,
)

__all__ = ["backend", "database", "sql", "sql_admin"]

WINDOW = "start_date=2026-06-01&end_date=2026-06-30"
#: the caller and their permissions (2), the company, the payments, then per kind of record
#: they belong to: VMs with their line items, hosts, regions, invoices (5); the credit notes
#: and the invoices they correct (2 when there are notes, 1 without)
REVENUE_BUDGET = 9
#: the caller (2), the company, the payments, then VMs, hosts, regions, invoices
REFERRAL_BUDGET = 8


async def referred_and_paid(c: ApiClient, vm_id: int, copies: int) -> int:
    """`copies` more VMs like `vm_id`, each with its own subscription and a paid payment with
    its invoice, all ordered with a referral code; the company's id."""
    await clone_vms(c, vm_id, copies)
    async with c.api.store() as uow:
        vm = await uow.vms.get(vm_id)
        assert vm is not None
        sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
        assert sub is not None
        [paid] = (await uow.payments.list_by_subscription(sub.id, 1, 0)).items
        invoice = await uow.invoices.get_by_payment(paid.id)
        assert invoice is not None
        for other in await uow.vms.list_active():
            await uow.vms.update(attrs.evolve(other, ref_code="PARTNER1"))
            if other.id == vm_id:
                continue
            own = await uow.subscriptions.get_by_line_item(other.subscription_line_item_id)
            assert own is not None
            payment = attrs.evolve(
                paid, id=os.urandom(32), subscription_id=own.id, external_id=None
            )
            await uow.payments.add(payment)
            seq = await uow.invoices.next_seq(invoice.company_id, invoice.series)
            await uow.invoices.add(
                attrs.evolve(
                    invoice,
                    id=0,
                    seq=seq,
                    number=document_number(invoice.series, seq),
                    payment_id=payment.id,
                )
            )
        await uow.commit()
    return sub.company_id


async def _counted(admin: ApiClient, engine: AsyncEngine, path: str) -> tuple[int, int]:
    """Statements run by one admin GET and the rows of the report it answers; nothing
    committed, only SELECTs."""
    with counting(engine) as counter:
        resp = await admin.call("GET", "/api/admin/v1" + path, key=ROOT)
        assert resp.status == 200, await resp.text()
        data = (await resp.json())["data"]
    assert counter.commits == 0
    assert all(s.lstrip().upper().startswith("SELECT") for s in counter.statements)
    rows = data["payments"] if "payments" in data else data["referrals"]
    return counter.count, len(rows)


async def test_reports_cost_the_same_statements_for_one_payment_as_for_a_hundred(
    sql_admin: tuple[ApiClient, ApiClient, AsyncEngine],
) -> None:
    c, admin, engine = sql_admin
    vm_id = await one_paid_vm(c)
    company = await referred_and_paid(c, vm_id, 0)
    revenue = f"/reports/time-series?{WINDOW}&company_id={company}"
    referral = f"/reports/referral-usage/time-series?{WINDOW}&company_id={company}"
    before = [await _counted(admin, engine, path) for path in (revenue, referral)]
    await referred_and_paid(c, vm_id, 99)
    after = [await _counted(admin, engine, path) for path in (revenue, referral)]
    assert [rows for _, rows in before] == [1, 1]
    assert [rows for _, rows in after] == [100, 100]
    assert [count for count, _ in after] == [count for count, _ in before]
    assert after[0][0] <= REVENUE_BUDGET and after[1][0] <= REFERRAL_BUDGET, after
