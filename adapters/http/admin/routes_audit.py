"""Admin audit trail route (ours; api.md §9 has none): GET /audit, guarded by `audit::view`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import add, query_uint
from adapters.http.context import services
from adapters.http.envelope import format_time, page_response, parse_page
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.views_schema import DATETIME, STRING, U64, nullable, obj
from domain.enums import AdminAction, AdminResource
from domain.model import AdminAudit

AUDIT: Schema = obj(
    {
        "id": U64,
        "user_id": U64,
        "at": DATETIME,
        "method": STRING,
        "path": STRING,
        "resource": STRING,
        "resource_id": nullable(STRING),
        "summary": {},
        "status": {"type": "integer"},
    }
)


def audit_json(entry: AdminAudit) -> dict[str, Any]:
    return {
        "id": entry.id,
        "user_id": entry.user_id,
        "at": format_time(entry.at),
        "method": entry.method,
        "path": entry.path,
        "resource": entry.resource,
        "resource_id": entry.resource_id,
        "summary": entry.summary,
        "status": entry.status,
    }


@require(AdminResource.AUDIT, AdminAction.VIEW)
async def list_entries(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    found = await services(request).admin.list_audit(
        page.limit, page.offset, query_uint(request.query, "user_id")
    )
    return page_response([audit_json(e) for e in found.items], found.total, page)


def add_admin_audit_routes(table: RouteTable) -> None:
    add(
        table,
        "GET",
        "/audit",
        list_entries,
        "Admin changes, newest first: who, what, outcome status",
        response=AUDIT,
        query=(
            QueryParam(
                "user_id",
                {"type": "integer", "minimum": 0},
                description="only this admin's changes",
            ),
        ),
        paginated=True,
    )
