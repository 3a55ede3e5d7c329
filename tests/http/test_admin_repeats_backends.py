"""An admin's extend and credit note sent twice with the same `reference` happen once (a repeat
with another body is 409), at once too; without one each request acts, as before. And no admin
moves money or paid time to their own account (their own expiry and price included). On every
storage backend."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from adapters.http.envelope import format_time
from domain.enums import VmHistoryActionType
from tests.http.apiapp import ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.http.vm_helpers import paid_vm, renew, subscription_of, user_of
from tests.nostr_signing import NostrKey

__all__ = ["admin", "backend", "c", "database"]

ALICE = NostrKey.from_seed(21)
BASE = "/api/admin/v1"


async def _call(admin: ApiClient, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    resp = await admin.call(method, BASE + path, key=ROOT, **kw)
    return resp.status, await resp.json()


async def _extends(c: ApiClient, vm_id: int) -> int:
    """The VM's history entries of an admin's extend."""
    async with c.api.store() as uow:
        entries = (await uow.vm_history.list_by_vm(vm_id, 100)).items
    return sum(
        e.action_type is VmHistoryActionType.RENEWED
        and isinstance(e.metadata, dict)
        and "days_extended" in e.metadata
        for e in entries
    )


async def _invoice_of(c: ApiClient, vm_id: int) -> int:
    sub = await subscription_of(c.api, vm_id)
    async with c.api.store() as uow:
        invoices = await uow.invoices.of_subscription(sub.id)
    assert len(invoices) == 1
    return invoices[0].id


async def test_an_extend_with_a_reference_extends_once(c: ApiClient, admin: ApiClient) -> None:
    vm = await paid_vm(c, ALICE)
    path = f"/vms/{vm['id']}/extend"
    before = (await subscription_of(c.api, vm["id"])).expires
    assert before is not None
    body = {"days": 30, "reason": "outage goodwill, ticket 7", "reference": "ticket-7"}
    assert await _call(admin, "PUT", path, json=body) == (200, {"data": None})
    assert await _call(admin, "PUT", path, json=body) == (200, {"data": None})
    answers = await asyncio.gather(
        *(admin.call("PUT", BASE + path, key=ROOT, json=body) for _ in range(3))
    )
    assert [r.status for r in answers] == [200] * 3
    assert (await subscription_of(c.api, vm["id"])).expires == before + timedelta(days=30)
    assert await _extends(c, vm["id"]) == 1
    for other in (
        {**body, "days": 31},
        {**body, "reason": "another"},
        {"days": 30, "reference": "ticket-7"},
    ):
        status, answer = await _call(admin, "PUT", path, json=other)
        assert status == 409 and "ticket-7" in answer["error"], answer
    assert (await subscription_of(c.api, vm["id"])).expires == before + timedelta(days=30)
    # without a reference each request extends, as before; a new reference is a new extend
    await _call(admin, "PUT", path, json={"days": 1})
    await _call(admin, "PUT", path, json={"days": 1})
    await _call(admin, "PUT", path, json={**body, "reference": "ticket-8"})
    assert (await subscription_of(c.api, vm["id"])).expires == before + timedelta(days=62)
    assert await _extends(c, vm["id"]) == 4


async def test_a_credit_note_with_a_reference_is_issued_once(
    c: ApiClient, admin: ApiClient
) -> None:
    vm = await paid_vm(c, ALICE)
    invoice = await _invoice_of(c, vm["id"])
    path = f"/invoices/{invoice}/credit_notes"
    body = {"amount": 100, "reason": "partial refund, ticket 9", "reference": "ticket-9"}
    status, first = await _call(admin, "POST", path, json=body)
    assert status == 200 and first["data"]["replayed"] is False
    assert first["data"]["reference"] == "ticket-9"
    status, again = await _call(admin, "POST", path, json=body)
    assert status == 200 and again["data"] == {**first["data"], "replayed": True}
    answers = await asyncio.gather(
        *(admin.call("POST", BASE + path, key=ROOT, json=body) for _ in range(3))
    )
    assert [r.status for r in answers] == [200] * 3
    for other in ({**body, "amount": 101}, {**body, "reason": "another"}):
        status, answer = await _call(admin, "POST", path, json=other)
        assert status == 409 and "ticket-9" in answer["error"], answer
    notes = (await _call(admin, "GET", f"/invoices/{invoice}"))[1]["data"]["credit_notes"]
    assert [(n["id"], n["reference"]) for n in notes] == [(first["data"]["id"], "ticket-9")]
    # without a reference each request issues a note, as before
    plain = {"amount": 10, "reason": "correction"}
    for _ in range(2):
        status, answer = await _call(admin, "POST", path, json=plain)
        assert status == 200 and answer["data"]["reference"] is None
    notes = (await _call(admin, "GET", f"/invoices/{invoice}"))[1]["data"]["credit_notes"]
    assert [n["amount"] for n in notes] == [100, 10, 10]


async def test_no_admin_moves_money_to_their_own_account(c: ApiClient, admin: ApiClient) -> None:
    root = (await user_of(c.api, ROOT)).id
    vm = await paid_vm(c, ROOT)
    pending = (await renew(c, ROOT, vm["id"]))["id"]
    invoice = await _invoice_of(c, vm["id"])
    before = await subscription_of(c.api, vm["id"])
    assert before.expires is not None
    async with c.api.store() as uow:
        [item] = await uow.line_items.list_by_subscription(before.id)
    year = format_time(before.expires + timedelta(days=365))
    tries: list[tuple[str, str, dict[str, Any] | None, str]] = [
        (
            "PATCH",
            f"/subscriptions/{before.id}",
            {"expires": year},
            "move a subscription's expiry or change its price",
        ),
        (
            "PATCH",
            f"/subscription_line_items/{item.id}",
            {"amount": 1},
            "change a subscription's price",
        ),
        ("POST", f"/subscription_payments/{pending}/complete", None, "complete a payment"),
        (
            "POST",
            f"/users/{root}/credit",
            {"currency": "EUR", "amount": 5, "note": "x"},
            "adjust credit",
        ),
        ("POST", f"/vms/{vm['id']}/refund/credit", {}, "refund a VM"),
        ("PUT", f"/vms/{vm['id']}/extend", {"days": 30}, "extend a VM"),
        (
            "POST",
            f"/invoices/{invoice}/credit_notes",
            {"amount": 1, "reason": "x"},
            "issue a credit note",
        ),
    ]
    for method, path, body, what in tries:
        status, answer = await _call(admin, method, path, json=body)
        assert status == 403 and answer["error"].startswith(f"Admins cannot {what} for"), path
    assert await subscription_of(c.api, vm["id"]) == before
    async with c.api.store() as uow:
        payment = await uow.payments.get(bytes.fromhex(pending))
        balances = await uow.credit_ledger.balances(root)
        notes = await uow.invoices.credit_notes_of(invoice)
        assert await uow.line_items.get(item.id) == item
    assert payment is not None and not payment.is_paid
    assert (balances, notes) == ({}, [])
