"""Admin user routes (api.md §9.1): list or find by pubkey, get and update one user."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, NULL, add, body_str, stored
from adapters.http.admin.views import user_json
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.vm_params import json_object, optional_bool, path_id
from app.account.profile import EMAIL_LIMIT, FIELD_LIMITS
from app.admin.role_changes import MAX_ROLE_NAME
from app.admin.users import BOOL_FIELDS, TEXT_FIELDS
from app.billing.errors import UserNotFound
from domain.enums import AdminAction, AdminResource
from domain.errors import InvalidInput
from domain.model import User

_USERS = AdminResource.USERS
#: the `users` column widths of the text fields an admin sets (`billing_city` → `city`).
LIMITS = {
    **{n: FIELD_LIMITS[n.removeprefix("billing_")] for n in TEXT_FIELDS},
    "email": EMAIL_LIMIT,
    "country_code": 3,
}


async def _info(request: web.Request, user: User) -> dict[str, Any]:
    svc = services(request)
    async with svc.uow_factory() as uow:
        vms = await uow.vms.list_by_user(user.id, 1, 0)
        is_admin = await uow.roles.is_admin(user.id, svc.clock.now())
    return user_json(user, vms.total, is_admin)


@require(_USERS, AdminAction.VIEW)
async def list_users(request: web.Request, admin: Admin) -> web.StreamResponse:
    """`search` (hex pubkey, exact) → a page of 0 or 1 user; without it, every user by id."""
    page = parse_page(request.query)
    search = request.query.get("search", "").strip()
    if not search:
        svc = services(request)
        users = await svc.admin.list_users(page.limit, page.offset)
        return page_response(
            [user_json(u.user, u.vm_count, u.is_admin) for u in users.items], users.total, page
        )
    try:
        pubkey = bytes.fromhex(search)
    except ValueError:
        raise InvalidInput("search must be a hex pubkey") from None
    async with services(request).uow_factory() as uow:
        user = await uow.users.get_by_pubkey(pubkey)
    found = [] if user is None else [await _info(request, user)]
    return page_response(found[page.offset : page.offset + page.limit], len(found), page)


@require(_USERS, AdminAction.VIEW)
async def get_user(request: web.Request, admin: Admin) -> web.StreamResponse:
    user = await stored(request, lambda uow: uow.users, UserNotFound("User not found"))
    return data_response(await _info(request, user))


@require(_USERS, AdminAction.VIEW)
async def get_by_email(request: web.Request, admin: Admin) -> web.StreamResponse:
    """The user whose address hashes like `email` (trimmed, lower-cased)."""
    email = request.query.get("email")
    if email is None:
        raise InvalidInput("email is required")
    user = await services(request).admin.user_by_email(email)
    return data_response(await _info(request, user))


@require(_USERS, AdminAction.UPDATE)
async def patch_user(request: web.Request, admin: Admin) -> web.StreamResponse:
    """AdminUserUpdateRequest; `notes`/`status` ignored; `admin_role` names the one role the
    user keeps (every other assignment is revoked), in the same transaction as the fields."""
    body = await json_object(request)
    changes: dict[str, Any] = {n: body_str(body, n, limit) for n, limit in LIMITS.items()}
    changes.update({n: optional_bool(body, n) for n in BOOL_FIELDS})
    svc = services(request)
    await svc.admin.update_user_and_role(
        user_id=path_id(request),
        changes=changes,
        admin_role=body_str(body, "admin_role", MAX_ROLE_NAME),
        by_user_id=admin.user.id,
        caller=admin.permissions,
    )
    return data_response(None)


def add_admin_user_routes(table: RouteTable) -> None:
    search = QueryParam("search", description="hex pubkey, exact; without it every user")
    add(
        table,
        "GET",
        "/users",
        list_users,
        "Users by id, or the one with a pubkey",
        response=sch.USER,
        query=(search,),
        paginated=True,
    )
    add(
        table,
        "GET",
        "/users/by-email",
        get_by_email,
        "The user with this e-mail address",
        response=sch.USER,
        query=(QueryParam("email", description="required; trimmed, any case"),),
    )
    add(table, "GET", f"/users/{ID}", get_user, "One user (AdminUserInfo)", response=sch.USER)
    add(
        table,
        "PATCH",
        f"/users/{ID}",
        patch_user,
        "Update a user; null leaves a field",
        request=f.patch_body(
            {
                **{n: f.text_schema(limit, nullable=True) for n, limit in LIMITS.items()},
                **{n: {"type": ["boolean", "null"]} for n in BOOL_FIELDS},
                "admin_role": f.text_schema(MAX_ROLE_NAME, nullable=True),
            }
        ),
        response=NULL,
    )
