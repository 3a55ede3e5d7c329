"""Admin role routes (api.md §9.2): list, get and create roles; list, assign and revoke a
user's roles; the caller's own roles."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, NULL, TEXT_LIMIT, TEXT_SCHEMA, add, body_str
from adapters.http.admin.views import role_json, user_role_json
from adapters.http.bounds import ID_MIN, ID_SCHEMA
from adapters.http.context import services
from adapters.http.envelope import (
    data_response,
    format_time,
    page_response,
    parse_page,
    parse_time,
)
from adapters.http.openapi import RouteTable, Schema
from adapters.http.views_schema import DATETIME, U64, nullable, obj
from adapters.http.vm_params import json_object, path_id, required_int
from app.admin.permissions import parse_permission, permission_text
from app.admin.role_changes import MAX_ROLE_NAME, check_role_name
from app.admin.role_guard import check_grantable
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput

_ROLES = AdminResource.ROLES
_USERS = AdminResource.USERS
USER_ROLE: Schema = obj(
    {
        "role": sch.ROLE,
        "assigned_by": nullable(U64),
        "assigned_at": DATETIME,
        "expires_at": sch.NULL_TIME,
    }
)
USER_ROLES: Schema = {"type": "array", "items": USER_ROLE}


@require(_ROLES, AdminAction.VIEW)
async def list_all(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    roles = await services(request).admin.list_roles(page.limit, page.offset)
    return page_response([role_json(r) for r in roles.items], roles.total, page)


@require(_ROLES, AdminAction.VIEW)
async def get_one(request: web.Request, admin: Admin) -> web.StreamResponse:
    return data_response(role_json(await services(request).admin.get_role(path_id(request))))


@require(_USERS, AdminAction.VIEW)
async def user_roles(request: web.Request, admin: Admin) -> web.StreamResponse:
    """Every assignment of the user, expired ones included (their `expires_at` shows it)."""
    found = await services(request).admin.roles_of_user(path_id(request))
    return data_response([user_role_json(r) for r in found])


@require(None)
async def my_roles(request: web.Request, admin: Admin) -> web.StreamResponse:
    """The caller's unexpired assignments: `[]` for a non-admin."""
    svc = services(request)
    found = await svc.admin.roles_of_user(admin.user.id, live_at=svc.clock.now())
    return data_response([user_role_json(r) for r in found])


@require(_ROLES, AdminAction.CREATE)
async def create(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    name = (body_str(body, "name", MAX_ROLE_NAME) or "").strip()
    check_role_name(name)
    raw = body.get("permissions")
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise InvalidInput("permissions must be a list of `resource::action` strings")
    permissions = [parse_permission(p) for p in raw]
    check_grantable(admin.permissions, permissions)
    svc = services(request)
    await svc.admin.check_name_free(name)
    role = await svc.admin.create_role(
        name=name,
        description=body_str(body, "description", TEXT_LIMIT, multiline=True),
        permissions=permissions,
        caller=admin.permissions,
        by_user_id=admin.user.id,
    )
    return data_response(
        {
            "id": role.id,
            "name": role.name,
            "description": role.description,
            "is_system_role": role.is_system_role,
            "permissions": [permission_text(*p) for p in dict.fromkeys(permissions)],
            "user_count": 0,
            "created_at": format_time(role.created_at),
            "updated_at": format_time(role.updated_at),
        }
    )


@require(_USERS, AdminAction.UPDATE)
async def assign(request: web.Request, admin: Admin) -> web.StreamResponse:
    body = await json_object(request)
    expires = body.get("expires_at")
    if expires is not None and not isinstance(expires, str):
        raise InvalidInput("expires_at must be an RFC 3339 timestamp")
    svc = services(request)
    role_id = required_int(body, "role_id", minimum=ID_MIN)
    await svc.admin.assign_role(
        user_id=path_id(request),
        role_id=role_id,
        assigned_by=admin.user.id,
        expires_at=None if expires is None else parse_time(expires),
        caller=admin.permissions,
    )
    return data_response(None)


@require(_USERS, AdminAction.UPDATE)
async def revoke(request: web.Request, admin: Admin) -> web.StreamResponse:
    await services(request).admin.revoke_role(
        user_id=path_id(request),
        role_id=path_id(request, "role_id"),
        by_user_id=admin.user.id,
        caller=admin.permissions,
    )
    return data_response(None)


def add_admin_role_routes(table: RouteTable) -> None:
    add(
        table,
        "GET",
        "/me/roles",
        my_roles,
        "The caller's unexpired roles (no permission)",
        response=USER_ROLES,
    )
    add(
        table,
        "GET",
        "/roles",
        list_all,
        "Roles: system roles first, then by name",
        response=sch.ROLE,
        paginated=True,
    )
    add(table, "GET", f"/roles/{ID}", get_one, "One role with its permissions", response=sch.ROLE)
    add(
        table,
        "GET",
        f"/users/{ID}/roles",
        user_roles,
        "A user's role assignments, expired ones included",
        response=USER_ROLES,
    )
    add(
        table,
        "POST",
        "/roles",
        create,
        "Create a role with its permissions (atomic)",
        request={
            "type": "object",
            "required": ["name", "permissions"],
            "properties": {
                "name": f.text_schema(MAX_ROLE_NAME),
                "description": TEXT_SCHEMA,
                "permissions": f.PERMISSIONS_SCHEMA,
            },
        },
        response=sch.ROLE,
    )
    add(
        table,
        "POST",
        f"/users/{ID}/roles",
        assign,
        "Assign or re-date a role (expires_at, if given, in the future)",
        request={
            "type": "object",
            "required": ["role_id"],
            "properties": {
                "role_id": ID_SCHEMA,
                "expires_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
        response=NULL,
    )
    add(
        table,
        "DELETE",
        f"/users/{ID}/roles/" + r"{role_id:\d+}",
        revoke,
        "Revoke a role (never the last live super_admin)",
        response=NULL,
    )
