"""Admin company routes (api.md §9.8): list, get, create, update, delete."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import crud
from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.common import ID, add
from adapters.http.admin.views_catalogue import company_json
from adapters.http.openapi import RouteTable
from adapters.http.vm_params import json_object
from app.account.profile import check_country
from app.admin import companies as uc
from domain.enums import AdminResource

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


list_companies = crud.list_route(_RES, lambda _, s: s.infra.list_companies(), company_json)

get_company = crud.get_route(_RES, lambda s, i: s.infra.get_company(i), company_json)

create_company = crud.create_route(
    _RES, _fields, lambda s, b: s.infra.create_company(b), company_json
)

update_company = crud.update_route(
    _RES, _fields, lambda s, i, b: s.infra.update_company(i, b), company_json
)

delete_company = crud.delete_route(_RES, lambda s, i: s.infra.delete_company(i), lambda _: None)


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
