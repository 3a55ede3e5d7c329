"""Taking roles away: only a caller who could grant a role may revoke, replace or re-date it,
an end date must be in the future, and the last live super admin is never removed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from adapters.http.envelope import format_time
from app.admin.permissions import permission_text
from domain.enums import AdminAction, AdminResource
from tests.http.admin.adminapp import ROOT, VIEWER, AdminWorld
from tests.http.vm_helpers import user_of
from tests.nostr_signing import NostrKey

USER_MANAGER = NostrKey.from_seed(45)
DEPUTY = NostrKey.from_seed(46)
BOB = NostrKey.from_seed(47)
EVERYTHING = [permission_text(r, a) for r in AdminResource for a in AdminAction]
LAST = {"error": "Cannot remove the last super admin: grant super_admin to another user first"}
SELF = {"error": "Admins cannot assign or re-date their own roles: another admin must"}


async def _holder(world: AdminWorld, key: NostrKey, name: str, *permissions: str) -> int:
    """The key's user id, given a new role `name` with exactly these permissions."""
    role = await world.ok("POST", "/roles", json={"name": name, "permissions": permissions})
    uid = (await user_of(world.api, key)).id
    await world.ok("POST", f"/users/{uid}/roles", json={"role_id": role["data"]["id"]})
    return uid


async def _user_manager(world: AdminWorld) -> int:
    return await _holder(world, USER_MANAGER, "user_manager", "users::view", "users::update")


