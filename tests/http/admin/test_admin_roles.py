"""Reading roles (api.md §9.2): the role list and one role, a user's roles, the caller's own."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from adapters.http.envelope import format_time
from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld
from tests.http.admin.test_admin_schemas import problems
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)


async def _schema(world: AdminWorld, template: str) -> dict[str, Any]:
    doc = await world.ok("GET", "/openapi.json", signed=False)
    op = doc["paths"]["/api/admin/v1" + template]["get"]
    schema: dict[str, Any] = op["responses"]["200"]["content"]["application/json"]["schema"]
    return schema


async def _create(world: AdminWorld, name: str, *permissions: str) -> dict[str, Any]:
    body = {"name": name, "description": f"{name}!", "permissions": list(permissions)}
    role: dict[str, Any] = (await world.ok("POST", "/roles", json=body))["data"]
    return role


async def test_roles_list_system_roles_first_then_by_name_with_pages(world: AdminWorld) -> None:
    await _create(world, "zz_ops", "users::view")
    await _create(world, "aa_ops", "roles::view")
    page = await world.ok("GET", "/roles", VIEWER)
    assert [r["name"] for r in page["data"]] == ["read_only", "super_admin", "aa_ops", "zz_ops"]
    assert (page["total"], page["limit"], page["offset"]) == (4, 50, 0)
    assert problems(page, await _schema(world, "/roles")) == []
    second = await world.ok("GET", "/roles?limit=2&offset=1")
    assert [r["name"] for r in second["data"]] == ["super_admin", "aa_ops"]
    assert second["total"] == 4
    super_admin = second["data"][0]
    assert super_admin["is_system_role"] is True and super_admin["user_count"] == 1
    assert len(super_admin["permissions"]) == 22 * 4
    assert "virtual_machines::view" in super_admin["permissions"]


async def test_one_role_with_its_permissions_and_user_count(world: AdminWorld) -> None:
    created = await _create(world, "vm_ops", "VMS::update", "users::view", "vms::view")
    uid = await world.user.user_id(ALICE)
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": created["id"]})
    one = await world.ok("GET", f"/roles/{created['id']}", VIEWER)
    assert problems(one, await _schema(world, "/roles/{id}")) == []
    role = one["data"]
    assert role["permissions"] == [
        "users::view",
        "virtual_machines::view",
        "virtual_machines::update",
    ]
    assert (role["name"], role["description"], role["is_system_role"], role["user_count"]) == (
        "vm_ops",
        "vm_ops!",
        False,
        1,
    )
    assert role["created_at"] == created["created_at"]
    missing = await world.call("GET", "/roles/999")
    assert missing.status == 404 and await missing.json() == {"error": "Role not found"}
    assert (await world.call("GET", "/roles/abc")).status == 400


async def test_a_users_roles_include_expired_ones(world: AdminWorld) -> None:
    uid = await world.user.user_id(ALICE)
    assert await world.ok("GET", f"/users/{uid}/roles", VIEWER) == {"data": []}
    past = format_time(world.api.clock.now() + timedelta(hours=1))
    future = "2099-01-01T00:00:00Z"
    await world.ok(
        "POST",
        f"/users/{uid}/roles",
        json={"role_id": world.role_ids["read_only"], "expires_at": past},
    )
    world.api.clock.advance(timedelta(hours=2))  # an end date must be in the future when set
    await world.ok(
        "POST",
        f"/users/{uid}/roles",
        json={"role_id": world.role_ids["super_admin"], "expires_at": future},
    )
    body = await world.ok("GET", f"/users/{uid}/roles")
    assert problems(body, await _schema(world, "/users/{id}/roles")) == []
    root = await world.user.user_id(ROOT)
    [expired, live] = body["data"]
    assert (expired["role"]["name"], expired["expires_at"], expired["assigned_by"]) == (
        "read_only",
        past,
        root,
    )
    assert (live["role"]["name"], live["expires_at"]) == ("super_admin", future)
    assert live["role"]["user_count"] == 2
    assert (await world.call("GET", "/users/999/roles")).status == 404


async def test_me_roles_needs_no_permission_and_skips_expired_assignments(
    world: AdminWorld,
) -> None:
    assert await world.ok("GET", "/me/roles", NOBODY) == {"data": []}
    mine = await world.ok("GET", "/me/roles", VIEWER)
    assert problems(mine, await _schema(world, "/me/roles")) == []
    [only] = mine["data"]
    assert only["role"]["name"] == "read_only" and only["expires_at"] is None
    assert only["assigned_by"] is None
    assert "roles::view" in only["role"]["permissions"]
    uid = await world.user.user_id(NOBODY)
    soon = format_time(world.api.clock.now() + timedelta(minutes=1))
    await world.ok(
        "POST",
        f"/users/{uid}/roles",
        json={"role_id": world.role_ids["read_only"], "expires_at": soon},
    )
    assert len((await world.ok("GET", "/me/roles", NOBODY))["data"]) == 1
    world.api.clock.advance(timedelta(minutes=2))
    assert await world.ok("GET", "/me/roles", NOBODY) == {"data": []}
    assert (await world.call("GET", "/me/roles", signed=False)).status in (401, 403)


async def test_reading_roles_needs_roles_view_and_user_roles_users_view(
    world: AdminWorld,
) -> None:
    uid = await world.user.user_id(NOBODY)
    for path, permission in (
        ("/roles", "roles::view"),
        ("/roles/1", "roles::view"),
        (f"/users/{uid}/roles", "users::view"),
    ):
        resp = await world.call("GET", path, NOBODY)
        assert resp.status == 403
        assert await resp.json() == {"error": f"Insufficient permissions for {permission}"}
    users_only = await _create(world, "users_only", "users::view")
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": users_only["id"]})
    assert (await world.call("GET", f"/users/{uid}/roles", NOBODY)).status == 200
    assert (await world.call("GET", "/roles", NOBODY)).status == 403
