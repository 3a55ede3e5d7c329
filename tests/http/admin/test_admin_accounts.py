"""Admin users, roles and subscriptions: shapes, updates, role grants take effect."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from adapters.http.envelope import format_time
from domain.expiry_edit import EXPIRY_EDIT_KEY
from domain.lifecycle import LifecycleAction, decide_lifecycle_actions
from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld
from tests.http.vm_helpers import order, paid_vm, subscription_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)


async def user_id(world: AdminWorld, key: NostrKey) -> int:
    return await world.user.user_id(key)


async def test_user_get_and_patch(world: AdminWorld) -> None:
    await order(world.user, ALICE)
    uid = await user_id(world, ALICE)
    info = (await world.ok("GET", f"/users/{uid}", VIEWER))["data"]
    assert info["pubkey"] == ALICE.pubkey_hex and info["vm_count"] == 1
    assert info["is_admin"] is False and info["last_login"] is None
    assert (await world.ok("GET", f"/users/{await user_id(world, ROOT)}"))["data"]["is_admin"]
    body = {
        "email": " a@example.com ",
        "country_code": "ie",
        "billing_name": "A",
        "contact_email": True,
        "status": "suspended",
    }
    assert await world.ok("PATCH", f"/users/{uid}", json=body) == {"data": None}
    info = (await world.ok("GET", f"/users/{uid}"))["data"]
    assert (info["email"], info["country_code"], info["billing_name"]) == (
        "a@example.com",
        "IRL",
        "A",
    )
    assert info["contact_email"] is True and info["email_verified"] is False
    unknown = await world.call("PATCH", f"/users/{uid}", json={"admin_role": "nope"})
    assert (unknown.status, await unknown.json()) == (
        400,
        {"error": "Invalid admin role specified"},
    )
    assert (await world.call("GET", "/users/999")).status == 404


async def test_role_create_assign_revoke(world: AdminWorld) -> None:
    bad = await world.call("POST", "/roles", json={"name": "x", "permissions": ["vms::fly"]})
    assert bad.status == 400 and "Invalid permission format" in (await bad.json())["error"]
    role = (
        await world.ok(
            "POST",
            "/roles",
            json={"name": "vm_viewer", "permissions": ["VMS::view", "virtual_machines::view"]},
        )
    )["data"]
    assert role["permissions"] == ["virtual_machines::view"] and role["user_count"] == 0
    uid = await user_id(world, NOBODY)
    assert (await world.call("GET", "/vms", NOBODY)).status == 403
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": role["id"]})
    assert (await world.call("GET", "/vms", NOBODY)).status == 200
    assert (await world.call("GET", "/users/1", NOBODY)).status == 403
    await world.ok("DELETE", f"/users/{uid}/roles/{role['id']}")
    assert (await world.call("GET", "/vms", NOBODY)).status == 403
    assert (await world.call("DELETE", f"/users/{uid}/roles/{role['id']}")).status == 404
    root = await user_id(world, ROOT)
    own = await world.call("DELETE", f"/users/{root}/roles/{world.role_ids['super_admin']}")
    assert own.status == 422
    assert await own.json() == {"error": "Super admins cannot revoke their own super_admin role"}


async def test_expired_assignment_grants_nothing(world: AdminWorld) -> None:
    uid = await user_id(world, NOBODY)
    soon = format_time(world.api.clock.now() + timedelta(minutes=1))
    await world.ok(
        "POST",
        f"/users/{uid}/roles",
        json={"role_id": world.role_ids["read_only"], "expires_at": soon},
    )
    assert (await world.call("GET", "/vms", NOBODY)).status == 200
    world.api.clock.advance(timedelta(minutes=2))
    assert (await world.call("GET", "/vms", NOBODY)).status == 403


async def test_subscriptions_list_get_create_update(world: AdminWorld) -> None:
    vm = await order(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    uid = await user_id(world, ALICE)
    page = await world.ok("GET", f"/subscriptions?user_id={uid}")
    assert [s["id"] for s in page["data"]] == [sub.id]
    assert (await world.call("GET", "/subscriptions")).status == 422
    one = (await world.ok("GET", f"/subscriptions/{sub.id}"))["data"]
    assert len(one["line_items"]) == 1 and one["interval_type"] == "month"
    items = (await world.ok("GET", f"/subscriptions/{sub.id}/line_items"))["data"]
    assert (await world.ok("GET", f"/subscription_line_items/{items[0]['id']}"))["data"] == items[0]
    created = (
        await world.ok(
            "POST",
            "/subscriptions",
            json={
                "user_id": uid,
                "company_id": sub.company_id,
                "name": " Extra ",
                "is_active": False,
                "currency": "eur",
                "setup_fee": 0,
                "auto_renewal_enabled": False,
                "interval_type": "year",
            },
        )
    )["data"]
    assert (created["name"], created["currency"], created["interval_type"]) == (
        "Extra",
        "EUR",
        "year",
    )
    assert created["is_setup"] is False and created["line_items"] == []
    empty = await world.call(
        "POST",
        "/subscriptions",
        json={
            "user_id": uid,
            "company_id": 1,
            "name": "",
            "is_active": False,
            "currency": "EUR",
            "setup_fee": 0,
            "auto_renewal_enabled": False,
        },
    )
    assert empty.status == 400
    before = len((await world.ok("GET", f"/subscriptions?user_id={uid}"))["data"])
    no_company = await world.call(
        "POST",
        "/subscriptions",
        json={
            "user_id": uid,
            "company_id": 99999,
            "name": "x",
            "is_active": False,
            "currency": "EUR",
            "setup_fee": 0,
            "auto_renewal_enabled": False,
        },
    )
    assert no_company.status == 404 and "Company not found" in await no_company.text()
    assert len((await world.ok("GET", f"/subscriptions?user_id={uid}"))["data"]) == before
    patched = (
        await world.ok(
            "PATCH",
            f"/subscriptions/{created['id']}",
            json={"expires": "2027-01-01T00:00:00+01:00", "external_id": "x", "is_active": True},
        )
    )["data"]
    assert patched["expires"] == "2026-12-31T23:00:00Z" and patched["is_active"] is True
    cleared = (
        await world.ok(
            "PATCH", f"/subscriptions/{created['id']}", json={"expires": None, "name": None}
        )
    )["data"]
    assert cleared["expires"] is None and cleared["name"] == "Extra"
    assert cleared["external_id"] == "x"


async def test_subscription_patch_with_an_expires_that_is_no_timestamp_is_400(
    world: AdminWorld,
) -> None:
    """ "", false and 0 are neither null (clear it) nor a timestamp: 400, nothing changed
    (they were taken as the value itself, then failed as no datetime: a 500)."""
    vm = await order(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    path = f"/subscriptions/{sub.id}"
    bad_values: tuple[object, ...] = ("", False, 0, 1, [], {})
    for bad in bad_values:
        resp = await world.call("PATCH", path, json={"expires": bad, "name": "renamed"})
        assert resp.status == 400, (bad, resp.status, await resp.text())
        error = (await resp.json())["error"]
        assert "RFC 3339" in error, (bad, error)
    assert await subscription_of(world.api, vm["id"]) == sub


async def test_a_past_expiry_on_a_paid_subscription_is_422_and_changes_nothing(
    world: AdminWorld,
) -> None:
    """Found by r1: an operator who means "a month from now" and types last month got a 200,
    and the lifecycle deleted the paid VM at its next pass (no stop, no grace, no refund, no
    history). Refused, pointing at a refund to cut paid time with the money back."""
    vm = await paid_vm(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    now = world.api.clock.now()
    typo = format_time(now - timedelta(days=30))

    resp = await world.call("PATCH", f"/subscriptions/{sub.id}", json={"expires": typo})

    assert resp.status == 422
    error = (await resp.json())["error"]
    assert error.startswith("expires must not be earlier than now") and "refund it" in error
    after = await subscription_of(world.api, vm["id"])
    assert after == sub
    due = [d.action for d in decide_lifecycle_actions(after, now, 30, False)]
    assert LifecycleAction.DELETE_AFTER_GRACE not in due
    assert await _expiry_entries(world, vm["id"]) == []


async def test_clearing_a_paid_subscriptions_expiry_is_422(world: AdminWorld) -> None:
    """Found by r1: `null` on a set-up subscription meant its VM was never stopped."""
    vm = await paid_vm(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])

    resp = await world.call("PATCH", f"/subscriptions/{sub.id}", json={"expires": None})

    assert resp.status == 422 and "cannot be cleared" in (await resp.json())["error"]
    assert await subscription_of(world.api, vm["id"]) == sub


async def test_an_expiry_edit_is_in_the_vms_history_with_the_admin(world: AdminWorld) -> None:
    """A shortening to a later time is the operator's edit: allowed, and the VM's history
    says which admin cut the paid time from where to where."""
    vm = await paid_vm(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    assert sub.expires is not None
    cut_to = world.api.clock.now() + timedelta(days=10)

    await world.ok("PATCH", f"/subscriptions/{sub.id}", json={"expires": format_time(cut_to)})

    [entry] = await _expiry_entries(world, vm["id"])
    root = await user_id(world, ROOT)
    assert (entry["action_type"], entry["initiated_by_user"]) == ("state_changed", root)
    assert entry["description"] == (
        f"VM {vm['id']}'s paid time was cut from {sub.expires.isoformat()} to "
        f"{cut_to.isoformat()} by admin #{root}"
    )


async def _expiry_entries(world: AdminWorld, vm_id: int) -> list[dict[str, Any]]:
    """The VM's history entries of admins' expiry edits (as GET /vms/{id}/history shows
    them), newest first."""
    history = (await world.ok("GET", f"/vms/{vm_id}/history"))["data"]
    async with world.api.store() as uow:
        stored = {e.id: e for e in await uow.vm_history.list_all_by_vm(vm_id)}
    return [h for h in history if EXPIRY_EDIT_KEY in (stored[h["id"]].metadata or {})]


async def test_line_item_patch(world: AdminWorld) -> None:
    vm = await order(world.user, ALICE)
    sub = await subscription_of(world.api, vm["id"])
    [item] = (await world.ok("GET", f"/subscriptions/{sub.id}/line_items"))["data"]
    path = f"/subscription_line_items/{item['id']}"
    patched = (
        await world.ok(
            "PATCH",
            path,
            json={"amount": 999, "description": "discounted", "subscription_type": "IpRange"},
        )
    )["data"]
    assert (patched["amount"], patched["description"], patched["name"]) == (
        999,
        "discounted",
        item["name"],
    )
    resp = await world.call("PATCH", path, json={"name": " "})
    assert resp.status == 400
    assert await resp.json() == {"error": "Line item name cannot be empty"}
    assert (await world.call("PATCH", path, VIEWER, json={"amount": 1})).status == 403
    assert (await world.call("PATCH", "/subscription_line_items/999", json={})).status == 404


async def test_user_search_by_pubkey(world: AdminWorld) -> None:
    uid = await user_id(world, ALICE)
    found = await world.ok("GET", f"/users?search={ALICE.pubkey_hex.upper()}", VIEWER)
    assert [u["id"] for u in found["data"]] == [uid] and found["total"] == 1
    none = await world.ok("GET", "/users?search=" + "00" * 32)
    assert none["data"] == [] and none["total"] == 0
    assert (await world.call("GET", "/users?search=xyz")).status == 400
    assert (await world.call("GET", "/users")).status == 200  # the full list (super admin)
    assert (await world.call("GET", "/users?search=00", NOBODY)).status == 403
