"""Admin role edits (api.md §9.2): PATCH and DELETE `/roles/{id}`; system roles are refused."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, NULL, TEXT_LIMIT, TEXT_SCHEMA, add, body_str
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import json_object, path_id
from app.admin.permissions import parse_permission
from app.admin.role_changes import MAX_ROLE_NAME
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput
from ports.storage import Permission

_ROLES = AdminResource.ROLES


def _permissions(raw: object) -> list[Permission] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(p, str) for p in raw):
        raise InvalidInput("permissions must be a list of `resource::action` strings")
    return [parse_permission(p) for p in raw]


@require(_ROLES, AdminAction.UPDATE)
async def patch_role(request: web.Request, admin: Admin) -> web.StreamResponse:
    """`name`, `description`, `permissions` (the whole set); absent or null leaves one as is.
    Adding a permission the caller does not hold without an end date, or adding any to a
    role the caller holds, is 403."""
    body = await json_object(request)
    svc = services(request)
    await svc.admin.update_role(
        role_id=path_id(request),
        name=body_str(body, "name", MAX_ROLE_NAME),
        description=body_str(body, "description", TEXT_LIMIT, multiline=True),
        permissions=_permissions(body.get("permissions")),
        caller=admin.permissions,
        by_user_id=admin.user.id,
    )
    return data_response(None)


@require(_ROLES, AdminAction.DELETE)
async def remove_role(request: web.Request, admin: Admin) -> web.StreamResponse:
    await services(request).admin.delete_role(path_id(request))
    return data_response(None)


def add_admin_role_change_routes(table: RouteTable) -> None:
    add(
        table,
        "PATCH",
        f"/roles/{ID}",
        patch_role,
        "Update a non-system role; `permissions` replaces the whole set",
        request=f.patch_body(
            {
                "name": f.text_schema(MAX_ROLE_NAME, nullable=True),
                "description": TEXT_SCHEMA,
                "permissions": {**f.PERMISSIONS_SCHEMA, "type": ["array", "null"]},
            }
        ),
        response=NULL,
    )
    add(
        table,
        "DELETE",
        f"/roles/{ID}",
        remove_role,
        "Delete a non-system role no user holds",
        response=NULL,
    )
