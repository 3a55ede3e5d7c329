"""JSON of catalogue objects (api.md §5.1, §5.4, §5.5); their schemas are in views_schema."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from adapters.http.envelope import format_time, same_named
from adapters.http.views_input import wire_name
from app.queries.catalogue import CustomOffer, IpSpaceOffer
from domain.enums import CpuArch, CpuMfg, PaymentMethod
from domain.model import CostPlan, OsImage, PaymentMethodConfig, Region, VmTemplate
from domain.money import Money

JsonObject = dict[str, Any]

#: payment-method currencies when a config lists none (api.md §5.4).
DEFAULT_CURRENCIES = {PaymentMethod.LIGHTNING: ["BTC"]}
FIAT_DEFAULT_CURRENCIES = ["EUR", "USD"]


def price_json(money: Money) -> JsonObject:
    """ApiPrice."""
    return {"currency": money.currency.value, "amount": money.amount}


def region_json(region: Region) -> JsonObject:
    return {"id": region.id, "name": region.name}


def cost_plan_json(plan: CostPlan, other_price: Iterable[Money] = ()) -> JsonObject:
    """ApiVmCostPlan; `other_price` is always present (`[]` outside the template listing)."""
    return {
        "id": plan.id,
        "name": plan.name,
        "currency": plan.currency.upper(),
        "amount": plan.amount,
        "other_price": [price_json(m) for m in other_price],
        "interval_amount": plan.interval_amount,
        "interval_type": plan.interval_type.api_name,
    }


def cpu_arch_name(arch: CpuArch) -> str:
    return arch.name.lower()  # x86_64, arm64


def cpu_fields(mfg: CpuMfg, arch: CpuArch, features: Iterable[str]) -> JsonObject:
    """`cpu_features`/`cpu_mfg`/`cpu_arch`, each omitted when empty or unknown."""
    out: JsonObject = {}
    if features := list(features):
        out["cpu_features"] = features
    if mfg is not CpuMfg.UNKNOWN:
        out["cpu_mfg"] = mfg.name.lower()
    if arch is not CpuArch.UNKNOWN:
        out["cpu_arch"] = cpu_arch_name(arch)
    return out


def template_json(
    template: VmTemplate, plan: CostPlan, region: Region, other_price: Iterable[Money] = ()
) -> JsonObject:
    """ApiVmTemplate of a standard template; `expires` omitted when unset."""
    out: JsonObject = {
        "id": template.id,
        "name": template.name,
        "created": format_time(template.created),
    }
    if template.expires is not None:
        out["expires"] = format_time(template.expires)
    out.update(
        cpu=template.cpu,
        memory=template.memory,
        disk_size=template.disk_size,
        disk_type=wire_name(template.disk_type),
        disk_interface=wire_name(template.disk_interface),
        cost_plan=cost_plan_json(plan, other_price),
        region=region_json(region),
    )
    out.update(cpu_fields(template.cpu_mfg, template.cpu_arch, template.cpu_features))
    return out


def custom_template_json(offer: CustomOffer) -> JsonObject:
    """ApiCustomTemplateParams: id is the pricing id, limits capped by free room."""
    pricing = offer.pricing
    out: JsonObject = {"id": pricing.id, "name": pricing.name, "region": region_json(offer.region)}
    out.update(cpu_fields(pricing.cpu_mfg, pricing.cpu_arch, pricing.cpu_features))
    out.update(
        max_cpu=offer.max_cpu,
        min_cpu=pricing.min_cpu,
        min_memory=pricing.min_memory,
        max_memory=offer.max_memory,
        disks=[
            {
                "min_disk": d.min_disk,
                "max_disk": d.max_disk,
                "disk_type": wire_name(d.kind),
                "disk_interface": wire_name(d.interface),
            }
            for d in offer.disks
        ],
    )
    return out


def image_json(image: OsImage) -> JsonObject:
    """ApiVmOsImage; `default_username` is null (not omitted) when unset."""
    return {
        "id": image.id,
        "distribution": wire_name(image.distribution),
        **same_named(image, "flavour", "version"),
        "release_date": format_time(image.release_date),
        "default_username": image.default_username,
    }


def payment_method_json(config: PaymentMethodConfig) -> JsonObject:
    """ApiPaymentInfo of one config row; fee fields omitted when unset, `metadata` never sent."""
    method = config.payment_method
    currencies = list(config.supported_currencies) or DEFAULT_CURRENCIES.get(
        method, FIAT_DEFAULT_CURRENCIES
    )
    out: JsonObject = {"name": method.api_name, "currencies": [c.upper() for c in currencies]}
    if config.processing_fee_rate is not None:
        out["processing_fee_rate"] = float(config.processing_fee_rate)  # wire type is f32
    if config.processing_fee_base is not None:
        out["processing_fee_base"] = config.processing_fee_base
    if config.processing_fee_currency is not None:
        out["processing_fee_currency"] = config.processing_fee_currency.upper()
    return out


def synthetic_methods() -> list[JsonObject]:
    """`nwc` and `lnurl`, listed when some Lightning config is enabled."""
    return [{"name": "nwc", "currencies": ["BTC"]}, {"name": "lnurl", "currencies": ["BTC"]}]


def _ip_version(cidr: str) -> str:
    try:
        return f"ipv{ipaddress.ip_network(cidr, strict=False).version}"
    except ValueError:
        return "ipv6" if ":" in cidr else "ipv4"


def ip_space_json(offer: IpSpaceOffer) -> JsonObject:
    """ApiAvailableIpSpace: the CIDR itself is not exposed."""
    space = offer.space
    return {
        **same_named(space, "id", "min_prefix_size", "max_prefix_size"),
        "registry": wire_name(space.registry),
        "ip_version": _ip_version(space.cidr),
        "pricing": [
            {
                "id": t.tier.id,
                "prefix_size": t.tier.prefix_size,
                "price": price_json(t.price),
                "setup_fee": price_json(t.setup_fee),
                "other_price": [price_json(m) for m in t.other_price],
                "other_setup_fee": [price_json(m) for m in t.other_setup_fee],
            }
            for t in offer.tiers
        ],
    }
