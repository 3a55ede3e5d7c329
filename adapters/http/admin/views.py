"""Admin JSON objects (api.md §9): users, roles, VMs, history, payments, subscriptions, fee
configs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.http.envelope import format_optional_time, format_time, same_named
from adapters.http.views_vm import state_json
from app.admin.payment_methods import sanitized
from app.admin.permissions import permission_text
from app.admin.roles import RoleInfo, UserRole
from app.admin.users import TEXT_FIELDS
from app.queries.vms import VmView, view_of
from domain.enums import CpuArch, CpuMfg, OsDistribution
from domain.model import (
    Host,
    LineItem,
    OsImage,
    PaymentMethodConfig,
    Region,
    Subscription,
    SubscriptionPayment,
    User,
    Vm,
    VmHistory,
)
from ports.storage import UnitOfWork
from ports.storage.reads import VmFilter, VmRecords
from ports.vmhost import VmRunningState

_DISTRIBUTION = {
    OsDistribution.UBUNTU: "Ubuntu",
    OsDistribution.DEBIAN: "Debian",
    OsDistribution.CENTOS: "CentOs",
    OsDistribution.FEDORA: "Fedora",
    OsDistribution.FREEBSD: "FreeBSD",
    OsDistribution.OPENSUSE: "OpenSuse",
    OsDistribution.ARCHLINUX: "Arch Linux",
    OsDistribution.REDHAT_ENTERPRISE: "Red Hat Enterprise",
}


def user_json(user: User, vm_count: int, is_admin: bool) -> dict[str, Any]:
    """AdminUserInfo (`last_login` is always null, as in the reference)."""
    return {
        "id": user.id,
        "pubkey": user.pubkey.hex(),
        "created": format_time(user.created),
        "email": user.email or None,
        **same_named(
            user,
            "email_verified",
            "contact_nip17",
            "contact_email",
            "country_code",
            *TEXT_FIELDS,
            "billing_vat_validated",
        ),
        "vm_count": vm_count,
        "last_login": None,
        "is_admin": is_admin,
        "has_nwc": bool(user.nwc_connection_string),
    }


def role_json(info: RoleInfo) -> dict[str, Any]:
    """AdminRoleInfo; permissions as `resource::action` strings."""
    role = info.role
    return {
        **same_named(role, "id", "name", "description"),
        "is_system_role": bool(role.is_system_role),
        "permissions": [permission_text(*p) for p in info.permissions],
        "user_count": info.user_count,
        "created_at": format_time(role.created_at),
        "updated_at": format_time(role.updated_at),
    }


def user_role_json(info: UserRole) -> dict[str, Any]:
    """UserRoleInfo."""
    a = info.assignment
    return {
        "role": role_json(info.role),
        "assigned_by": a.assigned_by,
        "assigned_at": format_time(a.assigned_at),
        "expires_at": format_optional_time(a.expires_at),
    }


def line_item_json(item: LineItem, currency: str) -> dict[str, Any]:
    """AdminSubscriptionLineItemInfo with `currency`, the currency its `amount` is in: its
    subscription's, or a custom VM's pricing's (`LineItems.list_shown`). `setup_amount` is
    in the subscription's currency."""
    return {
        **same_named(
            item,
            "id",
            "subscription_id",
            "name",
            "description",
            "amount",
            "setup_amount",
            "configuration",
        ),
        "currency": currency,
    }


async def line_items_json(uow: UnitOfWork, sub: Subscription) -> list[dict[str, Any]]:
    """The subscription's line items (`line_item_json`), read in one query."""
    shown = await uow.line_items.list_shown([sub.id])
    return _items_json(sub, shown.items.get(sub.id, []), shown.currencies)


async def one_line_item_json(uow: UnitOfWork, item: LineItem) -> dict[str, Any]:
    """`line_item_json` of one item (its subscription and VM read: two queries)."""
    sub = await uow.subscriptions.get(item.subscription_id)
    shown = await uow.line_items.list_shown([item.subscription_id])
    currency = shown.currencies.get(item.id, sub.currency if sub is not None else "")
    return line_item_json(item, currency)


def _items_json(
    sub: Subscription, items: list[LineItem], currencies: Mapping[int, str]
) -> list[dict[str, Any]]:
    return [line_item_json(i, currencies.get(i.id, sub.currency)) for i in items]


async def subscription_json(uow: UnitOfWork, sub: Subscription) -> dict[str, Any]:
    """AdminSubscriptionInfo with its line items and the number of payments (paid or not)."""
    [out] = await subscriptions_json(uow, [sub])
    return out


