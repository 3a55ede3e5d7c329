"""Admin account credit: balances and ledger of a user, adjustments with a reason (403 without
the permission), and a VM's unused time refunded to credit once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import attrs

from adapters.memory.billing import MemoryLineItems
from app.billing.credit_balance import book_in
from domain.account_credit import CreditReason, checked_entry
from domain.enums import SubscriptionType
from domain.model import LineItem
from ports.storage import UnitOfWork
from tests.http.admin.adminapp import ROOT, VIEWER, AdminWorld
from tests.http.vm_helpers import order, paid_vm, provision, renew, settle, subscription_of, user_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
#: a balance of EUR 5.00 with no VAT-free part, as the views show it
EUR_500 = {"currency": "EUR", "amount": 500, "vat_free": 0}


async def _status(
    world: AdminWorld, method: str, path: str, key: NostrKey = ROOT, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def test_adjust_with_a_reason_then_view_balance_and_ledger(world: AdminWorld) -> None:
    alice = (await user_of(world.api, ALICE)).id
    root = (await user_of(world.api, ROOT)).id
    body = await world.ok(
        "POST",
        f"/users/{alice}/credit",
        json={"currency": "eur", "amount": 1250, "note": "goodwill"},
    )
    data = body["data"]
    assert data["balance"] == 1250 and data["replayed"] is False
    assert data["entry"]["reason"] == "admin_adjustment" and data["entry"]["amount"] == 1250
    down = {"currency": "EUR", "amount": -250, "note": "typo", "reference": "T-1"}
    assert (await world.ok("POST", f"/users/{alice}/credit", json=down))["data"]["balance"] == 1000
    again = (await world.ok("POST", f"/users/{alice}/credit", json=down))["data"]
    assert again["replayed"] is True and again["balance"] == 1000  # same reference: once
    assert (await world.ok("GET", f"/users/{alice}/credit", VIEWER))["data"] == [
        {"currency": "EUR", "amount": 1000, "vat_free": 0}
    ]
    ledger = await world.ok("GET", f"/users/{alice}/credit/ledger?limit=1", VIEWER)
    assert ledger["total"] == 2 and [e["amount"] for e in ledger["data"]] == [-250]
    async with world.api.store() as uow:
        entries = (await uow.credit_ledger.list_page(alice, 10, 0)).items
    assert {e.admin_id for e in entries} == {root}


async def test_a_users_balances_show_their_vat_free_part(world: AdminWorld) -> None:
    """The admin sees what the user sees: each balance with its VAT-free part (an added
    key): 36.74 of VAT-free credit and a 10.00 goodwill adjustment are 46.74, 36.74 of it
    VAT-free; the ledger's entries say theirs."""
    alice = (await user_of(world.api, ALICE)).id
    entry = checked_entry(
        user_id=alice,
        currency="EUR",
        amount=3674,
        reason=CreditReason.OVERPAYMENT,
        reference="upgrade",
        note="an upgrade not applied",
        created=world.api.clock.now(),
        vat_free=3674,
    )
    async with world.api.store() as uow:
        await book_in(uow, entry)
        await uow.commit()
    goodwill = {"currency": "EUR", "amount": 1000, "note": "goodwill"}
    await world.ok("POST", f"/users/{alice}/credit", json=goodwill)
    assert (await world.ok("GET", f"/users/{alice}/credit", VIEWER))["data"] == [
        {"currency": "EUR", "amount": 4674, "vat_free": 3674}
    ]
    ledger = await world.ok("GET", f"/users/{alice}/credit/ledger", VIEWER)
    assert [(e["amount"], e["vat_free"]) for e in ledger["data"]] == [(1000, 0), (3674, 3674)]


async def _vat_free_credit(world: AdminWorld, user_id: int, amount: int) -> None:
    """`amount` of VAT-free credit booked for the user (an upgrade not applied)."""
    entry = checked_entry(
        user_id=user_id,
        currency="EUR",
        amount=amount,
        reason=CreditReason.OVERPAYMENT,
        reference="upgrade",
        note="an upgrade not applied",
        created=world.api.clock.now(),
        vat_free=amount,
    )
    async with world.api.store() as uow:
        await book_in(uow, entry)
        await uow.commit()


