"""Admin user routes (api.md §9.1): get and update one user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.http.admin import schemas as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, NULL, add, body_str
from adapters.http.admin.views import user_json
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import json_object, optional_bool, path_id
from app.admin.users import BOOL_FIELDS, TEXT_FIELDS, update_user
from app.billing.errors import UserNotFound
from domain.enums import AdminAction, AdminResource
from domain.errors import DomainError

_USERS = AdminResource.USERS


@require(_USERS, AdminAction.VIEW)
async def get_user(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    async with svc.uow_factory() as uow:
        user = await uow.users.get(path_id(request))
        if user is None:
            raise UserNotFound("User not found")
        vms = await uow.vms.list_by_user(user.id, 1, 0)
        is_admin = await uow.roles.is_admin(user.id, svc.clock.now())
    return data_response(user_json(user, vms.total, is_admin))


@require(_USERS, AdminAction.UPDATE)
async def patch_user(request: web.Request, admin: Admin) -> web.StreamResponse:
    """AdminUserUpdateRequest; `notes`/`status` ignored; `admin_role` refused (422) until
    storage can find a role by name (assign by id with POST /users/{id}/roles)."""
    body = await json_object(request)
    if body.get("admin_role") is not None:
        raise DomainError("admin_role is not supported here; use POST /users/{id}/roles")
    changes: dict[str, Any] = {n: body_str(body, n) for n in (*TEXT_FIELDS, "email",
                                                                "country_code")}
    changes.update({n: optional_bool(body, n) for n in BOOL_FIELDS})
    await update_user(services(request).uow_factory, path_id(request), changes)
    return data_response(None)


def add_admin_user_routes(table: RouteTable) -> None:
    add(table, "GET", f"/users/{ID}", get_user, "One user (AdminUserInfo)", response=sch.USER)
    add(table, "PATCH", f"/users/{ID}", patch_user, "Update a user; null leaves a field",
        request={"type": "object"}, response=NULL)
