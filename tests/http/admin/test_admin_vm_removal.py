"""DELETE /vms/{id} and GET/POST /vms/{id}/refund (api.md §9.3) over the admin API."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

from ports.jobs import DeleteVm, SendAdminNotification
from tests.http.admin.adminapp import ROOT, VIEWER, AdminWorld
from tests.http.admin.test_admin_schemas import problems
from tests.http.admin.test_admin_vms import jobs
from tests.http.vm_helpers import order, paid_vm, renew, settle, subscription_of, user_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)
INVOICE = "lnbc16u1p3xyzpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypq"


async def _status(
    world: AdminWorld, method: str, path: str, key: NostrKey = ROOT, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def test_delete_queues_the_workers_delete_with_the_admin(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    await jobs(world)
    body = await world.ok("DELETE", f"/vms/{vm['id']}", json={"reason": "abuse"})
    root = await user_of(world.api, ROOT)
    [job] = await jobs(world)
    assert body == {"data": {"job_id": body["data"]["job_id"]}} and body["data"]["job_id"]
    assert isinstance(job, DeleteVm) and job.request  # the request's id, against redelivery
    asked = int(world.api.clock.now().timestamp())  # when, against payments racing it
    assert job == DeleteVm(
        vm_id=vm["id"], admin_user_id=root.id, reason="abuse", request=job.request, requested=asked
    )
    await world.ok("DELETE", f"/vms/{vm['id']}")  # no body at all, as the admin UI sends it
    [again] = await jobs(world)
    assert isinstance(again, DeleteVm) and again.request not in (None, job.request)
    assert again == DeleteVm(
        vm_id=vm["id"], admin_user_id=root.id, request=again.request, requested=asked
    )


async def test_delete_refusals(world: AdminWorld) -> None:
    vm = await order(world.user, ALICE)
    assert await _status(world, "DELETE", f"/vms/{vm['id']}", VIEWER) == (
        403,
        {"error": "Insufficient permissions for virtual_machines::delete"},
    )
    assert await _status(world, "DELETE", "/vms/999") == (404, {"error": "VM not found"})
    assert (await _status(world, "DELETE", "/vms/abc"))[0] == 400
    assert (await _status(world, "DELETE", f"/vms/{vm['id']}", data="[1]"))[0] in (400, 415)
    async with world.api.store() as uow:
        await uow.vms.delete(vm["id"])
        await uow.commit()
    assert await _status(world, "DELETE", f"/vms/{vm['id']}") == (
        422,
        {"error": "VM is already deleted"},
    )
    assert await jobs(world) == []


async def test_refund_figure_is_the_exact_unused_value(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    assert sub.expires == datetime(2026, 7, 17, 10, tzinfo=UTC)  # 30-day month from 17 June
    world.api.clock.advance(timedelta(days=10))
    await world.api.refresh_rates()
    eur = await world.ok("GET", f"/vms/{vm['id']}/refund?method=revolut")
    # Tiny: 270 cents a month; 20 of its 30 days are left: 180
    assert eur["data"] == {
        "amount": 180,
        "currency": "EUR",
        "rate": 1.0,
        "rate_exact": "1",
        "expires": "2026-07-17T10:00:00Z",
        "seconds_remaining": 20 * 86400,
    }
    ln = (await world.ok("GET", f"/vms/{vm['id']}/refund"))["data"]
    # 180 cents at 100 000 EUR/BTC = 1 800 sat
    assert (ln["amount"], ln["currency"], ln["rate_exact"]) == (1_800_000, "BTC", "100000")
    later = int(datetime(2026, 7, 16, 9, tzinfo=UTC).timestamp())
    for method, amount in (("revolut", 9), ("lightning", 90_000)):
        # 25 hours left: 270 × 90 000 / 2 592 000 = 9.375 → 9 cents (floored) → 90 sat
        got = await world.ok("GET", f"/vms/{vm['id']}/refund?method={method}&from_date={later}")
        assert (got["data"]["amount"], got["data"]["seconds_remaining"]) == (amount, 90_000)
    doc = await world.ok("GET", "/openapi.json", signed=False)
    schema = doc["paths"]["/api/admin/v1/vms/{id}/refund"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert problems(eur, schema) == []


async def test_refund_figure_of_a_multi_month_renewal_is_at_most_what_was_paid(
    world: AdminWorld,
) -> None:
    """13 months bought (1 with the order, 12 renewed), ending after a 28-day month: one
    second later the figure is all but a second of 13 × 2.70 EUR. A rate per second over the
    month ending at the expiry alone valued 394 days at 270/29 a day: 36.68 EUR."""
    world.api.clock.advance(datetime(2027, 2, 17, 10, tzinfo=UTC) - world.api.clock.now())
    await world.api.refresh_rates()
    vm = await paid_vm(world.user, ALICE)
    await settle(world.api, (await renew(world.user, ALICE, vm["id"], "?intervals=12"))["id"])
    sub = await subscription_of(world.api, vm["id"])
    assert sub.expires == datetime(2028, 3, 17, 10, tzinfo=UTC)  # 17 Feb → 17 Mar: 29 days
    world.api.clock.advance(timedelta(seconds=1))
    eur = (await world.ok("GET", f"/vms/{vm['id']}/refund?method=revolut"))["data"]
    assert (eur["amount"], eur["currency"]) == (13 * 270 - 1, "EUR")
    assert eur["seconds_remaining"] == 394 * 86_400 - 1


async def test_refund_quote_refusals(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    unpaid = await order(world.user, NostrKey.from_seed(22))
    path = f"/vms/{vm['id']}/refund"
    assert await _status(world, "GET", path + "?method=cash") == (
        400,
        {"error": "Invalid payment method"},
    )
    assert await _status(world, "GET", path + "?from_date=soon") == (
        400,
        {"error": "Invalid from_date timestamp"},
    )
    assert (await _status(world, "GET", path + "?from_date=" + "9" * 30))[0] == 400
    assert await _status(world, "GET", path, VIEWER) == (
        403,
        {"error": "Insufficient permissions for virtual_machines::update"},
    )
    assert await _status(world, "GET", "/vms/999/refund") == (404, {"error": "VM not found"})
    assert await _status(world, "GET", f"/vms/{unpaid['id']}/refund?method=revolut") == (
        422,
        {"error": "VM subscription has no expiry date"},
    )
    past = int(datetime(2026, 8, 1, tzinfo=UTC).timestamp())
    status, _ = await _status(world, "GET", path + f"?from_date={past}")
    assert status == 422


async def test_refund_request_tells_the_admins_ends_the_time_and_is_recorded_once(
    world: AdminWorld,
) -> None:
    """No money moves (the admins pay it by hand), but the refunded time ends: a second
    refund of it, by hand or to credit, is 409 and tells nobody."""
    vm = await paid_vm(world.user, ALICE)
    world.api.clock.advance(timedelta(days=10))
    await world.api.refresh_rates()
    await jobs(world)
    body = {"payment_method": "lightning", "lightning_invoice": INVOICE, "reason": "outage"}
    got = await world.ok("POST", f"/vms/{vm['id']}/refund", json=body)
    [job] = await jobs(world)
    assert got["data"]["job_id"] and isinstance(job, SendAdminNotification)
    assert "1800000 BTC" in job.message and INVOICE in job.message
    assert "outage" in job.message and "by hand" in job.message
    assert (await subscription_of(world.api, vm["id"])).expires == world.api.clock.now()
    history = (await world.ok("GET", f"/vms/{vm['id']}/history"))["data"]
    root = (await user_of(world.api, ROOT)).id
    # newest first: the notice recorded sent, after the refund
    assert [(h["action_type"], h["initiated_by_user"]) for h in history[:2]] == [
        ("state_changed", root),
        ("state_changed", root),
    ]
    assert "refunded by hand (1800000 BTC (smallest units))" in history[1]["description"]
    assert "told to pay refund sub:" in history[0]["description"]
    again = await _status(world, "POST", f"/vms/{vm['id']}/refund", json=body)
    assert again[0] == 409 and again[1]["error"].startswith("This unused time was already refunded")
    assert (await _status(world, "POST", f"/vms/{vm['id']}/refund/credit", json={}))[0] == 409
    assert await jobs(world) == []


async def test_a_refund_by_hand_is_credited_in_the_invoice_export(world: AdminWorld) -> None:
    """The money paid back is a credit note against the paid invoice, named in the notice:
    the export's window then earns the invoice less it; a repeat issues no second note."""
    vm = await paid_vm(world.user, ALICE)
    world.api.clock.advance(timedelta(days=10))
    await jobs(world)
    body = {"payment_method": "revolut", "reason": "outage"}
    await world.ok("POST", f"/vms/{vm['id']}/refund", json=body)
    [job] = await jobs(world)
    window = "start_date=2026-06-01&end_date=2026-07-01"
    [invoice] = (await world.ok("GET", f"/invoices?{window}"))["data"]
    assert invoice["tax"] == 0  # untaxed here: what is paid back is the value itself
    [note] = (await world.ok("GET", f"/invoices/{invoice['id']}"))["data"]["credit_notes"]
    assert note["amount"] == 180 and note["number"] == "CN-2026-000001"
    assert isinstance(job, SendAdminNotification)
    assert "180 EUR" in job.message and note["number"] in job.message
    resp = await world.call("GET", f"/invoices/export?{window}", VIEWER)
    rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [(r["document"], int(r["total"])) for r in rows] == [
        ("invoice", invoice["total"]),
        ("credit_note", -180),
    ]
    assert (await _status(world, "POST", f"/vms/{vm['id']}/refund", json=body))[0] == 409
    again = (await world.ok("GET", f"/invoices/{invoice['id']}"))["data"]["credit_notes"]
    assert again == [note] and await jobs(world) == []