async def test_an_adjustment_and_a_refund_to_credit_answer_the_balances_vat_free_part(
    world: AdminWorld,
) -> None:
    """Review: the answers gave the balance after the booking only, while the balance's GET
    shows its VAT-free part: both answers carry it too (an added key), as the GET shows it
    afterwards. 36.74 VAT-free and a 10.00 goodwill adjustment: 46.74, 36.74 of it VAT-free;
    a refund of 1.80 of unused time (ordinary credit) then: 48.54, still 36.74."""
    vm = await paid_vm(world.user, ALICE)
    alice = (await user_of(world.api, ALICE)).id
    await _vat_free_credit(world, alice, 3674)
    goodwill = {"currency": "EUR", "amount": 1000, "note": "goodwill"}
    adjusted = (await world.ok("POST", f"/users/{alice}/credit", json=goodwill))["data"]
    assert (adjusted["balance"], adjusted["vat_free"]) == (4674, 3674)
    assert (await world.ok("GET", f"/users/{alice}/credit"))["data"] == [
        {"currency": "EUR", "amount": 4674, "vat_free": 3674}
    ]
    world.api.clock.advance(timedelta(days=10))
    await world.api.refresh_rates()
    path = f"/vms/{vm['id']}/refund/credit"
    refunded = (await world.ok("POST", path, json={"reason": "host retired"}))["data"]
    assert refunded["entry"]["amount"] == 180 and refunded["entry"]["vat_free"] == 0
    assert (refunded["balance"], refunded["vat_free"]) == (4854, 3674)
    assert (await world.ok("GET", f"/users/{alice}/credit"))["data"] == [
        {"currency": "EUR", "amount": 4854, "vat_free": 3674}
    ]
    schema = (await world.ok("GET", "/openapi.json", signed=False))["paths"][
        "/api/admin/v1/users/{id}/credit"
    ]["post"]["responses"]["200"]
    assert "vat_free" in str(schema)


async def test_adjust_refusals_change_nothing(world: AdminWorld) -> None:
    alice = (await user_of(world.api, ALICE)).id
    path = f"/users/{alice}/credit"
    good = {"currency": "EUR", "amount": 100, "note": "x"}
    assert await _status(world, "POST", path, VIEWER, json=good) == (
        403,
        {"error": "Insufficient permissions for users::update"},
    )
    for bad in (
        {**good, "note": " "},
        {"currency": "EUR", "amount": 100},
        {**good, "amount": 0},
        {**good, "amount": 1.5},
        {**good, "currency": "XYZ"},
        {**good, "amount": -1},
        {**good, "reference": ""},
        {**good, "note": "x" * 256},
    ):
        status, _ = await _status(world, "POST", path, json=bad)
        assert status in (400, 422), bad
    assert (await _status(world, "POST", path, json={**good, "amount": -1}))[0] == 422
    assert (await _status(world, "POST", "/users/9999/credit", json=good))[0] == 404
    assert (await world.ok("GET", path))["data"] == []
    async with world.api.store() as uow:
        assert (await uow.credit_ledger.list_page(alice, 10, 0)).total == 0


async def test_a_reference_reused_for_another_amount_is_409_and_books_nothing(
    world: AdminWorld,
) -> None:
    """A reference is an idempotency key: reused with another amount or sign it is refused
    (D11's 409), not answered as a replay of the first adjustment."""
    alice = (await user_of(world.api, ALICE)).id
    path = f"/users/{alice}/credit"
    first = {"currency": "EUR", "amount": 500, "note": "ticket 42", "reference": "ticket-42"}
    await world.ok("POST", path, json=first)
    for amount in (-200, 200, -500):
        status, body = await _status(world, "POST", path, json={**first, "amount": amount})
        assert status == 409, (amount, body)
        assert body == {
            "error": "Reference 'ticket-42' was already used for an adjustment of EUR 5.00; "
            "use another reference for another amount"
        }
    again = (await world.ok("POST", path, json=first))["data"]
    assert again["replayed"] is True and again["balance"] == 500
    assert (await world.ok("GET", path))["data"] == [EUR_500]
    async with world.api.store() as uow:
        assert (await uow.credit_ledger.list_page(alice, 10, 0)).total == 1


