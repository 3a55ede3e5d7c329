"""Admin hosts (api.md §9.9, no delete) and their disks; token and SSH key write-only (D28)."""

from __future__ import annotations

from decimal import Decimal

from aiohttp import web

from adapters.http.admin import fields as f
from adapters.http.admin import schemas_catalogue as sch
from adapters.http.admin.auth import Admin, require
from adapters.http.admin.common import ID, add
from adapters.http.admin.views_catalogue import HOST_KINDS, disk_json, host_json
from adapters.http.context import services
from adapters.http.envelope import data_response
from adapters.http.openapi import RouteTable
from adapters.http.views_schema import CPU_ARCH, CPU_MFG
from adapters.http.vm_params import json_object, path_id
from domain.enums import AdminAction, AdminResource
from ports.vmhost import HostProber

RESOURCE = AdminResource.HOSTS
_KIND = f.choice({name: kind for kind, name in HOST_KINDS.items()})
#: an overcommit factor: above 0, at most 100× the real size
_LOAD = f.decimal(Decimal("0.01"), Decimal(100))
DISK_ID = r"{disk_id:\d+}"


async def read_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(100), required=True)
    read("ip", f.text(250), required=True)
    read("api_token", f.text(4096), required=True)
    read("region_id", f.uint(f.U32, 1), required=True)
    read("kind", _KIND, required=True)
    read("cpu", f.uint(f.U16, 1), required=True)
    read("memory", f.SIZE, required=True)
    read("vlan_id", f.uint(4094), nullable=True)
    read("mtu", f.uint(f.U16, 576), nullable=True)
    read.cpu()
    read("enabled", f.flag)
    for name in ("load_cpu", "load_memory", "load_disk"):
        read(name, _LOAD)
    read("ssh_user", f.text(255), nullable=True)
    read("ssh_key", f.text(16384, multiline=True), nullable=True)
    return read.out


async def _disk_fields(request: web.Request, *, patch: bool) -> dict[str, object]:
    read = f.Reader(await json_object(request), patch=patch)
    read("name", f.text(50), required=True)
    read("size", f.SIZE, required=True)
    read("kind", f.DISK_TYPE, required=True)
    read("interface", f.DISK_INTERFACE, required=True)
    read("enabled", f.flag)
    return read.out


def _prober(request: web.Request) -> HostProber | None:
    """The test connection, unless `vm-hosts.test-connection` is off or the admin asked
    `?test_connection=false` (a host that is down for maintenance can still be recorded)."""
    if request.query.get("test_connection", "true").lower() in ("false", "0", "no"):
        return None
    return services(request).host_prober


@require(RESOURCE, AdminAction.CREATE)
async def create_host(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    fields = await read_fields(request, patch=False)
    info = await svc.infra.create_host(fields, _prober(request))
    return data_response(host_json(info))


@require(RESOURCE, AdminAction.UPDATE)
async def update_host(request: web.Request, admin: Admin) -> web.StreamResponse:
    svc = services(request)
    fields = await read_fields(request, patch=True)
    info = await svc.infra.update_host(path_id(request), fields, _prober(request))
    return data_response(host_json(info))


@require(RESOURCE, AdminAction.VIEW)
async def list_disks(request: web.Request, admin: Admin) -> web.StreamResponse:
    disks = await services(request).infra.list_disks(path_id(request))
    return data_response([disk_json(d) for d in disks])


@require(RESOURCE, AdminAction.VIEW)
async def get_disk(request: web.Request, admin: Admin) -> web.StreamResponse:
    disk = await services(request).infra.get_disk(path_id(request), path_id(request, "disk_id"))
    return data_response(disk_json(disk))


@require(RESOURCE, AdminAction.UPDATE)
async def create_disk(request: web.Request, admin: Admin) -> web.StreamResponse:
    fields = await _disk_fields(request, patch=False)
    disk = await services(request).infra.create_disk(path_id(request), fields)
    return data_response(disk_json(disk))


@require(RESOURCE, AdminAction.UPDATE)
async def update_disk(request: web.Request, admin: Admin) -> web.StreamResponse:
    fields = await _disk_fields(request, patch=True)
    disk = await services(request).infra.update_disk(
        path_id(request), path_id(request, "disk_id"), fields
    )
    return data_response(disk_json(disk))


REQUEST = sch.body(
    {
        "name": f.text_schema(100),
        "ip": f.text_schema(250),
        "api_token": f.text_schema(4096),
        "region_id": sch.UINT,
        "kind": sch.HOST["properties"]["kind"],
        "cpu": sch.UINT,
        "memory": f.SIZE_SCHEMA,
    },
    {
        "vlan_id": sch.NULL_U64,
        "mtu": sch.NULL_U64,
        "enabled": sch.BOOL,
        "load_cpu": sch.NUMBER,
        "load_memory": sch.NUMBER,
        "load_disk": sch.NUMBER,
        "ssh_user": f.text_schema(255, nullable=True),
        "ssh_key": f.text_schema(16384, nullable=True, multiline=True),
        "cpu_mfg": CPU_MFG,
        "cpu_arch": CPU_ARCH,
        "cpu_features": f.FEATURES_SCHEMA,
    },
)
_DISK = sch.body(
    {
        "name": f.text_schema(50),
        "size": f.SIZE_SCHEMA,
        "kind": sch.DISK["properties"]["kind"],
        "interface": sch.DISK["properties"]["interface"],
    },
    {"enabled": sch.BOOL},
)


def add_disk_routes(table: RouteTable) -> None:
    add(
        table,
        "GET",
        f"/hosts/{ID}/disks",
        list_disks,
        "A host's disks (a plain list)",
        response={"type": "array", "items": sch.DISK},
    )
    add(
        table,
        "GET",
        f"/hosts/{ID}/disks/{DISK_ID}",
        get_disk,
        "One disk of a host",
        response=sch.DISK,
    )
    add(
        table,
        "POST",
        f"/hosts/{ID}/disks",
        create_disk,
        "Add a disk to a host",
        request=_DISK,
        response=sch.DISK,
    )
    add(
        table,
        "PATCH",
        f"/hosts/{ID}/disks/{DISK_ID}",
        update_disk,
        "Update a host's disk",
        request=f.patch_of(_DISK),
        response=sch.DISK,
    )
