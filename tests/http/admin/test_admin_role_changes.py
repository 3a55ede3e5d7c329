"""PATCH and DELETE /roles/{id} (api.md §9.2), and the rule that nobody grants a permission they
do not hold (roles, role assignment, `admin_role`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld
from tests.http.vm_helpers import user_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)


async def _create(world: AdminWorld, name: str, *permissions: str) -> dict[str, Any]:
    body = {"name": name, "permissions": list(permissions)}
    role: dict[str, Any] = (await world.ok("POST", "/roles", json=body))["data"]
    return role


async def _error(
    world: AdminWorld, method: str, path: str, key: NostrKey = ROOT, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def test_patch_renames_and_replaces_the_whole_permission_set(world: AdminWorld) -> None:
    role = await _create(world, "ops", "users::view", "hosts::view")
    world.api.clock.advance(timedelta(minutes=5))
    assert await world.ok(
        "PATCH",
        f"/roles/{role['id']}",
        json={"name": " ops2 ", "description": "on call", "permissions": ["vms::update"]},
    ) == {"data": None}
    got = (await world.ok("GET", f"/roles/{role['id']}"))["data"]
    assert (got["name"], got["description"], got["permissions"]) == (
        "ops2",
        "on call",
        ["virtual_machines::update"],
    )
    assert got["updated_at"] > got["created_at"] == role["created_at"]
    await world.ok("PATCH", f"/roles/{role['id']}", json={"description": "x"})
    kept = (await world.ok("GET", f"/roles/{role['id']}"))["data"]
    assert (kept["name"], kept["permissions"]) == ("ops2", ["virtual_machines::update"])


async def test_patch_refusals_change_nothing(world: AdminWorld) -> None:
    role = await _create(world, "ops", "users::view")
    other = await _create(world, "taken", "users::view")
    rid = role["id"]
    assert await _error(
        world, "PATCH", f"/roles/{world.role_ids['super_admin']}", json={"name": "x"}
    ) == (422, {"error": "Cannot modify system roles"})
    assert await _error(world, "PATCH", "/roles/999", json={"name": "x"}) == (
        404,
        {"error": "Role not found"},
    )
    assert (await world.call("PATCH", "/roles/abc", json={})).status == 400
    status, body = await _error(
        world, "PATCH", f"/roles/{rid}", json={"permissions": ["users::fly"]}
    )
    assert status == 400 and body["error"].startswith("Invalid permission format")
    assert (await _error(world, "PATCH", f"/roles/{rid}", json={"name": "  "}))[0] == 400
    assert (await _error(world, "PATCH", f"/roles/{rid}", json={"name": "n" * 51}))[0] == 400
    assert (await _error(world, "POST", "/roles", json={"name": "n" * 51, "permissions": []}))[
        0
    ] == 400
    assert (await _error(world, "PATCH", f"/roles/{rid}", json={"permissions": "x"}))[0] == 400
    assert (await _error(world, "PATCH", f"/roles/{rid}", json={"name": other["name"]}))[0] == 409
    assert await _error(world, "POST", "/roles", json={"name": "taken", "permissions": []}) == (
        409,
        {"error": "A role named 'taken' already exists"},
    )
    assert await _error(world, "PATCH", f"/roles/{rid}", VIEWER, json={"name": "y"}) == (
        403,
        {"error": "Insufficient permissions for roles::update"},
    )
    assert (await world.ok("GET", f"/roles/{rid}"))["data"] == role


async def test_delete_a_role_nobody_holds(world: AdminWorld) -> None:
    role = await _create(world, "ops", "users::view")
    uid = (await user_of(world.api, NOBODY)).id
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": role["id"]})
    assert await _error(world, "DELETE", f"/roles/{role['id']}") == (
        422,
        {"error": "Cannot delete role with 1 assigned users. Remove all user assignments first."},
    )
    await world.ok("DELETE", f"/users/{uid}/roles/{role['id']}")
    assert await _error(world, "DELETE", f"/roles/{role['id']}", VIEWER) == (
        403,
        {"error": "Insufficient permissions for roles::delete"},
    )
    assert await world.ok("DELETE", f"/roles/{role['id']}") == {"data": None}
    assert (await world.call("GET", f"/roles/{role['id']}")).status == 404
    assert await _error(world, "DELETE", f"/roles/{role['id']}") == (
        404,
        {"error": "Role not found"},
    )
    assert await _error(world, "DELETE", f"/roles/{world.role_ids['read_only']}") == (
        422,
        {"error": "Cannot delete system roles"},
    )


async def _delegate(world: AdminWorld, *permissions: str) -> NostrKey:
    """ALICE holding a custom role with exactly these permissions."""
    role = await _create(world, "delegate", *permissions)
    uid = await world.user.user_id(ALICE)
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": role["id"]})
    return ALICE


async def test_nobody_grants_what_they_do_not_hold(world: AdminWorld) -> None:
    key = await _delegate(
        world, "roles::create", "roles::update", "users::update", "users::view", "roles::view"
    )
    mine = await _create(world, "mine", "users::view")
    status, body = await _error(
        world, "POST", "/roles", key, json={"name": "big", "permissions": ["hosts::delete"]}
    )
    assert (status, body) == (
        403,
        {"error": "Cannot grant permissions you do not hold: hosts::delete"},
    )
    assert (
        await _error(
            world,
            "PATCH",
            f"/roles/{mine['id']}",
            key,
            json={"permissions": ["users::view", "audit::view"]},
        )
    )[0] == 403
    target = (await user_of(world.api, NOBODY)).id
    assert (
        await _error(
            world,
            "POST",
            f"/users/{target}/roles",
            key,
            json={"role_id": world.role_ids["super_admin"]},
        )
    )[0] == 403
    assert (
        await _error(world, "PATCH", f"/users/{target}", key, json={"admin_role": "super_admin"})
    )[0] == 403
    assert (await world.ok("GET", f"/users/{target}/roles"))["data"] == []
    ok = await world.call(
        "PATCH", f"/roles/{mine['id']}", key, json={"permissions": ["users::view", "users::update"]}
    )
    assert ok.status == 200


async def test_nobody_takes_from_a_role_what_they_do_not_hold(world: AdminWorld) -> None:
    """Taking a permission out of a role takes it from everyone holding the role: a role
    editor without `hosts::delete` cannot strip it from the hosts team."""
    key = await _delegate(world, "roles::update", "roles::view", "users::view")
    hosts = await _create(world, "hosts-team", "hosts::delete", "users::view")
    status, body = await _error(
        world, "PATCH", f"/roles/{hosts['id']}", key, json={"permissions": ["users::view"]}
    )
    assert (status, body) == (
        403,
        {"error": "Cannot take away permissions you do not hold: hosts::delete"},
    )
    kept = (await world.ok("GET", f"/roles/{hosts['id']}"))["data"]["permissions"]
    assert sorted(kept) == ["hosts::delete", "users::view"]
    mine = await _create(world, "readers", "users::view", "roles::view")
    await world.ok("PATCH", f"/roles/{mine['id']}", key, json={"permissions": ["users::view"]})
