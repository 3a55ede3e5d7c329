"""A renewal paid for a deleted VM whose host is disabled shows up as account credit on
GET /api/v1/account (issue 13); with its host enabled the VM is re-created instead (D24)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest

from domain.exchange import msat_to_fiat
from tests.http.apiapp import ALICE, ApiClient, api_client
from tests.http.vm_helpers import build, paid_vm, renew, settle


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build()) as client:
        yield client


async def _deleted_vm_with_pending_renewal(c: ApiClient, *, host_enabled: bool) -> bytes:
    """A paid VM, a renewal asked for, then the VM deleted (and its host disabled or not)
    before the renewal settles: the slow settlement D24 foresees."""
    vm = await paid_vm(c, ALICE)
    payment = await renew(c, ALICE, vm["id"])
    async with c.api.store() as uow:
        found = await uow.vms.get(vm["id"])
        assert found is not None
        await uow.vms.delete(found.id)
        host = await uow.hosts.get(found.host_id)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, enabled=host_enabled))
        await uow.commit()
    return bytes.fromhex(payment["id"])


async def _credit(c: ApiClient) -> object:
    resp = await c.call("GET", "/api/v1/account")
    assert resp.status == 200
    return (await resp.json())["data"]["credit"]


async def test_the_user_sees_the_payment_as_credit(c: ApiClient) -> None:
    payment_id = await _deleted_vm_with_pending_renewal(c, host_enabled=False)
    report = await settle(c.api, payment_id.hex())
    assert report.completed
    async with c.api.store() as uow:
        paid = await uow.payments.get(payment_id)
    assert paid is not None and paid.is_paid and paid.time_value == 0
    value = msat_to_fiat(paid.amount, paid.rate)
    assert value > 0
    assert await _credit(c) == [{"currency": "EUR", "amount": value, "vat_free": 0}]
    ledger = await (await c.call("GET", "/api/v1/account/credit")).json()
    [entry] = ledger["data"]
    assert entry["reason"] == "overpayment" and entry["reference"] == payment_id.hex()
    assert "is disabled" in entry["note"]


async def test_a_restorable_vm_is_re_created_and_no_credit_is_booked(c: ApiClient) -> None:
    payment_id = await _deleted_vm_with_pending_renewal(c, host_enabled=True)
    report = await settle(c.api, payment_id.hex())
    assert report.completed
    async with c.api.store() as uow:
        paid = await uow.payments.get(payment_id)
        vm = await uow.vms.get_by_subscription(paid.subscription_id) if paid else None
    assert paid is not None and (paid.time_value or 0) > 0
    assert vm is not None and not vm.deleted
    assert await _credit(c) == []
