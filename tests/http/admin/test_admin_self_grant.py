"""Nobody assigns or re-dates their own roles: a role given for a day ends after a day, whatever
its holder sends (`POST /users/{id}/roles` or `PATCH /users/{id}` with `admin_role`); another
admin still may, and a PATCH naming a role keeps the end date its assignment has."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from adapters.http.envelope import format_time
from tests.http.admin.adminapp import ROOT, AdminWorld
from tests.http.vm_helpers import user_of
from tests.nostr_signing import NostrKey

TEMP = NostrKey.from_seed(41)
SELF = {"error": "Admins cannot assign or re-date their own roles: another admin must"}


async def _answer(
    world: AdminWorld, method: str, path: str, key: NostrKey, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def _roles(world: AdminWorld, uid: int) -> list[tuple[str, str | None]]:
    found = (await world.ok("GET", f"/users/{uid}/roles"))["data"]
    return [(r["role"]["name"], r["expires_at"]) for r in found]


async def _one_day_support(world: AdminWorld) -> tuple[int, int, str]:
    """ROOT creates `support` (users::view, users::update) and gives it to TEMP for a day:
    (TEMP's user id, the role's id, its end date as sent)."""
    role = await world.ok(
        "POST", "/roles", json={"name": "support", "permissions": ["users::view", "users::update"]}
    )
    role_id = role["data"]["id"]
    temp = (await user_of(world.api, TEMP)).id
    until = format_time(world.api.clock.now() + timedelta(days=1))
    await world.ok("POST", f"/users/{temp}/roles", json={"role_id": role_id, "expires_at": until})
    return temp, role_id, until


async def _works_after_a_month(world: AdminWorld) -> bool:
    world.api.clock.advance(timedelta(days=30))
    status: int = (await world.call("GET", "/users", TEMP)).status
    return status == 200


async def test_the_holder_of_a_one_day_role_cannot_re_date_it(world: AdminWorld) -> None:
    temp, role_id, until = await _one_day_support(world)
    path = f"/users/{temp}/roles"
    later = format_time(world.api.clock.now() + timedelta(days=365))
    for body in ({"role_id": role_id}, {"role_id": role_id, "expires_at": later}):
        assert await _answer(world, "POST", path, TEMP, json=body) == (403, SELF)
    assert await _roles(world, temp) == [("support", until)]
    assert not await _works_after_a_month(world)


async def test_nor_grant_themselves_another_role_within_their_powers(world: AdminWorld) -> None:
    temp, _, until = await _one_day_support(world)
    viewer = await world.ok("POST", "/roles", json={"name": "v", "permissions": ["users::view"]})
    body = {"role_id": viewer["data"]["id"]}
    assert await _answer(world, "POST", f"/users/{temp}/roles", TEMP, json=body) == (403, SELF)
    patch = {"admin_role": "v", "billing_name": "Temp"}
    assert await _answer(world, "PATCH", f"/users/{temp}", TEMP, json=patch) == (403, SELF)
    assert await _roles(world, temp) == [("support", until)]
    assert (await world.ok("GET", f"/users/{temp}"))["data"]["billing_name"] is None


async def test_naming_ones_own_role_in_a_patch_keeps_its_end_date(world: AdminWorld) -> None:
    """The holder's PATCH naming the role they hold (a form sends the current role) is
    accepted and changes no role: the reference assigned it afresh, without an end date."""
    temp, _, until = await _one_day_support(world)
    patch = {"admin_role": "support", "billing_name": "Temp"}
    await world.ok("PATCH", f"/users/{temp}", TEMP, json=patch)
    assert await _roles(world, temp) == [("support", until)]
    assert (await world.ok("GET", f"/users/{temp}"))["data"]["billing_name"] == "Temp"
    assert not await _works_after_a_month(world)


async def test_another_admins_patch_keeps_the_end_date_and_a_re_date_is_theirs(
    world: AdminWorld,
) -> None:
    temp, role_id, until = await _one_day_support(world)
    await world.ok("PATCH", f"/users/{temp}", json={"admin_role": "support"})
    assert await _roles(world, temp) == [("support", until)]
    # another admin may still make it permanent, by re-dating it
    await world.ok("POST", f"/users/{temp}/roles", json={"role_id": role_id})
    assert await _roles(world, temp) == [("support", None)]
    assert await _works_after_a_month(world)


async def test_an_expired_role_named_in_a_patch_is_given_again(world: AdminWorld) -> None:
    """Expired, it is no assignment to keep: another admin's PATCH gives it again (no end
    date, as before); its former holder's own PATCH is a self-grant, refused."""
    temp, _, _ = await _one_day_support(world)
    world.api.clock.advance(timedelta(days=2))
    patch = {"admin_role": "support"}
    root = (await user_of(world.api, ROOT)).id
    assert await _answer(world, "PATCH", f"/users/{temp}", TEMP, json=patch) == (
        403,
        {"error": "Insufficient permissions for users::update"},
    )
    await world.ok("PATCH", f"/users/{temp}", json=patch)
    assert await _roles(world, temp) == [("support", None)]
    # a super admin naming their own live super_admin changes nothing, and is accepted
    await world.ok("PATCH", f"/users/{root}", json={"admin_role": "super_admin"})
    assert await _roles(world, root) == [("super_admin", None)]


async def test_a_holder_may_still_give_up_their_own_role(world: AdminWorld) -> None:
    temp, role_id, _ = await _one_day_support(world)
    await world.ok("DELETE", f"/users/{temp}/roles/{role_id}", TEMP)
    assert await _roles(world, temp) == []