async def test_refund_from_a_date_before_now_is_refused(world: AdminWorld) -> None:
    """One month paid is EUR 2.70: counted from 1970 the "unused" time was worth EUR 1858.
    Time already used is not refunded: a start before now is 400 and changes nothing."""
    vm = await paid_vm(world.user, ALICE)
    await world.api.refresh_rates()
    await jobs(world)
    before = await subscription_of(world.api, vm["id"])
    path = f"/vms/{vm['id']}/refund"
    earlier = int(world.api.clock.now().timestamp()) - 1
    for since in (0, earlier):
        status, body = await _status(world, "GET", f"{path}?method=revolut&from_date={since}")
        assert status == 400 and "from_date must not be earlier than now" in body["error"]
    start = (world.api.clock.now() - timedelta(seconds=1)).isoformat()
    for raw in ("1970-01-01T00:00:00Z", start):
        body = {"payment_method": "revolut", "refund_from_date": raw}
        status, got = await _status(world, "POST", path, json=body)
        assert status == 400 and "refund_from_date must not be earlier than now" in got["error"]
    assert await subscription_of(world.api, vm["id"]) == before and await jobs(world) == []
    now = int(world.api.clock.now().timestamp())
    got = await world.ok("GET", f"{path}?method=revolut&from_date={now}")
    assert got["data"]["amount"] == 270  # from now: the whole month, no more


