"""A large legacy LNVPS database (thousands of VMs and `vm_payment` rows) for the kill -9 test."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, insert, select, update

from adapters.mysql import tables as t
from adapters.mysql.engine import create_engine
from adapters.mysql.migrations import R1_LEGACY
from adapters.mysql.schema_upgrade import upgrade_database
from domain.enums import LegacyPaymentType, PaymentMethod
from tests.contract.legacy_fixtures import DAY, MONTH_S, NOW, build_legacy_rows, enc

_CHUNK = 2000


def bulk_payment_id(vm_id: int, n: int) -> bytes:
    return hashlib.sha256(f"bulk-{vm_id}-{n}".encode()).digest()


def _vm_row(proto: dict[str, Any], i: int, templates: Sequence[int], custom: int) -> dict[str, Any]:
    use_custom = i % 10 == 9
    return {
        "host_id": proto["host_id"],
        "user_id": proto["user_id"],
        "image_id": proto["image_id"],
        "template_id": None if use_custom else templates[i % len(templates)],
        "custom_template_id": custom if use_custom else None,
        "ssh_key_id": proto["ssh_key_id"],
        "created": NOW - (400 - i % 300) * DAY,
        "expires": NOW + (i % 400 - 200) * DAY + timedelta(seconds=i),
        "disk_id": proto["disk_id"],
        "mac_address": f"52:54:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}",
        "deleted": i % 7 == 0,
        "auto_renewal_enabled": i % 3 == 0,
    }


def _payment_row(vm_id: int, n: int) -> dict[str, Any]:
    """Mostly Lightning renewals, some Revolut, some upgrades; half paid; varied payloads."""
    paid = (vm_id + n) % 2 == 0
    upgrade = n == 3 and vm_id % 5 == 0
    revolut = n == 2 and vm_id % 4 == 0
    expires = NOW - (vm_id % 200) * DAY + n * timedelta(hours=1)
    return {
        "id": bulk_payment_id(vm_id, n),
        "vm_id": vm_id,
        "created": expires - timedelta(minutes=10),
        "expires": expires,
        "amount": 1234 if revolut else 1_000_000 + vm_id * 7 + n,
        "external_data": (
            f'{{"id":"ord-{vm_id}-{n}","note":"café ✓"}}'
            if revolut
            else (enc(f"{vm_id}-{n}") if n % 2 else f"lnbc{vm_id}n1p{n}")
        ),
        "time_value": 0 if upgrade else MONTH_S,
        "is_paid": paid,
        "rate": Decimal("1") if revolut else Decimal("92000.5"),
        "currency": "EUR" if revolut else "BTC",
        "payment_method": PaymentMethod.REVOLUT if revolut else PaymentMethod.LIGHTNING,
        "external_id": f"ord-{vm_id}-{n}" if revolut else None,
        "tax": 100 + n,
        "payment_type": LegacyPaymentType.UPGRADE if upgrade else LegacyPaymentType.RENEWAL,
        "upgrade_params": '{"new_cpu": 4}' if upgrade else None,
        "processing_fee": 7 if revolut else 0,
        "paid_at": expires - timedelta(minutes=5) if paid else None,
    }


async def build_bulk_legacy_db(url: str, vms: int, payments_per_vm: int) -> None:
    """The acceptance fixture's legacy rows (every tricky case) plus `vms` cloned VMs with
    `payments_per_vm` payments each, at the legacy schema (r1), then upgraded to head as
    `lnvps db upgrade` would. Deterministic: two builds hold the same rows and ids."""
    await upgrade_database(url, R1_LEGACY)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await build_legacy_rows(conn)
            # its non-VM subscription is dated by the server clock: pin it, so builds match
            await conn.execute(update(t.subscription).values(created=NOW - 30 * DAY))
            vm = t.vm.c
            cloned = (vm.host_id, vm.user_id, vm.image_id, vm.ssh_key_id, vm.disk_id)
            first = await conn.execute(select(*cloned).order_by(vm.id).limit(1))
            proto = dict(first.mappings().one())
            same_host = (
                select(t.vm_template.c.id)
                .join(t.vm_cost_plan, t.vm_cost_plan.c.id == t.vm_template.c.cost_plan_id)
                .where(t.vm_cost_plan.c.currency == "EUR")
                .order_by(t.vm_template.c.id)
            )
            templates = list((await conn.execute(same_host)).scalars())
            custom = (await conn.execute(select(func.min(t.vm_custom_template.c.id)))).scalar()
            start = int((await conn.execute(select(func.max(t.vm.c.id)))).scalar_one())
            rows = [_vm_row(proto, i, templates, int(custom)) for i in range(vms)]
            for low in range(0, len(rows), _CHUNK):
                await conn.execute(insert(t.vm), rows[low : low + _CHUNK])
            ids = list((await conn.execute(select(t.vm.c.id).where(t.vm.c.id > start))).scalars())
            assert len(ids) == vms
            payments = [_payment_row(v, n) for v in ids for n in range(payments_per_vm)]
            for low in range(0, len(payments), _CHUNK):
                await conn.execute(insert(t.vm_payment), payments[low : low + _CHUNK])
    finally:
        await engine.dispose()
    await upgrade_database(url)
