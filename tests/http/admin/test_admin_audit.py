"""The admin audit trail: every permitted write is recorded with who made it and how it ended;
refused requests and reads are not; secrets never reach it; GET /audit needs `audit::view`."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from adapters.http.admin import auth as admin_auth
from adapters.http.admin.app import admin_route_table
from adapters.http.admin.auth import ADMIN_BASE, MONEY_ROUTES
from adapters.http.envelope import format_time
from domain.redaction import ELIDED, MAX_DEPTH
from ports.storage import StorageBusy
from tests.http.admin import catalogue_bodies as b
from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld
from tests.http.admin.test_admin_schemas import problems
from tests.http.vm_helpers import dns_item, paid_vm, subscription_of, user_of
from tests.nostr_signing import NostrKey


async def _entries(world: AdminWorld) -> list[dict[str, Any]]:
    page = await world.ok("GET", "/audit?limit=100", VIEWER)
    items: list[dict[str, Any]] = page["data"]
    return items


async def test_a_change_is_recorded_with_the_admin_and_outcome(world: AdminWorld) -> None:
    role = (
        await world.ok(
            "POST",
            "/roles",
            json={"name": "ops", "description": "d", "permissions": ["users::view"]},
        )
    )["data"]
    await world.ok("PATCH", f"/roles/{role['id']}", json={"name": "ops2"})
    missing = await world.call("PATCH", "/roles/999", json={"name": "x"})
    assert missing.status == 404
    root = await user_of(world.api, ROOT)
    entries = await _entries(world)
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("PATCH", "/api/admin/v1/roles/999", 404),
        ("PATCH", f"/api/admin/v1/roles/{role['id']}", 200),
        ("POST", "/api/admin/v1/roles", 200),
    ]
    assert {e["user_id"] for e in entries} == {root.id}
    patch = entries[1]
    assert (patch["resource"], patch["resource_id"]) == ("roles", str(role["id"]))
    assert patch["summary"] == {"params": {"id": str(role["id"])}, "body": {"name": "ops2"}}
    assert patch["at"] == world.api.clock.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    doc = await world.ok("GET", "/openapi.json", signed=False)
    schema = doc["paths"]["/api/admin/v1/audit"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert problems(await world.ok("GET", "/audit"), schema) == []


async def test_refused_requests_and_reads_are_not_recorded(world: AdminWorld) -> None:
    refused = await world.call(
        "POST", "/roles", VIEWER, json={"name": "x", "permissions": ["users::view"]}
    )
    assert (refused.status, await refused.json()) == (
        403,
        {"error": "Insufficient permissions for roles::create"},
    )
    assert (await world.call("DELETE", "/roles/1", NOBODY)).status == 403
    unsigned = await world.call("POST", "/roles", signed=False, json={})
    assert unsigned.status == 401
    await world.ok("GET", "/roles")
    assert await _entries(world) == []


async def test_a_non_numeric_id_is_checked_like_its_route_and_not_recorded(
    world: AdminWorld,
) -> None:
    body = {"email": "x" * 3000}
    refused = await world.call("PATCH", "/users/x0", NOBODY, json=body)
    assert (refused.status, await refused.json()) == (
        403,
        {"error": "Insufficient permissions for users::update"},
    )
    bad = await world.call("PATCH", "/users/x0", json=body)
    assert (bad.status, await bad.json()) == (400, {"error": "Invalid id: x0"})
    entries = await _entries(world)
    assert [(e["path"], e["status"]) for e in entries] == [("/api/admin/v1/users/x0", 400)]


async def test_secrets_in_a_body_are_not_stored(world: AdminWorld) -> None:
    company = 1
    body = {
        "company_id": company,
        "name": "stripe",
        "config": {
            "type": "stripe",
            "secret_key": "sk_live_SECRET",
            "publishable_key": "pk_1",
            "webhook_secret": "whsec_SECRET",
        },
    }
    await world.call("POST", "/payment_methods", json=body)
    [entry] = await _entries(world)
    text = str(entry["summary"])
    assert "SECRET" not in text and "pk_1" in text
    assert entry["summary"]["body"]["config"]["secret_key"] == "***"


async def test_a_hosts_private_key_and_a_users_email_are_not_stored(world: AdminWorld) -> None:
    """Columns kept encrypted at rest (D28) never reach the plain-text trail, whose readers
    need only `audit::view`: the host's SSH private key, a user's e-mail address."""
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRET\n-----END OPENSSH PRIVATE KEY-----"
    made = await world.ok("POST", "/hosts", json={**b.host(world.user.demo), "ssh_key": key})
    host_id = made["data"]["id"]
    await world.ok("PATCH", f"/hosts/{host_id}", json={"ssh_key": key, "name": "h2"})
    user = await user_of(world.api, ROOT)
    await world.call("PATCH", f"/users/{user.id}", json={"email": "SECRET@example.com"})
    entries = await _entries(world)
    assert len(entries) == 3
    assert all("SECRET" not in str(e["summary"]) for e in entries)
    patch = entries[1]["summary"]["body"]
    assert patch == {"ssh_key": "***", "name": "h2"}


async def test_a_huge_body_is_summarised_by_its_keys(world: AdminWorld) -> None:
    await world.call("PATCH", "/roles/999", json={"name": "x" * 10_000, "description": "d"})
    [entry] = await _entries(world)
    assert entry["summary"] == {
        "params": {"id": "999"},
        "body_keys": ["description", "name"],
        "truncated": True,
    }


async def test_reading_the_trail_needs_audit_view(world: AdminWorld) -> None:
    resp = await world.call("GET", "/audit", NOBODY)
    assert (resp.status, await resp.json()) == (
        403,
        {"error": "Insufficient permissions for audit::view"},
    )
    await world.ok("POST", "/roles", json={"name": "a", "permissions": ["users::view"]})
    root = await user_of(world.api, ROOT)
    assert (await world.ok("GET", f"/audit?user_id={root.id}"))["total"] == 1
    assert (await world.ok("GET", f"/audit?user_id={root.id + 100}"))["total"] == 0
    assert (await world.call("GET", "/audit?user_id=x")).status == 400


async def test_a_write_refused_by_a_busy_database_is_a_503_recorded_as_such(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A lock timeout or deadlock (StorageBusy) is answered 503 with `Retry-After` and the
    audit trail says 503 (not 500, which means a bug)."""

    async def busy(**kwargs: Any) -> None:
        raise StorageBusy()

    monkeypatch.setattr(world.api.services.admin, "update_role", busy)
    resp = await world.call("PATCH", "/roles/1", json={"name": "x"})
    assert (resp.status, resp.headers["Retry-After"]) == (503, "1")
    assert await resp.json() == {"error": "The service is busy; please retry"}
    [entry] = await _entries(world)
    assert (entry["method"], entry["path"], entry["status"]) == (
        "PATCH",
        "/api/admin/v1/roles/1",
        503,
    )