async def test_refund_request_refusals(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    await jobs(world)
    path = f"/vms/{vm['id']}/refund"
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"payment_method": "stripe"},
            "Invalid payment method. Must be 'lightning', 'revolut', or 'paypal'",
        ),
        ({}, "Lightning invoice is required when payment method is 'lightning'"),
        (
            {"payment_method": "revolut", "lightning_invoice": INVOICE},
            "Lightning invoice should only be provided when payment method is 'lightning'",
        ),
        ({"lightning_invoice": "lnbc1 ; drop"}, "Invalid Lightning invoice"),
        ({"lightning_invoice": "ln" + "a" * 5000}, "Invalid Lightning invoice"),
    ]
    for body, error in cases:
        assert await _status(world, "POST", path, json=body) == (400, {"error": error}), body
    assert (
        await _status(
            world, "POST", path, json={"payment_method": "revolut", "refund_from_date": "tomorrow"}
        )
    )[0] == 400
    assert await _status(world, "POST", path, VIEWER, json={}) == (
        403,
        {"error": "Insufficient permissions for virtual_machines::update"},
    )
    assert await _status(world, "POST", "/vms/999/refund", json={"payment_method": "revolut"}) == (
        404,
        {"error": "VM not found"},
    )
    assert await jobs(world) == []


