"""ApiVmStatus and ApiVmHistory JSON (api.md §5.1–5.2, §5.4): shaping what the read model loads."""

from __future__ import annotations

import functools
import ipaddress
import json
from datetime import datetime
from typing import Any

from adapters.http.envelope import format_time
from app.queries.vms import VmView
from domain.enums import CpuArch, CpuMfg
from domain.model import IpAssignment, IpRange, OsImage, VmHistory
from ports.vmhost import VmRunningState


def _distribution(image: OsImage) -> str:
    return image.distribution.name.lower().replace("_", "")


def image_json(image: OsImage) -> dict[str, Any]:
    return {
        "id": image.id,
        "distribution": _distribution(image),
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
        out["cpu_mfg"] = mfg.name.lower()
    if arch is not CpuArch.UNKNOWN:
        out["cpu_arch"] = arch.name.lower()
    return out


def _region_json(view: VmView) -> dict[str, Any]:
    region = view.region
    return {"id": region.id, "name": region.name} if region else {"id": 0, "name": ""}


def template_json(view: VmView, now: datetime) -> dict[str, Any]:
    """The standard template with its cost plan, or the synthesized "Custom" one (§5.2)."""
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
        spec: Any = t
        cpu = _cpu_fields(t.cpu_mfg, t.cpu_arch, t.cpu_features)
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
            "amount": view.custom_amount,
            "other_price": [],
            "interval_amount": 1,
            "interval_type": "month",
        }
        spec = c
        cpu = _cpu_fields(c.cpu_mfg, c.cpu_arch, c.cpu_features) if c else {}
    out.update(
        cpu=spec.cpu if spec else 0,
        memory=spec.memory if spec else 0,
        disk_size=spec.disk_size if spec else 0,
        disk_type=spec.disk_type.name.lower() if spec else "ssd",
        disk_interface=spec.disk_interface.name.lower() if spec else "pcie",
        cost_plan=cost_plan,
        region=_region_json(view),
    )
    out.update(cpu)
    return out


@functools.lru_cache(maxsize=4096)
def _prefix_length(cidr: str) -> int | None:
    """A range's prefix length (None when its CIDR does not parse); ranges are few, and
    parsing one is a tenth of a VM view's rendering (issue 10)."""
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen
    except ValueError:
        return None


def ip_json(assignment: IpAssignment, ip_range: IpRange | None) -> dict[str, Any]:
    """The address with its range's prefix length (`185.18.221.14/25`), as clients split it."""
    address = assignment.ip.split("/", 1)[0]
    ip = address
    if ip_range is not None:
        prefix = _prefix_length(ip_range.cidr)
        ip = address if prefix is None else f"{address}/{prefix}"
    return {
        "id": assignment.id,
        "ip": ip,
        "gateway": ip_range.gateway if ip_range is not None else "",
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


def vm_status_json(view: VmView, state: VmRunningState, now: datetime) -> dict[str, Any]:
    """ApiVmStatus in the reference's field order; `expires` is null until the first payment."""
    vm, sub, key = view.vm, view.subscription, view.ssh_key
    image = view.image
    return {
        "id": vm.id,
        "created": format_time(sub.created if sub else now),
        "expires": format_time(sub.expires) if sub and sub.expires else None,
        "mac_address": vm.mac_address,
        "image": image_json(image)
        if image
        else {
            "id": vm.image_id,
            "distribution": "ubuntu",
            "flavour": "",
            "version": "",
            "release_date": format_time(now),
            "default_username": None,
        },
        "template": template_json(view, now),
        "ssh_key": {"id": key.id, "name": key.name, "created": format_time(key.created)}
        if key
        else {"id": vm.ssh_key_id, "name": "", "created": format_time(now)},
        "ip_assignments": [ip_json(a, r) for a, r in view.ips],
        "status": state_json(state),
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
