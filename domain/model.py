"""The records the billing core works with, shaped like LNVPS's tables (schema.md §4–8)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from domain import enums
from domain.intervals import Interval
from domain.money import Currency
from domain.unreadable import Unreadable

#: MAC address of a VM that was never provisioned on a host.
PLACEHOLDER_MAC = "ff:ff:ff:ff:ff:ff"

GIB = 1024**3

#: JSON values as stored in JSON columns.
Json = Any


@attrs.frozen(kw_only=True)
class User:
    id: int
    pubkey: bytes
    created: datetime
    #: "" when none; `Unreadable` (falsy: no usable address) when its key is lost (D28)
    email: str | Unreadable = ""
    email_verified: bool = False
    email_verify_token: str = ""
    contact_nip17: bool = True
    contact_email: bool = False
    country_code: str | None = None
    billing_name: str | None = None
    billing_address_1: str | None = None
    billing_address_2: str | None = None
    billing_city: str | None = None
    billing_state: str | None = None
    billing_postcode: str | None = None
    billing_tax_id: str | None = None
    #: an operator checked `billing_tax_id` is a valid EU VAT id (reverse charge on invoices)
    billing_vat_validated: bool = False
    #: a spending credential (D28): kept out of reprs, hence out of logs and tracebacks;
    #: `Unreadable` (falsy: no usable wallet) when it cannot be decrypted
    nwc_connection_string: str | Unreadable | None = attrs.field(default=None, repr=False)
    email_hash: bytes | None = None


@attrs.frozen(kw_only=True)
class SshKey:
    id: int
    name: str
    user_id: int
    created: datetime
    #: `Unreadable` when it cannot be decrypted (D28): no VM can be built with it
    key_data: str | Unreadable


@attrs.frozen(kw_only=True)
class Company:
    id: int
    created: datetime
    name: str
    email: str = ""
    phone: str | None = None
    address_1: str | None = None
    address_2: str | None = None
    city: str | None = None
    state: str | None = None
    postcode: str | None = None
    country_code: str | None = None
    tax_id: str | None = None
    base_currency: str = "EUR"


@attrs.frozen(kw_only=True)
class Region:
    id: int
    name: str
    enabled: bool
    company_id: int


@attrs.frozen(kw_only=True)
class Host:
    id: int
    kind: enums.VmHostKind
    region_id: int
    name: str
    ip: str
    cpu: int
    memory: int
    enabled: bool
    #: secrets stay out of reprs and logs (D28); `Unreadable`: no client can be built
    api_token: str | Unreadable = attrs.field(repr=False)
    load_cpu: Decimal = Decimal(1)
    load_memory: Decimal = Decimal(1)
    load_disk: Decimal = Decimal(1)
    vlan_id: int | None = None
    mtu: int | None = None
    cpu_mfg: enums.CpuMfg = enums.CpuMfg.UNKNOWN
    cpu_arch: enums.CpuArch = enums.CpuArch.UNKNOWN
    cpu_features: tuple[str, ...] = ()
    ssh_user: str | None = None
    ssh_key: str | Unreadable | None = attrs.field(default=None, repr=False)


@attrs.frozen(kw_only=True)
class HostDisk:
    id: int
    host_id: int
    name: str
    size: int
    kind: enums.DiskType
    interface: enums.DiskInterface
    enabled: bool


@attrs.frozen(kw_only=True)
class OsImage:
    id: int
    distribution: enums.OsDistribution
    flavour: str
    version: str
    enabled: bool
    release_date: datetime
    url: str
    default_username: str | None = None
    sha2: str | None = None
    sha2_url: str | None = None


@attrs.frozen(kw_only=True)
class IpRange:
    id: int
    cidr: str
    enabled: bool
    region_id: int
    gateway: str
    reverse_zone_id: str | None = None
    access_policy_id: int | None = None
    allocation_mode: enums.IpRangeAllocationMode = enums.IpRangeAllocationMode.RANDOM
    use_full_range: bool = False


@attrs.frozen(kw_only=True)
class IpAssignment:
    id: int
    vm_id: int
    ip_range_id: int
    ip: str
    deleted: bool = False
    arp_ref: str | None = None
    dns_reverse: str | None = None
    dns_reverse_ref: str | None = None
    dns_forward: str | None = None
    dns_forward_ref: str | None = None


@attrs.frozen(kw_only=True)
class ResourceLimits:
    """Optional per-VM caps copied from a pricing onto a template."""

    disk_iops_read: int | None = None
    disk_iops_write: int | None = None
    disk_mbps_read: int | None = None
    disk_mbps_write: int | None = None
    network_mbps: int | None = None
    cpu_limit: Decimal | None = None


@attrs.frozen(kw_only=True)
class CostPlan:
    id: int
    name: str
    created: datetime
    amount: int
    currency: str
    interval_amount: int
    interval_type: enums.IntervalType

    @property
    def interval(self) -> Interval:
        return Interval(self.interval_type, self.interval_amount)

    @property
    def parsed_currency(self) -> Currency:
        return Currency.parse(self.currency)


@attrs.frozen(kw_only=True)
class VmTemplate:
    id: int
    name: str
    enabled: bool
    created: datetime
    expires: datetime | None
    cpu: int
    memory: int
    disk_size: int
    disk_type: enums.DiskType
    disk_interface: enums.DiskInterface
    cost_plan_id: int
    region_id: int
    cpu_mfg: enums.CpuMfg = enums.CpuMfg.UNKNOWN
    cpu_arch: enums.CpuArch = enums.CpuArch.UNKNOWN
    cpu_features: tuple[str, ...] = ()
    limits: ResourceLimits = ResourceLimits()


@attrs.frozen(kw_only=True)
class CustomPricing:
    id: int
    name: str
    enabled: bool
    created: datetime
    expires: datetime | None
    region_id: int
    currency: str
    cpu_cost: int
    memory_cost: int
    ip4_cost: int
    ip6_cost: int
    min_cpu: int = 1
    max_cpu: int = 32
    min_memory: int = GIB
    max_memory: int = 64 * GIB
    cpu_mfg: enums.CpuMfg = enums.CpuMfg.UNKNOWN
    cpu_arch: enums.CpuArch = enums.CpuArch.UNKNOWN
    cpu_features: tuple[str, ...] = ()
    limits: ResourceLimits = ResourceLimits()


@attrs.frozen(kw_only=True)
class CustomPricingDisk:
    id: int
    pricing_id: int
    kind: enums.DiskType
    interface: enums.DiskInterface
    cost: int
    min_disk_size: int = 5 * GIB
    max_disk_size: int = 2048 * GIB


@attrs.frozen(kw_only=True)
class CustomTemplate:
    id: int
    cpu: int
    memory: int
    disk_size: int
    disk_type: enums.DiskType
    disk_interface: enums.DiskInterface
    pricing_id: int
    cpu_mfg: enums.CpuMfg = enums.CpuMfg.UNKNOWN
    cpu_arch: enums.CpuArch = enums.CpuArch.UNKNOWN
    cpu_features: tuple[str, ...] = ()
    limits: ResourceLimits = ResourceLimits()


@attrs.frozen(kw_only=True)
class Vm:
    id: int
    host_id: int
    user_id: int
    image_id: int
    template_id: int | None
    custom_template_id: int | None
    ssh_key_id: int
    disk_id: int
    subscription_line_item_id: int
    mac_address: str = PLACEHOLDER_MAC
    deleted: bool = False
    ref_code: str | None = None
    disabled: bool = False
    #: since when the host has not confirmed the size the records say (a paid upgrade not yet
    #: resized there); None when it has. Set with the records, cleared by the worker.
    resize_requested: datetime | None = None

    @property
    def is_provisioned(self) -> bool:
        return self.mac_address != PLACEHOLDER_MAC


@attrs.frozen(kw_only=True)
class VmHistory:
    id: int
    vm_id: int
    action_type: enums.VmHistoryActionType
    timestamp: datetime
    initiated_by_user: int | None = None
    previous_state: Json = None
    new_state: Json = None
    metadata: Json = None
    description: str | None = None


def vm_event(
    vm_id: int,
    action: enums.VmHistoryActionType,
    now: datetime,
    description: str,
    *,
    by: int | None = None,
    before: Json = None,
    after: Json = None,
    metadata: Json = None,
) -> VmHistory:
    """A new history entry of `vm_id` (id 0 until stored); `by` is the user who acted, if any."""
    return VmHistory(
        id=0,
        vm_id=vm_id,
        action_type=action,
        timestamp=now,
        initiated_by_user=by,
        previous_state=before,
        new_state=after,
        metadata=metadata,
        description=description,
    )


@attrs.frozen(kw_only=True)
class Subscription:
    id: int
    user_id: int
    company_id: int
    name: str
    created: datetime
    currency: str
    description: str | None = None
    expires: datetime | None = None
    is_active: bool = False
    is_setup: bool = False
    interval_amount: int = 1
    interval_type: enums.IntervalType = enums.IntervalType.MONTH
    setup_fee: int = 0
    auto_renewal_enabled: bool = False
    external_id: str | None = None
    #: an admin's switch-off (ours; None: not switched off), see `domain.switch_off`
    switched_off: enums.SwitchedOff | None = None

    @property
    def interval(self) -> Interval:
        return Interval(self.interval_type, self.interval_amount)

    @property
    def in_service(self) -> bool:
        """Paid for once (`is_setup`) or given time without a payment: an expiry an operator
        set, or an LNVPS VM adopted with time but no paid payment, which keeps
        `is_setup = 0` (D18) and must still be kept running, re-built and topped up like
        any paid one. A never-paid order has neither."""
        return self.is_setup or self.expires is not None


@attrs.frozen(kw_only=True)
class LineItem:
    id: int
    subscription_id: int
    subscription_type: enums.SubscriptionType
    name: str
    amount: int
    description: str | None = None
    setup_amount: int = 0
    configuration: Json = None


@attrs.frozen(kw_only=True)
class SubscriptionPayment:
    id: bytes
    subscription_id: int
    user_id: int
    created: datetime
    expires: datetime
    amount: int
    currency: str
    payment_method: enums.PaymentMethod
    payment_type: enums.SubscriptionPaymentType
    #: `Unreadable` when it cannot be decrypted (D28): the invoice or order is not shown
    external_data: str | Unreadable
    rate: Decimal
    tax: int = 0
    processing_fee: int = 0
    external_id: str | None = None
    is_paid: bool = False
    time_value: int | None = None
    metadata: Json = None
    paid_at: datetime | None = None

    def is_pending(self, now: datetime) -> bool:
        """Unpaid and still payable: `is_paid = 0 AND expires > now`."""
        return not self.is_paid and self.expires > now

    @property
    def total(self) -> int:
        """What the customer pays: amount + tax + processing fee."""
        return self.amount + self.tax + self.processing_fee

    @property
    def paid_time(self) -> datetime:
        """When a paid payment was paid (reports count it then): `paid_at`, or `created` for a
        paid row without one (paid before it was recorded, or adopted from the old LNVPS)."""
        return self.paid_at or self.created


@attrs.frozen(kw_only=True)
class LegacyVmPayment:
    """A row of the pre-subscription `vm_payment` table; read by the backfill only."""

    id: bytes
    vm_id: int
    created: datetime
    expires: datetime
    amount: int
    currency: str
    payment_method: enums.PaymentMethod
    payment_type: enums.LegacyPaymentType
    #: `Unreadable` when it cannot be decrypted (D28): the invoice or order is not shown
    external_data: str | Unreadable
    time_value: int
    is_paid: bool
    rate: Decimal
    tax: int = 0
    processing_fee: int = 0
    external_id: str | None = None
    upgrade_params: str | None = None
    paid_at: datetime | None = None


@attrs.frozen(kw_only=True)
class AvailableIpSpace:
    id: int
    company_id: int
    cidr: str
    min_prefix_size: int
    max_prefix_size: int
    registry: enums.InternetRegistry
    created: datetime
    updated: datetime
    external_id: str | None = None
    is_available: bool = True
    is_reserved: bool = False
    metadata: Json = None


@attrs.frozen(kw_only=True)
class IpSpacePricing:
    id: int
    available_ip_space_id: int
    prefix_size: int
    price_per_month: int
    created: datetime
    updated: datetime
    currency: str = "USD"
    setup_fee: int = 0


@attrs.frozen(kw_only=True)
class IpRangeSubscription:
    id: int
    subscription_line_item_id: int
    available_ip_space_id: int
    created: datetime
    cidr: str
    is_active: bool = True
    started_at: datetime | None = None
    ended_at: datetime | None = None
    metadata: Json = None


@attrs.frozen(kw_only=True)
class PaymentMethodConfig:
    id: int
    company_id: int
    payment_method: enums.PaymentMethod
    name: str
    enabled: bool
    provider_type: str
    config: Json
    created: datetime
    modified: datetime
    processing_fee_rate: Decimal | None = None
    processing_fee_base: int | None = None
    processing_fee_currency: str | None = None
    supported_currencies: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class AdminRole:
    id: int
    name: str
    created_at: datetime
    updated_at: datetime
    description: str | None = None
    is_system_role: bool = False


@attrs.frozen(kw_only=True)
class RolePermission:
    id: int
    role_id: int
    resource: enums.AdminResource
    action: enums.AdminAction
    created_at: datetime


@attrs.frozen(kw_only=True)
class RoleAssignment:
    id: int
    user_id: int
    role_id: int
    assigned_at: datetime
    assigned_by: int | None = None
    expires_at: datetime | None = None


@attrs.frozen(kw_only=True)
class AdminAudit:
    """One state-changing admin request: who, when, what, and how it ended (ours, not LNVPS)."""

    id: int
    user_id: int
    at: datetime
    method: str
    path: str
    resource: str
    resource_id: str | None
    summary: Json
    status: int
