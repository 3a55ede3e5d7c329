"""Head database shape: LNVPS tables (schema.md §4–8) plus our own (lifecycle, worker) tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    text,
)

from adapters.mysql.types import (
    Binary32,
    BitBool,
    CommaList,
    DecimalFloat,
    EnumCode,
    JsonText,
    UBigInt,
    UInt,
    USmallInt,
    UtcDateTime,
    UTinyInt,
)
from domain.account_credit import CreditReason
from domain.enums import (
    AdminAction,
    AdminResource,
    CpuArch,
    CpuMfg,
    DiskInterface,
    DiskType,
    InternetRegistry,
    IntervalType,
    IpRangeAllocationMode,
    LegacyPaymentType,
    OsDistribution,
    PaymentMethod,
    SubscriptionPaymentType,
    SubscriptionType,
    SwitchedOff,
    VmHistoryActionType,
    VmHostKind,
)

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

#: MySQL table options used for every table.
TABLE_OPTS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

NOW = func.current_timestamp()
ZERO = text("0")
ONE = text("1")
EMPTY = text("''")


def pk() -> Column[int]:
    """`id int u NOT NULL AUTO_INCREMENT PRIMARY KEY`."""
    return Column("id", UInt, primary_key=True, autoincrement=True)


def big_pk() -> Column[int]:
    """`id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY` (RBAC tables)."""
    return Column("id", UBigInt, primary_key=True, autoincrement=True)


def created(name: str = "created") -> Column[Any]:
    """`<name> TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP`."""
    return Column(name, UtcDateTime(), nullable=False, server_default=NOW)


def bit(name: str, default: int | None = None) -> Column[Any]:
    """`<name> BIT(1) NOT NULL [DEFAULT d]`."""
    server_default = None if default is None else (ONE if default else ZERO)
    return Column(name, BitBool(), nullable=False, server_default=server_default)


def cpu_columns() -> list[Column[Any]]:
    """cpu_mfg, cpu_arch, cpu_features (20260219000000)."""
    return [
        Column("cpu_mfg", EnumCode(CpuMfg), nullable=False, server_default=ZERO),
        Column("cpu_arch", EnumCode(CpuArch), nullable=False, server_default=ZERO),
        Column("cpu_features", CommaList(255), nullable=False, server_default=EMPTY),
    ]


def limit_columns() -> list[Column[Any]]:
    """Per-VM resource caps (20260225000000/1); NULL = uncapped."""
    names = ["disk_iops_read", "disk_iops_write", "disk_mbps_read", "disk_mbps_write"]
    cols: list[Column[Any]] = [Column(n, UInt, nullable=True) for n in names]
    cols.append(Column("network_mbps", UInt, nullable=True))
    cols.append(Column("cpu_limit", DecimalFloat(), nullable=True))
    return cols


# --- identity, company, region (§4) -------------------------------------------------------
users = Table(
    "users",
    metadata,
    pk(),
    Column("pubkey", Binary32, nullable=False),
    created(),
    Column("email", String(255), nullable=False, server_default=EMPTY),
    bit("email_verified", 0),
    Column("email_verify_token", String(64), nullable=False, server_default=EMPTY),
    bit("contact_nip17"),
    bit("contact_email"),
    Column("country_code", String(3), nullable=True),
    Column("billing_name", String(200), nullable=True),
    Column("billing_address_1", String(200), nullable=True),
    Column("billing_address_2", String(200), nullable=True),
    Column("billing_city", String(100), nullable=True),
    Column("billing_state", String(100), nullable=True),
    Column("billing_postcode", String(50), nullable=True),
    Column("billing_tax_id", String(50), nullable=True),
    Column("nwc_connection_string", Text, nullable=True),
    Column("email_hash", Binary32, nullable=True),
    bit("billing_vat_validated", 0),
    Index("ix_user_pubkey", "pubkey", unique=True),
    Index("ix_user_email", "email"),
    Index("idx_users_email_hash", "email_hash"),
    **TABLE_OPTS,
)

user_ssh_key = Table(
    "user_ssh_key",
    metadata,
    pk(),
    Column("name", String(100), nullable=False),
    Column("user_id", UInt, ForeignKey("users.id", name="fk_ssh_key_user"), nullable=False),
    created(),
    Column("key_data", Text, nullable=False),
    **TABLE_OPTS,
)

company = Table(
    "company",
    metadata,
    pk(),
    created(),
    Column("name", String(100), nullable=False),
    Column("email", String(100), nullable=False),
    Column("phone", String(100), nullable=True),
    Column("address_1", String(200), nullable=True),
    Column("address_2", String(200), nullable=True),
    Column("city", String(100), nullable=True),
    Column("state", String(100), nullable=True),
    Column("postcode", String(50), nullable=True),
    Column("country_code", String(3), nullable=True),
    Column("tax_id", String(50), nullable=True),
    Column("base_currency", String(3), nullable=False, server_default=text("'EUR'")),
    **TABLE_OPTS,
)

vm_host_region = Table(
    "vm_host_region",
    metadata,
    pk(),
    Column("name", String(100), nullable=False),
    bit("enabled"),
    Column(
        "company_id",
        UInt,
        ForeignKey("company.id", name="fk_host_region_company"),
        nullable=False,
    ),
    **TABLE_OPTS,
)

# --- hosts, images, networking (§5) -------------------------------------------------------
vm_host = Table(
    "vm_host",
    metadata,
    pk(),
    Column("kind", EnumCode(VmHostKind), nullable=False),
    Column(
        "region_id", UInt, ForeignKey("vm_host_region.id", name="fk_host_region"), nullable=False
    ),
    Column("name", String(100), nullable=False),
    Column("ip", String(250), nullable=False),
    Column("cpu", UBigInt, nullable=False),
    Column("memory", UBigInt, nullable=False),
    bit("enabled"),
    Column("api_token", Text, nullable=False),
    Column("load_cpu", DecimalFloat(), nullable=False, server_default=text("1.0")),
    Column("load_memory", DecimalFloat(), nullable=False, server_default=text("1.0")),
    Column("load_disk", DecimalFloat(), nullable=False, server_default=text("1.0")),
    Column("vlan_id", UInt, nullable=True),
    Column("mtu", USmallInt, nullable=True),
    *cpu_columns(),
    Column("ssh_user", String(255), nullable=True),
    Column("ssh_key", Text, nullable=True),
    **TABLE_OPTS,
)

vm_host_disk = Table(
    "vm_host_disk",
    metadata,
    pk(),
    Column("host_id", UInt, ForeignKey("vm_host.id", name="fk_host_disk_host"), nullable=False),
    Column("name", String(50), nullable=False),
    Column("size", UBigInt, nullable=False),
    Column("kind", EnumCode(DiskType), nullable=False),
    Column("interface", EnumCode(DiskInterface), nullable=False),
    bit("enabled"),
    **TABLE_OPTS,
)

vm_os_image = Table(
    "vm_os_image",
    metadata,
    pk(),
    Column("distribution", EnumCode(OsDistribution), nullable=False),
    Column("flavour", String(50), nullable=False),
    Column("version", String(50), nullable=False),
    bit("enabled"),
    Column("release_date", UtcDateTime(), nullable=False),
    Column("url", String(1024), nullable=False),
    Column("default_username", String(50), nullable=True),
    Column("sha2", String(128), nullable=True),
    Column("sha2_url", String(1024), nullable=True),
    Index("ix_vm_os_image", "distribution", "flavour", "version", unique=True),
    **TABLE_OPTS,
)

router = Table(
    "router",
    metadata,
    pk(),
    Column("name", String(100), nullable=False),
    bit("enabled"),
    Column("kind", USmallInt, nullable=False),
    Column("url", String(255), nullable=False),
    Column("token", Text, nullable=False),
    **TABLE_OPTS,
)

access_policy = Table(
    "access_policy",
    metadata,
    pk(),
    Column("name", String(100), nullable=False),
    Column("kind", USmallInt, nullable=False),
    Column(
        "router_id",
        UInt,
        ForeignKey("router.id", name="fk_access_policy_router"),
        nullable=True,
    ),
    Column("interface", String(100), nullable=True),
    **TABLE_OPTS,
)

ip_range = Table(
    "ip_range",
    metadata,
    pk(),
    Column("cidr", String(200), nullable=False),
    bit("enabled"),
    Column(
        "region_id",
        UInt,
        ForeignKey("vm_host_region.id", name="fk_ip_range_region"),
        nullable=False,
    ),
    Column("gateway", String(255), nullable=False),
    Column("reverse_zone_id", String(255), nullable=True),
    Column(
        "access_policy_id",
        UInt,
        ForeignKey("access_policy.id", name="fk_ip_range_access_policy"),
        nullable=True,
    ),
    Column(
        "allocation_mode",
        EnumCode(IpRangeAllocationMode),
        nullable=False,
        server_default=ZERO,
    ),
    bit("use_full_range"),
    Index("ix_ip_range_cidr", "cidr", unique=True),
    **TABLE_OPTS,
)

# --- products and pricing (§6) ------------------------------------------------------------
vm_cost_plan = Table(
    "vm_cost_plan",
    metadata,
    pk(),
    Column("name", String(200), nullable=False),
    created(),
    Column("amount", UBigInt, nullable=False),
    Column("currency", String(4), nullable=False),
    Column("interval_amount", UInt, nullable=False),
    Column("interval_type", EnumCode(IntervalType), nullable=False),
    **TABLE_OPTS,
)

vm_template = Table(
    "vm_template",
    metadata,
    pk(),
    Column("name", String(200), nullable=False),
    bit("enabled"),
    created(),
    Column("expires", UtcDateTime(), nullable=True),
    Column("cpu", UTinyInt, nullable=False),
    *cpu_columns(),
    Column("memory", UBigInt, nullable=False),
    Column("disk_size", UBigInt, nullable=False),
    Column("disk_type", EnumCode(DiskType), nullable=False),
    Column("disk_interface", EnumCode(DiskInterface), nullable=False),
    Column(
        "cost_plan_id",
        UInt,
        ForeignKey("vm_cost_plan.id", name="fk_template_cost_plan"),
        nullable=False,
    ),
    Column(
        "region_id",
        UInt,
        ForeignKey("vm_host_region.id", name="fk_template_region"),
        nullable=False,
    ),
    *limit_columns(),
    **TABLE_OPTS,
)

vm_custom_pricing = Table(
    "vm_custom_pricing",
    metadata,
    pk(),
    Column("name", String(100), nullable=False),
    bit("enabled"),
    created(),
    Column("expires", UtcDateTime(), nullable=True),
    Column(
        "region_id",
        UInt,
        ForeignKey("vm_host_region.id", name="fk_custom_pricing_region"),
        nullable=False,
    ),
    Column("currency", String(5), nullable=False),
    Column("cpu_cost", UBigInt, nullable=False),
    Column("memory_cost", UBigInt, nullable=False),
    Column("ip4_cost", UBigInt, nullable=False),
    Column("ip6_cost", UBigInt, nullable=False),
    Column("min_cpu", UTinyInt, nullable=False, server_default=ONE),
    Column("max_cpu", UTinyInt, nullable=False, server_default=text("32")),
    Column("min_memory", UBigInt, nullable=False, server_default=text("1073741824")),
    Column("max_memory", UBigInt, nullable=False, server_default=text("68719476736")),
    *cpu_columns(),
    *limit_columns(),
    **TABLE_OPTS,
)

vm_custom_pricing_disk = Table(
    "vm_custom_pricing_disk",
    metadata,
    pk(),
    Column(
        "pricing_id",
        UInt,
        ForeignKey("vm_custom_pricing.id", name="fk_custom_pricing_disk"),
        nullable=False,
    ),
    Column("kind", EnumCode(DiskType), nullable=False),
    Column("interface", EnumCode(DiskInterface), nullable=False),
    Column("cost", UBigInt, nullable=False),
    Column("min_disk_size", UBigInt, nullable=False, server_default=text("5368709120")),
    Column("max_disk_size", UBigInt, nullable=False, server_default=text("2199023255552")),
    **TABLE_OPTS,
)

vm_custom_template = Table(
    "vm_custom_template",
    metadata,
    pk(),
    Column("cpu", UTinyInt, nullable=False),
    Column("memory", UBigInt, nullable=False),
    Column("disk_size", UBigInt, nullable=False),
    Column("disk_type", EnumCode(DiskType), nullable=False),
    Column("disk_interface", EnumCode(DiskInterface), nullable=False),
    Column(
        "pricing_id",
        UInt,
        ForeignKey("vm_custom_pricing.id", name="fk_custom_template_pricing"),
        nullable=False,
    ),
    *cpu_columns(),
    *limit_columns(),
    **TABLE_OPTS,
)

# --- subscriptions (§8), declared before vm because vm links to a line item ---------------
#: the never-paid cleanup's index (r16): never-paid subscriptions (no expiry) by creation
NEVER_PAID_INDEX = "idx_subscription_never_paid"

subscription = Table(
    "subscription",
    metadata,
    pk(),
    Column("user_id", UInt, ForeignKey("users.id", name="fk_subscription_user"), nullable=False),
    Column(
        "company_id",
        UInt,
        ForeignKey("company.id", name="fk_subscription_company"),
        nullable=False,
    ),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    created(),
    # DATETIME (UTC by convention), not the reference's TIMESTAMP, which ends 2038-01-19 (r4)
    Column("expires", UtcDateTime(datetime_column=True), nullable=True),
    bit("is_active", 1),
    bit("is_setup", 0),
    Column("currency", String(4), nullable=False),
    Column("interval_amount", UInt, nullable=False, server_default=ONE),
    Column("interval_type", EnumCode(IntervalType), nullable=False, server_default=ONE),
    Column("setup_fee", UBigInt, nullable=False, server_default=ZERO),
    bit("auto_renewal_enabled", 0),
    Column("external_id", String(255), nullable=True),
    # ours (r18): an admin's switch-off (domain.switch_off), NULL when not switched off
    Column("switched_off", EnumCode(SwitchedOff), nullable=True),
    Index("idx_subscription_user", "user_id"),
    Index("idx_subscription_expires", "expires"),
    Index("idx_subscription_active", "is_active"),
    Index("idx_subscription_external_id", "external_id"),
    # ours (r4): the lifecycle scans `is_active = 1 AND expires IS NOT NULL AND expires < ?`
    Index("idx_subscription_lifecycle", "is_active", "expires"),
    # ours (r16): the never-paid cleanup scans `expires IS NULL AND created` in a window
    Index(NEVER_PAID_INDEX, "expires", "created"),
    **TABLE_OPTS,
)

subscription_line_item = Table(
    "subscription_line_item",
    metadata,
    pk(),
    Column(
        "subscription_id",
        UInt,
        ForeignKey("subscription.id", name="fk_line_item_subscription", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("subscription_type", EnumCode(SubscriptionType), nullable=False, server_default=ZERO),
    Column("name", String(200), nullable=False),
    Column("description", Text, nullable=True),
    Column("amount", UBigInt, nullable=False),
    Column("setup_amount", UBigInt, nullable=False, server_default=ZERO),
    Column("configuration", JsonText(), nullable=True),
    Index("idx_line_item_subscription", "subscription_id"),
    Index("idx_line_item_type", "subscription_type"),
    **TABLE_OPTS,
)

subscription_payment = Table(
    "subscription_payment",
    metadata,
    Column("id", Binary32, nullable=False),
    Column(
        "subscription_id",
        UInt,
        ForeignKey("subscription.id", name="fk_subscription_payment_subscription"),
        nullable=False,
    ),
    Column(
        "user_id",
        UInt,
        ForeignKey("users.id", name="fk_subscription_payment_user"),
        nullable=False,
    ),
    created(),
    Column("expires", UtcDateTime(), nullable=False),
    Column("amount", UBigInt, nullable=False),
    Column("currency", String(5), nullable=False),
    Column("payment_method", EnumCode(PaymentMethod), nullable=False),
    Column("payment_type", EnumCode(SubscriptionPaymentType), nullable=False),
    Column("external_data", Text, nullable=False),
    Column("external_id", String(255), nullable=True),
    bit("is_paid", 0),
    Column("rate", DecimalFloat(), nullable=False),
    Column("time_value", UBigInt, nullable=True),
    Column("metadata", JsonText(), nullable=True),
    Column("tax", UBigInt, nullable=False),
    Column("processing_fee", UBigInt, nullable=False, server_default=ZERO),
    Column("paid_at", UtcDateTime(), nullable=True),
    # r12, the adapter's own (no field of the record): the metadata's "intervals" when an
    # integer, else NULL (`interval_column.interval_count_column`)
    Column("interval_count", Integer, nullable=True),
    Index("ix_subscription_payment_id", "id", unique=True),
    Index("idx_subscription_payment_subscription", "subscription_id"),
    Index("idx_subscription_payment_user", "user_id"),
    Index("idx_subscription_payment_expires", "expires"),
    Index("idx_subscription_payment_external_id", "external_id"),
    Index("idx_subscription_payment_is_paid", "is_paid"),
    Index("idx_subscription_payment_unpaid_method", "payment_method", "is_paid", "created"),
    # r11: a subscription's live unpaid payments (the renewal's reuse lookup)
    Index("idx_subscription_payment_pending", "subscription_id", "is_paid", "expires"),
    # r12: the same, of one interval count (the reuse lookup's narrowing)
    Index(
        "idx_subscription_payment_pending_count",
        "subscription_id",
        "is_paid",
        "interval_count",
        "expires",
    ),
    **TABLE_OPTS,
)

# --- VMs, legacy payments, history (§7) ---------------------------------------------------
vm = Table(
    "vm",
    metadata,
    pk(),
    Column("host_id", UInt, ForeignKey("vm_host.id", name="fk_vm_host"), nullable=False),
    Column("user_id", UInt, ForeignKey("users.id", name="fk_vm_user"), nullable=False),
    Column("image_id", UInt, ForeignKey("vm_os_image.id", name="fk_vm_image"), nullable=False),
    Column(
        "template_id",
        UInt,
        ForeignKey("vm_template.id", name="fk_vm_template_id"),
        nullable=True,
    ),
    Column(
        "ssh_key_id",
        UInt,
        ForeignKey("user_ssh_key.id", name="fk_vm_ssh_key_id"),
        nullable=False,
    ),
    created(),  # legacy, dropped at finalization
    Column("expires", UtcDateTime(), nullable=True),  # legacy billing expiry
    Column(
        "disk_id", UInt, ForeignKey("vm_host_disk.id", name="fk_vm_host_disk_id"), nullable=False
    ),
    Column("mac_address", String(20), nullable=False),
    bit("deleted", 0),
    Column("ref_code", String(20), nullable=True),
    Column(
        "custom_template_id",
        UInt,
        ForeignKey("vm_custom_template.id", name="fk_vm_custom_template"),
        nullable=True,
    ),
    Column(
        "subscription_line_item_id",
        UInt,
        ForeignKey("subscription_line_item.id", name="fk_vm_subscription_line_item"),
        nullable=True,
    ),
    bit("auto_renewal_enabled", 0),  # legacy NWC flag
    bit("disabled", 0),
    # ours (r10): the host has not confirmed the size the records say since this time
    Column("resize_requested", UtcDateTime(datetime_column=True), nullable=True),
    Index("idx_vm_subscription_line_item", "subscription_line_item_id"),
    Index("idx_vm_resize_requested", "resize_requested"),
    **TABLE_OPTS,
)

vm_ip_assignment = Table(
    "vm_ip_assignment",
    metadata,
    pk(),
    Column("vm_id", UInt, ForeignKey("vm.id", name="fk_vm_ip_assignment_vm"), nullable=False),
    Column("ip_range_id", UInt, ForeignKey("ip_range.id", name="fk_vm_ip_range"), nullable=False),
    Column("ip", String(255), nullable=False),
    bit("deleted", 0),
    Column("arp_ref", String(50), nullable=True),
    Column("dns_reverse", String(255), nullable=True),
    Column("dns_reverse_ref", String(50), nullable=True),
    Column("dns_forward", String(255), nullable=True),
    Column("dns_forward_ref", String(50), nullable=True),
    **TABLE_OPTS,
)

vm_payment = Table(
    "vm_payment",
    metadata,
    Column("id", Binary32, nullable=False),
    Column("vm_id", UInt, ForeignKey("vm.id", name="fk_vm_payment_vm"), nullable=False),
    created(),
    Column("expires", UtcDateTime(), nullable=False),
    Column("amount", UBigInt, nullable=False),
    Column("external_data", Text, nullable=False),
    Column("time_value", UBigInt, nullable=False),
    bit("is_paid"),
    Column("rate", DecimalFloat(), nullable=False),
    Column("currency", String(5), nullable=False, server_default=text("'BTC'")),
    Column("payment_method", EnumCode(PaymentMethod), nullable=False, server_default=ZERO),
    Column("external_id", String(255), nullable=True),
    Column("tax", UBigInt, nullable=False),
    Column("payment_type", EnumCode(LegacyPaymentType), nullable=False, server_default=ZERO),
    Column("upgrade_params", Text, nullable=True),
    Column("processing_fee", UBigInt, nullable=False, server_default=ZERO),
    Column("paid_at", UtcDateTime(), nullable=True),
    Index("ix_vm_payment_id", "id", unique=True),
    **TABLE_OPTS,
)

vm_history = Table(
    "vm_history",
    metadata,
    pk(),
    Column("vm_id", UInt, ForeignKey("vm.id", name="fk_vm_history_vm"), nullable=False),
    Column("action_type", EnumCode(VmHistoryActionType), nullable=False),
    created("timestamp"),
    Column(
        "initiated_by_user",
        UInt,
        ForeignKey("users.id", name="fk_vm_history_user"),
        nullable=True,
    ),
    Column("previous_state", JsonText(), nullable=True),
    Column("new_state", JsonText(), nullable=True),
    Column("metadata", JsonText(), nullable=True),
    Column("description", Text, nullable=True),
    Index("ix_vm_history_vm_id", "vm_id"),
    Index("ix_vm_history_action_type", "action_type"),
    Index("ix_vm_history_timestamp", "timestamp"),
    **TABLE_OPTS,
)

# --- IP space (§8) ------------------------------------------------------------------------
available_ip_space = Table(
    "available_ip_space",
    metadata,
    pk(),
    Column(
        "company_id",
        UInt,
        ForeignKey("company.id", name="fk_available_ip_space_company"),
        nullable=False,
    ),
    Column("cidr", String(200), nullable=False),
    Column("min_prefix_size", USmallInt, nullable=False),
    Column("max_prefix_size", USmallInt, nullable=False),
    created(),
    created("updated"),
    Column("registry", EnumCode(InternetRegistry), nullable=False),
    Column("external_id", String(255), nullable=True),
    bit("is_available", 1),
    bit("is_reserved", 0),
    Column("metadata", JsonText(), nullable=True),
    Index("idx_available_ip_space_company", "company_id"),
    Index("idx_available_ip_space_cidr", "cidr", unique=True),
    Index("idx_available_ip_space_registry", "registry"),
    Index("idx_available_ip_space_external_id", "external_id"),
    Index("idx_available_ip_space_is_available", "is_available"),
    Index("idx_available_ip_space_is_reserved", "is_reserved"),
    **TABLE_OPTS,
)

ip_space_pricing = Table(
    "ip_space_pricing",
    metadata,
    pk(),
    Column(
        "available_ip_space_id",
        UInt,
        ForeignKey("available_ip_space.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("prefix_size", USmallInt, nullable=False),
    Column("price_per_month", UBigInt, nullable=False),
    Column("currency", String(4), nullable=False, server_default=text("'USD'")),
    Column("setup_fee", UBigInt, nullable=False, server_default=ZERO),
    created(),
    created("updated"),
    UniqueConstraint("available_ip_space_id", "prefix_size"),
    Index("idx_ip_space_pricing_space", "available_ip_space_id"),
    Index("idx_ip_space_pricing_prefix", "prefix_size"),
    **TABLE_OPTS,
)

ip_range_subscription = Table(
    "ip_range_subscription",
    metadata,
    pk(),
    Column(
        "subscription_line_item_id",
        UInt,
        ForeignKey("subscription_line_item.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "available_ip_space_id",
        UInt,
        ForeignKey("available_ip_space.id", ondelete="RESTRICT"),
        nullable=False,
    ),
    created(),
    Column("cidr", String(200), nullable=False),
    bit("is_active", 1),
    Column("started_at", UtcDateTime(), nullable=True, server_default=NOW),
    Column("ended_at", UtcDateTime(), nullable=True),
    Column("metadata", JsonText(), nullable=True),
    # no UNIQUE on cidr (r17): an ended range keeps its row, and its block may be sold again
    Index("idx_ip_range_subscription_line_item", "subscription_line_item_id"),
    Index("idx_ip_range_subscription_space", "available_ip_space_id"),
    Index("idx_ip_range_subscription_is_active", "is_active"),
    Index("idx_ip_range_subscription_cidr", "cidr"),
    **TABLE_OPTS,
)

payment_method_config = Table(
    "payment_method_config",
    metadata,
    pk(),
    Column(
        "company_id",
        UInt,
        ForeignKey("company.id", name="fk_payment_method_config_company"),
        nullable=False,
    ),
    Column("payment_method", EnumCode(PaymentMethod), nullable=False),
    Column("name", String(255), nullable=False),
    bit("enabled", 1),
    Column("provider_type", String(50), nullable=False),
    Column("config", JsonText(), nullable=False),
    Column("processing_fee_rate", DecimalFloat(), nullable=True),
    Column("processing_fee_base", UBigInt, nullable=True),
    Column("processing_fee_currency", String(5), nullable=True),
    created(),
    created("modified"),
    Column("supported_currencies", CommaList(100), nullable=False, server_default=EMPTY),
    Index("idx_company_id", "company_id"),
    Index("idx_enabled", "enabled"),
    **TABLE_OPTS,
)

# --- RBAC (§8) ----------------------------------------------------------------------------
admin_roles = Table(
    "admin_roles",
    metadata,
    big_pk(),
    Column("name", String(50), nullable=False, unique=True),
    Column("description", Text, nullable=True),
    Column("is_system_role", Boolean(), nullable=True, server_default=text("0")),
    created("created_at"),
    created("updated_at"),
    Index("idx_name", "name"),
    Index("idx_system_role", "is_system_role"),
    **TABLE_OPTS,
)

admin_role_permissions = Table(
    "admin_role_permissions",
    metadata,
    big_pk(),
    Column("role_id", UBigInt, ForeignKey("admin_roles.id", ondelete="CASCADE"), nullable=False),
    Column("resource", EnumCode(AdminResource), nullable=False),
    Column("action", EnumCode(AdminAction), nullable=False),
    created("created_at"),
    UniqueConstraint("role_id", "resource", "action", name="unique_role_permission"),
    # `idx_role_id` in LNVPS; renamed because SQLite index names are per database
    Index("idx_permissions_role_id", "role_id"),
    Index("idx_resource_action", "resource", "action"),
    Index("idx_admin_role_permissions_lookup", "role_id", "resource", "action"),
    **TABLE_OPTS,
)

admin_role_assignments = Table(
    "admin_role_assignments",
    metadata,
    big_pk(),
    Column("user_id", UInt, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("role_id", UBigInt, ForeignKey("admin_roles.id", ondelete="CASCADE"), nullable=False),
    Column("assigned_by", UInt, ForeignKey("users.id", ondelete="SET NULL"), nullable=True),
    created("assigned_at"),
    Column("expires_at", UtcDateTime(), nullable=True),
    UniqueConstraint("user_id", "role_id", name="unique_user_role"),
    Index("idx_user_id", "user_id"),
    Index("idx_role_id", "role_id"),
    Index("idx_expires", "expires_at"),
    Index("idx_admin_role_assignments_lookup", "user_id", "expires_at"),
    **TABLE_OPTS,
)

# --- ours (r4) ----------------------------------------------------------------------------
#: D15: one row per (subscription, lifecycle action, period); inserting it claims the action.
lifecycle_mark = Table(
    "lifecycle_mark",
    metadata,
    pk(),
    Column(
        "subscription_id",
        UInt,
        ForeignKey("subscription.id", name="fk_lifecycle_mark_subscription", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("action", USmallInt, nullable=False),
    Column("period_expires", UtcDateTime(datetime_column=True), nullable=False),
    created("claimed_at"),
    UniqueConstraint(
        "subscription_id", "action", "period_expires", name="uq_lifecycle_mark_period"
    ),
    **TABLE_OPTS,
)

#: D11: `Idempotency-Key` of a POST renewal → the payment it produced.
idempotency_key = Table(
    "idempotency_key",
    metadata,
    pk(),
    Column("key", String(255), nullable=False),
    Column(
        "user_id",
        UInt,
        ForeignKey("users.id", name="fk_idempotency_key_user", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("request_hash", Binary32, nullable=False),
    Column("payment_id", Binary32, nullable=True),
    created(),
    UniqueConstraint("user_id", "key", name="uq_idempotency_key_user_key"),
    **TABLE_OPTS,
)

#: a named lease on work done outside a transaction (a host call); stale after a timeout.
worker_lease = Table(
    "worker_lease",
    metadata,
    Column("name", String(191), primary_key=True),
    Column("holder", String(32), nullable=False),
    Column("claimed_at", UtcDateTime(datetime_column=True), nullable=False),
    **TABLE_OPTS,
)

#: a named position the worker resumes from (the Lightning node's settle index).
worker_cursor = Table(
    "worker_cursor",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("position", UBigInt, nullable=False),
    **TABLE_OPTS,
)

#: ours (r6): every state-changing admin request, who made it and how it ended.
admin_audit = Table(
    "admin_audit",
    metadata,
    big_pk(),
    Column("user_id", UInt, nullable=False),
    Column("at", UtcDateTime(datetime_column=True), nullable=False),
    Column("method", String(10), nullable=False),
    Column("path", String(255), nullable=False),
    Column("resource", String(64), nullable=False),
    Column("resource_id", String(64), nullable=True),
    Column("summary", JsonText(), nullable=True),
    Column("status", USmallInt, nullable=False),
    Index("idx_admin_audit_at", "at"),
    Index("idx_admin_audit_user", "user_id", "at"),
    **TABLE_OPTS,
)


# --- invoices and credit notes (ours, revision r7) ----------------------------------------
invoice_counter = Table(
    "invoice_counter",
    metadata,
    Column("company_id", UInt, primary_key=True, autoincrement=False),
    Column("series", String(16), primary_key=True),
    Column("last_seq", UInt, nullable=False),
    **TABLE_OPTS,
)

invoice = Table(
    "invoice",
    metadata,
    big_pk(),
    Column("company_id", UInt, ForeignKey("company.id", name="fk_invoice_company"), nullable=False),
    Column("series", String(16), nullable=False),
    Column("seq", UInt, nullable=False),
    Column("number", String(32), nullable=False),
    Column("payment_id", Binary32, nullable=False),
    Column("user_id", UInt, nullable=False),
    Column("issued_at", UtcDateTime(datetime_column=True), nullable=False),
    Column("currency", String(5), nullable=False),
    # r20: signed: VAT-free credit taken off whole can take the net below 0
    Column("net", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
    Column("tax", UBigInt, nullable=False),
    Column("total", UBigInt, nullable=False),
    Column("content", JsonText(), nullable=False),
    UniqueConstraint("company_id", "series", "seq", name="uq_invoice_number"),
    UniqueConstraint("payment_id", name="uq_invoice_payment"),
    Index("idx_invoice_issued", "issued_at"),
    **TABLE_OPTS,
)

credit_note = Table(
    "credit_note",
    metadata,
    big_pk(),
    Column(
        "company_id", UInt, ForeignKey("company.id", name="fk_credit_note_company"), nullable=False
    ),
    Column("series", String(16), nullable=False),
    Column("seq", UInt, nullable=False),
    Column("number", String(32), nullable=False),
    Column(
        "invoice_id",
        UBigInt,
        ForeignKey("invoice.id", name="fk_credit_note_invoice"),
        nullable=False,
    ),
    Column("issued_at", UtcDateTime(datetime_column=True), nullable=False),
    Column("currency", String(5), nullable=False),
    Column("amount", UBigInt, nullable=False),
    Column("reason", String(255), nullable=False),
    # r15: the note's net and tax, fixed at issue (NULL on a note issued before)
    Column("net", UBigInt, nullable=True),
    Column("tax", UBigInt, nullable=True),
    # r19: the issuing admin's request reference; one note per (invoice, reference)
    Column("reference", String(100), nullable=True),
    UniqueConstraint("company_id", "series", "seq", name="uq_credit_note_number"),
    UniqueConstraint("invoice_id", "reference", name="uq_credit_note_invoice_reference"),
    Index("idx_credit_note_invoice", "invoice_id"),
    **TABLE_OPTS,
)

#: ours (r8): each user's credit balance per currency; the row writers lock (balance = ledger sum).
user_credit_balance = Table(
    "user_credit_balance",
    metadata,
    Column(
        "user_id", UInt, ForeignKey("users.id", name="fk_credit_balance_user"), primary_key=True
    ),
    Column("currency", String(4), primary_key=True),
    Column("balance", UBigInt, nullable=False, server_default=ZERO),
    # r20: the part of `balance` that is VAT-free credit (at most `balance`)
    Column("vat_free", UBigInt, nullable=False, server_default=ZERO),
    **TABLE_OPTS,
)

#: ours (r8): the append-only credit ledger; one entry per (user, currency, reason, reference).
user_credit_ledger = Table(
    "user_credit_ledger",
    metadata,
    big_pk(),
    Column("user_id", UInt, ForeignKey("users.id", name="fk_credit_ledger_user"), nullable=False),
    Column("currency", String(4), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("reason", EnumCode(CreditReason), nullable=False),
    Column("reference", String(100), nullable=True),
    Column("note", String(255), nullable=True),
    Column("created", UtcDateTime(datetime_column=True), nullable=False),
    Column("admin_id", UInt, nullable=True),
    Column("payment_id", Binary32, nullable=True),
    # r20: the part of `amount` (same sign) that moved VAT-free credit
    Column("vat_free", BigInteger, nullable=False, server_default=ZERO),
    UniqueConstraint("user_id", "currency", "reason", "reference", name="uq_credit_ledger_event"),
    Index("idx_credit_ledger_user", "user_id", "id"),
    Index("idx_credit_ledger_reference", "reference"),
    Index("idx_credit_ledger_payment", "payment_id"),
    **TABLE_OPTS,
)

#: ours (r14): a Lightning settlement of one of our payments that completing refused for good
#: (the intake went on past it); one row per payment, for the operator.
settlement_problem = Table(
    "settlement_problem",
    metadata,
    big_pk(),
    Column("payment_id", Binary32, nullable=False),
    Column("settle_index", UBigInt, nullable=False),
    Column("amount_paid_msat", UBigInt, nullable=False),
    Column("error", String(64), nullable=False),
    Column("message", String(1000), nullable=False),
    Column("created", UtcDateTime(datetime_column=True), nullable=False),
    UniqueConstraint("payment_id", name="uq_settlement_problem_payment"),
    **TABLE_OPTS,
)
