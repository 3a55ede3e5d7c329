"""Admin companies (api.md §9.8): the body reader and schema of their routes_catalogue CRUD."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.vm_params import json_object
from app.account.profile import check_country
from app.admin import companies as uc
from domain.enums import AdminResource

RESOURCE = AdminResource.COMPANY
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


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(100), required=True)
    for name, size in _TEXT.items():
        read(name, f.text(size), nullable=True)
    read("base_currency", f.text(3))
    if read.out.get("country_code") is not None:
        read.out["country_code"] = check_country(str(read.out["country_code"]))
    return read.out


REQUEST = sch.body(
    {"name": f.text_schema(100)},
    {
        **{n: f.text_schema(size, nullable=True) for n, size in _TEXT.items()},
        "base_currency": {"type": "string", "enum": list(uc.BASE_CURRENCIES)},
    },
)
