"""A role given for a day is not given on for longer: its holder cannot copy its permissions
into a role (their own or another's, new or old) nor assign them past its end, and nobody adds
permissions to a role they hold (r7 #3)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from adapters.http.envelope import format_time
from tests.http.admin.adminapp import AdminWorld
from tests.http.vm_helpers import user_of
from tests.nostr_signing import NostrKey

CAROL = NostrKey.from_seed(79)
DAVE = NostrKey.from_seed(80)
OWN_ROLE = {"error": "Admins cannot add permissions to a role they hold: another admin must"}
NOT_HELD = {"error": "Cannot grant permissions you do not hold: users::update, payments::update"}


async def _answer(
    world: AdminWorld, method: str, path: str, key: NostrKey, **kw: Any
) -> tuple[int, Any]:
    resp = await world.call(method, path, key, **kw)
    return resp.status, await resp.json()


async def _role(world: AdminWorld, name: str, *permissions: str) -> int:
    body = {"name": name, "permissions": list(permissions)}
    role_id: int = (await world.ok("POST", "/roles", json=body))["data"]["id"]
    return role_id


async def _permissions(world: AdminWorld, role_id: int) -> list[str]:
    found: list[str] = (await world.ok("GET", f"/roles/{role_id}"))["data"]["permissions"]
    return sorted(found)


async def _carol_on_call(world: AdminWorld) -> tuple[int, int, int, str]:
    """CAROL holds `role-editor` (roles::*, users::view) for ever and `on-call` (payments::update,
    users::update) for a day: (her id, role-editor's id, on-call's id, the day's end)."""
    base = await _role(
        world, "role-editor", "roles::view", "roles::create", "roles::update", "users::view"
    )
    temp = await _role(world, "on-call", "payments::update", "users::update")
    carol = (await user_of(world.api, CAROL)).id
    until = format_time(world.api.clock.now() + timedelta(days=1))
    await world.ok("POST", f"/users/{carol}/roles", json={"role_id": base})
    await world.ok("POST", f"/users/{carol}/roles", json={"role_id": temp, "expires_at": until})
    return carol, base, temp, until


async def test_a_day_long_grant_is_not_copied_into_ones_permanent_role(world: AdminWorld) -> None:
    carol, base, _, _ = await _carol_on_call(world)
    wider = ["roles::view", "roles::create", "roles::update", "users::view"]
    wider += ["payments::update", "users::update"]
    patch = {"permissions": wider}
    assert await _answer(world, "PATCH", f"/roles/{base}", CAROL, json=patch) == (403, NOT_HELD)
    assert await _permissions(world, base) == [
        "roles::create",
        "roles::update",
        "roles::view",
        "users::view",
    ]
    world.api.clock.advance(timedelta(days=2))
    async with world.api.store() as uow:
        held = await uow.roles.permissions_of(carol, world.api.clock.now())
    assert len(held) == 4  # role-editor's only: the day is over


async def test_nor_into_a_new_role_or_another_admins(world: AdminWorld) -> None:
    await _carol_on_call(world)
    other = await _role(world, "accomplice", "users::view")
    body = {"name": "copy", "permissions": ["payments::update", "users::update"]}
    assert await _answer(world, "POST", "/roles", CAROL, json=body) == (403, NOT_HELD)
    patch = {"permissions": ["users::view", "payments::update", "users::update"]}
    assert await _answer(world, "PATCH", f"/roles/{other}", CAROL, json=patch) == (403, NOT_HELD)
    assert await _permissions(world, other) == ["users::view"]
    # what she holds for ever she may still put in a role that is not hers
    await world.ok("PATCH", f"/roles/{other}", CAROL, json={"permissions": ["roles::view"]})
    assert await _permissions(world, other) == ["roles::view"]


async def test_nor_assigned_past_its_end(world: AdminWorld) -> None:
    _, _, temp, until = await _carol_on_call(world)
    dave = (await user_of(world.api, DAVE)).id
    path = f"/users/{dave}/roles"
    later = format_time(world.api.clock.now() + timedelta(days=30))
    for body in ({"role_id": temp}, {"role_id": temp, "expires_at": later}):
        status, answer = await _answer(world, "POST", path, CAROL, json=body)
        assert (status, answer) == (403, NOT_HELD), body
    patch = {"admin_role": "on-call"}
    assert await _answer(world, "PATCH", f"/users/{dave}", CAROL, json=patch) == (403, NOT_HELD)
    assert (await world.ok("GET", path))["data"] == []
    # within her own day she may hand it on: it ends when hers does
    await world.ok("POST", path, CAROL, json={"role_id": temp, "expires_at": until})
    assert [r["expires_at"] for r in (await world.ok("GET", path))["data"]] == [until]


async def test_nobody_adds_permissions_to_a_role_they_hold(world: AdminWorld) -> None:
    """Even permissions held for ever elsewhere: widening one's own role is a self-grant;
    taking permissions away from it, or renaming it, is not."""
    carol, base, _, _ = await _carol_on_call(world)
    billing = await _role(world, "billing", "payments::view")
    await world.ok("POST", f"/users/{carol}/roles", json={"role_id": billing})
    patch = {"permissions": ["roles::view", "roles::update", "users::view", "payments::view"]}
    assert await _answer(world, "PATCH", f"/roles/{base}", CAROL, json=patch) == (403, OWN_ROLE)
    narrower = {"name": "editor", "permissions": ["roles::view", "roles::update"]}
    await world.ok("PATCH", f"/roles/{base}", CAROL, json=narrower)
    assert await _permissions(world, base) == ["roles::update", "roles::view"]
    # another admin may widen it
    await world.ok("PATCH", f"/roles/{base}", json=patch)
    assert "payments::view" in await _permissions(world, base)