async def _answer(
    world: AdminWorld, method: str, path: str, key: NostrKey, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def _roles(world: AdminWorld, uid: int) -> list[tuple[str, str | None]]:
    found = (await world.ok("GET", f"/users/{uid}/roles"))["data"]
    return [(r["role"]["name"], r["expires_at"]) for r in found]


async def _audit(world: AdminWorld) -> list[tuple[str, str, int]]:
    entries = (await world.ok("GET", "/audit?limit=100", VIEWER))["data"]
    return [(e["method"], e["path"], e["status"]) for e in entries]


async def test_a_user_manager_cannot_take_super_admin_away(world: AdminWorld) -> None:
    await _user_manager(world)
    root = (await user_of(world.api, ROOT)).id
    sa = world.role_ids["super_admin"]
    before = await _audit(world)
    status, body = await _answer(world, "DELETE", f"/users/{root}/roles/{sa}", USER_MANAGER)
    assert status == 403
    assert body["error"].startswith("Cannot revoke a role with permissions you do not hold: ")
    assert "hosts::delete" in body["error"]
    patch = {"admin_role": "user_manager", "billing_name": "pwned"}
    status, body = await _answer(world, "PATCH", f"/users/{root}", USER_MANAGER, json=patch)
    assert status == 403 and body["error"].startswith("Cannot revoke a role with permissions")
    soon = format_time(world.api.clock.now() + timedelta(minutes=1))
    redate = {"role_id": sa, "expires_at": soon}
    status, body = await _answer(world, "POST", f"/users/{root}/roles", USER_MANAGER, json=redate)
    assert status == 403 and body["error"].startswith("Cannot grant permissions you do not hold")
    assert await _roles(world, root) == [("super_admin", None)]
    assert (await world.ok("GET", f"/users/{root}"))["data"]["billing_name"] is None
    assert (await world.call("GET", "/roles", ROOT)).status == 200
    audited = await _audit(world)
    assert audited[:3] == [
        ("POST", f"/api/admin/v1/users/{root}/roles", 403),
        ("PATCH", f"/api/admin/v1/users/{root}", 403),
        ("DELETE", f"/api/admin/v1/users/{root}/roles/{sa}", 403),
    ]
    assert audited[3:] == before


async def test_a_user_manager_may_revoke_and_replace_roles_within_their_own_powers(
    world: AdminWorld,
) -> None:
    await _user_manager(world)
    bob = (await user_of(world.api, BOB)).id
    viewer = await world.ok("POST", "/roles", json={"name": "v", "permissions": ["users::view"]})
    hosts = await world.ok("POST", "/roles", json={"name": "h", "permissions": ["hosts::view"]})
    for role in (viewer, hosts):
        await world.ok("POST", f"/users/{bob}/roles", json={"role_id": role["data"]["id"]})
    status, body = await _answer(
        world, "DELETE", f"/users/{bob}/roles/{hosts['data']['id']}", USER_MANAGER
    )
    assert (status, body) == (
        403,
        {"error": "Cannot revoke a role with permissions you do not hold: hosts::view"},
    )
    status, _ = await _answer(
        world, "PATCH", f"/users/{bob}", USER_MANAGER, json={"admin_role": "v"}
    )
    assert status == 403
    assert await _roles(world, bob) == [("v", None), ("h", None)]
    await world.ok("DELETE", f"/users/{bob}/roles/{hosts['data']['id']}")
    await world.ok("PATCH", f"/users/{bob}", USER_MANAGER, json={"admin_role": "user_manager"})
    assert await _roles(world, bob) == [("user_manager", None)]
    mine = (await world.ok("GET", "/me/roles", USER_MANAGER))["data"][0]["role"]["id"]
    await world.ok("DELETE", f"/users/{bob}/roles/{mine}", USER_MANAGER)
    assert await _roles(world, bob) == []


async def test_the_last_live_super_admin_is_never_removed(world: AdminWorld) -> None:
    """DEPUTY holds every permission through a custom role, so only the last-holder rule
    stands between them and removing the only super admin."""
    await _holder(world, DEPUTY, "deputy", *EVERYTHING)
    root = (await user_of(world.api, ROOT)).id
    sa = world.role_ids["super_admin"]
    assert await _answer(world, "DELETE", f"/users/{root}/roles/{sa}", DEPUTY) == (422, LAST)
    patch = {"admin_role": "deputy", "billing_name": "changed"}
    assert await _answer(world, "PATCH", f"/users/{root}", DEPUTY, json=patch) == (422, LAST)
    assert await _roles(world, root) == [("super_admin", None)]
    assert (await world.ok("GET", f"/users/{root}"))["data"]["billing_name"] is None
    assert (await _audit(world))[:2] == [
        ("PATCH", f"/api/admin/v1/users/{root}", 422),
        ("DELETE", f"/api/admin/v1/users/{root}/roles/{sa}", 422),
    ]
    # an expired super_admin assignment is nobody's: it does not make root removable
    bob = (await user_of(world.api, BOB)).id
    soon = format_time(world.api.clock.now() + timedelta(minutes=1))
    await world.ok("POST", f"/users/{bob}/roles", json={"role_id": sa, "expires_at": soon})
    world.api.clock.advance(timedelta(minutes=2))
    assert await _answer(world, "DELETE", f"/users/{root}/roles/{sa}", DEPUTY) == (422, LAST)
    # with a second live super admin, either one may go, then not the other
    await world.ok("POST", f"/users/{bob}/roles", json={"role_id": sa})
    await world.ok("PATCH", f"/users/{root}", DEPUTY, json={"admin_role": "deputy"})
    assert await _roles(world, root) == [("deputy", None)]
    assert await _answer(world, "DELETE", f"/users/{bob}/roles/{sa}", DEPUTY) == (422, LAST)
    assert await _answer(world, "DELETE", f"/users/{bob}/roles/{sa}", ROOT) == (422, LAST)
    assert await _roles(world, bob) == [("super_admin", None)]


async def test_an_end_date_must_be_in_the_future_and_never_ones_own_super_admin(
    world: AdminWorld,
) -> None:
    root = (await user_of(world.api, ROOT)).id
    bob = (await user_of(world.api, BOB)).id
    sa = world.role_ids["super_admin"]
    now = world.api.clock.now()
    path = f"/users/{root}/roles"
    for when in (now - timedelta(days=1), now, "2000-01-01T00:00:00Z"):
        text = when if isinstance(when, str) else format_time(when)
        body = {"role_id": sa, "expires_at": text}
        assert await _answer(world, "POST", path, ROOT, json=body) == (
            400,
            {"error": "expires_at must be in the future"},
        )
        body = {"role_id": world.role_ids["read_only"], "expires_at": text}
        assert (await _answer(world, "POST", f"/users/{bob}/roles", ROOT, json=body))[0] == 400
    later = format_time(now + timedelta(days=30))
    assert await _answer(world, "POST", path, ROOT, json={"role_id": sa, "expires_at": later}) == (
        422,
        {"error": "Super admins cannot put an end date on their own super_admin role"},
    )
    assert await _roles(world, root) == [("super_admin", None)]
    assert await _roles(world, bob) == []
    # nor re-dated by themselves without one (no role is: `test_admin_self_grant`)
    assert await _answer(world, "POST", path, ROOT, json={"role_id": sa}) == (403, SELF)
    await world.ok("POST", f"/users/{bob}/roles", json={"role_id": sa, "expires_at": later})
    assert await _roles(world, bob) == [("super_admin", later)]
    assert await _roles(world, root) == [("super_admin", None)]


async def test_super_admins_cannot_end_date_each_other_into_nobody(world: AdminWorld) -> None:
    """An end date is a revocation that waits: two super admins end-dating each other, or
    one end-dating the other and then revoking them, would leave nobody once it passes."""
    root = (await user_of(world.api, ROOT)).id
    bob = (await user_of(world.api, BOB)).id
    sa = world.role_ids["super_admin"]
    await world.ok("POST", f"/users/{bob}/roles", json={"role_id": sa})
    soon = format_time(world.api.clock.now() + timedelta(minutes=1))
    lasting = {
        "error": "Cannot leave super_admin without a holder that has no end date: grant it "
        "without an end date to another user first"
    }

    await world.ok("POST", f"/users/{bob}/roles", json={"role_id": sa, "expires_at": soon})
    status, body = await _answer(
        world, "POST", f"/users/{root}/roles", BOB, json={"role_id": sa, "expires_at": soon}
    )
    assert (status, body) == (422, lasting)
    status, body = await _answer(world, "DELETE", f"/users/{root}/roles/{sa}", BOB)
    assert (status, body) == (422, lasting)
    status, body = await _answer(
        world, "PATCH", f"/users/{root}", BOB, json={"admin_role": "read_only"}
    )
    assert (status, body) == (422, lasting)
    assert await _roles(world, root) == [("super_admin", None)]

    world.api.clock.advance(timedelta(minutes=2))  # BOB's date passed: ROOT still holds it
    assert (await world.call("GET", "/roles", ROOT)).status == 200
    assert (await world.call("GET", "/roles", BOB)).status == 403


async def test_an_end_date_however_far_is_an_end_date(world: AdminWorld) -> None:
    """Holders without an end date were those still holding it in the year 9000: a super
    admin ending in 9500 counted as one, and could end-date the last one without."""
    root = (await user_of(world.api, ROOT)).id
    bob = (await user_of(world.api, BOB)).id
    sa = world.role_ids["super_admin"]
    far = "9500-01-01T00:00:00Z"
    await world.ok("POST", f"/users/{bob}/roles", json={"role_id": sa, "expires_at": far})
    soon = format_time(world.api.clock.now() + timedelta(minutes=1))
    status, body = await _answer(
        world, "POST", f"/users/{root}/roles", BOB, json={"role_id": sa, "expires_at": soon}
    )
    assert status == 422 and "without a holder that has no end date" in body["error"], body
    assert await _roles(world, root) == [("super_admin", None)]
