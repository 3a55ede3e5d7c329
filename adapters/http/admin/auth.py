"""Admin auth (api.md §4.2): NIP-98 and user upsert, the caller's permissions, `require`."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import attrs
from aiohttp import web

from adapters.http.auth import Handler, authenticate, mark_authenticated
from adapters.http.context import services
from adapters.http.envelope import HttpError
from app.admin.permissions import denied_message, permission_text
from domain.enums import AdminAction, AdminResource
from domain.model import User
from ports.storage import Permission

#: Set on admin handlers: the permission they need (None: any signed-in user).
PERMISSION_MARK = "lnvps_admin_permission"


@attrs.frozen
class Admin:
    """The signed-in caller and the permissions of their unexpired role assignments."""

    user: User
    permissions: frozenset[Permission]

    def check(self, resource: AdminResource, action: AdminAction) -> None:
        """403 `Insufficient permissions for <resource>::<action>` (D19: not the reference 500)."""
        if (resource, action) not in self.permissions:
            raise HttpError(403, denied_message(resource, action))


AdminHandler = Callable[[web.Request, Admin], Awaitable[web.StreamResponse]]
_ADMIN = web.RequestKey("lnvps.admin", Admin)


async def authenticate_admin(request: web.Request) -> Admin:
    """NIP-98 (401/403 per §4.1), upsert the user, then load the permission set once."""
    if _ADMIN in request:
        return request[_ADMIN]
    user = await authenticate(request)
    svc = services(request)
    async with svc.uow_factory() as uow:
        permissions = await uow.roles.permissions_of(user.id, svc.clock.now())
    admin = Admin(user, permissions)
    request[_ADMIN] = admin
    return admin


def require(
    resource: AdminResource | None, action: AdminAction | None = None
) -> Callable[[AdminHandler], Handler]:
    """Decorator: authenticate, then check `resource::action` before the handler runs.

    `require(None)` only authenticates (`GET /me/roles`).
    """

    def wrap(handler: AdminHandler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            admin = await authenticate_admin(request)
            if resource is not None and action is not None:
                admin.check(resource, action)
            return await handler(request, admin)

        needed = None if resource is None or action is None else (resource, action)
        setattr(wrapper, PERMISSION_MARK, needed)
        return mark_authenticated(wrapper)

    return wrap


def permission_of(handler: object) -> str | None:
    """`resource::action` a handler made by `require` checks, for the OpenAPI summary."""
    needed = getattr(handler, PERMISSION_MARK, None)
    return None if needed is None else permission_text(*needed)