async def test_a_reference_reused_in_another_currency_is_409_and_books_nothing(
    world: AdminWorld,
) -> None:
    """The reference names one adjustment whatever its currency (the ledger's unique key has
    the currency in it, so the same request in USD booked a second one: review r3)."""
    alice = (await user_of(world.api, ALICE)).id
    path = f"/users/{alice}/credit"
    first = {"currency": "EUR", "amount": 500, "note": "ticket 42", "reference": "ticket-42"}
    await world.ok("POST", path, json=first)
    status, body = await _status(world, "POST", path, json={**first, "currency": "USD"})
    assert (status, body) == (
        409,
        {
            "error": "Reference 'ticket-42' was already used for an adjustment of EUR 5.00; "
            "use another reference for another adjustment"
        },
    )
    assert (await world.ok("GET", path))["data"] == [EUR_500]


async def test_a_reference_reused_with_another_note_is_409_and_books_nothing(
    world: AdminWorld,
) -> None:
    """A replay must repeat the adjustment exactly: the same reference and amount with
    another note is refused too (it was answered as a replay, the ledger keeping the first
    note while the admin was told theirs was booked)."""
    alice = (await user_of(world.api, ALICE)).id
    path = f"/users/{alice}/credit"
    first = {"currency": "EUR", "amount": 500, "note": "ticket 42", "reference": "ticket-42"}
    await world.ok("POST", path, json=first)
    status, body = await _status(world, "POST", path, json={**first, "note": "goodwill"})
    assert (status, body) == (
        409,
        {
            "error": "Reference 'ticket-42' was already used for an adjustment with another "
            "note; use another reference for another adjustment"
        },
    )
    again = (await world.ok("POST", path, json=first))["data"]
    assert again["replayed"] is True and again["balance"] == 500
    ledger = await world.ok("GET", f"{path}/ledger?limit=10")
    assert [(e["amount"], e["note"]) for e in ledger["data"]] == [(500, "ticket 42")]


async def test_refund_to_credit_books_the_unused_value_once_and_ends_the_time(
    world: AdminWorld,
) -> None:
    vm = await paid_vm(world.user, ALICE)
    alice = (await user_of(world.api, ALICE)).id
    world.api.clock.advance(timedelta(days=10))
    await world.api.refresh_rates()
    quote = await world.ok("GET", f"/vms/{vm['id']}/refund?method=revolut")
    path = f"/vms/{vm['id']}/refund/credit"
    assert (await _status(world, "POST", path, VIEWER))[0] == 403
    body = await world.ok("POST", path, json={"reason": "host retired"})
    entry = body["data"]["entry"]
    assert entry["amount"] == quote["data"]["amount"] == 180 and entry["currency"] == "EUR"
    assert entry["reason"] == "refund_to_credit" and entry["note"] == "host retired"
    sub = await subscription_of(world.api, vm["id"])
    assert sub.expires == world.api.clock.now()
    again = await _status(world, "POST", path)
    assert again[0] == 409 and again[1]["error"].startswith("This unused time was already refunded")
    manual = await _status(
        world, "POST", f"/vms/{vm['id']}/refund", json={"payment_method": "paypal"}
    )
    assert manual[0] == 409, manual
    assert (await world.ok("GET", f"/users/{alice}/credit"))["data"] == [
        {"currency": "EUR", "amount": 180, "vat_free": 0}
    ]


async def _role_for(world: AdminWorld, key: NostrKey, name: str, *permissions: str) -> None:
    """Give `key` a new role of exactly `permissions`."""
    user_id = (await user_of(world.api, key)).id
    role = await world.ok("POST", "/roles", json={"name": name, "permissions": list(permissions)})
    await world.ok("POST", f"/users/{user_id}/roles", json={"role_id": role["data"]["id"]})


async def test_refund_to_credit_needs_the_money_permission(world: AdminWorld) -> None:
    """`virtual_machines::update` may extend a VM's time for free: refunding that time to
    credit mints money, so it needs `payments::update` (users' rights do not grant it)."""
    vm = await paid_vm(world.user, ALICE)
    alice = (await user_of(world.api, ALICE)).id
    ops = NostrKey.from_seed(22)
    await _role_for(world, ops, "vm-ops", "virtual_machines::update", "users::update")
    await world.ok("PUT", f"/vms/{vm['id']}/extend", ops, json={"days": 365})
    expires = (await subscription_of(world.api, vm["id"])).expires
    refused = await _status(world, "POST", f"/vms/{vm['id']}/refund/credit", ops, json={})
    assert refused == (403, {"error": "Insufficient permissions for payments::update"})
    assert (await world.ok("GET", f"/users/{alice}/credit"))["data"] == []
    assert (await subscription_of(world.api, vm["id"])).expires == expires
    summary = (await world.ok("GET", "/openapi.json", signed=False))["paths"][
        "/api/admin/v1/vms/{id}/refund/credit"
    ]["post"]["summary"]
    assert summary.endswith("(needs `virtual_machines::update` and `payments::update`)")
    await _role_for(world, ops, "money", "payments::update")
    booked = (await world.ok("POST", f"/vms/{vm['id']}/refund/credit", ops, json={}))["data"]
    assert booked["entry"]["reason"] == "refund_to_credit" and booked["balance"] > 0


