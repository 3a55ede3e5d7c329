"""Admin company routes (api.md §9.8): list, get, create, update, delete."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add, page_of
from adapters.http.admin.views_catalogue import company_json
from adapters.http.context import services
from adapters.http.envelope import data_response, page_response, parse_page
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import json_object, path_id
from app.account.profile import check_country
from app.admin import companies as uc
from domain.enums import AdminAction, AdminResource

_RES = AdminResource.COMPANY
_TEXT = {
    "address_1": 200,
    "address_2": 200,
    "city": 100,
    "state": 100,
    "country_code": 3,
    "tax_id": 50,
    "postcode": 50,
    "phone": 100,
    "email": 100,
}


async def _fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(100), required=True)
    for name, size in _TEXT.items():
        read(name, f.text(size), nullable=True)
    read("base_currency", f.text(3))
    if read.out.get("country_code") is not None:
        read.out["country_code"] = check_country(str(read.out["country_code"]))
    return read.out


@require(_RES, AdminAction.VIEW)
async def list_companies(request: web.Request, admin: Admin) -> web.StreamResponse:
    page = parse_page(request.query)
    rows = await services(request).infra.list_companies()
    return page_response([company_json(r) for r in page_of(rows, page)], len(rows), page)


@require(_RES, AdminAction.VIEW)
async def get_company(request: web.Request, admin: Admin) -> web.StreamResponse:
    info = await services(request).infra.get_company(path_id(request))
    return data_response(company_json(info))


@require(_RES, AdminAction.CREATE)
async def create_company(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    fields = await _fields(request, patch=False)
    return data_response(company_json(await svc.infra.create_company(fields)))


@require(_RES, AdminAction.UPDATE)
async def update_company(request: web.Request, admin: Admin) -> web.StreamResponse:
    fields = await _fields(request, patch=True)
    info = await services(request).infra.update_company(path_id(request), fields)
    return data_response(company_json(info))


@require(_RES, AdminAction.DELETE)
async def delete_company(request: web.Request, admin: Admin) -> web.StreamResponse:
    await services(request).infra.delete_company(path_id(request))
    return data_response(None)


def add_admin_company_routes(table: RouteTable) -> None:
    request = sch.body(
        {"name": f.text_schema(100)},
        {
            **{n: f.text_schema(size, nullable=True) for n, size in _TEXT.items()},
            "base_currency": {"type": "string", "enum": list(uc.BASE_CURRENCIES)},
        },
    )
    add(
        table,
        "GET",
        "/companies",
        list_companies,
        "Companies",
        response=sch.COMPANY,
        paginated=True,
    )
    add(table, "GET", f"/companies/{ID}", get_company, "One company", response=sch.COMPANY)
    add(
        table,
        "POST",
        "/companies",
        create_company,
        "Create a company (base_currency EUR by default)",
        request=request,
        response=sch.COMPANY,
    )
    add(
        table,
        "PATCH",
        f"/companies/{ID}",
        update_company,
        "Update a company (a blank optional field clears it)",
        request=f.patch_of(request),
        response=sch.COMPANY,
    )
    add(
        table,
        "DELETE",
        f"/companies/{ID}",
        delete_company,
        "Delete a company no region, IP space, config or subscription uses",
        response=sch.NULL,
    )