def _audit_down(world: AdminWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every audit write fails from now on (a table unavailable)."""

    async def broken(**_: object) -> None:
        raise RuntimeError("audit table unavailable")

    monkeypatch.setattr(world.api.services.admin, "record_admin_change", broken)


async def test_a_money_write_whose_record_is_lost_answers_500_saying_it_was_done(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Found by r1: with the audit write failing, 300 free days were granted with a 200 and
    no trace. An extend (paid time moved) is done and stands, but the answer is 500 saying
    so; the log has who did what."""
    alice = NostrKey.from_seed(21)
    vm = await paid_vm(world.user, alice)
    before = (await subscription_of(world.api, vm["id"])).expires
    assert before is not None
    _audit_down(world, monkeypatch)

    resp = await world.call("PUT", f"/vms/{vm['id']}/extend", json={"days": 300})

    assert resp.status == 500
    error = (await resp.json())["error"]
    assert error.startswith(f"PUT /api/admin/v1/vms/{vm['id']}/extend was done (answered 200)")
    assert "audit record could not be written" in error and "before repeating it" in error
    assert (await subscription_of(world.api, vm["id"])).expires == before + timedelta(days=300)
    assert "could not record the admin change PUT" in caplog.text and '"days": 300' in caplog.text


async def test_an_expiry_edit_whose_audit_record_is_lost_is_in_the_vms_history(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by r1: PATCH /subscriptions `expires` was recorded only in admin_audit, after
    the commit, its failure swallowed: 300 free days granted with a 200 and no trace. Now
    the VM's history names the admin (written with the edit) and the answer is 500."""
    alice = NostrKey.from_seed(21)
    vm = await paid_vm(world.user, alice)
    sub = await subscription_of(world.api, vm["id"])
    assert sub.expires is not None
    later = sub.expires + timedelta(days=300)
    _audit_down(world, monkeypatch)

    body = {"expires": format_time(later)}
    resp = await world.call("PATCH", f"/subscriptions/{sub.id}", json=body)

    assert resp.status == 500 and "was done (answered 200)" in (await resp.json())["error"]
    assert (await subscription_of(world.api, vm["id"])).expires == later
    history = (await world.ok("GET", f"/vms/{vm['id']}/history"))["data"]
    root = await user_of(world.api, ROOT)
    assert [h["initiated_by_user"] for h in history if "was extended from" in h["description"]] == [
        root.id
    ]


async def test_a_line_item_deletion_whose_record_is_lost_answers_500(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting a line item lowers what its subscription costs: a money write like a price
    edit, never answered as done without its record."""
    vm = await paid_vm(world.user, NostrKey.from_seed(21))
    sub = await subscription_of(world.api, vm["id"])
    item = await dns_item(world.api, sub.id)
    _audit_down(world, monkeypatch)

    resp = await world.call("DELETE", f"/subscription_line_items/{item.id}")

    assert resp.status == 500 and "was done (answered 200)" in (await resp.json())["error"]
    async with world.api.store() as uow:
        assert await uow.line_items.get(item.id) is None


async def test_a_new_subscription_whose_record_is_lost_answers_500(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A new subscription may give a year of paid time at a price the admin chose: a money
    write, never answered as done without its record (it was judged "other" before)."""
    user = await user_of(world.api, NostrKey.from_seed(21))
    company = (await world.ok("GET", "/companies"))["data"][0]["id"]
    year = format_time(world.api.clock.now() + timedelta(days=365))
    body = {
        "user_id": user.id,
        "company_id": company,
        "name": "given",
        "is_active": True,
        "currency": "EUR",
        "setup_fee": 0,
        "auto_renewal_enabled": False,
        "expires": year,
    }
    _audit_down(world, monkeypatch)

    resp = await world.call("POST", "/subscriptions", json=body)

    assert resp.status == 500 and "was done (answered 200)" in (await resp.json())["error"]
    async with world.api.store() as uow:
        [made] = (await uow.subscriptions.list_by_user(user.id, 10, 0)).items
    assert made.expires is not None and format_time(made.expires) == year


async def test_other_writes_stand_with_their_answer_when_the_record_is_lost(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catalogue or role edit moves no money: it is answered as done, the lost record
    logged; a refused money write keeps its own refusal."""
    _audit_down(world, monkeypatch)

    role = await world.call("POST", "/roles", json={"name": "ops", "permissions": []})
    assert role.status == 200
    missing = await world.call("PUT", "/vms/999/extend", json={"days": 1})
    assert missing.status == 404


async def test_a_repricing_or_a_vat_status_edit_whose_record_is_lost_answers_500(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review r7: re-pricing the catalogue and a user's tax status change what is paid;
    like every money write they do not pass for done without their audit record."""
    plan = await world.ok("POST", "/cost_plans", json=b.cost_plan())
    user = await user_of(world.api, NostrKey.from_seed(23))
    _audit_down(world, monkeypatch)

    repriced = await world.call("PATCH", f"/cost_plans/{plan['data']['id']}", json={"amount": 999})
    assert repriced.status == 500
    assert "was done (answered 200)" in (await repriced.json())["error"]
    vat = await world.call("PATCH", f"/users/{user.id}", json={"billing_vat_validated": True})
    assert vat.status == 500
    assert "was done (answered 200)" in (await vat.json())["error"]


def _admin_writes() -> set[tuple[str, str]]:
    """Every (method, route) of the admin API that is not a read, under ADMIN_BASE."""
    return {
        (r.method, re.sub(r"\{(\w+)(:[^{}]*(\{[^{}]*\}[^{}]*)*)?\}", r"{\1}", r.path))
        for r in admin_route_table().routes
        if r.method not in {"GET", "HEAD", "OPTIONS"}
    }


#: the admin writes judged to move neither money nor paid time (their lost audit record is
#: logged, the write stands with its answer): catalogue rows that price nothing already sold,
#: hosts, images, companies, roles, a VM's power. A new write route must be put here or in
#: MONEY_ROUTES (`test_every_admin_write_is_judged`).
OTHER_WRITES = frozenset(
    {
        ("POST", "/roles"),
        ("PATCH", "/roles/{id}"),
        ("DELETE", "/roles/{id}"),
        ("POST", "/users/{id}/roles"),
        ("DELETE", "/users/{id}/roles/{role_id}"),
        ("POST", "/vms/{id}/start"),
        ("POST", "/vms/{id}/stop"),
        ("POST", "/companies"),
        ("PATCH", "/companies/{id}"),
        ("DELETE", "/companies/{id}"),
        ("POST", "/regions"),
        ("PATCH", "/regions/{id}"),
        ("DELETE", "/regions/{id}"),
        ("POST", "/hosts"),
        ("PATCH", "/hosts/{id}"),
        ("POST", "/hosts/{id}/disks"),
        ("PATCH", "/hosts/{id}/disks/{disk_id}"),
        ("POST", "/cost_plans"),
        ("DELETE", "/cost_plans/{id}"),
        ("POST", "/vm_templates"),
        ("DELETE", "/vm_templates/{id}"),
        ("POST", "/custom_pricing"),
        ("DELETE", "/custom_pricing/{id}"),
        ("POST", "/custom_pricing/{id}/copy"),
        ("POST", "/vm_os_images"),
        ("PATCH", "/vm_os_images/{id}"),
        ("DELETE", "/vm_os_images/{id}"),
        ("POST", "/vm_os_images/{id}/download"),
        ("POST", "/ip_space"),
        ("PATCH", "/ip_space/{id}"),
        ("DELETE", "/ip_space/{id}"),
    }
)


def test_every_money_route_is_a_route_of_the_admin_api() -> None:
    """`MONEY_ROUTES` names routes that exist (a typo would leave one unguarded)."""
    assert {(m, ADMIN_BASE + p) for m, p in MONEY_ROUTES} <= _admin_writes()


def test_every_admin_write_is_judged() -> None:
    """Each admin write is either a money route or judged not to be one: a new route is
    not left out of the guard by omission."""
    judged = {(m, ADMIN_BASE + p) for m, p in MONEY_ROUTES | OTHER_WRITES}
    assert _admin_writes() - judged == set()
    assert not MONEY_ROUTES & OTHER_WRITES


def _nested(depth: int) -> str:
    """`depth` objects nested in one another, as JSON text."""
    return '{"a":' * depth + "1" + "}" * depth


async def _credit_with_junk(world: AdminWorld, junk: str) -> tuple[int, Any, int, Any]:
    """POST /users/{alice}/credit of 5000 with `junk` as an extra field: the answer's status
    and body, alice's id and her ledger's amounts."""
    alice = (await user_of(world.api, NostrKey.from_seed(21))).id
    body = '{"currency":"EUR","amount":5000,"note":"x","junk":' + junk + "}"
    resp = await world.call(
        "POST",
        f"/users/{alice}/credit",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    async with world.api.store() as uow:
        ledger = [e.amount for e in (await uow.credit_ledger.list_page(alice, 10, 0)).items]
    return resp.status, await resp.json(), alice, ledger


async def test_a_credit_with_a_deeply_nested_field_is_refused_and_recorded(
    world: AdminWorld,
) -> None:
    """Found by r12: an ignored field nested 700 deep passed the parser, the credit was booked,
    then summarising the body for the audit overflowed the stack: a bare 500 and no record.
    Such a body is refused before the handler (nothing booked) and the refusal is recorded,
    its summary cut at `MAX_DEPTH` levels."""
    status, body, alice, ledger = await _credit_with_junk(world, _nested(700))
    assert (status, body) == (
        400,
        {"error": "Failed to parse the request body as JSON: nested more than 127 levels deep"},
    )
    assert ledger == []
    [entry] = await _entries(world)
    assert (entry["method"], entry["path"], entry["status"]) == (
        "POST",
        f"/api/admin/v1/users/{alice}/credit",
        400,
    )
    junk: Any = ELIDED
    for _ in range(MAX_DEPTH - 1):  # the body is the first level, `junk` the second
        junk = {"a": junk}
    assert entry["summary"] == {
        "params": {"id": str(alice)},
        "body": {"currency": "EUR", "amount": 5000, "note": "x", "junk": junk},
    }


async def test_a_body_too_deep_for_the_parser_is_recorded_by_its_size(world: AdminWorld) -> None:
    """Nesting past the JSON parser's own stack (RecursionError, not ValueError) is a 400 and a
    record of the body's size, not a 500 without one."""
    junk = _nested(5000)
    status, body, alice, ledger = await _credit_with_junk(world, junk)
    assert (status, body, ledger) == (
        400,
        {"error": "Failed to parse the request body as JSON"},
        [],
    )
    [entry] = await _entries(world)
    assert entry["status"] == 400
    size = len('{"currency":"EUR","amount":5000,"note":"x","junk":' + junk + "}")
    assert entry["summary"] == {"params": {"id": str(alice)}, "body": {"unparsed_bytes": size}}


async def test_a_money_write_whose_summary_fails_is_recorded_by_its_size(
    world: AdminWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever goes wrong summarising a body, the change is still recorded (by the body's
    size) and answered: a booked credit never ends in a bare 500 without its record."""

    def broken(body: Any, params: Any) -> Any:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(admin_auth, "summary_of", broken)
    status, body, alice, ledger = await _credit_with_junk(world, "1")
    assert status == 200 and body["data"]["balance"] == 5000
    assert ledger == [5000]
    [entry] = await _entries(world)
    assert (entry["path"], entry["status"]) == (f"/api/admin/v1/users/{alice}/credit", 200)
    size = len('{"currency":"EUR","amount":5000,"note":"x","junk":1}')
    assert entry["summary"] == {"params": {"id": str(alice)}, "body": {"unparsed_bytes": size}}
