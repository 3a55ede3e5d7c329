"""Admin role routes (api.md §9.2): create a role, assign and revoke a user's role."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import schemas as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, NULL, add, body_str
from adapters.http.context import services
from adapters.http.envelope import data_response, format_time, parse_time
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import json_object, path_id, required_int
from app.admin.permissions import parse_permission, permission_text
from app.admin.users import assign_role, create_role, revoke_role
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput

_ROLES = AdminResource.ROLES
_USERS = AdminResource.USERS


@require(_ROLES, AdminAction.CREATE)
async def create(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    name = (body_str(body, "name") or "").strip()
    if not name:
        raise InvalidInput("Role name cannot be empty")
    raw = body.get("permissions")
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise InvalidInput("permissions must be a list of `resource::action` strings")
    permissions = [parse_permission(p) for p in raw]
    svc = services(request)
    role = await create_role(
        svc.uow_factory, svc.clock, name=name, description=body_str(body, "description"),
        permissions=permissions,
    )
    return data_response({
        "id": role.id, "name": role.name, "description": role.description,
        "is_system_role": role.is_system_role,
        "permissions": [permission_text(*p) for p in dict.fromkeys(permissions)],
        "user_count": 0, "created_at": format_time(role.created_at),
        "updated_at": format_time(role.updated_at),
    })


@require(_USERS, AdminAction.UPDATE)
async def assign(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    expires = body.get("expires_at")
    if expires is not None and not isinstance(expires, str):
        raise InvalidInput("expires_at must be an RFC 3339 timestamp")
    svc = services(request)
    await assign_role(
        svc.uow_factory, svc.clock, user_id=path_id(request),
        role_id=required_int(body, "role_id"), assigned_by=admin.user.id,
        expires_at=None if expires is None else parse_time(expires),
    )
    return data_response(None)


@require(_USERS, AdminAction.UPDATE)
async def revoke(request: web.Request, admin: Admin) -> web.StreamResponse:
    await revoke_role(
        services(request).uow_factory, user_id=path_id(request),
        role_id=path_id(request, "role_id"), by_user_id=admin.user.id,
    )
    return data_response(None)


def add_admin_role_routes(table: RouteTable) -> None:
    add(table, "POST", "/roles", create, "Create a role with its permissions (atomic)",
        request={"type": "object", "required": ["name", "permissions"],
                 "properties": {"name": {"type": "string"},
                                "description": {"type": ["string", "null"]},
                                "permissions": {"type": "array",
                                                "items": {"type": "string"}}}},
        response=sch.ROLE)
    add(table, "POST", f"/users/{ID}/roles", assign, "Assign a role (expires_at stored)",
        request={"type": "object", "required": ["role_id"],
                 "properties": {"role_id": {"type": "integer"},
                                "expires_at": {"type": ["string", "null"],
                                               "format": "date-time"}}},
        response=NULL)
    add(table, "DELETE", f"/users/{ID}/roles/" + r"{role_id:\d+}", revoke,
        "Revoke a role", response=NULL)
