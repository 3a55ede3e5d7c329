"""Adopting a database LNVPS (sqlx) created: stamp at r1/r2/r3 and upgrade, or refuse unchanged."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from adapters.mysql import tables
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import (
    HEAD,
    R1_LEGACY,
    R2_VM_SUBSCRIPTION_LINK,
    R3_ADD_EMAIL_HASH,
    REVISIONS,
)
from adapters.mysql.schema_upgrade import (
    SchemaMismatch,
    current_revision,
    upgrade_database,
)

EXPIRES = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)

#: The legacy shape at sqlx 20260225000001 as LNVPS's MariaDB would have it (schema.md §4–9).
LEGACY_DDL = """
CREATE TABLE users (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  pubkey binary(32) NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  email varchar(255) NOT NULL DEFAULT '',
  email_verified bit(1) NOT NULL DEFAULT 0,
  email_verify_token varchar(64) NOT NULL DEFAULT '',
  contact_nip17 bit(1) NOT NULL,
  contact_email bit(1) NOT NULL,
  country_code varchar(3) NULL,
  billing_name varchar(200) NULL,
  billing_address_1 varchar(200) NULL,
  billing_address_2 varchar(200) NULL,
  billing_city varchar(100) NULL,
  billing_state varchar(100) NULL,
  billing_postcode varchar(50) NULL,
  billing_tax_id varchar(50) NULL,
  nwc_connection_string text NULL,
  UNIQUE KEY ix_user_pubkey (pubkey),
  KEY ix_user_email (email)
);
CREATE TABLE user_ssh_key (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(100) NOT NULL,
  user_id int unsigned NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  key_data text NOT NULL,
  CONSTRAINT fk_ssh_key_user FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE TABLE company (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  name varchar(100) NOT NULL,
  email varchar(100) NOT NULL,
  phone varchar(100) NULL,
  address_1 varchar(200) NULL,
  address_2 varchar(200) NULL,
  city varchar(100) NULL,
  state varchar(100) NULL,
  postcode varchar(50) NULL,
  country_code varchar(3) NULL,
  tax_id varchar(50) NULL,
  base_currency varchar(3) NOT NULL DEFAULT 'EUR'
);
CREATE TABLE vm_host_region (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(100) NOT NULL,
  enabled bit(1) NOT NULL,
  company_id int unsigned NOT NULL,
  CONSTRAINT fk_host_region_company FOREIGN KEY (company_id) REFERENCES company (id)
);
CREATE TABLE vm_host (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  kind smallint unsigned NOT NULL,
  region_id int unsigned NOT NULL,
  name varchar(100) NOT NULL,
  ip varchar(250) NOT NULL,
  cpu bigint unsigned NOT NULL,
  memory bigint unsigned NOT NULL,
  enabled bit(1) NOT NULL,
  api_token text NOT NULL,
  load_cpu float NOT NULL DEFAULT 1.0,
  load_memory float NOT NULL DEFAULT 1.0,
  load_disk float NOT NULL DEFAULT 1.0,
  vlan_id int unsigned NULL,
  mtu smallint unsigned NULL,
  cpu_mfg smallint unsigned NOT NULL DEFAULT 0,
  cpu_arch smallint unsigned NOT NULL DEFAULT 0,
  cpu_features varchar(255) NOT NULL DEFAULT '',
  ssh_user varchar(255) NULL,
  ssh_key text NULL,
  CONSTRAINT fk_host_region FOREIGN KEY (region_id) REFERENCES vm_host_region (id)
);
CREATE TABLE vm_host_disk (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  host_id int unsigned NOT NULL,
  name varchar(50) NOT NULL,
  size bigint unsigned NOT NULL,
  kind smallint unsigned NOT NULL,
  interface smallint unsigned NOT NULL,
  enabled bit(1) NOT NULL,
  CONSTRAINT fk_host_disk_host FOREIGN KEY (host_id) REFERENCES vm_host (id)
);
CREATE TABLE vm_os_image (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  distribution smallint unsigned NOT NULL,
  flavour varchar(50) NOT NULL,
  version varchar(50) NOT NULL,
  enabled bit(1) NOT NULL,
  release_date timestamp NOT NULL,
  url varchar(1024) NOT NULL,
  default_username varchar(50) NULL,
  sha2 varchar(128) NULL,
  sha2_url varchar(1024) NULL,
  UNIQUE KEY ix_vm_os_image (distribution, flavour, version)
);
CREATE TABLE router (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(100) NOT NULL,
  enabled bit(1) NOT NULL,
  kind smallint unsigned NOT NULL,
  url varchar(255) NOT NULL,
  token text NOT NULL
);
CREATE TABLE access_policy (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(100) NOT NULL,
  kind smallint unsigned NOT NULL,
  router_id int unsigned NULL,
  interface varchar(100) NULL,
  CONSTRAINT fk_access_policy_router FOREIGN KEY (router_id) REFERENCES router (id)
);
CREATE TABLE ip_range (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  cidr varchar(200) NOT NULL,
  enabled bit(1) NOT NULL,
  region_id int unsigned NOT NULL,
  gateway varchar(255) NOT NULL,
  reverse_zone_id varchar(255) NULL,
  access_policy_id int unsigned NULL,
  allocation_mode smallint unsigned NOT NULL DEFAULT 0,
  use_full_range bit(1) NOT NULL,
  UNIQUE KEY ix_ip_range_cidr (cidr),
  CONSTRAINT fk_ip_range_region FOREIGN KEY (region_id) REFERENCES vm_host_region (id),
  CONSTRAINT fk_ip_range_access_policy FOREIGN KEY (access_policy_id) REFERENCES access_policy (id)
);
CREATE TABLE vm_cost_plan (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(200) NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  amount bigint unsigned NOT NULL,
  currency varchar(4) NOT NULL,
  interval_amount int unsigned NOT NULL,
  interval_type smallint unsigned NOT NULL
);
CREATE TABLE vm_template (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(200) NOT NULL,
  enabled bit(1) NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  expires timestamp NULL,
  cpu tinyint unsigned NOT NULL,
  memory bigint unsigned NOT NULL,
  disk_size bigint unsigned NOT NULL,
  disk_type smallint unsigned NOT NULL,
  disk_interface smallint unsigned NOT NULL,
  cost_plan_id int unsigned NOT NULL,
  region_id int unsigned NOT NULL,
  cpu_mfg smallint unsigned NOT NULL DEFAULT 0,
  cpu_arch smallint unsigned NOT NULL DEFAULT 0,
  cpu_features varchar(255) NOT NULL DEFAULT '',
  disk_iops_read int unsigned NULL,
  disk_iops_write int unsigned NULL,
  disk_mbps_read int unsigned NULL,
  disk_mbps_write int unsigned NULL,
  network_mbps int unsigned NULL,
  cpu_limit float NULL,
  CONSTRAINT fk_template_cost_plan FOREIGN KEY (cost_plan_id) REFERENCES vm_cost_plan (id),
  CONSTRAINT fk_template_region FOREIGN KEY (region_id) REFERENCES vm_host_region (id)
);
CREATE TABLE vm_custom_pricing (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(100) NOT NULL,
  enabled bit(1) NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  expires timestamp NULL,
  region_id int unsigned NOT NULL,
  currency varchar(5) NOT NULL,
  cpu_cost bigint unsigned NOT NULL,
  memory_cost bigint unsigned NOT NULL,
  ip4_cost bigint unsigned NOT NULL,
  ip6_cost bigint unsigned NOT NULL,
  min_cpu tinyint unsigned NOT NULL DEFAULT 1,
  max_cpu tinyint unsigned NOT NULL DEFAULT 32,
  min_memory bigint unsigned NOT NULL DEFAULT 1073741824,
  max_memory bigint unsigned NOT NULL DEFAULT 68719476736,
  cpu_mfg smallint unsigned NOT NULL DEFAULT 0,
  cpu_arch smallint unsigned NOT NULL DEFAULT 0,
  cpu_features varchar(255) NOT NULL DEFAULT '',
  disk_iops_read int unsigned NULL,
  disk_iops_write int unsigned NULL,
  disk_mbps_read int unsigned NULL,
  disk_mbps_write int unsigned NULL,
  network_mbps int unsigned NULL,
  cpu_limit float NULL,
  CONSTRAINT fk_custom_pricing_region FOREIGN KEY (region_id) REFERENCES vm_host_region (id)
);
CREATE TABLE vm_custom_pricing_disk (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  pricing_id int unsigned NOT NULL,
  kind smallint unsigned NOT NULL,
  interface smallint unsigned NOT NULL,
  cost bigint unsigned NOT NULL,
  min_disk_size bigint unsigned NOT NULL DEFAULT 5368709120,
  max_disk_size bigint unsigned NOT NULL DEFAULT 2199023255552,
  CONSTRAINT fk_custom_pricing_disk FOREIGN KEY (pricing_id) REFERENCES vm_custom_pricing (id)
);
CREATE TABLE vm_custom_template (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  cpu tinyint unsigned NOT NULL,
  memory bigint unsigned NOT NULL,
  disk_size bigint unsigned NOT NULL,
  disk_type smallint unsigned NOT NULL,
  disk_interface smallint unsigned NOT NULL,
  pricing_id int unsigned NOT NULL,
  cpu_mfg smallint unsigned NOT NULL DEFAULT 0,
  cpu_arch smallint unsigned NOT NULL DEFAULT 0,
  cpu_features varchar(255) NOT NULL DEFAULT '',
  disk_iops_read int unsigned NULL,
  disk_iops_write int unsigned NULL,
  disk_mbps_read int unsigned NULL,
  disk_mbps_write int unsigned NULL,
  network_mbps int unsigned NULL,
  cpu_limit float NULL,
  CONSTRAINT fk_custom_template_pricing FOREIGN KEY (pricing_id) REFERENCES vm_custom_pricing (id)
);
CREATE TABLE vm (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  host_id int unsigned NOT NULL,
  user_id int unsigned NOT NULL,
  image_id int unsigned NOT NULL,
  template_id int unsigned NULL,
  ssh_key_id int unsigned NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  expires timestamp NOT NULL,
  disk_id int unsigned NOT NULL,
  mac_address varchar(20) NOT NULL,
  deleted bit(1) NOT NULL DEFAULT 0,
  ref_code varchar(20) NULL,
  custom_template_id int unsigned NULL,
  auto_renewal_enabled bit(1) NOT NULL COMMENT 'Enable automatic renewal via NWC for this VM',
  disabled bit(1) NOT NULL DEFAULT 0,
  CONSTRAINT fk_vm_host FOREIGN KEY (host_id) REFERENCES vm_host (id),
  CONSTRAINT fk_vm_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_vm_image FOREIGN KEY (image_id) REFERENCES vm_os_image (id),
  CONSTRAINT fk_vm_template_id FOREIGN KEY (template_id) REFERENCES vm_template (id),
  CONSTRAINT fk_vm_ssh_key_id FOREIGN KEY (ssh_key_id) REFERENCES user_ssh_key (id),
  CONSTRAINT fk_vm_host_disk_id FOREIGN KEY (disk_id) REFERENCES vm_host_disk (id),
  CONSTRAINT fk_vm_custom_template FOREIGN KEY (custom_template_id)
    REFERENCES vm_custom_template (id)
);
CREATE TABLE vm_ip_assignment (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  vm_id int unsigned NOT NULL,
  ip_range_id int unsigned NOT NULL,
  ip varchar(255) NOT NULL,
  deleted bit(1) NOT NULL DEFAULT 0,
  arp_ref varchar(50) NULL,
  dns_reverse varchar(255) NULL,
  dns_reverse_ref varchar(50) NULL,
  dns_forward varchar(255) NULL,
  dns_forward_ref varchar(50) NULL,
  CONSTRAINT fk_vm_ip_assignment_vm FOREIGN KEY (vm_id) REFERENCES vm (id),
  CONSTRAINT fk_vm_ip_range FOREIGN KEY (ip_range_id) REFERENCES ip_range (id)
);
CREATE TABLE vm_payment (
  id binary(32) NOT NULL,
  vm_id int unsigned NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  expires timestamp NOT NULL,
  amount bigint unsigned NOT NULL,
  external_data text NOT NULL,
  time_value bigint unsigned NOT NULL,
  is_paid bit(1) NOT NULL,
  rate float NOT NULL,
  currency varchar(5) NOT NULL DEFAULT 'BTC',
  payment_method smallint unsigned NOT NULL DEFAULT 0,
  external_id varchar(255) NULL,
  tax bigint unsigned NOT NULL,
  payment_type smallint unsigned NOT NULL DEFAULT 0,
  upgrade_params text NULL,
  processing_fee bigint unsigned NOT NULL DEFAULT 0,
  paid_at timestamp NULL,
  UNIQUE KEY ix_vm_payment_id (id),
  CONSTRAINT fk_vm_payment_vm FOREIGN KEY (vm_id) REFERENCES vm (id)
);
CREATE TABLE vm_history (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  vm_id int unsigned NOT NULL,
  action_type smallint unsigned NOT NULL,
  timestamp timestamp NOT NULL DEFAULT current_timestamp(),
  initiated_by_user int unsigned NULL,
  previous_state json NULL,
  new_state json NULL,
  metadata json NULL,
  description text NULL,
  KEY ix_vm_history_vm_id (vm_id),
  KEY ix_vm_history_action_type (action_type),
  KEY ix_vm_history_timestamp (timestamp),
  CONSTRAINT fk_vm_history_vm FOREIGN KEY (vm_id) REFERENCES vm (id),
  CONSTRAINT fk_vm_history_user FOREIGN KEY (initiated_by_user) REFERENCES users (id)
);
CREATE TABLE subscription (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id int unsigned NOT NULL,
  company_id int unsigned NOT NULL,
  name varchar(200) NOT NULL,
  description text NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  expires timestamp NULL,
  is_active bit(1) NOT NULL DEFAULT 1,
  currency varchar(4) NOT NULL,
  setup_fee bigint unsigned NOT NULL DEFAULT 0,
  auto_renewal_enabled bit(1) NOT NULL DEFAULT 0,
  external_id varchar(255) NULL,
  KEY idx_subscription_user (user_id),
  KEY idx_subscription_expires (expires),
  KEY idx_subscription_active (is_active),
  KEY idx_subscription_external_id (external_id),
  CONSTRAINT fk_subscription_user FOREIGN KEY (user_id) REFERENCES users (id),
  CONSTRAINT fk_subscription_company FOREIGN KEY (company_id) REFERENCES company (id)
);
CREATE TABLE subscription_line_item (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  subscription_id int unsigned NOT NULL,
  name varchar(200) NOT NULL,
  description text NULL,
  amount bigint unsigned NOT NULL,
  setup_amount bigint unsigned NOT NULL DEFAULT 0,
  configuration json NULL,
  subscription_type smallint unsigned NOT NULL DEFAULT 0,
  KEY idx_line_item_subscription (subscription_id),
  KEY idx_line_item_type (subscription_type),
  CONSTRAINT fk_line_item_subscription FOREIGN KEY (subscription_id)
    REFERENCES subscription (id) ON DELETE CASCADE
);
CREATE TABLE subscription_payment (
  id binary(32) NOT NULL,
  subscription_id int unsigned NOT NULL,
  user_id int unsigned NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  expires timestamp NOT NULL,
  amount bigint unsigned NOT NULL,
  currency varchar(5) NOT NULL,
  payment_method smallint unsigned NOT NULL,
  payment_type smallint unsigned NOT NULL,
  external_data text NOT NULL,
  external_id varchar(255) NULL,
  is_paid bit(1) NOT NULL DEFAULT 0,
  rate float NOT NULL,
  tax bigint unsigned NOT NULL,
  processing_fee bigint unsigned NOT NULL DEFAULT 0,
  paid_at timestamp NULL,
  UNIQUE KEY ix_subscription_payment_id (id),
  KEY idx_subscription_payment_subscription (subscription_id),
  KEY idx_subscription_payment_user (user_id),
  KEY idx_subscription_payment_expires (expires),
  KEY idx_subscription_payment_external_id (external_id),
  KEY idx_subscription_payment_is_paid (is_paid),
  CONSTRAINT fk_subscription_payment_subscription FOREIGN KEY (subscription_id)
    REFERENCES subscription (id),
  CONSTRAINT fk_subscription_payment_user FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE TABLE available_ip_space (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  cidr varchar(200) NOT NULL,
  min_prefix_size smallint unsigned NOT NULL,
  max_prefix_size smallint unsigned NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  updated timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  registry smallint unsigned NOT NULL,
  external_id varchar(255) NULL,
  is_available bit(1) NOT NULL DEFAULT 1,
  is_reserved bit(1) NOT NULL DEFAULT 0,
  metadata json NULL,
  company_id int unsigned NOT NULL,
  UNIQUE KEY idx_available_ip_space_cidr (cidr),
  KEY idx_available_ip_space_company (company_id),
  CONSTRAINT fk_available_ip_space_company FOREIGN KEY (company_id) REFERENCES company (id)
);
CREATE TABLE ip_space_pricing (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  available_ip_space_id int unsigned NOT NULL,
  prefix_size smallint unsigned NOT NULL,
  price_per_month bigint unsigned NOT NULL,
  currency varchar(4) NOT NULL DEFAULT 'USD',
  setup_fee bigint unsigned NOT NULL DEFAULT 0,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  updated timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  UNIQUE KEY uk_space_prefix (available_ip_space_id, prefix_size),
  FOREIGN KEY (available_ip_space_id) REFERENCES available_ip_space (id) ON DELETE CASCADE
);
CREATE TABLE ip_range_subscription (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  subscription_line_item_id int unsigned NOT NULL,
  available_ip_space_id int unsigned NOT NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  cidr varchar(200) NOT NULL UNIQUE,
  is_active bit(1) NOT NULL DEFAULT 1,
  started_at timestamp NULL DEFAULT current_timestamp(),
  ended_at timestamp NULL,
  metadata json NULL,
  FOREIGN KEY (subscription_line_item_id) REFERENCES subscription_line_item (id) ON DELETE CASCADE,
  FOREIGN KEY (available_ip_space_id) REFERENCES available_ip_space (id) ON DELETE RESTRICT
);
CREATE TABLE payment_method_config (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  company_id int unsigned NOT NULL,
  payment_method smallint unsigned NOT NULL,
  name varchar(255) NOT NULL,
  enabled bit(1) NOT NULL DEFAULT 1,
  provider_type varchar(50) NOT NULL,
  config json NOT NULL,
  processing_fee_rate float NULL,
  processing_fee_base bigint unsigned NULL,
  processing_fee_currency varchar(5) NULL,
  created timestamp NOT NULL DEFAULT current_timestamp(),
  modified timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  supported_currencies varchar(100) NOT NULL DEFAULT '',
  KEY idx_company_id (company_id),
  KEY idx_enabled (enabled),
  CONSTRAINT fk_payment_method_config_company FOREIGN KEY (company_id) REFERENCES company (id)
);
CREATE TABLE admin_roles (
  id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(50) NOT NULL UNIQUE,
  description text,
  is_system_role boolean DEFAULT false,
  created_at timestamp NOT NULL DEFAULT current_timestamp(),
  updated_at timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp(),
  KEY idx_name (name),
  KEY idx_system_role (is_system_role)
);
CREATE TABLE admin_role_permissions (
  id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  role_id bigint unsigned NOT NULL,
  resource smallint unsigned NOT NULL,
  action smallint unsigned NOT NULL,
  created_at timestamp NOT NULL DEFAULT current_timestamp(),
  UNIQUE KEY unique_role_permission (role_id, resource, action),
  KEY idx_role_id (role_id),
  KEY idx_resource_action (resource, action),
  KEY idx_admin_role_permissions_lookup (role_id, resource, action),
  FOREIGN KEY (role_id) REFERENCES admin_roles (id) ON DELETE CASCADE
);
CREATE TABLE admin_role_assignments (
  id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id int unsigned NOT NULL,
  role_id bigint unsigned NOT NULL,
  assigned_by int unsigned NULL,
  assigned_at timestamp NOT NULL DEFAULT current_timestamp(),
  expires_at timestamp NULL,
  UNIQUE KEY unique_user_role (user_id, role_id),
  KEY idx_user_id (user_id),
  KEY idx_role_id (role_id),
  KEY idx_expires (expires_at),
  KEY idx_admin_role_assignments_lookup (user_id, expires_at),
  FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  FOREIGN KEY (role_id) REFERENCES admin_roles (id) ON DELETE CASCADE,
  FOREIGN KEY (assigned_by) REFERENCES users (id) ON DELETE SET NULL
);
CREATE TABLE referral (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id int unsigned NOT NULL,
  code varchar(20) NOT NULL,
  lightning_address varchar(200) NULL,
  use_nwc boolean NOT NULL DEFAULT false,
  created datetime NOT NULL DEFAULT now(),
  UNIQUE KEY uk_referral_user (user_id),
  UNIQUE KEY uk_referral_code (code),
  FOREIGN KEY (user_id) REFERENCES users (id)
);
CREATE TABLE _sqlx_migrations (
  version bigint NOT NULL PRIMARY KEY,
  description text NOT NULL,
  installed_on timestamp NOT NULL DEFAULT current_timestamp(),
  success boolean NOT NULL,
  checksum blob NOT NULL,
  execution_time bigint NOT NULL
);
"""

#: What 20260302151134_vm_subscription_link does (schema.md §0.1).
R2_DDL = """
ALTER TABLE subscription
  ADD COLUMN is_setup bit(1) NOT NULL DEFAULT 0 AFTER is_active,
  ADD COLUMN interval_amount int unsigned NOT NULL DEFAULT 1 AFTER currency,
  ADD COLUMN interval_type smallint unsigned NOT NULL DEFAULT 1 AFTER interval_amount;
ALTER TABLE subscription_payment ADD COLUMN time_value bigint unsigned NULL,
  ADD COLUMN metadata json NULL;
ALTER TABLE vm ADD COLUMN subscription_line_item_id int unsigned NULL,
  ADD INDEX idx_vm_subscription_line_item (subscription_line_item_id),
  ADD CONSTRAINT fk_vm_subscription_line_item FOREIGN KEY (subscription_line_item_id)
    REFERENCES subscription_line_item (id),
  MODIFY expires timestamp NULL DEFAULT NULL,
  MODIFY auto_renewal_enabled bit(1) NOT NULL DEFAULT 0;
"""

#: What 20260615000000_add_email_hash does.
R3_DDL = """
ALTER TABLE users ADD COLUMN email_hash binary(32) NULL,
  ADD INDEX idx_users_email_hash (email_hash);
"""

LEGACY_VERSIONS = (
    20241103155733,
    20241126205723,
    20250306113236,
    20250801000000,
    20260127000000,
    20260130000003,
    20260217100000,
    20260225000000,
    20260225000001,
)
R2_VERSION, R3_VERSION = 20260302151134, 20260615000000

SEED = """
INSERT INTO company (id, name, email) VALUES (1, 'Default Company', 'admin@example.com');
INSERT INTO users (id, pubkey, contact_nip17, contact_email) VALUES (1, REPEAT('a', 32), 1, 0);
INSERT INTO vm_host_region (id, name, enabled, company_id) VALUES (1, 'r', 1, 1);
INSERT INTO vm_host (id, kind, region_id, name, ip, cpu, memory, enabled, api_token)
  VALUES (1, 0, 1, 'h', 'https://h', 8, 16, 1, 'ENC:abc');
INSERT INTO vm_host_disk (id, host_id, name, size, kind, interface, enabled)
  VALUES (1, 1, 'local', 1000, 1, 2, 1);
INSERT INTO vm_os_image (id, distribution, flavour, version, enabled, release_date, url)
  VALUES (1, 0, 'server', '24.04', 1, '2024-04-25 00:00:00', 'https://img');
INSERT INTO user_ssh_key (id, name, user_id, key_data) VALUES (1, 'k', 1, 'ssh-ed25519 AAA');
INSERT INTO vm (id, host_id, user_id, image_id, ssh_key_id, expires, disk_id, mac_address,
  auto_renewal_enabled) VALUES (1, 1, 1, 1, 1, '2026-05-01 08:00:00', 1, 'aa:bb', 1);
INSERT INTO vm_payment (id, vm_id, expires, amount, external_data, time_value, is_paid, rate,
  tax) VALUES (REPEAT('p', 32), 1, '2026-04-01 08:00:00', 1000, 'lnbc1', 2592000, 1, 92000, 0);
"""


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";\n") if s.strip()]


async def _run(url: str, *scripts: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            for script in scripts:
                for statement in _statements(script):
                    await conn.exec_driver_sql(statement)
    finally:
        await engine.dispose()


def _sqlx_rows(*versions: int, success: bool = True) -> str:
    values = ", ".join(f"({v}, 'm{v}', {int(success)}, X'00', 1)" for v in versions)
    return (
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, "
        f"execution_time) VALUES {values};\n"
    )


async def _lnvps_database(url: str, stage: str = R1_LEGACY, *extra: str) -> None:
    """Build the database LNVPS would have at `stage` (raw DDL + _sqlx_migrations rows)."""
    scripts = [LEGACY_DDL, _sqlx_rows(*LEGACY_VERSIONS)]
    if stage in (R2_VM_SUBSCRIPTION_LINK, R3_ADD_EMAIL_HASH):
        scripts += [R2_DDL, _sqlx_rows(R2_VERSION)]
    if stage == R3_ADD_EMAIL_HASH:
        scripts += [R3_DDL, _sqlx_rows(R3_VERSION)]
    await _run(url, *scripts, SEED, *extra)


def _snapshot_sync(conn: Connection) -> dict[str, list[str]]:
    inspector = inspect(conn)
    return {
        name: [c["name"] for c in inspector.get_columns(name)]
        for name in sorted(inspector.get_table_names())
    }


async def _snapshot(url: str) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            shape = await conn.run_sync(_snapshot_sync)
            sqlx = (await conn.execute(text("SELECT version FROM _sqlx_migrations"))).all()
            return {"shape": shape, "sqlx": sorted(r[0] for r in sqlx)}
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("stage", "version", "applied"),
    [
        (R1_LEGACY, 20260225000001, REVISIONS[1:]),
        (R2_VM_SUBSCRIPTION_LINK, R2_VERSION, REVISIONS[2:]),
        (R3_ADD_EMAIL_HASH, R3_VERSION, REVISIONS[3:]),
    ],
)
async def test_adopts_lnvps_database_and_upgrades_it(
    mysql_url: str, stage: str, version: int, applied: tuple[str, ...]
) -> None:
    await _lnvps_database(mysql_url, stage)
    report = await upgrade_database(mysql_url)
    assert report.adopted and report.adopted_sqlx_version == version
    assert (report.from_revision, report.to_revision, report.applied) == (stage, HEAD, applied)
    assert await current_revision(mysql_url) == HEAD
    shape = (await _snapshot(mysql_url))["shape"]
    for table in tables.metadata.sorted_tables:
        assert sorted(shape[table.name]) == sorted(c.name for c in table.columns), table.name
    assert "referral" in shape and "_sqlx_migrations" in shape  # left alone
    engine = create_engine(mysql_url)
    try:
        async with engine.connect() as conn:
            vm = (await conn.execute(sa.select(tables.vm))).one()
            assert vm.expires == EXPIRES and vm.auto_renewal_enabled is True
            assert vm.subscription_line_item_id is None
            payment = (await conn.execute(sa.select(tables.vm_payment))).one()
            assert payment.time_value == 2592000 and payment.rate == 92000
    finally:
        await engine.dispose()
    assert (await upgrade_database(mysql_url)).applied == ()


@pytest.mark.parametrize(
    ("stage", "extra", "message"),
    [
        (
            R2_VM_SUBSCRIPTION_LINK,
            _sqlx_rows(20260304000000) + "ALTER TABLE vm DROP COLUMN expires;\n",
            "deleted branch migration(s) 20260304000000_drop_vm_expires",
        ),
        (
            R2_VM_SUBSCRIPTION_LINK,
            _sqlx_rows(20260302154256),
            "20260302154256_vm_subscription_not_null",
        ),
        (R1_LEGACY, "ALTER TABLE vm DROP COLUMN ref_code;\n", "missing column vm.ref_code"),
        (R1_LEGACY, "DROP TABLE vm_history;\n", "missing table vm_history"),
        (R1_LEGACY, R2_DDL, "unexpected column vm.subscription_line_item_id"),
        (R2_VM_SUBSCRIPTION_LINK, R3_DDL, "unexpected column users.email_hash"),
        (R1_LEGACY, _sqlx_rows(20260301000000), "unknown sqlx migration(s) [20260301000000]"),
        (R1_LEGACY, _sqlx_rows(20260302151134, success=False), "dirty"),
    ],
)
async def test_refuses_and_leaves_database_unchanged(
    mysql_url: str, stage: str, extra: str, message: str
) -> None:
    await _lnvps_database(mysql_url, stage, extra)
    before = await _snapshot(mysql_url)
    with pytest.raises(SchemaMismatch) as refused:
        await upgrade_database(mysql_url)
    assert message in str(refused.value)
    assert await _snapshot(mysql_url) == before
    assert "alembic_version" not in before["shape"]
    assert await current_revision(mysql_url) is None


async def test_sqlite_adoption_and_refusal(sqlite_url: str) -> None:
    """The same decision logic on SQLite, with the legacy shape built by r1 itself."""
    await upgrade_database(sqlite_url, R1_LEGACY)
    await _run(sqlite_url, "DROP TABLE alembic_version;\n", _SQLITE_SQLX, SEED_SQLITE)
    await _run(sqlite_url, _sqlx_rows(*LEGACY_VERSIONS))
    await _run(sqlite_url, "ALTER TABLE vm DROP COLUMN ref_code;\n")
    with pytest.raises(SchemaMismatch, match=r"missing column vm\.ref_code"):
        await upgrade_database(sqlite_url)
    assert await current_revision(sqlite_url) is None
    await _run(sqlite_url, "ALTER TABLE vm ADD COLUMN ref_code VARCHAR(20);\n")
    report = await upgrade_database(sqlite_url)
    assert report.adopted_sqlx_version == 20260225000001 and report.from_revision == R1_LEGACY
    assert report.to_revision == HEAD


async def test_unversioned_foreign_database_is_refused(db_url: str) -> None:
    await _run(db_url, "CREATE TABLE something (id INTEGER PRIMARY KEY);\n")
    with pytest.raises(SchemaMismatch, match="neither alembic_version nor _sqlx_migrations"):
        await upgrade_database(db_url)
    assert await current_revision(db_url) is None


_SQLITE_SQLX = """
CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
  installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL,
  checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);
"""
SEED_SQLITE = (
    "INSERT INTO users (id, pubkey, contact_nip17, contact_email) VALUES (1, X'01', 1, 0);\n"
)
