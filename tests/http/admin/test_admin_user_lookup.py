"""GET /users/by-email and `admin_role` on PATCH /users/{id} (api.md §9.1)."""

from __future__ import annotations

from typing import Any

from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld
from tests.http.admin.test_admin_schemas import problems
from tests.http.vm_helpers import user_of
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)


async def _status(
    world: AdminWorld, method: str, path: str, key: NostrKey = ROOT, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def test_by_email_matches_trimmed_any_case(world: AdminWorld) -> None:
    uid = await world.user.user_id(ALICE)
    await world.ok("PATCH", f"/users/{uid}", json={"email": "Alice@Example.com"})
    found = await world.ok("GET", "/users/by-email?email=%20alice@EXAMPLE.com%20", VIEWER)
    assert found["data"]["id"] == uid and found["data"]["pubkey"] == ALICE.pubkey_hex
    doc = await world.ok("GET", "/openapi.json", signed=False)
    schema = doc["paths"]["/api/admin/v1/users/by-email"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    assert problems(found, schema) == []
    assert await _status(world, "GET", "/users/by-email?email=bob@example.com") == (
        404,
        {"error": "User not found"},
    )
    assert (await _status(world, "GET", "/users/by-email"))[0] == 400
    assert (await _status(world, "GET", "/users/by-email?email=%20"))[0] == 400
    assert await _status(world, "GET", "/users/by-email?email=a@b.c", NOBODY) == (
        403,
        {"error": "Insufficient permissions for users::view"},
    )


async def _role_names(world: AdminWorld, uid: int) -> list[str]:
    return [r["role"]["name"] for r in (await world.ok("GET", f"/users/{uid}/roles"))["data"]]


async def test_admin_role_replaces_every_role_in_one_step(world: AdminWorld) -> None:
    uid = await world.user.user_id(ALICE)
    extra = (
        await world.ok("POST", "/roles", json={"name": "extra", "permissions": ["hosts::view"]})
    )["data"]
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": extra["id"]})
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": world.role_ids["super_admin"]})
    body = {"admin_role": "read_only", "billing_name": "Alice"}
    assert await world.ok("PATCH", f"/users/{uid}", json=body) == {"data": None}
    assert await _role_names(world, uid) == ["read_only"]
    info = (await world.ok("GET", f"/users/{uid}"))["data"]
    assert info["billing_name"] == "Alice" and info["is_admin"] is True
    [assignment] = (await world.ok("GET", f"/users/{uid}/roles"))["data"]
    assert assignment["assigned_by"] == (await user_of(world.api, ROOT)).id


async def test_admin_role_refusals_change_nothing(world: AdminWorld) -> None:
    uid = await world.user.user_id(ALICE)
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": world.role_ids["read_only"]})
    body = {"admin_role": "nope", "billing_name": "changed"}
    assert await _status(world, "PATCH", f"/users/{uid}", json=body) == (
        400,
        {"error": "Invalid admin role specified"},
    )
    assert await _role_names(world, uid) == ["read_only"]
    assert (await world.ok("GET", f"/users/{uid}"))["data"]["billing_name"] is None
    root = (await user_of(world.api, ROOT)).id
    assert await _status(world, "PATCH", f"/users/{root}", json={"admin_role": "read_only"}) == (
        422,
        {"error": "Super admins cannot revoke their own super_admin role"},
    )
    assert await _role_names(world, root) == ["super_admin"]
    assert (
        await _status(world, "PATCH", f"/users/{uid}", VIEWER, json={"admin_role": "read_only"})
    ) == (403, {"error": "Insufficient permissions for users::update"})
    assert (await _status(world, "PATCH", "/users/999", json={"admin_role": "read_only"}))[0] == 404