async def test_adjusting_credit_needs_the_money_permission(world: AdminWorld) -> None:
    """A user manager (`users::update`) may edit accounts but not mint credit: an adjustment
    is money and needs `payments::update` too; refused, nothing is booked."""
    alice = (await user_of(world.api, ALICE)).id
    path = f"/users/{alice}/credit"
    manager = NostrKey.from_seed(23)
    await _role_for(world, manager, "user-manager", "users::view", "users::update")
    body = {"currency": "EUR", "amount": 5000, "note": "goodwill"}
    refused = await _status(world, "POST", path, manager, json=body)
    assert refused == (403, {"error": "Insufficient permissions for payments::update"})
    async with world.api.store() as uow:
        assert (await uow.credit_ledger.list_page(alice, 10, 0)).total == 0
    await _role_for(world, manager, "money", "payments::update")
    assert (await world.ok("POST", path, manager, json=body))["data"]["balance"] == 5000


async def _bill_an_ip_range_with(uow: UnitOfWork, subscription_id: int) -> None:
    """An IP range of EUR 10 a month on the subscription (the API cannot add one yet)."""
    ip_range = LineItem(
        id=0,
        subscription_id=subscription_id,
        subscription_type=SubscriptionType.IP_RANGE,
        name="203.0.113.8/29",
        amount=1000,
    )
    await cast(MemoryLineItems, uow.line_items).add(ip_range)


