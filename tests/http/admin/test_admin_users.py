"""Listing every user (api.md §9.1, `GET /users` without `search`)."""

from __future__ import annotations

from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld
from tests.http.admin.test_admin_roles import _schema
from tests.http.admin.test_admin_schemas import problems
from tests.http.vm_helpers import order
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)


async def test_users_list_every_user_by_id_in_pages(world: AdminWorld) -> None:
    await order(world.user, ALICE)
    ids = [await world.user.user_id(k) for k in (ROOT, VIEWER, NOBODY, ALICE)]
    page = await world.ok("GET", "/users", VIEWER)
    assert problems(page, await _schema(world, "/users")) == []
    assert [u["id"] for u in page["data"]] == sorted(ids)
    assert (page["total"], page["limit"], page["offset"]) == (4, 50, 0)
    by_key = {u["pubkey"]: u for u in page["data"]}
    alice = by_key[ALICE.pubkey_hex]
    assert (alice["vm_count"], alice["is_admin"]) == (1, False)
    assert by_key[ROOT.pubkey_hex]["is_admin"] is True
    second = await world.ok("GET", "/users?limit=2&offset=1&search=")
    assert [u["id"] for u in second["data"]] == sorted(ids)[1:3] and second["total"] == 4
    assert (await world.ok("GET", "/users?offset=10"))["data"] == []


async def test_users_list_needs_users_view(world: AdminWorld) -> None:
    resp = await world.call("GET", "/users", NOBODY)
    assert resp.status == 403
    assert await resp.json() == {"error": "Insufficient permissions for users::view"}
    assert (await world.call("GET", "/users?limit=x")).status == 400
