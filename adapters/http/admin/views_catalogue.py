"""Admin JSON of catalogue objects (api.md §9.4–§9.10, §9.14–§9.15); schemas in
`schemas_catalogue`. Host secrets never appear: only `ssh_key_configured`."""

from __future__ import annotations

from typing import Any

from adapters.http.admin.fields import INTEGER_CAPS
from adapters.http.envelope import format_optional_time, format_time, same_named
from adapters.http.views_catalogue import cpu_fields
from adapters.http.views_input import wire_name
from app.admin.companies import ADDRESS_FIELDS, CompanyInfo
from app.admin.cost_plans import CostPlanInfo
from app.admin.custom_pricing import COST_FIELDS, PricingInfo
from app.admin.hosts import HostInfo
from app.admin.ip_space import SoldRange, SpaceInfo
from app.admin.os_images import ImageInfo
from app.admin.regions import RegionInfo
from app.admin.vm_templates import TemplateInfo
from domain.enums import VmHostKind
from domain.model import CustomPricing, HostDisk, IpSpacePricing, ResourceLimits, VmTemplate

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
        **same_named(c, *ADDRESS_FIELDS),
        "email": c.email or None,
        "base_currency": c.base_currency,
        "region_count": info.region_count,
    }


def region_json(info: RegionInfo) -> Json:
    return {
        **same_named(info.region, "id", "name", "enabled", "company_id"),
        **same_named(
            info,
            "host_count",
            "total_vms",
            "total_cpu_cores",
            "total_memory_bytes",
            "total_ip_assignments",
        ),
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
            **same_named(h, "memory", "enabled"),
            "load_cpu": float(h.load_cpu),
            "load_memory": float(h.load_memory),
            "load_disk": float(h.load_disk),
            **same_named(h, "vlan_id", "mtu"),
            "disks": [disk_json(d) for d in info.disks],
            "calculated_load": {
                "overall_load": float(load.overall),
                "cpu_load": float(load.cpu),
                "memory_load": float(load.memory),
                "disk_load": float(load.disk),
                **same_named(load, "available_cpu", "available_memory", "active_vms"),
            },
            "ssh_user": h.ssh_user,
            "ssh_key_configured": bool(h.ssh_key),
        }
    )
    return out


def cost_plan_json(info: CostPlanInfo) -> Json:
    p = info.plan
    return {
        **same_named(p, "id", "name"),
        "created": format_time(p.created),
        **same_named(p, "amount", "currency", "interval_amount"),
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


def _offer_head(offer: VmTemplate | CustomPricing) -> Json:
    """The leading fields of a template or a custom pricing: id, name, enabled, times."""
    return {
        **same_named(offer, "id", "name", "enabled"),
        "created": format_time(offer.created),
        "expires": format_optional_time(offer.expires),
    }


def template_json(info: TemplateInfo) -> Json:
    t = info.template
    out: Json = {**_offer_head(t), "cpu": t.cpu}
    out.update(cpu_fields(t.cpu_mfg, t.cpu_arch, t.cpu_features))
    out.update(
        {
            **same_named(t, "memory", "disk_size"),
            "disk_type": wire_name(t.disk_type),
            "disk_interface": wire_name(t.disk_interface),
            **same_named(t, "cost_plan_id", "region_id"),
            **same_named(info, "region_name", "cost_plan_name", "active_vm_count"),
        }
    )
    out.update(_caps(t.limits))
    return out


def pricing_json(info: PricingInfo) -> Json:
    p = info.pricing
    out: Json = {
        **_offer_head(p),
        "region_id": p.region_id,
        "region_name": info.region_name,
        "currency": p.currency,
    }
    out.update(cpu_fields(p.cpu_mfg, p.cpu_arch, p.cpu_features))
    out.update(
        {
            **same_named(p, *COST_FIELDS),
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
        **same_named(i, "flavour", "version", "enabled"),
        "release_date": format_time(i.release_date),
        "url": i.url,
        "default_username": i.default_username,
        "active_vm_count": info.active_vm_count,
        **same_named(i, "sha2", "sha2_url"),
    }


def space_json(info: SpaceInfo) -> Json:
    s = info.space
    return {
        **same_named(s, "id", "company_id", "cidr", "min_prefix_size", "max_prefix_size"),
        "registry": {"value": int(s.registry), "name": s.registry.name},
        **same_named(s, "external_id", "is_available", "is_reserved", "metadata"),
        "pricing_count": info.pricing_count,
    }


def space_pricing_json(price: IpSpacePricing, cidr: str | None) -> Json:
    return {
        **same_named(
            price,
            "id",
            "available_ip_space_id",
            "prefix_size",
            "price_per_month",
            "currency",
            "setup_fee",
        ),
        "cidr": cidr,
    }


def sold_range_json(sold: SoldRange) -> Json:
    r = sold.record
    return {
        **same_named(
            r, "id", "subscription_line_item_id", "available_ip_space_id", "cidr", "is_active"
        ),
        "started_at": format_time(r.started_at or r.created),
        "ended_at": format_optional_time(r.ended_at),
        "metadata": r.metadata,
        **same_named(sold, "subscription_id", "user_id", "parent_cidr"),
    }
