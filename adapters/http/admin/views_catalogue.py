"""Admin JSON of catalogue objects (api.md §9.4–§9.10, §9.14–§9.15); schemas in
`schemas_catalogue`. Host secrets never appear: only `ssh_key_configured`."""

from __future__ import annotations

from typing import Any

from adapters.http.admin.fields import INTEGER_CAPS
from adapters.http.envelope import format_optional_time, format_time
from adapters.http.views_catalogue import cpu_fields
from adapters.http.views_input import wire_name
from app.admin.companies import ADDRESS_FIELDS, CompanyInfo
from app.admin.cost_plans import CostPlanInfo
from app.admin.custom_pricing import PricingInfo
from app.admin.hosts import HostInfo
from app.admin.ip_space import SoldRange, SpaceInfo
from app.admin.os_images import ImageInfo
from app.admin.regions import RegionInfo
from app.admin.vm_templates import TemplateInfo
from domain.enums import VmHostKind
from domain.model import HostDisk, IpSpacePricing, ResourceLimits

Json = dict[str, Any]
HOST_KINDS = {
    VmHostKind.PROXMOX: "proxmox",
    VmHostKind.LIBVIRT: "libvirt",
    VmHostKind.DUMMY: "mock",
}


def company_json(info: CompanyInfo) -> Json:
    c = info.company
    return {
        "id": c.id,
        "created": format_time(c.created),
        "name": c.name,
        **{n: getattr(c, n) for n in ADDRESS_FIELDS},
        "email": c.email or None,
        "base_currency": c.base_currency,
        "region_count": info.region_count,
    }


def region_json(info: RegionInfo) -> Json:
    r = info.region
    return {
        "id": r.id,
        "name": r.name,
        "enabled": r.enabled,
        "company_id": r.company_id,
        "host_count": info.host_count,
        "total_vms": info.total_vms,
        "total_cpu_cores": info.total_cpu_cores,
        "total_memory_bytes": info.total_memory_bytes,
        "total_ip_assignments": info.total_ip_assignments,
    }


def disk_json(disk: HostDisk) -> Json:
    return {
        "id": disk.id,
        "name": disk.name,
        "size": disk.size,
        "kind": wire_name(disk.kind),
        "interface": wire_name(disk.interface),
        "enabled": disk.enabled,
    }


def host_json(info: HostInfo) -> Json:
    """AdminHostInfo; loads are fractions as JSON numbers (not money)."""
    h, load = info.host, info.load
    region = info.region
    out: Json = {
        "id": h.id,
        "name": h.name,
        "kind": HOST_KINDS[h.kind],
        "region": {
            "id": h.region_id,
            "name": region.name if region else "",
            "enabled": bool(region and region.enabled),
        },
        "ip": h.ip,
        "cpu": h.cpu,
    }
    out.update(cpu_fields(h.cpu_mfg, h.cpu_arch, h.cpu_features))
    out.update(
        {
            "memory": h.memory,
            "enabled": h.enabled,
            "load_cpu": float(h.load_cpu),
            "load_memory": float(h.load_memory),
            "load_disk": float(h.load_disk),
            "vlan_id": h.vlan_id,
            "mtu": h.mtu,
            "disks": [disk_json(d) for d in info.disks],
            "calculated_load": {
                "overall_load": float(load.overall),
                "cpu_load": float(load.cpu),
                "memory_load": float(load.memory),
                "disk_load": float(load.disk),
                "available_cpu": load.available_cpu,
                "available_memory": load.available_memory,
                "active_vms": load.active_vms,
            },
            "ssh_user": h.ssh_user,
            "ssh_key_configured": bool(h.ssh_key),
        }
    )
    return out


def cost_plan_json(info: CostPlanInfo) -> Json:
    p = info.plan
    return {
        "id": p.id,
        "name": p.name,
        "created": format_time(p.created),
        "amount": p.amount,
        "currency": p.currency,
        "interval_amount": p.interval_amount,
        "interval_type": p.interval_type.api_name,
        "template_count": info.template_count,
    }


def _caps(limits: ResourceLimits) -> Json:
    """The resource caps that are set (unset ones are omitted)."""
    out: Json = {}
    for name in INTEGER_CAPS:
        if (value := getattr(limits, name)) is not None:
            out[name] = value
    if limits.cpu_limit is not None:
        out["cpu_limit"] = float(limits.cpu_limit)
    return out


