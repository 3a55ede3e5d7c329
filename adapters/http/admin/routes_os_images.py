"""Admin OS images (api.md §9.10): body reader and schema for routes_catalogue; the download."""

from __future__ import annotations

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add, query_uint
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import QueryParam, RouteTable, Schema
from adapters.http.views_input import wire_name
from adapters.http.vm_params import json_object, path_id
from domain.enums import AdminAction, AdminResource, OsDistribution

RESOURCE = AdminResource.VM_OS_IMAGE


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("distribution", f.wire_choice(OsDistribution), required=True)
    read("flavour", f.text(50), required=True)
    read("version", f.text(50), required=True)
    read("enabled", f.flag, required=True)
    read("release_date", f.time, required=True)
    read("url", f.text(1024), required=True)
    read("default_username", f.text(50), nullable=True)
    read("sha2", f.text(128), nullable=True)
    read("sha2_url", f.text(1024), nullable=True)
    return read.out


@require(RESOURCE, AdminAction.UPDATE)
async def download_image(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    host_id = query_uint(request.query, "host_id")
    await svc.infra.request_image_download(path_id(request), host_id)
    return data_response("Download job enqueued")


STRING: Schema = {"type": "string"}
REQUEST = sch.body(
    {
        "distribution": {"type": "string", "enum": [wire_name(d) for d in OsDistribution]},
        "flavour": f.text_schema(50),
        "version": f.text_schema(50),
        "enabled": sch.BOOL,
        "release_date": {"type": "string", "format": "date-time"},
        "url": f.text_schema(1024),
    },
    {
        "default_username": f.text_schema(50, nullable=True),
        "sha2": f.text_schema(128, nullable=True),
        "sha2_url": f.text_schema(1024, nullable=True),
    },
)


def add_download_route(table: RouteTable) -> None:
    add(
        table,
        "POST",
        f"/vm_os_images/{ID}/download",
        download_image,
        "Queue a download of the image to every enabled host (or `host_id`'s)",
        response=STRING,
        query=[
            QueryParam("host_id", {"type": "integer", "minimum": 1}, description="only this host")
        ],
    )
