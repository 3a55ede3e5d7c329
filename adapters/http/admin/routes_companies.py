"""Admin company routes (api.md §9.8): list, get, create, update, delete."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import crud
from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
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


COMPANIES = crud.Crud(
    resource=_RES,
    render=company_json,
    fields=_fields,
    rows=lambda _, s: s.infra.list_companies(),
    one=lambda s, i: s.infra.get_company(i),
    create=lambda s, b: s.infra.create_company(b),
    update=lambda s, i, b: s.infra.update_company(i, b),
    delete=lambda s, i: s.infra.delete_company(i),
    answer=lambda _: None,
).routes()


def add_admin_company_routes(table: RouteTable) -> None:
    request = sch.body(
        {"name": f.text_schema(100)},
        {
            **{n: f.text_schema(size, nullable=True) for n, size in _TEXT.items()},
            "base_currency": {"type": "string", "enum": list(uc.BASE_CURRENCIES)},
        },
    )
    docs = crud.Docs(
        list="Companies",
        get="One company",
        create="Create a company (base_currency EUR by default)",
        update="Update a company (a blank optional field clears it)",
        delete="Delete a company no region, IP space, config or subscription uses",
        response=sch.COMPANY,
        request=request,
        deleted=sch.NULL,
    )
    crud.add_crud(table, "/companies", COMPANIES, docs)
