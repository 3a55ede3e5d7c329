"""ApiVmStatus and ApiVmHistory JSON (api.md §5.1–5.2, §5.4): shaping what the read model loads."""

from __future__ import annotations

import functools
import ipaddress
import json
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from adapters.http.envelope import format_time
from app.queries.vms import VmStatus
from domain.enums import CpuArch, CpuMfg, DiskInterface, DiskType, OsDistribution
from domain.model import CustomTemplate, VmHistory
from ports.storage.reads import ImageLabel, IpLabel, TemplateLabel, VmStatusRecords
from ports.vmhost import VmRunningState

E = TypeVar("E", bound=Enum)


def _lower_names(enum: type[E]) -> dict[E, str]:
    """Each member's wire name (its name in lower case), looked up instead of worked out per
    render (`Enum.name` is a descriptor call, read on every VM status). One table per enum:
    members of different IntEnums with the same value are equal keys."""
    return {member: member.name.lower() for member in enum}


_DISK_TYPES = _lower_names(DiskType)
_DISK_INTERFACES = _lower_names(DiskInterface)
_CPU_MFGS = _lower_names(CpuMfg)
_CPU_ARCHS = _lower_names(CpuArch)
_DISTRIBUTIONS = {d: d.name.lower().replace("_", "") for d in OsDistribution}


def image_json(image: ImageLabel) -> dict[str, Any]:
    return {
        "id": image.id,
        "distribution": _DISTRIBUTIONS[image.distribution],
        "flavour": image.flavour,
        "version": image.version,
        "release_date": format_time(image.release_date),
        "default_username": image.default_username,
    }


def _cpu_fields(mfg: CpuMfg, arch: CpuArch, features: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if features:
        out["cpu_features"] = list(features)
    if mfg is not CpuMfg.UNKNOWN:
        out["cpu_mfg"] = _CPU_MFGS[mfg]
    if arch is not CpuArch.UNKNOWN:
        out["cpu_arch"] = _CPU_ARCHS[arch]
    return out


def _region_json(view: VmStatusRecords) -> dict[str, Any]:
    region = view.region
    return {"id": region.id, "name": region.name} if region else {"id": 0, "name": ""}


def template_json(status: VmStatus, now: datetime) -> dict[str, Any]:
    """The standard template with its cost plan, or the synthesized "Custom" one (§5.2)."""
    view = status.view
    spec: TemplateLabel | CustomTemplate | None
    if view.template is not None:
        t, plan = view.template, view.plan
        out: dict[str, Any] = {"id": t.id, "name": t.name, "created": format_time(t.created)}
        if t.expires is not None:
            out["expires"] = format_time(t.expires)
        cost_plan = {
            "id": plan.id if plan else 0,
            "name": plan.name if plan else t.name,
            "currency": plan.currency if plan else "EUR",
            "amount": plan.amount if plan else 0,
            "other_price": [],
            "interval_amount": plan.interval_amount if plan else 1,
            "interval_type": plan.interval_type.api_name if plan else "month",
        }
        spec = t
    else:
        c, p = view.custom, view.pricing
        out = {
            "id": c.id if c else 0,
            "name": "Custom",
            "created": format_time(p.created if p else now),
        }
        if p is not None and p.expires is not None:
            out["expires"] = format_time(p.expires)
        cost_plan = {
            "id": p.id if p else 0,
            "name": p.name if p else "Custom",
            "currency": p.currency if p else "EUR",
            "amount": status.custom_amount,
            "other_price": [],
            "interval_amount": 1,
            "interval_type": "month",
        }
        spec = c
    if spec is None:
        out.update(
            cpu=0,
            memory=0,
            disk_size=0,
            disk_type="ssd",
            disk_interface="pcie",
            cost_plan=cost_plan,
            region=_region_json(view),
        )
        return out
    out.update(
        cpu=spec.cpu,
        memory=spec.memory,
        disk_size=spec.disk_size,
        disk_type=_DISK_TYPES[spec.disk_type],
        disk_interface=_DISK_INTERFACES[spec.disk_interface],
        cost_plan=cost_plan,
        region=_region_json(view),
    )
    out.update(_cpu_fields(spec.cpu_mfg, spec.cpu_arch, spec.cpu_features))
    return out


@functools.lru_cache(maxsize=4096)
def _prefix_length(cidr: str) -> int | None:
    """A range's prefix length (None when its CIDR does not parse); ranges are few, and
    parsing one is a tenth of a VM view's rendering (issue 10)."""
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen
    except ValueError:
        return None


def ip_json(assignment: IpLabel) -> dict[str, Any]:
    """The address with its range's prefix length (`185.18.221.14/25`), as clients split it;
    an address whose range row is missing shows no prefix and an empty gateway."""
    address = assignment.ip.split("/", 1)[0]
    ip = address
    if assignment.cidr is not None:
        prefix = _prefix_length(assignment.cidr)
        ip = address if prefix is None else f"{address}/{prefix}"
    return {
        "id": assignment.id,
        "ip": ip,
        "gateway": assignment.gateway if assignment.gateway is not None else "",
        "forward_dns": assignment.dns_forward,
        "reverse_dns": assignment.dns_reverse,
    }


def state_json(state: VmRunningState) -> dict[str, Any]:
    return {
        "timestamp": state.timestamp,
        "state": state.state.value,
        "cpu_usage": float(state.cpu_usage),
        "mem_usage": float(state.mem_usage),
        "uptime": state.uptime,
        "net_in": state.net_in,
        "net_out": state.net_out,
        "disk_write": state.disk_write,
        "disk_read": state.disk_read,
    }


def vm_status_json(status: VmStatus, now: datetime) -> dict[str, Any]:
    """ApiVmStatus in the reference's field order; `expires` is null until the first payment.
    `now` stands in for the times of rows that are missing."""
    view = status.view
    sub, key, image = view.subscription, view.ssh_key, view.image
    return {
        "id": view.id,
        "created": format_time(sub.created if sub else now),
        "expires": format_time(sub.expires) if sub and sub.expires else None,
        "mac_address": view.mac_address,
        "image": image_json(image)
        if image
        else {
            "id": view.image_id,
            "distribution": "ubuntu",
            "flavour": "",
            "version": "",
            "release_date": format_time(now),
            "default_username": None,
        },
        "template": template_json(status, now),
        "ssh_key": {"id": key.id, "name": key.name, "created": format_time(key.created)}
        if key
        else {"id": view.ssh_key_id, "name": "", "created": format_time(now)},
        "ip_assignments": [ip_json(ip) for ip in view.ips],
        "status": state_json(status.state),
        "auto_renewal_enabled": sub.auto_renewal_enabled if sub else False,
    }


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def history_json(entry: VmHistory, owner_id: int) -> dict[str, Any]:
    """ApiVmHistory: the JSON blobs as JSON *strings*; initiator owner / system / other."""
    by = entry.initiated_by_user
    initiated = "system" if by is None else "owner" if by == owner_id else "other"
    return {
        "id": entry.id,
        "vm_id": entry.vm_id,
        "action_type": entry.action_type.api_name,
        "timestamp": format_time(entry.timestamp),
        "initiated_by": initiated,
        "previous_state": _json_text(entry.previous_state),
        "new_state": _json_text(entry.new_state),
        "metadata": _json_text(entry.metadata),
        "description": entry.description,
    }
