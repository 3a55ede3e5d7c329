"""A payment an admin completes says which admin, in its own booking: on the payment and its VM
history, even when the audit trail (written after the commit) is lost (then answered 500,
done and standing); on every backend."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from adapters.fiat.bank_transfer import BankTransferRail
from adapters.http.app import USER_API_ROUTES
from domain.admin_completion import (
    ADMIN_COMPLETION_KEY,
    RACE_MARGIN,
    NodeSettlement,
    SettledLater,
    admin_completion_of,
)
from domain.credit import payment_meta
from domain.enums import VmHistoryActionType
from tests.contract.storage_backends import Backend
from tests.http.apiapp import ApiClient, api_client, build_api_app
from tests.http.backend_apps import ROOT, admin, backend, database
from tests.http.vm_helpers import order, renew, user_of
from tests.nostr_signing import NostrKey

__all__ = ["admin", "backend", "database"]

ALICE = NostrKey.from_seed(21)
ACCOUNT = {"account_name": "LNVPS Ltd", "iban": "IE29AIBK93115212345678"}
PAID_ENTRIES = {VmHistoryActionType.PAYMENT_RECEIVED, VmHistoryActionType.RENEWED}


@pytest.fixture
async def c(backend: Backend) -> AsyncIterator[ApiClient]:
    api = build_api_app(*USER_API_ROUTES, store=backend.factory, rails=[BankTransferRail(ACCOUNT)])
    async with api_client(api) as client:
        yield client


@pytest.fixture(autouse=True)
def _audit_lost(c: ApiClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The audit row of every admin change fails to be written (logged and swallowed)."""

    async def broken(**kw: Any) -> None:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(c.api.services.admin, "record_admin_change", broken)


async def _done_without_audit(resp: Any) -> None:
    """A completion whose audit record was lost is answered 500 saying it was done and stands
    (it moves money: never a success without its audit record); the booking itself names
    the admin, which the tests then check."""
    body = await resp.text()
    assert resp.status == 500, body
    assert "was done (answered 200) and stands" in body, body


async def _attributed(c: ApiClient, vm_id: int, payment_hex: str) -> dict[str, Any]:
    """The admin's completion as the payment records it, checked to be on both of its VM
    history entries too; nothing was written to the audit trail."""
    async with c.api.store() as uow:
        paid = await uow.payments.get(bytes.fromhex(payment_hex))
        history = (await uow.vm_history.list_by_vm(vm_id, 100)).items
        audit = (await uow.admin_audit.list_page(10, 0)).items
    assert paid is not None and paid.is_paid and audit == []
    recorded: dict[str, Any] = payment_meta(paid)[ADMIN_COMPLETION_KEY]
    entries = [e for e in history if e.action_type in PAID_ENTRIES]
    assert {e.action_type for e in entries} == PAID_ENTRIES and len(entries) == 2
    for entry in entries:
        assert isinstance(entry.metadata, dict)
        assert entry.metadata[ADMIN_COMPLETION_KEY] == recorded
        assert entry.metadata["payment_id"] == payment_hex
    return recorded


async def test_a_vm_payment_completed_by_an_admin_names_the_admin(
    c: ApiClient, admin: ApiClient
) -> None:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"])
    root = (await user_of(c.api, ROOT)).id
    path = f"/api/admin/v1/vms/{vm['id']}/payments/{payment['id']}/complete"
    resp = await admin.call("POST", path, key=ROOT)
    await _done_without_audit(resp)

    recorded = await _attributed(c, vm["id"], payment["id"])
    # the node had not settled its invoice, and when the completion was booked: a settlement
    # stamped surely after that is money not counted here
    booked = c.api.clock.now()
    assert recorded == {
        "admin_id": root,
        "node_settlement": NodeSettlement.NONE.value,
        "booked_at": booked.isoformat(),
    }
    completion = admin_completion_of({ADMIN_COMPLETION_KEY: recorded})
    assert completion is not None and completion.booked_at == booked
    later = booked + RACE_MARGIN + timedelta(seconds=1)
    assert completion.settled_later(later) is SettledLater.NOT_COUNTED
    # its owner's history reads as before (the admin API's history shows no metadata)
    mine = await c.call("GET", f"/api/v1/vm/{vm['id']}/history", key=ALICE)
    texts = [e["metadata"] for e in (await mine.json())["data"] if e["metadata"]]
    assert texts and all(ADMIN_COMPLETION_KEY not in t for t in texts)
    assert any(json.loads(t).get("payment_id") == payment["id"] for t in texts)


async def test_a_subscription_payment_completed_by_an_admin_names_the_admin(
    c: ApiClient, admin: ApiClient
) -> None:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"])
    root = (await user_of(c.api, ROOT)).id
    path = f"/api/admin/v1/subscription_payments/{payment['id']}/complete"
    resp = await admin.call("POST", path, key=ROOT)
    await _done_without_audit(resp)
    assert (await _attributed(c, vm["id"], payment["id"]))["admin_id"] == root


async def test_a_bank_transfer_marked_received_names_the_admin(
    c: ApiClient, admin: ApiClient
) -> None:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=bank_transfer")
    reference = payment["data"]["bank_transfer"]["reference"]
    root = (await user_of(c.api, ROOT)).id
    resp = await admin.call("POST", f"/api/admin/v1/bank_transfers/{reference}/received", key=ROOT)
    await _done_without_audit(resp)
    # not a Lightning payment: no node was asked
    assert await _attributed(c, vm["id"], payment["id"]) == {
        "admin_id": root,
        "booked_at": c.api.clock.now().isoformat(),
    }
