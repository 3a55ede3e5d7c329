"""Admin auth and RBAC: NIP-98, 403 per missing permission, OpenAPI equals the served routes."""

from __future__ import annotations

import pytest

from adapters.http.admin.app import admin_route_table, build_admin_app
from adapters.http.openapi import documented_operations, openapi_path, served_operations
from tests.http.admin.adminapp import NOBODY, ROOT, VIEWER, AdminWorld
from tests.http.vm_helpers import paid_vm
from tests.nostr_signing import NostrKey

ALICE = NostrKey.from_seed(21)


async def test_unsigned_request_is_refused_before_rbac(world: AdminWorld) -> None:
    resp = await world.call("GET", "/vms", signed=False)
    assert resp.status in (401, 403)
    assert "error" in await resp.json()


@pytest.mark.parametrize(
    ("key", "method", "path", "status", "permission"),
    [
        (ROOT, "GET", "/vms", 200, None),
        (VIEWER, "GET", "/vms", 200, None),
        (NOBODY, "GET", "/vms", 403, "virtual_machines::view"),
        (VIEWER, "POST", "/vms/{vm}/stop", 403, "virtual_machines::update"),
        (NOBODY, "GET", "/vms/{vm}/payments", 403, "payments::view"),
        (VIEWER, "GET", "/vms/{vm}/payments", 200, None),
        (VIEWER, "PUT", "/vms/{vm}/extend", 403, "virtual_machines::update"),
        (VIEWER, "GET", "/payment_methods", 403, "payment_method_config::view"),
        (ROOT, "GET", "/payment_methods", 200, None),
        (VIEWER, "GET", "/users/{user}", 200, None),
        (VIEWER, "PATCH", "/users/{user}", 403, "users::update"),
        (NOBODY, "GET", "/users/{user}", 403, "users::view"),
        (VIEWER, "GET", "/subscriptions/{sub}", 403, "subscriptions::view"),
        (ROOT, "GET", "/subscriptions/{sub}", 200, None),
        (VIEWER, "POST", "/roles", 403, "roles::create"),
    ],
)
async def test_permission_matrix(
    world: AdminWorld,
    key: NostrKey,
    method: str,
    path: str,
    status: int,
    permission: str | None,
) -> None:
    vm = await paid_vm(world.user, ALICE)
    detail = await world.ok("GET", f"/vms/{vm['id']}")
    ids = {
        "vm": vm["id"],
        "user": detail["data"]["user_id"],
        "sub": detail["data"]["subscription"]["id"],
    }
    body = {"days": 1} if method in ("PUT", "PATCH", "POST") else None
    resp = await world.call(method, path.format(**ids), key, json=body)
    assert resp.status == status, await resp.text()
    if permission is not None:
        assert await resp.json() == {"error": f"Insufficient permissions for {permission}"}


async def test_a_user_without_roles_is_not_admin_and_upserted(world: AdminWorld) -> None:
    resp = await world.call("GET", "/vms", NOBODY)
    assert resp.status == 403
    async with world.api.store() as uow:
        assert await uow.users.get_by_pubkey(NOBODY.pubkey) is not None


async def test_openapi_documents_exactly_the_served_routes(world: AdminWorld) -> None:
    doc = await world.ok("GET", "/openapi.json", signed=False)
    app = build_admin_app(world.api.services)
    assert documented_operations(doc) == served_operations(app)
    assert ("GET", "/api/admin/v1/openapi.json") in documented_operations(doc)
    assert all(p.startswith("/api/admin/v1/") for p in doc["paths"])
    extend = doc["paths"]["/api/admin/v1/vms/{id}/extend"]["put"]
    assert "virtual_machines::update" in extend["summary"]
    assert extend["security"] == [{"nip98": []}]
    table = admin_route_table()
    assert {(r.method, openapi_path(r.path)) for r in table.routes} == documented_operations(doc)


async def test_non_numeric_id_is_a_400_after_auth(world: AdminWorld) -> None:
    resp = await world.call("GET", "/vms/abc")
    assert resp.status == 400 and await resp.json() == {"error": "Invalid id: abc"}
    assert (await world.call("PUT", "/vms/abc/extend", json={"days": 1})).status == 400
    unsigned = await world.call("GET", "/vms/abc", signed=False)
    assert unsigned.status in (401, 403)
