"""The manual bank transfer rail: details and a reference to pay; an admin completes it once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest

from adapters.fiat.bank_transfer import BankTransferRail
from domain.enums import VmHistoryActionType
from tests.http.admin.adminapp import NOBODY, VIEWER, AdminWorld, admin_world
from tests.http.vm_helpers import order, renew, subscription_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
ACCOUNT = {"account_name": "LNVPS Ltd", "iban": "IE29AIBK93115212345678", "bic": "AIBKIE2D"}


@pytest.fixture
async def world() -> AsyncIterator[AdminWorld]:
    async with admin_world(rails=[BankTransferRail(ACCOUNT, days_to_pay=5)]) as w:
        yield w


async def renewals(world: AdminWorld, vm_id: int) -> int:
    async with world.api.store() as uow:
        entries = (await uow.vm_history.list_by_vm(vm_id, 100)).items
    return sum(e.action_type is VmHistoryActionType.RENEWED for e in entries)


async def is_paid(world: AdminWorld, payment_id: str) -> bool:
    async with world.api.store() as uow:
        payment = await uow.payments.get(bytes.fromhex(payment_id))
    assert payment is not None
    return payment.is_paid


async def test_the_payer_gets_the_account_the_amount_and_a_reference(world: AdminWorld) -> None:
    vm = await order(world.user, ALICE)
    payment = await renew(world.user, ALICE, vm["id"], "?method=bank_transfer")
    details = payment["data"]["bank_transfer"]
    assert {k: details[k] for k in ACCOUNT} == ACCOUNT
    assert details["reference"].startswith("LNVPS-") and len(details["reference"]) == 16
    assert details["amount"] == payment["amount"] + payment["tax"] + payment["processing_fee"]
    assert details["currency"] == payment["currency"] == "EUR"
    created = datetime.fromisoformat(payment["created"])
    assert datetime.fromisoformat(payment["expires"]) - created == timedelta(days=5)
    again = await renew(world.user, ALICE, vm["id"], "?method=bank_transfer")
    assert again["id"] == payment["id"]  # the pending payment is offered again, same reference
    assert again["data"]["bank_transfer"]["reference"] == details["reference"]


async def test_an_admin_marks_it_received_once(world: AdminWorld) -> None:
    vm = await order(world.user, ALICE)
    payment = await renew(world.user, ALICE, vm["id"], "?method=bank_transfer")
    reference = payment["data"]["bank_transfer"]["reference"]
    path = f"/bank_transfers/{reference}/received"
    for key in (VIEWER, NOBODY):  # without subscription_payments:update
        assert (await world.call("POST", path, key)).status == 403
    assert await is_paid(world, payment["id"]) is False

    # the reference as a bank statement may show it (lower case) works too
    answers = await asyncio.gather(
        world.call("POST", path), world.call("POST", path.replace(reference, reference.lower()))
    )
    assert sorted(r.status for r in answers) == [200, 409]
    assert await is_paid(world, payment["id"]) is True
    assert await renewals(world, vm["id"]) == 1
    sub = await subscription_of(world.api, vm["id"])
    assert sub.is_setup and sub.expires is not None
    again = await world.call("POST", path)
    assert again.status == 409
    assert (await subscription_of(world.api, vm["id"])).expires == sub.expires


async def test_unknown_or_other_rails_references_are_404(world: AdminWorld) -> None:
    vm = await order(world.user, ALICE)
    lightning = await renew(world.user, ALICE, vm["id"])
    assert (await world.call("POST", "/bank_transfers/LNVPS-NOSUCHREF/received")).status == 404
    async with world.api.store() as uow:
        stored = await uow.payments.get(bytes.fromhex(lightning["id"]))
    assert stored is not None
    if stored.external_id:  # a Lightning invoice's id is no transfer reference
        resp = await world.call("POST", f"/bank_transfers/{stored.external_id}/received")
        assert resp.status == 404
    assert await is_paid(world, lightning["id"]) is False


async def test_without_the_rail_configured_it_is_422(world: AdminWorld) -> None:
    async with admin_world() as plain:
        vm = await order(plain.user, ALICE)
        resp = await plain.user.call(
            "GET", f"/api/v1/vm/{vm['id']}/renew?method=bank_transfer", key=ALICE
        )
        assert resp.status == 422
