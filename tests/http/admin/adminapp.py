"""An admin API test app over the user test app's memory services, with seeded admin roles.

`admin_world()` yields an `AdminWorld`: `user` (ApiClient of the user API, to order and pay
VMs), `admin` (ApiClient of the admin app, same services, real NIP-98 signing), and keys
`ROOT` (super_admin), `VIEWER` (read_only) and `NOBODY` (no role).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from domain.enums import AdminAction, AdminResource
from domain.model import AdminRole, RoleAssignment, RolePermission
from tests.http.apiapp import ApiApp, ApiClient, api_client
from tests.http.vm_helpers import build
from tests.nostr_signing import NostrKey

ROOT = NostrKey.from_seed(31)
VIEWER = NostrKey.from_seed(32)
NOBODY = NostrKey.from_seed(33)
#: the seeded system roles (api.md §4.2), by name: their permission sets.
ROLES: dict[str, set[tuple[AdminResource, AdminAction]]] = {
    "super_admin": {(r, a) for r in AdminResource for a in AdminAction},
    "read_only": {(r, AdminAction.VIEW) for r in AdminResource if r <= 16},
}


@attrs.frozen
class AdminWorld:
    api: ApiApp
    user: ApiClient
    admin: ApiClient
    role_ids: dict[str, int]

    async def call(self, method: str, path: str, key: NostrKey = ROOT, **kw: Any) -> Any:
        return await self.admin.call(method, "/api/admin/v1" + path, key=key, **kw)

    async def ok(self, method: str, path: str, key: NostrKey = ROOT, **kw: Any) -> Any:
        """The JSON body of a 200 answer."""
        resp = await self.call(method, path, key, **kw)
        assert resp.status == 200, (resp.status, await resp.text())
        return await resp.json()


async def seed_roles(api: ApiApp) -> dict[str, int]:
    """super_admin (id 1) and read_only, granted to ROOT and VIEWER."""
    now = api.clock.now()
    ids: dict[str, int] = {}
    async with api.store() as uow:
        for name, grants in ROLES.items():
            role = await uow.roles.add_role(
                AdminRole(id=0, name=name, created_at=now, updated_at=now, is_system_role=True)
            )
            ids[name] = role.id
            for resource, action in sorted(grants):
                await uow.roles.add_permission(
                    RolePermission(
                        id=0, role_id=role.id, resource=resource, action=action, created_at=now
                    )
                )
        for key, name in ((ROOT, "super_admin"), (VIEWER, "read_only")):
            user = await uow.users.get_or_create_by_pubkey(key.pubkey, now)
            await uow.roles.assign(
                RoleAssignment(id=0, user_id=user.id, role_id=ids[name], assigned_at=now)
            )
        await uow.commit()
    return ids


@asynccontextmanager
async def admin_world(**build_kw: Any) -> AsyncIterator[AdminWorld]:
    """`build_kw` go to the user test app (`rails=[…]` adds payment rails, for example)."""
    api = build(**build_kw)
    role_ids = await seed_roles(api)
    async with api_client(api) as user_client:
        app = build_admin_app(api.services)
        async with TestClient(TestServer(app)) as client:
            yield AdminWorld(api, user_client, ApiClient(client, api), role_ids)
