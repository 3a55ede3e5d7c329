"""The admin OpenAPI document is held equal to the routes, for every route module registered in
ADMIN_API_ROUTES (this part's and any later one): each operation is served and documented, each
names the permission its handler checks, and every write goes through `require` (so RBAC and
the audit trail cover it)."""

from __future__ import annotations

from typing import Any

from adapters.http.admin.app import admin_route_table, build_admin_app
from adapters.http.admin.auth import PERMISSION_MARK
from adapters.http.openapi import documented_operations, openapi_path, served_operations
from tests.http.admin.adminapp import AdminWorld

B = "/api/admin/v1"
#: api.md §0.2 operations of this part, plus our audit read
THIS_PART = {
    ("GET", f"{B}/users/by-email"),
    ("PATCH", f"{B}/users/{{id}}"),
    ("PATCH", f"{B}/roles/{{id}}"),
    ("DELETE", f"{B}/roles/{{id}}"),
    ("DELETE", f"{B}/payment_methods/{{id}}"),
    ("DELETE", f"{B}/vms/{{id}}"),
    ("GET", f"{B}/vms/{{id}}/refund"),
    ("POST", f"{B}/vms/{{id}}/refund"),
    ("GET", f"{B}/reports/time-series"),
    ("GET", f"{B}/reports/referral-usage/time-series"),
    ("DELETE", f"{B}/subscriptions/{{id}}"),
    ("DELETE", f"{B}/subscription_line_items/{{id}}"),
    ("GET", f"{B}/audit"),
}
#: operations that need no permission: the caller's own roles and the document itself
OPEN = {("GET", f"{B}/me/roles"), ("GET", f"{B}/openapi.json")}


async def test_document_equals_routes_and_covers_this_part(world: AdminWorld) -> None:
    doc = await world.ok("GET", "/openapi.json", signed=False)
    documented = documented_operations(doc)
    assert documented == served_operations(build_admin_app(world.api.services))
    assert documented >= THIS_PART


def test_every_route_checks_a_permission_and_documents_it() -> None:
    table = admin_route_table()
    for route in table.routes:
        op = (route.method, openapi_path(route.path))
        if op in OPEN:
            continue
        needed: Any = getattr(route.handler, PERMISSION_MARK, ())
        assert needed, f"{op} does not check a permission"  # the 400 twin of `{id}` too
        text = "` and `".join(f"{r.name.lower()}::{a.name.lower()}" for r, a in needed)
        assert f"(needs `{text}`)" in route.summary, op


def _strings(schema: Any, where: str) -> list[tuple[str, Any]]:
    """Every string schema in `schema` (through properties, items and anyOf), with its path."""
    if not isinstance(schema, dict):
        return []
    found: list[tuple[str, Any]] = []
    kinds = schema.get("type")
    if kinds == "string" or (isinstance(kinds, list) and "string" in kinds):
        found.append((where, schema))
    for name, sub in (schema.get("properties") or {}).items():
        found += _strings(sub, f"{where}.{name}")
    found += _strings(schema.get("items"), f"{where}[]")
    for sub in schema.get("anyOf") or ():
        found += _strings(sub, where)
    return found


async def test_every_request_string_has_a_published_length_or_enum(world: AdminWorld) -> None:
    """Issue 11 §1: each string a POST/PUT/PATCH body takes states its bound (maxLength, an
    enum or a date-time format), so clients and Schemathesis see the limits the API enforces;
    and no PATCH body is a bare object any more."""
    doc = await world.ok("GET", "/openapi.json", signed=False)
    unbounded, bare = [], []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            if body["schema"] == {"type": "object"}:
                bare.append(f"{method.upper()} {path}")
            for where, schema in _strings(body["schema"], f"{method.upper()} {path}"):
                if not (
                    {"maxLength", "enum"} & schema.keys() or schema.get("format") == "date-time"
                ):
                    unbounded.append(where)
    assert unbounded == [], unbounded
    assert bare == [], bare
