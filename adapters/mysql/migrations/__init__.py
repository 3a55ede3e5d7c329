"""Alembic migrations of the LNVPS schema, configured in code (no alembic.ini)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent

#: Revision ids in order; the first three mirror LNVPS sqlx migrations (schema.md §0.1).
R1_LEGACY = "legacy_20260225000001"
R2_VM_SUBSCRIPTION_LINK = "vm_subscription_link_20260302151134"
R3_ADD_EMAIL_HASH = "add_email_hash_20260615000000"
R4_LIFECYCLE_IDEMPOTENCY = "lnvps_lifecycle_and_idempotency"
R5_WORKER_LEASES_CURSORS = "lnvps_worker_leases_and_cursors"
R6_ADMIN_AUDIT_GRANTS = "lnvps_admin_audit_and_grants"
R7_INVOICES = "lnvps_invoices"
R8_CREDIT_LEDGER = "lnvps_credit_ledger"
R9_SQLITE_FK_INDEXES = "lnvps_sqlite_foreign_key_indexes"
R10_VM_RESIZE_REQUESTED = "lnvps_vm_resize_requested"
R11_PENDING_PAYMENT_INDEX = "lnvps_pending_payment_index"
R12_PAYMENT_INTERVAL_COUNT = "lnvps_payment_interval_count"
R13_AUDIT_SECRETS_REDACTED = "lnvps_audit_secrets_redacted"
R14_SETTLEMENT_PROBLEMS = "lnvps_settlement_problems"
R15_CREDIT_NOTE_PARTS = "lnvps_credit_note_parts"
R16_NEVER_PAID_SCAN_INDEX = "lnvps_never_paid_scan_index"
R17_IP_RANGE_CIDR_REUSABLE = "lnvps_ip_range_cidr_reusable"
R18_SUBSCRIPTION_SWITCHED_OFF = "lnvps_subscription_switched_off"
R19_CREDIT_NOTE_REFERENCE = "lnvps_credit_note_reference"
R20_VAT_FREE_CREDIT = "lnvps_vat_free_credit"
REVISIONS = (
    R1_LEGACY,
    R2_VM_SUBSCRIPTION_LINK,
    R3_ADD_EMAIL_HASH,
    R4_LIFECYCLE_IDEMPOTENCY,
    R5_WORKER_LEASES_CURSORS,
    R6_ADMIN_AUDIT_GRANTS,
    R7_INVOICES,
    R8_CREDIT_LEDGER,
    R9_SQLITE_FK_INDEXES,
    R10_VM_RESIZE_REQUESTED,
    R11_PENDING_PAYMENT_INDEX,
    R12_PAYMENT_INTERVAL_COUNT,
    R13_AUDIT_SECRETS_REDACTED,
    R14_SETTLEMENT_PROBLEMS,
    R15_CREDIT_NOTE_PARTS,
    R16_NEVER_PAID_SCAN_INDEX,
    R17_IP_RANGE_CIDR_REUSABLE,
    R18_SUBSCRIPTION_SWITCHED_OFF,
    R19_CREDIT_NOTE_REFERENCE,
    R20_VAT_FREE_CREDIT,
)
HEAD = REVISIONS[-1]

#: Alembic's own table; created with a wider version column because our ids exceed 32 chars.
VERSION_TABLE = "alembic_version"
VERSION_COLUMN_LENGTH = 64
#: LNVPS's own (sqlx) migration table, found in a database this program adopted.
SQLX_TABLE = "_sqlx_migrations"


def alembic_config() -> Config:
    """An Alembic Config pointing at this package; pass a sync connection via `attributes`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    return config