async def subscriptions_json(uow: UnitOfWork, subs: list[Subscription]) -> list[dict[str, Any]]:
    """AdminSubscriptionInfo of each; line items and payment counts in one query each."""
    ids = [s.id for s in subs]
    shown = await uow.line_items.list_shown(ids)
    counts = await uow.lookups.payment_counts(ids)
    return [
        _subscription_json(
            s, _items_json(s, shown.items.get(s.id, []), shown.currencies), counts.get(s.id, 0)
        )
        for s in subs
    ]


def _subscription_json(
    sub: Subscription, items: list[dict[str, Any]], payments: int
) -> dict[str, Any]:
    return {
        **same_named(sub, "id", "user_id", "name", "description"),
        "created": format_time(sub.created),
        "expires": format_optional_time(sub.expires),
        **same_named(sub, "is_active", "is_setup", "currency", "interval_amount"),
        "interval_type": sub.interval_type.api_name,
        **same_named(sub, "setup_fee", "auto_renewal_enabled", "external_id"),
        "line_items": items,
        "payment_count": payments,
    }


async def base_currency(uow: UnitOfWork, subscription_id: int) -> str:
    sub = await uow.subscriptions.get(subscription_id)
    company = None if sub is None else await uow.companies.get(sub.company_id)
    return company.base_currency if company is not None else "EUR"


def _payment_common(payment: SubscriptionPayment, company_currency: str) -> dict[str, Any]:
    return {
        "id": payment.id.hex(),
        "created": format_time(payment.created),
        "expires": format_time(payment.expires),
        **same_named(payment, "amount", "currency"),
        "company_base_currency": company_currency,
        "payment_method": payment.payment_method.api_name,
        **same_named(payment, "external_id", "is_paid"),
    }


def _paid_at(out: dict[str, Any], payment: SubscriptionPayment) -> None:
    if payment.is_paid and payment.paid_at is not None:
        out["paid_at"] = format_time(payment.paid_at)


def vm_payment_json(payment: SubscriptionPayment, vm_id: int, company: str) -> dict[str, Any]:
    """AdminVmPaymentInfo."""
    out = {
        "vm_id": vm_id,
        **_payment_common(payment, company),
        "tax": payment.tax,
        "processing_fee": payment.processing_fee,
    }
    _paid_at(out, payment)
    out["rate"] = float(payment.rate)
    return out


def subscription_payment_json(payment: SubscriptionPayment, company: str) -> dict[str, Any]:
    """AdminSubscriptionPaymentInfo (`time_value`/`metadata` omitted when null)."""
    out = _payment_common(payment, company)
    out.update(
        subscription_id=payment.subscription_id,
        user_id=payment.user_id,
        payment_type=payment.payment_type.name.title(),
    )
    _paid_at(out, payment)
    out["rate"] = float(payment.rate)
    if payment.time_value is not None:
        out["time_value"] = payment.time_value
    if payment.metadata is not None:
        out["metadata"] = payment.metadata
    out.update(tax=payment.tax, processing_fee=payment.processing_fee)
    return out


async def history_json(uow: UnitOfWork, entry: VmHistory) -> dict[str, Any]:
    """AdminVmHistoryInfo (state blobs are not exposed)."""
    by = None if entry.initiated_by_user is None else await uow.users.get(entry.initiated_by_user)
    return {
        "id": entry.id,
        "vm_id": entry.vm_id,
        "action_type": entry.action_type.api_name,
        "timestamp": format_time(entry.timestamp),
        "initiated_by_user": entry.initiated_by_user,
        "initiated_by_user_pubkey": by.pubkey.hex() if by else None,
        "initiated_by_user_email": (by.email or None) if by else None,
        "description": entry.description,
    }


def image_name(image: OsImage | None) -> str:
    if image is None:
        return ""
    return f"{_DISTRIBUTION[image.distribution]} {image.flavour} {image.version}"


def _spec_fields(view: VmView) -> dict[str, Any]:
    spec: Any = view.template if view.template is not None else view.custom
    if spec is None:
        return {"cpu": 0, "memory": 0, "disk_size": 0, "disk_type": "ssd", "disk_interface": "pcie"}
    out: dict[str, Any] = {"cpu": spec.cpu, "memory": spec.memory, "disk_size": spec.disk_size}
    if spec.cpu_mfg is not CpuMfg.UNKNOWN:
        out["cpu_mfg"] = spec.cpu_mfg.name.lower()
    if spec.cpu_arch is not CpuArch.UNKNOWN:
        out["cpu_arch"] = spec.cpu_arch.name.lower()
    if spec.cpu_features:
        out["cpu_features"] = list(spec.cpu_features)
    out.update(
        disk_type=spec.disk_type.name.lower(), disk_interface=spec.disk_interface.name.lower()
    )
    return out


