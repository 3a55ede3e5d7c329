"""No admin moves money or paid time to their own account: completing their own payment, credit
adjustments, refunds (to credit or by hand), extends and credit notes on their own account are
403, nothing changed; another admin may do each of them."""

from __future__ import annotations

from typing import Any

from adapters.fiat.bank_transfer import BankTransferRail
from tests.http.admin.adminapp import ROOT, AdminWorld, admin_world
from tests.http.vm_helpers import order, paid_vm, renew, subscription_of, user_of
from tests.nostr_signing import NostrKey

DESK = NostrKey.from_seed(51)
DEPUTY = NostrKey.from_seed(52)
EUR_500 = {"currency": "EUR", "amount": 500}


def refused(what: str) -> tuple[int, dict[str, str]]:
    return 403, {"error": f"Admins cannot {what} for their own account: another admin must do it"}


async def _answer(
    world: AdminWorld, method: str, path: str, key: NostrKey, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def _is_paid(world: AdminWorld, payment_hex: str) -> bool:
    async with world.api.store() as uow:
        payment = await uow.payments.get(bytes.fromhex(payment_hex))
    assert payment is not None
    return payment.is_paid


async def test_a_billing_desk_cannot_complete_its_own_invoice(world: AdminWorld) -> None:
    """Review r1: a role holding only `subscription_payments::view/update` completed its
    holder's own unpaid invoice: a month free."""
    role = await world.ok(
        "POST",
        "/roles",
        json={
            "name": "billing-desk",
            "permissions": ["subscription_payments::view", "subscription_payments::update"],
        },
    )
    desk = (await user_of(world.api, DESK)).id
    await world.ok("POST", f"/users/{desk}/roles", json={"role_id": role["data"]["id"]})
    vm = await order(world.user, DESK)
    invoice = await renew(world.user, DESK, vm["id"])
    before = await subscription_of(world.api, vm["id"])
    path = f"/subscription_payments/{invoice['id']}/complete"
    assert await _answer(world, "POST", path, DESK) == refused("complete a payment")
    assert await subscription_of(world.api, vm["id"]) == before
    assert not await _is_paid(world, invoice["id"])
    await world.ok("POST", path, ROOT)  # another admin may
    assert await _is_paid(world, invoice["id"])


async def test_no_money_action_on_ones_own_account(world: AdminWorld) -> None:
    root = (await user_of(world.api, ROOT)).id
    vm = await paid_vm(world.user, ROOT)
    vm_id = vm["id"]
    pending = (await renew(world.user, ROOT, vm_id))["id"]
    before = await subscription_of(world.api, vm_id)
    async with world.api.store() as uow:
        history = (await uow.vm_history.list_by_vm(vm_id, 100)).total
        invoices = await uow.invoices.of_subscription(before.id)
    assert len(invoices) == 1
    invoice = invoices[0].id
    tries: list[tuple[str, str, dict[str, Any] | None, str]] = [
        ("POST", f"/vms/{vm_id}/payments/{pending}/complete", None, "complete a payment"),
        ("POST", f"/subscription_payments/{pending}/complete", None, "complete a payment"),
        (
            "POST",
            f"/users/{root}/credit",
            {"currency": "EUR", "amount": 500, "note": "bonus"},
            "adjust credit",
        ),
        ("POST", f"/vms/{vm_id}/refund/credit", {}, "refund a VM"),
        ("POST", f"/vms/{vm_id}/refund", {"payment_method": "revolut"}, "refund a VM"),
        ("PUT", f"/vms/{vm_id}/extend", {"days": 30}, "extend a VM"),
        (
            "POST",
            f"/invoices/{invoice}/credit_notes",
            {"amount": 100, "reason": "goodwill"},
            "issue a credit note",
        ),
    ]
    for method, path, body, what in tries:
        assert await _answer(world, method, path, ROOT, json=body) == refused(what), path
    assert await subscription_of(world.api, vm_id) == before
    assert not await _is_paid(world, pending)
    assert (await world.ok("GET", f"/users/{root}/credit"))["data"] == []
    assert (await world.ok("GET", f"/invoices/{invoice}"))["data"]["credit_notes"] == []
    async with world.api.store() as uow:
        assert (await uow.vm_history.list_by_vm(vm_id, 100)).total == history

    # another admin may do them: a second super admin extends and credits ROOT
    deputy = (await user_of(world.api, DEPUTY)).id
    await world.ok(
        "POST", f"/users/{deputy}/roles", json={"role_id": world.role_ids["super_admin"]}
    )
    await world.ok("PUT", f"/vms/{vm_id}/extend", DEPUTY, json={"days": 30})
    body = {"currency": "EUR", "amount": 500, "note": "outage"}
    await world.ok("POST", f"/users/{root}/credit", DEPUTY, json=body)
    assert (await world.ok("GET", f"/users/{root}/credit"))["data"] == [EUR_500]
    # and ROOT still may on anyone else's account
    await world.ok("POST", f"/users/{deputy}/credit", json=body)


async def test_nor_mark_their_own_bank_transfer_received() -> None:
    account = {"account_name": "LNVPS Ltd", "iban": "IE29AIBK93115212345678"}
    async with admin_world(rails=[BankTransferRail(account)]) as world:
        vm = await order(world.user, ROOT)
        payment = await renew(world.user, ROOT, vm["id"], "?method=bank_transfer")
        path = f"/bank_transfers/{payment['data']['bank_transfer']['reference']}/received"
        assert await _answer(world, "POST", path, ROOT) == refused("complete a payment")
        assert not await _is_paid(world, payment["id"])
        deputy = (await user_of(world.api, DEPUTY)).id
        role = {"role_id": world.role_ids["super_admin"]}
        await world.ok("POST", f"/users/{deputy}/roles", json=role)
        await world.ok("POST", path, DEPUTY)
        assert await _is_paid(world, payment["id"])