def template_json(info: TemplateInfo) -> Json:
    t = info.template
    out: Json = {
        "id": t.id,
        "name": t.name,
        "enabled": t.enabled,
        "created": format_time(t.created),
        "expires": format_optional_time(t.expires),
        "cpu": t.cpu,
    }
    out.update(cpu_fields(t.cpu_mfg, t.cpu_arch, t.cpu_features))
    out.update(
        {
            "memory": t.memory,
            "disk_size": t.disk_size,
            "disk_type": wire_name(t.disk_type),
            "disk_interface": wire_name(t.disk_interface),
            "cost_plan_id": t.cost_plan_id,
            "region_id": t.region_id,
            "region_name": info.region_name,
            "cost_plan_name": info.cost_plan_name,
            "active_vm_count": info.active_vm_count,
        }
    )
    out.update(_caps(t.limits))
    return out


def pricing_json(info: PricingInfo) -> Json:
    p = info.pricing
    out: Json = {
        "id": p.id,
        "name": p.name,
        "enabled": p.enabled,
        "created": format_time(p.created),
        "expires": format_optional_time(p.expires),
        "region_id": p.region_id,
        "region_name": info.region_name,
        "currency": p.currency,
    }
    out.update(cpu_fields(p.cpu_mfg, p.cpu_arch, p.cpu_features))
    out.update(
        {
            "cpu_cost": p.cpu_cost,
            "memory_cost": p.memory_cost,
            "ip4_cost": p.ip4_cost,
            "ip6_cost": p.ip6_cost,
            "min_cpu": p.min_cpu,
            "max_cpu": p.max_cpu,
            "min_memory": p.min_memory,
            "max_memory": p.max_memory,
            "disk_pricing": [
                {
                    "id": d.id,
                    "kind": wire_name(d.kind),
                    "interface": wire_name(d.interface),
                    "cost": d.cost,
                    "max_disk_size": d.max_disk_size,
                    "min_disk_size": d.min_disk_size,
                }
                for d in info.disks
            ],
            "template_count": info.template_count,
        }
    )
    out.update(_caps(p.limits))
    return out


def image_json(info: ImageInfo) -> Json:
    i = info.image
    return {
        "id": i.id,
        "distribution": wire_name(i.distribution),
        "flavour": i.flavour,
        "version": i.version,
        "enabled": i.enabled,
        "release_date": format_time(i.release_date),
        "url": i.url,
        "default_username": i.default_username,
        "active_vm_count": info.active_vm_count,
        "sha2": i.sha2,
        "sha2_url": i.sha2_url,
    }


def space_json(info: SpaceInfo) -> Json:
    s = info.space
    return {
        "id": s.id,
        "company_id": s.company_id,
        "cidr": s.cidr,
        "min_prefix_size": s.min_prefix_size,
        "max_prefix_size": s.max_prefix_size,
        "registry": {"value": int(s.registry), "name": s.registry.name},
        "external_id": s.external_id,
        "is_available": s.is_available,
        "is_reserved": s.is_reserved,
        "metadata": s.metadata,
        "pricing_count": info.pricing_count,
    }


def space_pricing_json(price: IpSpacePricing, cidr: str | None) -> Json:
    return {
        "id": price.id,
        "available_ip_space_id": price.available_ip_space_id,
        "prefix_size": price.prefix_size,
        "price_per_month": price.price_per_month,
        "currency": price.currency,
        "setup_fee": price.setup_fee,
        "cidr": cidr,
    }


def sold_range_json(sold: SoldRange) -> Json:
    r = sold.record
    return {
        "id": r.id,
        "subscription_line_item_id": r.subscription_line_item_id,
        "available_ip_space_id": r.available_ip_space_id,
        "cidr": r.cidr,
        "is_active": r.is_active,
        "started_at": format_time(r.started_at or r.created),
        "ended_at": format_optional_time(r.ended_at),
        "metadata": r.metadata,
        "subscription_id": sold.subscription_id,
        "user_id": sold.user_id,
        "parent_cidr": sold.parent_cidr,
    }
