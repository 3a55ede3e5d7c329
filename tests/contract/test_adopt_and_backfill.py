"""Issue acceptance: a database made by LNVPS's own SQL migrations up to 20260225000001 and
filled with legacy rows comes out of `lnvps db upgrade` + `lnvps migrate-legacy-billing` with
every VM linked, every payment copied byte for byte, expiry and auto-renewal kept; a second
run changes nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from adapters.mysql.engine import create_engine
from lnvps.cli import main as lnvps
from tests.contract.test_adoption import LEGACY_DDL, LEGACY_VERSIONS, _run, _sqlx_rows

LEGACY_ROWS = """
INSERT INTO company (id, name, email, base_currency) VALUES (1, 'Default Company', 'a@b.c', 'EUR');
INSERT INTO users (id, pubkey, contact_nip17, contact_email) VALUES (1, REPEAT('a', 32), 1, 0);
INSERT INTO users (id, pubkey, contact_nip17, contact_email) VALUES (2, REPEAT('b', 32), 1, 0);
INSERT INTO vm_host_region (id, name, enabled, company_id) VALUES (1, 'r', 1, 1);
INSERT INTO vm_host (id, kind, region_id, name, ip, cpu, memory, enabled, api_token)
  VALUES (1, 0, 1, 'h', 'https://h', 8, 16, 1, 'ENC:abc');
INSERT INTO vm_host_disk (id, host_id, name, size, kind, interface, enabled)
  VALUES (1, 1, 'local', 1000, 1, 2, 1);
INSERT INTO vm_os_image (id, distribution, flavour, version, enabled, release_date, url)
  VALUES (1, 0, 'server', '24.04', 1, '2024-04-25 00:00:00', 'https://img');
INSERT INTO user_ssh_key (id, name, user_id, key_data) VALUES (1, 'k', 1, 'ssh-ed25519 AAA');
INSERT INTO user_ssh_key (id, name, user_id, key_data) VALUES (2, 'k', 2, 'ENC:xyz');
INSERT INTO vm_cost_plan (id, name, amount, currency, interval_amount, interval_type)
  VALUES (1, 'monthly', 132, 'EUR', 1, 1);
INSERT INTO vm_cost_plan (id, name, amount, currency, interval_amount, interval_type)
  VALUES (2, 'yearly', 1400, 'EUR', 1, 2);
INSERT INTO vm_template (id, name, enabled, cpu, memory, disk_size, disk_type, disk_interface,
  cost_plan_id, region_id) VALUES (1, 'Tiny', 1, 1, 1073741824, 10737418240, 1, 2, 1, 1);
INSERT INTO vm_template (id, name, enabled, cpu, memory, disk_size, disk_type, disk_interface,
  cost_plan_id, region_id) VALUES (2, 'Yearly', 1, 2, 2147483648, 21474836480, 1, 2, 2, 1);
INSERT INTO vm_custom_pricing (id, name, enabled, region_id, currency, cpu_cost, memory_cost,
  ip4_cost, ip6_cost) VALUES (1, 'custom', 1, 1, 'EUR', 150, 50, 50, 5);
INSERT INTO vm_custom_pricing_disk (id, pricing_id, kind, interface, cost)
  VALUES (1, 1, 1, 2, 5);
INSERT INTO vm_custom_template (id, cpu, memory, disk_size, disk_type, disk_interface,
  pricing_id) VALUES (1, 2, 2147483648, 85899345920, 1, 2, 1);
INSERT INTO vm (id, host_id, user_id, image_id, template_id, ssh_key_id, expires, disk_id,
  mac_address, auto_renewal_enabled, deleted)
  VALUES (1, 1, 1, 1, 1, 1, '2026-05-01 08:00:00', 1, 'aa:bb:cc:00:00:01', 1, 0);
INSERT INTO vm (id, host_id, user_id, image_id, template_id, ssh_key_id, expires, disk_id,
  mac_address, auto_renewal_enabled, deleted)
  VALUES (2, 1, 2, 1, 2, 2, '2027-01-31 23:59:59', 1, 'aa:bb:cc:00:00:02', 0, 0);
INSERT INTO vm (id, host_id, user_id, image_id, custom_template_id, ssh_key_id, expires,
  disk_id, mac_address, auto_renewal_enabled, deleted)
  VALUES (3, 1, 1, 1, 1, 1, '2026-03-15 12:00:00', 1, 'aa:bb:cc:00:00:03', 0, 0);
INSERT INTO vm (id, host_id, user_id, image_id, template_id, ssh_key_id, expires, disk_id,
  mac_address, auto_renewal_enabled, deleted)
  VALUES (4, 1, 1, 1, 1, 1, '2025-01-01 00:00:00', 1, 'aa:bb:cc:00:00:04', 1, 1);
INSERT INTO vm (id, host_id, user_id, image_id, ssh_key_id, expires, disk_id, mac_address,
  auto_renewal_enabled, deleted)
  VALUES (5, 1, 1, 1, 1, '2026-02-01 00:00:00', 1, 'aa:bb:cc:00:00:05', 0, 0);