async def test_refund_by_hand_needs_the_money_permission(world: AdminWorld) -> None:
    """An admin who may only edit VMs (`virtual_machines::update`: extend it for free) may
    not have money paid out: the refund needs `payments::update` too. Refused, nothing
    changes (time, admins' notice); with it, as the LNVPS admin UI sends it, it goes."""
    vm = await paid_vm(world.user, ALICE)
    ops = NostrKey.from_seed(22)
    ops_id = (await user_of(world.api, ops)).id
    role = await world.ok(
        "POST", "/roles", json={"name": "vm-ops", "permissions": ["virtual_machines::update"]}
    )
    await world.ok("POST", f"/users/{ops_id}/roles", json={"role_id": role["data"]["id"]})
    await world.ok("PUT", f"/vms/{vm['id']}/extend", ops, json={"days": 365})
    await jobs(world)
    expires = (await subscription_of(world.api, vm["id"])).expires
    path = f"/vms/{vm['id']}/refund"
    body = {"payment_method": "lightning", "lightning_invoice": INVOICE, "reason": "x"}
    assert await _status(world, "POST", path, ops, json=body) == (
        403,
        {"error": "Insufficient permissions for payments::update"},
    )
    assert (await subscription_of(world.api, vm["id"])).expires == expires
    assert await jobs(world) == []
    summary = (await world.ok("GET", "/openapi.json", signed=False))["paths"][
        "/api/admin/v1/vms/{id}/refund"
    ]["post"]["summary"]
    assert summary.endswith("(needs `virtual_machines::update` and `payments::update`)")
    money = await world.ok(
        "POST", "/roles", json={"name": "money", "permissions": ["payments::update"]}
    )
    await world.ok("POST", f"/users/{ops_id}/roles", json={"role_id": money["data"]["id"]})
    got = await world.ok("POST", path, ops, json=body)
    assert got["data"]["job_dispatched"] is True
    assert (await subscription_of(world.api, vm["id"])).expires == world.api.clock.now()


async def test_refund_as_the_lnvps_admin_ui_sends_it(world: AdminWorld) -> None:
    """The LNVPS admin UI (VmRefundModal) sends `refund_from_date` as unix seconds (a JSON
    integer) and closes its dialog on `job_dispatched`: both work; an RFC 3339 string still
    does, and the answer keeps `job_id`."""
    vm = await paid_vm(world.user, ALICE)
    other = await paid_vm(world.user, NostrKey.from_seed(22))
    await world.api.refresh_rates()
    await jobs(world)
    later = world.api.clock.now() + timedelta(days=3)
    path = f"/vms/{vm['id']}/refund"
    body = {"payment_method": "revolut", "refund_from_date": int(later.timestamp())}
    got = await world.ok("POST", path, json=body)
    [job] = await jobs(world)
    assert got["data"] == {"job_dispatched": True, "job_id": got["data"]["job_id"]}
    assert got["data"]["job_id"] and isinstance(job, SendAdminNotification)
    assert (await subscription_of(world.api, vm["id"])).expires == later
    doc = await world.ok("GET", "/openapi.json", signed=False)
    post = doc["paths"]["/api/admin/v1/vms/{id}/refund"]["post"]
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert problems(got, answer) == []
    iso = {"payment_method": "revolut", "refund_from_date": later.isoformat()}
    got = await world.ok("POST", f"/vms/{other['id']}/refund", json=iso)
    assert got["data"]["job_dispatched"] is True
    assert (await subscription_of(world.api, other["id"])).expires == later


async def test_refund_from_unix_seconds_is_bounded_and_typed(world: AdminWorld) -> None:
    vm = await paid_vm(world.user, ALICE)
    await world.api.refresh_rates()
    await jobs(world)
    before = await subscription_of(world.api, vm["id"])
    path = f"/vms/{vm['id']}/refund"
    earlier = int(world.api.clock.now().timestamp()) - 1
    for raw in (0, earlier, -5, 10**15, 1.5, True, [1], {"at": 1}):
        body = {"payment_method": "revolut", "refund_from_date": raw}
        status, got = await _status(world, "POST", path, json=body)
        assert status == 400 and "refund_from_date" in got["error"], (raw, got)
    assert await subscription_of(world.api, vm["id"]) == before and await jobs(world) == []