async def vm_json(uow: UnitOfWork, vm: Vm, state: VmRunningState | None) -> dict[str, Any]:
    """AdminVmInfo; `running_state` null when nothing is cached, `subscription` omitted if none."""
    [out] = await vms_json(uow, [vm], {vm.id: state})
    return out


async def vms_json(
    uow: UnitOfWork, vms: list[Vm], states: Mapping[int, VmRunningState | None]
) -> list[dict[str, Any]]:
    """AdminVmInfo of each VM, read in a fixed number of queries whatever their number."""
    which = VmFilter(vm_ids=[vm.id for vm in vms], deleted=True)
    found = {r.vm.id: view_of(r) for r in await uow.vm_reads.vm_records(which)}
    views = [found.get(vm.id) or view_of(VmRecords(vm=vm)) for vm in vms]
    owners = await uow.lookups.users({vm.user_id for vm in vms})
    hosts = {h.id: h for h in await uow.hosts.list_all()} if vms else {}
    regions = {r.id: r for r in await uow.regions.list_all()} if vms else {}
    subs = [v.subscription for v in views if v.subscription is not None]
    subs_json = {s.id: j for s, j in zip(subs, await subscriptions_json(uow, subs), strict=True)}
    out = []
    for vm, view in zip(vms, views, strict=True):
        host = hosts.get(vm.host_id)
        region = None if host is None else regions.get(host.region_id)
        sub_json = None if view.subscription is None else subs_json[view.subscription.id]
        out.append(
            _vm_json(vm, view, owners.get(vm.user_id), host, region, sub_json, states.get(vm.id))
        )
    return out


def _vm_json(
    vm: Vm,
    view: VmView,
    owner: User | None,
    host: Host | None,
    region: Region | None,
    sub_json: dict[str, Any] | None,
    state: VmRunningState | None,
) -> dict[str, Any]:
    sub = view.subscription
    if view.template is not None:
        template_id, template_name = view.template.id, view.template.name
    else:
        template_id = 0
        template_name = f"Custom - {view.pricing.name if view.pricing else ''}"
    out: dict[str, Any] = {
        "id": vm.id,
        "created": format_optional_time(sub.created if sub else None),
        "expires": format_optional_time(sub.expires if sub else None),
        **same_named(vm, "mac_address", "image_id"),
        "image_name": image_name(view.image),
        "template_id": template_id,
        "template_name": template_name,
        "custom_template_id": vm.custom_template_id,
        "is_standard_template": vm.template_id is not None,
        "ssh_key_id": vm.ssh_key_id,
        "ssh_key_name": view.ssh_key.name if view.ssh_key else "",
        "ip_addresses": [
            {"id": a.id, "ip": a.ip.split("/", 1)[0], "range_id": a.ip_range_id}
            for a, _ in view.ips
        ],
        "running_state": None if state is None else state_json(state),
        "auto_renewal_enabled": sub.auto_renewal_enabled if sub else False,
        **_spec_fields(view),
        **same_named(vm, "host_id", "user_id"),
        "user_pubkey": owner.pubkey.hex() if owner else "",
        "user_email": (owner.email or None) if owner else None,
        "host_name": host.name if host else "",
        "region_id": region.id if region else 0,
        "region_name": region.name if region else "",
        **same_named(vm, "deleted", "disabled", "ref_code"),
    }
    if sub_json is not None:
        out["subscription"] = sub_json
    return out


def payment_method_json(config: PaymentMethodConfig) -> dict[str, Any]:
    """AdminPaymentMethodConfigInfo; `config` sanitized (secrets as `has_<field>` booleans)."""
    rate = config.processing_fee_rate
    return {
        **same_named(config, "id", "company_id"),
        "payment_method": config.payment_method.api_name,
        **same_named(config, "name", "enabled", "provider_type"),
        "config": sanitized(config),
        "processing_fee_rate": None if rate is None else float(rate),
        **same_named(config, "processing_fee_base", "processing_fee_currency"),
        "supported_currencies": list(config.supported_currencies),
        "created": format_time(config.created),
        "modified": format_time(config.modified),
    }