async def _paid_vm_with_an_ip_range(world: AdminWorld) -> dict[str, Any]:
    """ALICE's VM with an IP range billed on its subscription, the month paid for both
    (EUR 2.70 + EUR 10.00): a refund pays back no more than was paid."""
    vm = await order(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    async with world.api.store() as uow:
        await _bill_an_ip_range_with(uow, sub.id)
        await uow.commit()
    await settle(world.api, (await renew(world.user, ALICE, vm["id"]))["id"])
    await provision(world.api, vm["id"])
    return vm


async def test_refund_to_credit_values_every_item_the_cut_expiry_ends(world: AdminWorld) -> None:
    """An IP range billed on the VM's subscription loses its time with the VM's: its unused
    value is refunded too: EUR 10 a month beside the VM's EUR 2.70, 20 of 30 days left, the
    sum prorated and floored once: (270 + 1000) × 20 / 30 = 846.67 → 846 cents."""
    vm = await _paid_vm_with_an_ip_range(world)
    world.api.clock.advance(timedelta(days=10))
    await world.api.refresh_rates()

    preview = await world.ok("GET", f"/vms/{vm['id']}/refund?method=revolut")
    body = await world.ok("POST", f"/vms/{vm['id']}/refund/credit", json={})

    # the figure counts the IP range too (the reference's counted the VM's price only: 180)
    assert preview["data"]["amount"] == 846
    assert body["data"]["entry"]["amount"] == 846
    assert (await subscription_of(world.api, vm["id"])).expires == world.api.clock.now()


async def test_refund_to_credit_pays_back_no_more_than_was_paid(world: AdminWorld) -> None:
    """An IP range billed on the subscription after its month was paid: the price in force
    values the 20 days left at (270 + 1000) × 20 / 30 = 846 cents, but only the VM's
    EUR 2.70 was paid for them: 180 cents, and the entry's note says why."""
    vm = await paid_vm(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    async with world.api.store() as uow:
        await _bill_an_ip_range_with(uow, sub.id)
        await uow.commit()
    world.api.clock.advance(timedelta(days=10))

    preview = (await world.ok("GET", f"/vms/{vm['id']}/refund?method=revolut"))["data"]
    entry = (await world.ok("POST", f"/vms/{vm['id']}/refund/credit", json={}))["data"]["entry"]

    assert preview["amount"] == entry["amount"] == 180
    assert entry["note"] == (
        f"unused time of VM {vm['id']}; worth EUR 8.46 at the price in force; "
        "limited to EUR 1.80, what was paid for it"
    )


async def test_days_extended_free_are_not_refunded_to_credit(world: AdminWorld) -> None:
    """One month paid (EUR 2.70), then 365 days added as goodwill (found by r1: the refund
    to credit booked the free year at today's price, 3510 cents of spendable credit). The
    figure and the credit are the month alone, 10 of its 30 days used: 180 cents."""
    vm = await paid_vm(world.user, ALICE)
    alice = (await user_of(world.api, ALICE)).id
    await world.ok("PUT", f"/vms/{vm['id']}/extend", json={"days": 365, "reason": "goodwill"})
    world.api.clock.advance(timedelta(days=10))
    await world.api.refresh_rates()

    quote = (await world.ok("GET", f"/vms/{vm['id']}/refund?method=revolut"))["data"]
    booked = (await world.ok("POST", f"/vms/{vm['id']}/refund/credit", json={}))["data"]

    assert quote["amount"] == booked["entry"]["amount"] == 180
    assert (await world.ok("GET", f"/users/{alice}/credit"))["data"] == [
        {"currency": "EUR", "amount": 180, "vat_free": 0}
    ]


async def _reprice_the_vms_plan(world: AdminWorld, vm_id: int, currency: str) -> None:
    """The operator moves the VM's plan (EUR 2.70 a month) to `currency`, same figure; the
    subscription stays in EUR."""
    async with world.api.store() as uow:
        found = await uow.vms.get(vm_id)
        assert found is not None and found.template_id is not None
        template = await uow.templates.get(found.template_id)
        assert template is not None
        plan = await uow.cost_plans.get(template.cost_plan_id)
        assert plan is not None and plan.currency == "EUR"
        await uow.cost_plans.update(attrs.evolve(plan, currency=currency))
        await uow.commit()


async def test_refund_to_credit_of_items_priced_in_two_currencies_is_booked_in_the_subs(
    world: AdminWorld,
) -> None:
    """A VM re-priced in USD beside an EUR IP range on an EUR subscription: one EUR entry,
    the USD part converted at today's rates, the sum floored once. 20 of 30 days left: EUR
    1000 × 20/30 = 666 cents and USD 270 × 20/30 = 180 cents, worth 180 × 100 000 / 110 000
    = 163.64 EUR cents: 829.64 → 829, the preview's card figure too (less than the 846.67
    paid for those 20 days: the USD price is worth less)."""
    vm = await _paid_vm_with_an_ip_range(world)
    alice = (await user_of(world.api, ALICE)).id
    await _reprice_the_vms_plan(world, vm["id"], "USD")
    world.api.clock.advance(timedelta(days=10))
    await world.api.refresh_rates()

    preview = (await world.ok("GET", f"/vms/{vm['id']}/refund?method=revolut"))["data"]
    body = await world.ok("POST", f"/vms/{vm['id']}/refund/credit", json={})

    assert (preview["amount"], preview["currency"]) == (829, "EUR")
    entry = body["data"]["entry"]
    assert (entry["currency"], entry["amount"]) == ("EUR", 829)
    assert entry["note"] == (
        f"unused time of VM {vm['id']}; EUR 6.66 + USD 1.80 as EUR 8.29 at BTC/EUR 100000, "
        "BTC/USD 110000 (exact, rounded down)"
    )
    assert (await world.ok("GET", f"/users/{alice}/credit"))["data"] == [
        {"currency": "EUR", "amount": 829, "vat_free": 0}
    ]


async def test_refund_to_credit_without_a_rate_is_503_and_changes_nothing(
    world: AdminWorld,
) -> None:
    """The plan re-priced in JPY, which has no rate: its EUR value cannot be known."""
    vm = await paid_vm(world.user, ALICE)
    alice = (await user_of(world.api, ALICE)).id
    await _reprice_the_vms_plan(world, vm["id"], "JPY")
    sub = await subscription_of(world.api, vm["id"])

    status, body = await _status(world, "POST", f"/vms/{vm['id']}/refund/credit", json={})

    assert (status, body) == (503, {"error": "No exchange rate found for BTC/JPY"})
    assert await subscription_of(world.api, vm["id"]) == sub
    assert (await world.ok("GET", f"/users/{alice}/credit"))["data"] == []
