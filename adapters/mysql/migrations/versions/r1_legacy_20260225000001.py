"""r1: the legacy LNVPS shape at sqlx migration 20260225000001 (schema.md §9) and its seed rows."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from adapters.mysql import types as t
from adapters.mysql.migrations.data_guard import Drops, refuse_data_loss
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
    VmHistoryActionType,
    VmHostKind,
)

revision = "legacy_20260225000001"
down_revision: str | None = None
branch_labels: tuple[str, ...] | None = None
depends_on: tuple[str, ...] | None = None

OPTS: dict[str, Any] = {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4"}

#: Tables in dependency order (parents first); downgrade drops them in reverse.
TABLES = (
    "admin_roles",
    "company",
    "router",
    "users",
    "vm_cost_plan",
    "vm_os_image",
    "access_policy",
    "admin_role_assignments",
    "admin_role_permissions",
    "available_ip_space",
    "payment_method_config",
    "subscription",
    "user_ssh_key",
    "vm_host_region",
    "ip_range",
    "ip_space_pricing",
    "subscription_line_item",
    "subscription_payment",
    "vm_custom_pricing",
    "vm_host",
    "vm_template",
    "ip_range_subscription",
    "vm_custom_pricing_disk",
    "vm_custom_template",
    "vm_host_disk",
    "vm",
    "vm_history",
    "vm_ip_assignment",
    "vm_payment",
)

# RBAC seed (20250801000000 + later grants to role 1): role name → {resource: actions}.
_ALL = tuple(AdminAction)
_VIEW = (AdminAction.VIEW,)
_VIEW_UPDATE = (AdminAction.VIEW, AdminAction.UPDATE)
R = AdminResource
ROLES: tuple[tuple[str, str, dict[AdminResource, tuple[AdminAction, ...]]], ...] = (
    ("super_admin", "Full system access", {r: _ALL for r in AdminResource}),
    (
        "admin",
        "Administrative access",
        {
            R.VIRTUAL_MACHINES: _ALL,
            R.PAYMENTS: _ALL,
            R.VM_CUSTOM_PRICING: _ALL,
            R.VM_TEMPLATE: _ALL,
            R.VM_PAYMENT: _VIEW_UPDATE,
            R.COMPANY: _VIEW_UPDATE,
        },
    ),
    ("user_manager", "User management", {R.USERS: _ALL, R.ANALYTICS: _VIEW}),
    (
        "vm_manager",
        "Virtual machine management",
        {
            R.VIRTUAL_MACHINES: _ALL,
            R.HOSTS: _ALL,
            R.VM_OS_IMAGE: _ALL,
            R.VM_TEMPLATE: _ALL,
            R.USERS: _VIEW,
            R.ANALYTICS: _VIEW,
            R.SYSTEM: _VIEW,
            R.HOST_REGION: _VIEW,
        },
    ),
    (
        "payment_manager",
        "Payment management",
        {
            R.PAYMENTS: _ALL,
            R.VM_CUSTOM_PRICING: _ALL,
            R.VM_PAYMENT: _ALL,
            R.USERS: _VIEW,
            R.ANALYTICS: _VIEW,
            R.COMPANY: _VIEW,
        },
    ),
    ("read_only", "Read-only access", {r: _VIEW for r in AdminResource if r <= 16}),
)


def upgrade() -> None:
    op.create_table(
        "admin_roles",
        sa.Column("id", t.UBigInt, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("is_system_role", sa.Boolean(), server_default=sa.text("0"), nullable=True),
        sa.Column(
            "created_at",
            t.UtcDateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            t.UtcDateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name=("uq_admin_roles_name")),
        **OPTS,
    )
    op.create_index("idx_name", "admin_roles", ["name"], unique=False)
    op.create_index("idx_system_role", "admin_roles", ["is_system_role"], unique=False)
    op.create_table(
        "company",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=100), nullable=False),
        sa.Column("phone", sa.String(length=100), nullable=True),
        sa.Column("address_1", sa.String(length=200), nullable=True),
        sa.Column("address_2", sa.String(length=200), nullable=True),
        sa.Column("city", sa.String(length=100), nullable=True),
        sa.Column("state", sa.String(length=100), nullable=True),
        sa.Column("postcode", sa.String(length=50), nullable=True),
        sa.Column("country_code", sa.String(length=3), nullable=True),
        sa.Column("tax_id", sa.String(length=50), nullable=True),
        sa.Column(
            "base_currency", sa.String(length=3), server_default=sa.text("'EUR'"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "router",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("enabled", t.BitBool(), nullable=False),
        sa.Column("kind", t.USmallInt, nullable=False),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("token", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "users",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("pubkey", t.Binary32, nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("email", sa.String(length=255), server_default=sa.text("''"), nullable=False),
        sa.Column("email_verified", t.BitBool(), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "email_verify_token", sa.String(length=64), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("contact_nip17", t.BitBool(), nullable=False),
        sa.Column("contact_email", t.BitBool(), nullable=False),
        sa.Column("country_code", sa.String(length=3), nullable=True),
        sa.Column("billing_name", sa.String(length=200), nullable=True),
        sa.Column("billing_address_1", sa.String(length=200), nullable=True),
        sa.Column("billing_address_2", sa.String(length=200), nullable=True),
        sa.Column("billing_city", sa.String(length=100), nullable=True),
        sa.Column("billing_state", sa.String(length=100), nullable=True),
        sa.Column("billing_postcode", sa.String(length=50), nullable=True),
        sa.Column("billing_tax_id", sa.String(length=50), nullable=True),
        sa.Column("nwc_connection_string", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index("ix_user_email", "users", ["email"], unique=False)
    op.create_index("ix_user_pubkey", "users", ["pubkey"], unique=True)
    op.create_table(
        "vm_cost_plan",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("amount", t.UBigInt, nullable=False),
        sa.Column("currency", sa.String(length=4), nullable=False),
        sa.Column("interval_amount", t.UInt, nullable=False),
        sa.Column("interval_type", t.EnumCode(IntervalType), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm_os_image",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("distribution", t.EnumCode(OsDistribution), nullable=False),
        sa.Column("flavour", sa.String(length=50), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("enabled", t.BitBool(), nullable=False),
        sa.Column("release_date", t.UtcDateTime(), nullable=False),
        sa.Column("url", sa.String(length=1024), nullable=False),
        sa.Column("default_username", sa.String(length=50), nullable=True),
        sa.Column("sha2", sa.String(length=128), nullable=True),
        sa.Column("sha2_url", sa.String(length=1024), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index(
        "ix_vm_os_image", "vm_os_image", ["distribution", "flavour", "version"], unique=True
    )
    op.create_table(
        "access_policy",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", t.USmallInt, nullable=False),
        sa.Column("router_id", t.UInt, nullable=True),
        sa.Column("interface", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["router_id"], ["router.id"], name="fk_access_policy_router"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "admin_role_assignments",
        sa.Column("id", t.UBigInt, autoincrement=True, nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column("role_id", t.UBigInt, nullable=False),
        sa.Column("assigned_by", t.UInt, nullable=True),
        sa.Column(
            "assigned_at",
            t.UtcDateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("expires_at", t.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["assigned_by"],
            ["users.id"],
            name=("fk_admin_role_assignments_assigned_by"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["admin_roles.id"],
            name=("fk_admin_role_assignments_role_id"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=("fk_admin_role_assignments_user_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "role_id", name="unique_user_role"),
        **OPTS,
    )
    op.create_index(
        "idx_admin_role_assignments_lookup",
        "admin_role_assignments",
        ["user_id", "expires_at"],
        unique=False,
    )
    op.create_index("idx_expires", "admin_role_assignments", ["expires_at"], unique=False)
    op.create_index("idx_role_id", "admin_role_assignments", ["role_id"], unique=False)
    op.create_index("idx_user_id", "admin_role_assignments", ["user_id"], unique=False)
    op.create_table(
        "admin_role_permissions",
        sa.Column("id", t.UBigInt, autoincrement=True, nullable=False),
        sa.Column("role_id", t.UBigInt, nullable=False),
        sa.Column("resource", t.EnumCode(AdminResource), nullable=False),
        sa.Column("action", t.EnumCode(AdminAction), nullable=False),
        sa.Column(
            "created_at",
            t.UtcDateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["role_id"],
            ["admin_roles.id"],
            name=("fk_admin_role_permissions_role_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("role_id", "resource", "action", name="unique_role_permission"),
        **OPTS,
    )
    op.create_index(
        "idx_admin_role_permissions_lookup",
        "admin_role_permissions",
        ["role_id", "resource", "action"],
        unique=False,
    )
    op.create_index("idx_permissions_role_id", "admin_role_permissions", ["role_id"], unique=False)
    op.create_index(
        "idx_resource_action", "admin_role_permissions", ["resource", "action"], unique=False
    )
    op.create_table(
        "available_ip_space",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("company_id", t.UInt, nullable=False),
        sa.Column("cidr", sa.String(length=200), nullable=False),
        sa.Column("min_prefix_size", t.USmallInt, nullable=False),
        sa.Column("max_prefix_size", t.USmallInt, nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("registry", t.EnumCode(InternetRegistry), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("is_available", t.BitBool(), server_default=sa.text("1"), nullable=False),
        sa.Column("is_reserved", t.BitBool(), server_default=sa.text("0"), nullable=False),
        sa.Column("metadata", t.JsonText(), nullable=True),
        sa.ForeignKeyConstraint(
            ["company_id"], ["company.id"], name="fk_available_ip_space_company"
        ),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index("idx_available_ip_space_cidr", "available_ip_space", ["cidr"], unique=True)
    op.create_index(
        "idx_available_ip_space_company", "available_ip_space", ["company_id"], unique=False
    )
    op.create_index(
        "idx_available_ip_space_external_id", "available_ip_space", ["external_id"], unique=False
    )
    op.create_index(
        "idx_available_ip_space_is_available", "available_ip_space", ["is_available"], unique=False
    )
    op.create_index(
        "idx_available_ip_space_is_reserved", "available_ip_space", ["is_reserved"], unique=False
    )
    op.create_index(
        "idx_available_ip_space_registry", "available_ip_space", ["registry"], unique=False
    )
    op.create_table(
        "payment_method_config",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("company_id", t.UInt, nullable=False),
        sa.Column("payment_method", t.EnumCode(PaymentMethod), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("enabled", t.BitBool(), server_default=sa.text("1"), nullable=False),
        sa.Column("provider_type", sa.String(length=50), nullable=False),
        sa.Column("config", t.JsonText(), nullable=False),
        sa.Column("processing_fee_rate", t.DecimalFloat(), nullable=True),
        sa.Column("processing_fee_base", t.UBigInt, nullable=True),
        sa.Column("processing_fee_currency", sa.String(length=5), nullable=True),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "modified", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "supported_currencies",
            t.CommaList(length=100),
            server_default=sa.text("''"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["company.id"], name="fk_payment_method_config_company"
        ),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index("idx_company_id", "payment_method_config", ["company_id"], unique=False)
    op.create_index("idx_enabled", "payment_method_config", ["enabled"], unique=False)
    op.create_table(
        "subscription",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column("company_id", t.UInt, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("expires", t.UtcDateTime(), nullable=True),
        sa.Column("is_active", t.BitBool(), server_default=sa.text("1"), nullable=False),
        sa.Column("currency", sa.String(length=4), nullable=False),
        sa.Column("setup_fee", t.UBigInt, server_default=sa.text("0"), nullable=False),
        sa.Column("auto_renewal_enabled", t.BitBool(), server_default=sa.text("0"), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="fk_subscription_company"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_subscription_user"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index("idx_subscription_active", "subscription", ["is_active"], unique=False)
    op.create_index("idx_subscription_expires", "subscription", ["expires"], unique=False)
    op.create_index("idx_subscription_external_id", "subscription", ["external_id"], unique=False)
    op.create_index("idx_subscription_user", "subscription", ["user_id"], unique=False)
    op.create_table(
        "user_ssh_key",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("key_data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_ssh_key_user"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm_host_region",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("enabled", t.BitBool(), nullable=False),
        sa.Column("company_id", t.UInt, nullable=False),
        sa.ForeignKeyConstraint(["company_id"], ["company.id"], name="fk_host_region_company"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "ip_range",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("cidr", sa.String(length=200), nullable=False),
        sa.Column("enabled", t.BitBool(), nullable=False),
        sa.Column("region_id", t.UInt, nullable=False),
        sa.Column("gateway", sa.String(length=255), nullable=False),
        sa.Column("reverse_zone_id", sa.String(length=255), nullable=True),
        sa.Column("access_policy_id", t.UInt, nullable=True),
        sa.Column(
            "allocation_mode",
            t.EnumCode(IpRangeAllocationMode),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("use_full_range", t.BitBool(), nullable=False),
        sa.ForeignKeyConstraint(
            ["access_policy_id"], ["access_policy.id"], name="fk_ip_range_access_policy"
        ),
        sa.ForeignKeyConstraint(["region_id"], ["vm_host_region.id"], name="fk_ip_range_region"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index("ix_ip_range_cidr", "ip_range", ["cidr"], unique=True)
    op.create_table(
        "ip_space_pricing",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("available_ip_space_id", t.UInt, nullable=False),
        sa.Column("prefix_size", t.USmallInt, nullable=False),
        sa.Column("price_per_month", t.UBigInt, nullable=False),
        sa.Column("currency", sa.String(length=4), server_default=sa.text("'USD'"), nullable=False),
        sa.Column("setup_fee", t.UBigInt, server_default=sa.text("0"), nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column(
            "updated", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["available_ip_space_id"],
            ["available_ip_space.id"],
            name=("fk_ip_space_pricing_available_ip_space_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "available_ip_space_id",
            "prefix_size",
            name=("uq_ip_space_pricing_available_ip_space_id_prefix_size"),
        ),
        **OPTS,
    )
    op.create_index(
        "idx_ip_space_pricing_prefix", "ip_space_pricing", ["prefix_size"], unique=False
    )
    op.create_index(
        "idx_ip_space_pricing_space", "ip_space_pricing", ["available_ip_space_id"], unique=False
    )
    op.create_table(
        "subscription_line_item",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("subscription_id", t.UInt, nullable=False),
        sa.Column(
            "subscription_type",
            t.EnumCode(SubscriptionType),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("amount", t.UBigInt, nullable=False),
        sa.Column("setup_amount", t.UBigInt, server_default=sa.text("0"), nullable=False),
        sa.Column("configuration", t.JsonText(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscription.id"],
            name="fk_line_item_subscription",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index(
        "idx_line_item_subscription", "subscription_line_item", ["subscription_id"], unique=False
    )
    op.create_index(
        "idx_line_item_type", "subscription_line_item", ["subscription_type"], unique=False
    )
    op.create_table(
        "subscription_payment",
        sa.Column("id", t.Binary32, nullable=False),
        sa.Column("subscription_id", t.UInt, nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("expires", t.UtcDateTime(), nullable=False),
        sa.Column("amount", t.UBigInt, nullable=False),
        sa.Column("currency", sa.String(length=5), nullable=False),
        sa.Column("payment_method", t.EnumCode(PaymentMethod), nullable=False),
        sa.Column("payment_type", t.EnumCode(SubscriptionPaymentType), nullable=False),
        sa.Column("external_data", sa.Text(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("is_paid", t.BitBool(), server_default=sa.text("0"), nullable=False),
        sa.Column("rate", t.DecimalFloat(), nullable=False),
        sa.Column("tax", t.UBigInt, nullable=False),
        sa.Column("processing_fee", t.UBigInt, server_default=sa.text("0"), nullable=False),
        sa.Column("paid_at", t.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"], ["subscription.id"], name="fk_subscription_payment_subscription"
        ),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_subscription_payment_user"),
        **OPTS,
    )
    op.create_index(
        "idx_subscription_payment_expires", "subscription_payment", ["expires"], unique=False
    )
    op.create_index(
        "idx_subscription_payment_external_id",
        "subscription_payment",
        ["external_id"],
        unique=False,
    )
    op.create_index(
        "idx_subscription_payment_is_paid", "subscription_payment", ["is_paid"], unique=False
    )
    op.create_index(
        "idx_subscription_payment_subscription",
        "subscription_payment",
        ["subscription_id"],
        unique=False,
    )
    op.create_index(
        "idx_subscription_payment_user", "subscription_payment", ["user_id"], unique=False
    )
    op.create_index("ix_subscription_payment_id", "subscription_payment", ["id"], unique=True)
    op.create_table(
        "vm_custom_pricing",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("enabled", t.BitBool(), nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("expires", t.UtcDateTime(), nullable=True),
        sa.Column("region_id", t.UInt, nullable=False),
        sa.Column("currency", sa.String(length=5), nullable=False),
        sa.Column("cpu_cost", t.UBigInt, nullable=False),
        sa.Column("memory_cost", t.UBigInt, nullable=False),
        sa.Column("ip4_cost", t.UBigInt, nullable=False),
        sa.Column("ip6_cost", t.UBigInt, nullable=False),
        sa.Column("min_cpu", t.UTinyInt, server_default=sa.text("1"), nullable=False),
        sa.Column("max_cpu", t.UTinyInt, server_default=sa.text("32"), nullable=False),
        sa.Column("min_memory", t.UBigInt, server_default=sa.text("1073741824"), nullable=False),
        sa.Column("max_memory", t.UBigInt, server_default=sa.text("68719476736"), nullable=False),
        sa.Column("cpu_mfg", t.EnumCode(CpuMfg), server_default=sa.text("0"), nullable=False),
        sa.Column("cpu_arch", t.EnumCode(CpuArch), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "cpu_features", t.CommaList(length=255), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("disk_iops_read", t.UInt, nullable=True),
        sa.Column("disk_iops_write", t.UInt, nullable=True),
        sa.Column("disk_mbps_read", t.UInt, nullable=True),
        sa.Column("disk_mbps_write", t.UInt, nullable=True),
        sa.Column("network_mbps", t.UInt, nullable=True),
        sa.Column("cpu_limit", t.DecimalFloat(), nullable=True),
        sa.ForeignKeyConstraint(
            ["region_id"], ["vm_host_region.id"], name="fk_custom_pricing_region"
        ),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm_host",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("kind", t.EnumCode(VmHostKind), nullable=False),
        sa.Column("region_id", t.UInt, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("ip", sa.String(length=250), nullable=False),
        sa.Column("cpu", t.UBigInt, nullable=False),
        sa.Column("memory", t.UBigInt, nullable=False),
        sa.Column("enabled", t.BitBool(), nullable=False),
        sa.Column("api_token", sa.Text(), nullable=False),
        sa.Column("load_cpu", t.DecimalFloat(), server_default=sa.text("1.0"), nullable=False),
        sa.Column("load_memory", t.DecimalFloat(), server_default=sa.text("1.0"), nullable=False),
        sa.Column("load_disk", t.DecimalFloat(), server_default=sa.text("1.0"), nullable=False),
        sa.Column("vlan_id", t.UInt, nullable=True),
        sa.Column("mtu", t.USmallInt, nullable=True),
        sa.Column("cpu_mfg", t.EnumCode(CpuMfg), server_default=sa.text("0"), nullable=False),
        sa.Column("cpu_arch", t.EnumCode(CpuArch), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "cpu_features", t.CommaList(length=255), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("ssh_user", sa.String(length=255), nullable=True),
        sa.Column("ssh_key", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["region_id"], ["vm_host_region.id"], name="fk_host_region"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm_template",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", t.BitBool(), nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("expires", t.UtcDateTime(), nullable=True),
        sa.Column("cpu", t.UTinyInt, nullable=False),
        sa.Column("cpu_mfg", t.EnumCode(CpuMfg), server_default=sa.text("0"), nullable=False),
        sa.Column("cpu_arch", t.EnumCode(CpuArch), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "cpu_features", t.CommaList(length=255), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("memory", t.UBigInt, nullable=False),
        sa.Column("disk_size", t.UBigInt, nullable=False),
        sa.Column("disk_type", t.EnumCode(DiskType), nullable=False),
        sa.Column("disk_interface", t.EnumCode(DiskInterface), nullable=False),
        sa.Column("cost_plan_id", t.UInt, nullable=False),
        sa.Column("region_id", t.UInt, nullable=False),
        sa.Column("disk_iops_read", t.UInt, nullable=True),
        sa.Column("disk_iops_write", t.UInt, nullable=True),
        sa.Column("disk_mbps_read", t.UInt, nullable=True),
        sa.Column("disk_mbps_write", t.UInt, nullable=True),
        sa.Column("network_mbps", t.UInt, nullable=True),
        sa.Column("cpu_limit", t.DecimalFloat(), nullable=True),
        sa.ForeignKeyConstraint(
            ["cost_plan_id"], ["vm_cost_plan.id"], name="fk_template_cost_plan"
        ),
        sa.ForeignKeyConstraint(["region_id"], ["vm_host_region.id"], name="fk_template_region"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "ip_range_subscription",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("subscription_line_item_id", t.UInt, nullable=False),
        sa.Column("available_ip_space_id", t.UInt, nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("cidr", sa.String(length=200), nullable=False),
        sa.Column("is_active", t.BitBool(), server_default=sa.text("1"), nullable=False),
        sa.Column(
            "started_at",
            t.UtcDateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=True,
        ),
        sa.Column("ended_at", t.UtcDateTime(), nullable=True),
        sa.Column("metadata", t.JsonText(), nullable=True),
        sa.ForeignKeyConstraint(
            ["available_ip_space_id"],
            ["available_ip_space.id"],
            name=("fk_ip_range_subscription_available_ip_space_id"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_line_item_id"],
            ["subscription_line_item.id"],
            name=("fk_ip_range_subscription_subscription_line_item_id"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("cidr", name=("uq_ip_range_subscription_cidr")),
        **OPTS,
    )
    op.create_index(
        "idx_ip_range_subscription_cidr", "ip_range_subscription", ["cidr"], unique=False
    )
    op.create_index(
        "idx_ip_range_subscription_is_active", "ip_range_subscription", ["is_active"], unique=False
    )
    op.create_index(
        "idx_ip_range_subscription_line_item",
        "ip_range_subscription",
        ["subscription_line_item_id"],
        unique=False,
    )
    op.create_index(
        "idx_ip_range_subscription_space",
        "ip_range_subscription",
        ["available_ip_space_id"],
        unique=False,
    )
    op.create_table(
        "vm_custom_pricing_disk",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("pricing_id", t.UInt, nullable=False),
        sa.Column("kind", t.EnumCode(DiskType), nullable=False),
        sa.Column("interface", t.EnumCode(DiskInterface), nullable=False),
        sa.Column("cost", t.UBigInt, nullable=False),
        sa.Column("min_disk_size", t.UBigInt, server_default=sa.text("5368709120"), nullable=False),
        sa.Column(
            "max_disk_size", t.UBigInt, server_default=sa.text("2199023255552"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["pricing_id"], ["vm_custom_pricing.id"], name="fk_custom_pricing_disk"
        ),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm_custom_template",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("cpu", t.UTinyInt, nullable=False),
        sa.Column("memory", t.UBigInt, nullable=False),
        sa.Column("disk_size", t.UBigInt, nullable=False),
        sa.Column("disk_type", t.EnumCode(DiskType), nullable=False),
        sa.Column("disk_interface", t.EnumCode(DiskInterface), nullable=False),
        sa.Column("pricing_id", t.UInt, nullable=False),
        sa.Column("cpu_mfg", t.EnumCode(CpuMfg), server_default=sa.text("0"), nullable=False),
        sa.Column("cpu_arch", t.EnumCode(CpuArch), server_default=sa.text("0"), nullable=False),
        sa.Column(
            "cpu_features", t.CommaList(length=255), server_default=sa.text("''"), nullable=False
        ),
        sa.Column("disk_iops_read", t.UInt, nullable=True),
        sa.Column("disk_iops_write", t.UInt, nullable=True),
        sa.Column("disk_mbps_read", t.UInt, nullable=True),
        sa.Column("disk_mbps_write", t.UInt, nullable=True),
        sa.Column("network_mbps", t.UInt, nullable=True),
        sa.Column("cpu_limit", t.DecimalFloat(), nullable=True),
        sa.ForeignKeyConstraint(
            ["pricing_id"], ["vm_custom_pricing.id"], name="fk_custom_template_pricing"
        ),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm_host_disk",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("host_id", t.UInt, nullable=False),
        sa.Column("name", sa.String(length=50), nullable=False),
        sa.Column("size", t.UBigInt, nullable=False),
        sa.Column("kind", t.EnumCode(DiskType), nullable=False),
        sa.Column("interface", t.EnumCode(DiskInterface), nullable=False),
        sa.Column("enabled", t.BitBool(), nullable=False),
        sa.ForeignKeyConstraint(["host_id"], ["vm_host.id"], name="fk_host_disk_host"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("host_id", t.UInt, nullable=False),
        sa.Column("user_id", t.UInt, nullable=False),
        sa.Column("image_id", t.UInt, nullable=False),
        sa.Column("template_id", t.UInt, nullable=True),
        sa.Column("ssh_key_id", t.UInt, nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("expires", t.UtcDateTime(), nullable=False),
        sa.Column("disk_id", t.UInt, nullable=False),
        sa.Column("mac_address", sa.String(length=20), nullable=False),
        sa.Column("deleted", t.BitBool(), server_default=sa.text("0"), nullable=False),
        sa.Column("ref_code", sa.String(length=20), nullable=True),
        sa.Column("custom_template_id", t.UInt, nullable=True),
        sa.Column("auto_renewal_enabled", t.BitBool(), nullable=False),
        sa.Column("disabled", t.BitBool(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["custom_template_id"], ["vm_custom_template.id"], name="fk_vm_custom_template"
        ),
        sa.ForeignKeyConstraint(["disk_id"], ["vm_host_disk.id"], name="fk_vm_host_disk_id"),
        sa.ForeignKeyConstraint(["host_id"], ["vm_host.id"], name="fk_vm_host"),
        sa.ForeignKeyConstraint(["image_id"], ["vm_os_image.id"], name="fk_vm_image"),
        sa.ForeignKeyConstraint(["ssh_key_id"], ["user_ssh_key.id"], name="fk_vm_ssh_key_id"),
        sa.ForeignKeyConstraint(["template_id"], ["vm_template.id"], name="fk_vm_template_id"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_vm_user"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm_history",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("vm_id", t.UInt, nullable=False),
        sa.Column("action_type", t.EnumCode(VmHistoryActionType), nullable=False),
        sa.Column(
            "timestamp",
            t.UtcDateTime(),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("initiated_by_user", t.UInt, nullable=True),
        sa.Column("previous_state", t.JsonText(), nullable=True),
        sa.Column("new_state", t.JsonText(), nullable=True),
        sa.Column("metadata", t.JsonText(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["initiated_by_user"], ["users.id"], name="fk_vm_history_user"),
        sa.ForeignKeyConstraint(["vm_id"], ["vm.id"], name="fk_vm_history_vm"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_index("ix_vm_history_action_type", "vm_history", ["action_type"], unique=False)
    op.create_index("ix_vm_history_timestamp", "vm_history", ["timestamp"], unique=False)
    op.create_index("ix_vm_history_vm_id", "vm_history", ["vm_id"], unique=False)
    op.create_table(
        "vm_ip_assignment",
        sa.Column("id", t.UInt, autoincrement=True, nullable=False),
        sa.Column("vm_id", t.UInt, nullable=False),
        sa.Column("ip_range_id", t.UInt, nullable=False),
        sa.Column("ip", sa.String(length=255), nullable=False),
        sa.Column("deleted", t.BitBool(), server_default=sa.text("0"), nullable=False),
        sa.Column("arp_ref", sa.String(length=50), nullable=True),
        sa.Column("dns_reverse", sa.String(length=255), nullable=True),
        sa.Column("dns_reverse_ref", sa.String(length=50), nullable=True),
        sa.Column("dns_forward", sa.String(length=255), nullable=True),
        sa.Column("dns_forward_ref", sa.String(length=50), nullable=True),
        sa.ForeignKeyConstraint(["ip_range_id"], ["ip_range.id"], name="fk_vm_ip_range"),
        sa.ForeignKeyConstraint(["vm_id"], ["vm.id"], name="fk_vm_ip_assignment_vm"),
        sa.PrimaryKeyConstraint("id"),
        **OPTS,
    )
    op.create_table(
        "vm_payment",
        sa.Column("id", t.Binary32, nullable=False),
        sa.Column("vm_id", t.UInt, nullable=False),
        sa.Column(
            "created", t.UtcDateTime(), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
        ),
        sa.Column("expires", t.UtcDateTime(), nullable=False),
        sa.Column("amount", t.UBigInt, nullable=False),
        sa.Column("external_data", sa.Text(), nullable=False),
        sa.Column("time_value", t.UBigInt, nullable=False),
        sa.Column("is_paid", t.BitBool(), nullable=False),
        sa.Column("rate", t.DecimalFloat(), nullable=False),
        sa.Column("currency", sa.String(length=5), server_default=sa.text("'BTC'"), nullable=False),
        sa.Column(
            "payment_method", t.EnumCode(PaymentMethod), server_default=sa.text("0"), nullable=False
        ),
        sa.Column("external_id", sa.String(length=255), nullable=True),
        sa.Column("tax", t.UBigInt, nullable=False),
        sa.Column(
            "payment_type",
            t.EnumCode(LegacyPaymentType),
            server_default=sa.text("0"),
            nullable=False,
        ),
        sa.Column("upgrade_params", sa.Text(), nullable=True),
        sa.Column("processing_fee", t.UBigInt, server_default=sa.text("0"), nullable=False),
        sa.Column("paid_at", t.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["vm_id"], ["vm.id"], name="fk_vm_payment_vm"),
        **OPTS,
    )
    op.create_index("ix_vm_payment_id", "vm_payment", ["id"], unique=True)
    _seed()


def _seed() -> None:
    company = sa.table(
        "company",
        sa.column("name", sa.String),
        sa.column("email", sa.String),
        sa.column("base_currency", sa.String),
    )
    op.bulk_insert(
        company, [{"name": "Default Company", "email": "admin@example.com", "base_currency": "EUR"}]
    )
    roles = sa.table(
        "admin_roles",
        sa.column("id", sa.Integer),
        sa.column("name", sa.String),
        sa.column("description", sa.Text),
        sa.column("is_system_role", sa.Boolean),
    )
    permissions = sa.table(
        "admin_role_permissions",
        sa.column("role_id", sa.Integer),
        sa.column("resource", sa.Integer),
        sa.column("action", sa.Integer),
    )
    op.bulk_insert(
        roles,
        [
            {"id": i, "name": name, "description": text, "is_system_role": True}
            for i, (name, text, _) in enumerate(ROLES, start=1)
        ],
    )
    op.bulk_insert(
        permissions,
        [
            {"role_id": i, "resource": int(resource), "action": int(action)}
            for i, (_, _, grants) in enumerate(ROLES, start=1)
            for resource, actions in grants.items()
            for action in actions
        ],
    )


#: What `downgrade` drops: refused while any table holds rows other than the seed above, and
#: always refused on an adopted database (its `_sqlx_migrations` records 20260225000001: the
#: tables are LNVPS's own, not ours to drop). See data_guard.
DROPS = Drops(tables=TABLES, exempt=frozenset({"company", "admin_roles", "admin_role_permissions"}))


def downgrade() -> None:
    refuse_data_loss(revision, DROPS)
    for name in reversed(TABLES):
        op.drop_table(name)