INSERT INTO vm_payment (id, vm_id, expires, amount, external_data, time_value, is_paid, rate,
  tax, currency, payment_method, payment_type, paid_at) VALUES
  (REPEAT('1', 32), 1, '2026-04-01 08:10:00', 1320000, 'lnbc13200n1plain', 2592000, 1, 92000,
   303600, 'BTC', 0, 0, '2026-04-01 08:01:00'),
  (REPEAT('2', 32), 1, '2026-04-20 08:10:00', 1320000, 'ENC:AAAAbbbbCCCCdddd==', 2592000, 0,
   92000, 0, 'BTC', 0, 0, NULL),
  (REPEAT('3', 32), 2, '2026-01-31 23:59:59', 1400, '{"id":"rev-1","state":"completed"}',
   31536000, 1, 1, 0, 'EUR', 1, 0, '2026-01-31 23:00:00'),
  (REPEAT('4', 32), 3, '2026-03-01 00:00:00', 40000, 'lnbc400n1upgrade', 0, 1, 100000, 0,
   'BTC', 0, 1, '2026-03-01 00:00:00'),
  (REPEAT('5', 32), 3, '2026-03-10 00:00:00', 50000, 'lnbc500n1pendingupgrade', 0, 0, 100000, 0,
   'BTC', 0, 1, NULL),
  (REPEAT('6', 32), 4, '2024-12-01 00:00:00', 1320000, 'lnbc13200n1old', 2592000, 1, 92000, 0,
   'BTC', 0, 0, '2024-12-01 00:00:00');
UPDATE vm_payment SET upgrade_params = '{"new_cpu":4,"new_memory":null,"new_disk":null}'
  WHERE vm_id = 3;
"""

PAYMENT_COLUMNS = (
    "id",
    "created",
    "expires",
    "amount",
    "currency",
    "payment_method",
    "external_data",
    "external_id",
    "is_paid",
    "tax",
    "processing_fee",
    "paid_at",
)


def _flag(value: Any) -> bool:
    """A BIT(1) as MariaDB returns it through a raw query (b'\\x00' / b'\\x01')."""
    if isinstance(value, bytes):
        return value != b"\x00"
    return bool(value)


async def _rows(url: str, query: str) -> list[dict[str, Any]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return [dict(r._mapping) for r in (await conn.execute(sa.text(query))).all()]
    finally:
        await engine.dispose()


async def _state(url: str) -> dict[str, Any]:
    tables = ("subscription", "subscription_line_item", "subscription_payment", "vm")
    return {t: await _rows(url, f"SELECT * FROM {t} ORDER BY 1") for t in tables}


async def test_an_lnvps_database_is_adopted_and_backfilled_completely_once(
    mysql_url: str,
) -> None:
    await _run(mysql_url, LEGACY_DDL, _sqlx_rows(*LEGACY_VERSIONS), LEGACY_ROWS)
    legacy_vms = await _rows(mysql_url, "SELECT * FROM vm ORDER BY id")
    legacy_payments = await _rows(mysql_url, "SELECT * FROM vm_payment ORDER BY id")

    assert await asyncio.to_thread(lnvps, ["--db", mysql_url, "db", "upgrade"]) == 0
    assert await asyncio.to_thread(lnvps, ["--db", mysql_url, "migrate-legacy-billing"]) == 0

    vms = await _rows(
        mysql_url,
        "SELECT v.id, v.expires AS vm_expires, s.expires, s.auto_renewal_enabled, s.is_active,"
        " s.is_setup, li.subscription_type FROM vm v"
        " JOIN subscription_line_item li ON li.id = v.subscription_line_item_id"
        " JOIN subscription s ON s.id = li.subscription_id ORDER BY v.id",
    )
    assert [v["id"] for v in vms] == [v["id"] for v in legacy_vms]  # every VM linked
    for legacy, linked in zip(legacy_vms, vms, strict=True):
        assert linked["expires"] == legacy["expires"]
        assert _flag(linked["auto_renewal_enabled"]) == _flag(legacy["auto_renewal_enabled"])
        assert _flag(linked["is_active"]) == (not _flag(legacy["deleted"]))
        assert linked["subscription_type"] == 3
    setup = {v["id"]: _flag(v["is_setup"]) for v in vms}
    assert setup == {1: True, 2: True, 3: True, 4: True, 5: False}  # paid payment ⇒ set up

    copied = await _rows(mysql_url, "SELECT * FROM subscription_payment ORDER BY id")
    assert [p["id"] for p in copied] == [p["id"] for p in legacy_payments]
    for old, new in zip(legacy_payments, copied, strict=True):
        for column in PAYMENT_COLUMNS:
            assert new[column] == old[column], column  # external_data byte for byte
    types = {p["id"][:1]: p["payment_type"] for p in copied}
    assert types == {b"1": 1, b"2": 1, b"3": 1, b"4": 2, b"5": 2, b"6": 1}
    pending_upgrade = next(p for p in copied if p["id"] == b"5" * 32)
    assert pending_upgrade["time_value"] == 0  # D18: not NULL

    before = await _state(mysql_url)
    assert await asyncio.to_thread(lnvps, ["--db", mysql_url, "db", "upgrade"]) == 0
    assert await asyncio.to_thread(lnvps, ["--db", mysql_url, "migrate-legacy-billing"]) == 0
    assert await _state(mysql_url) == before
