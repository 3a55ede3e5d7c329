"""No admin moves money or paid time to their own account: completing their own payment, credit
adjustments, refunds (to credit or by hand), extends, credit notes, and moving their own
subscription's expiry or changing its price (PATCH of the subscription's setup fee or
currency, or of a line item's price, or deleting a line item) on their own account are 403,
nothing changed; another admin may do each of them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.fiat.bank_transfer import BankTransferRail
from adapters.http.envelope import format_time
from domain.expiry_edit import EXPIRY_EDIT_KEY
from domain.price_edit import PRICE_EDIT_KEY
from tests.http.admin.adminapp import ROOT, AdminWorld, admin_world
from tests.http.vm_helpers import dns_item, order, paid_vm, renew, subscription_of, user_of
from tests.nostr_signing import NostrKey

DESK = NostrKey.from_seed(51)
DEPUTY = NostrKey.from_seed(52)
EUR_500 = {"currency": "EUR", "amount": 500, "vat_free": 0}


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


async def _expiry_edits(world: AdminWorld, vm_id: int) -> int:
    async with world.api.store() as uow:
        entries = await uow.vm_history.list_all_by_vm(vm_id)
    return sum(EXPIRY_EDIT_KEY in (e.metadata or {}) for e in entries)


async def test_nor_move_their_own_expiry_or_change_their_own_price(world: AdminWorld) -> None:
    """Review: PATCH /subscriptions/{id} `expires` gave an admin a free year of their own VM,
    and a line item's `amount` lowered their own price. Both 403, nothing changed; the same
    PATCH with those fields as they are (the admin UI sends every field) is a plain edit;
    another admin may."""
    vm = await paid_vm(world.user, ROOT)
    sub = await subscription_of(world.api, vm["id"])
    assert sub.expires is not None
    [item] = (await world.ok("GET", f"/subscriptions/{sub.id}/line_items"))["data"]
    sub_path, item_path = f"/subscriptions/{sub.id}", f"/subscription_line_items/{item['id']}"
    year = format_time(sub.expires + timedelta(days=365))
    what = "move a subscription's expiry or change its price"
    tries: list[tuple[str, dict[str, Any], str]] = [
        (sub_path, {"expires": year}, what),
        (sub_path, {"expires": year, "name": "mine"}, what),
        (sub_path, {"setup_fee": sub.setup_fee + 1}, what),
        (item_path, {"amount": 1}, "change a subscription's price"),
        (item_path, {"setup_amount": item["setup_amount"] + 1}, "change a subscription's price"),
        (item_path, {"amount": 1, "name": "cheap"}, "change a subscription's price"),
    ]
    for path, body, refusal in tries:
        assert await _answer(world, "PATCH", path, ROOT, json=body) == refused(refusal), body
    assert await subscription_of(world.api, vm["id"]) == sub
    assert (await world.ok("GET", item_path))["data"] == item
    assert await _expiry_edits(world, vm["id"]) == 0

    # every field sent back as it is: a plain edit of the name
    same = {"expires": format_time(sub.expires), "setup_fee": sub.setup_fee, "name": "mine"}
    await world.ok("PATCH", sub_path, json=same)
    await world.ok("PATCH", item_path, json={**item, "name": "my item"})
    after = await subscription_of(world.api, vm["id"])
    assert (after.name, after.expires, after.setup_fee) == ("mine", sub.expires, sub.setup_fee)
    assert (await world.ok("GET", item_path))["data"]["amount"] == item["amount"]

    # another admin may
    deputy = (await user_of(world.api, DEPUTY)).id
    role = {"role_id": world.role_ids["super_admin"]}
    await world.ok("POST", f"/users/{deputy}/roles", json=role)
    await world.ok("PATCH", sub_path, DEPUTY, json={"expires": year})
    await world.ok("PATCH", item_path, DEPUTY, json={"amount": 1})
    moved = sub.expires + timedelta(days=365)
    assert (await subscription_of(world.api, vm["id"])).expires == moved
    assert (await world.ok("GET", item_path))["data"]["amount"] == 1
    assert await _expiry_edits(world, vm["id"]) == 1


async def test_nor_change_their_own_currency_or_delete_their_own_line_item(
    world: AdminWorld,
) -> None:
    """Review: a new currency re-reads the items' prices unconverted (EUR 5.00 becomes
    JPY 5.00), and deleting an item (DNS hosting, provided by hand) makes the renewal
    cheaper while the service goes on. Both 403 on one's own subscription, nothing changed;
    the currency sent back as it is, `is_active` and `auto_renewal_enabled` stay free;
    another admin may do both."""
    vm = await paid_vm(world.user, ROOT)
    sub = await subscription_of(world.api, vm["id"])
    dns = (await dns_item(world.api, sub.id)).id
    sub_path, items_path = f"/subscriptions/{sub.id}", f"/subscriptions/{sub.id}/line_items"
    items = (await world.ok("GET", items_path))["data"]
    price = "move a subscription's expiry or change its price"
    for body in ({"currency": "JPY"}, {"currency": "jpy", "name": "mine"}):
        assert await _answer(world, "PATCH", sub_path, ROOT, json=body) == refused(price), body
    delete = "delete a subscription's line item"
    for item in items:  # the VM's item would be 422 (it bills the VM); the DNS one would go
        path = f"/subscription_line_items/{item['id']}"
        assert await _answer(world, "DELETE", path, ROOT) == refused(delete), path
    assert await subscription_of(world.api, vm["id"]) == sub
    assert (await world.ok("GET", items_path))["data"] == items

    # what moves no money stays free: the currency as it is, a switch off and on again
    free = {"currency": sub.currency.lower(), "auto_renewal_enabled": True, "name": "mine"}
    await world.ok("PATCH", sub_path, json=free)
    await world.ok("PATCH", sub_path, json={"is_active": False, "auto_renewal_enabled": False})
    await world.ok("PATCH", sub_path, json={"is_active": True})
    after = await subscription_of(world.api, vm["id"])
    assert (after.currency, after.expires, after.is_active) == (sub.currency, sub.expires, True)

    # another admin may
    deputy = (await user_of(world.api, DEPUTY)).id
    role = {"role_id": world.role_ids["super_admin"]}
    await world.ok("POST", f"/users/{deputy}/roles", json=role)
    await world.ok("DELETE", f"/subscription_line_items/{dns}", DEPUTY)
    await world.ok("PATCH", sub_path, DEPUTY, json={"currency": "USD"})
    assert (await subscription_of(world.api, vm["id"])).currency == "USD"
    assert [i["id"] for i in (await world.ok("GET", items_path))["data"]] == [
        i["id"] for i in items if i["id"] != dns
    ]


async def _subscriptions_of(world: AdminWorld, user_id: int) -> list[dict[str, Any]]:
    return list((await world.ok("GET", f"/subscriptions?user_id={user_id}"))["data"])


async def test_nor_create_a_subscription_for_themselves(world: AdminWorld) -> None:
    """Review: POST /subscriptions had no own-account check, so an admin created their own
    subscription with a year of paid time (`expires`), the setup fee and the currency they
    chose. Every creation sets those (currency and setup fee are required): 403 for one's
    own user, nothing created; another admin may, and the admin may for anyone else."""
    root = (await user_of(world.api, ROOT)).id
    company = (await world.ok("GET", "/companies"))["data"][0]["id"]
    year = format_time(world.api.clock.now() + timedelta(days=365))
    body: dict[str, Any] = {
        "company_id": company,
        "name": "mine",
        "is_active": True,
        "currency": "EUR",
        "setup_fee": 0,
        "auto_renewal_enabled": False,
    }
    refusal = refused("create a subscription")
    for extra in ({"expires": year}, {"setup_fee": 0}, {"is_active": False, "currency": "JPY"}):
        mine = {**body, **extra, "user_id": root}
        assert await _answer(world, "POST", "/subscriptions", ROOT, json=mine) == refusal, extra
    assert await _subscriptions_of(world, root) == []

    # another admin may, and the admin may for anyone else
    deputy = (await user_of(world.api, DEPUTY)).id
    role = {"role_id": world.role_ids["super_admin"]}
    await world.ok("POST", f"/users/{deputy}/roles", json=role)
    given = {**body, "user_id": root, "expires": year}
    made = (await world.ok("POST", "/subscriptions", DEPUTY, json=given))["data"]
    assert (made["user_id"], made["expires"]) == (root, year)
    await world.ok("POST", "/subscriptions", ROOT, json={**body, "user_id": deputy})
    assert [s["id"] for s in await _subscriptions_of(world, root)] == [made["id"]]
    assert len(await _subscriptions_of(world, deputy)) == 1


async def test_every_subscription_and_line_item_patch_names_the_acting_admin(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The own-account check of a PATCH is judged against the `admin_id` the route passes
    (a caller that left it out skipped the check; it is required now): every PATCH of a
    subscription or a line item, money or not, passes the admin who signed the request,
    and the history of a moved expiry or a changed price names that admin."""
    vm = await paid_vm(world.user, ROOT)
    sub = await subscription_of(world.api, vm["id"])
    assert sub.expires is not None
    [item] = (await world.ok("GET", f"/subscriptions/{sub.id}/line_items"))["data"]
    root = (await user_of(world.api, ROOT)).id
    deputy = (await user_of(world.api, DEPUTY)).id
    role = {"role_id": world.role_ids["super_admin"]}
    await world.ok("POST", f"/users/{deputy}/roles", json=role)
    admin = world.api.services.admin
    seen: list[tuple[str, object]] = []

    def spy(name: str) -> None:
        use_case = getattr(admin, name)

        async def call(**kwargs: Any) -> Any:
            seen.append((name, kwargs.get("admin_id")))
            return await use_case(**kwargs)

        monkeypatch.setattr(admin, name, call)

    spy("update_subscription")
    spy("update_line_item")
    sub_path, item_path = f"/subscriptions/{sub.id}", f"/subscription_line_items/{item['id']}"
    year = format_time(sub.expires + timedelta(days=365))
    await world.ok("PATCH", sub_path, ROOT, json={"name": "mine"})
    await world.ok("PATCH", item_path, ROOT, json={"name": "my item"})
    await world.ok("PATCH", sub_path, DEPUTY, json={"expires": year})
    await world.ok("PATCH", item_path, DEPUTY, json={"amount": 1})
    assert seen == [
        ("update_subscription", root),
        ("update_line_item", root),
        ("update_subscription", deputy),
        ("update_line_item", deputy),
    ]
    async with world.api.store() as uow:
        entries = await uow.vm_history.list_all_by_vm(vm["id"])
    edits = [e for e in entries if {EXPIRY_EDIT_KEY, PRICE_EDIT_KEY} & set(e.metadata or {})]
    assert [e.initiated_by_user for e in edits] == [deputy, deputy]
