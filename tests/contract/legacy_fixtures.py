"""A legacy-shaped (r1) LNVPS database with every kind of VM and payment the backfill handles."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.mysql import tables as t
from domain.enums import (
    DiskInterface,
    DiskType,
    IntervalType,
    LegacyPaymentType,
    OsDistribution,
    PaymentMethod,
    SubscriptionType,
    VmHostKind,
)

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MONTH_S = 2_592_000

#: Tables whose row counts and checksums prove "nothing changed".
WATCHED = ("vm", "vm_payment", "subscription", "subscription_line_item", "subscription_payment")

#: The one payment whose upgrade_params are not valid JSON (R3, D18: reported, not copied).
INVALID_PARAMS_ID = hashlib.sha256(b"invalid-params").digest()


def pid(label: str) -> bytes:
    """A deterministic 32-byte payment id (like a Lightning payment hash)."""
    return hashlib.sha256(label.encode()).digest()


def enc(label: str) -> str:
    """An `ENC:` value shaped like the reference's AES-GCM output (never decrypted here)."""
    return "ENC:" + base64.b64encode(hashlib.sha512(label.encode()).digest()).decode()


@attrs.frozen(kw_only=True)
class VmCase:
    """What a fixture VM is and what its subscription must look like afterwards."""

    id: int
    label: str
    deleted: bool
    auto_renew: bool
    expires: datetime
    paid: bool
    interval: tuple[int, IntervalType]
    currency: str
    amount: int
    description: str


@attrs.frozen(kw_only=True)
class LegacyFixture:
    vms: Mapping[int, VmCase]
    payment_ids: tuple[bytes, ...]
    non_vm_subscription_id: int


async def _add(conn: AsyncConnection, table: Any, **values: Any) -> int:
    result = await conn.execute(insert(table).values(**values))
    key = result.inserted_primary_key
    return int(key[0]) if key and key[0] is not None else 0


async def build_legacy_rows(conn: AsyncConnection) -> LegacyFixture:
    """Insert catalogue, VMs and payments into a database at r1 (schema.md §9 input shape)."""
    eur_company = 1  # seeded by r1 ('Default Company', EUR)
    usd_company = await _add(
        conn, t.company, name="US Co", email="us@example.com", base_currency="USD"
    )
    region_eu = await _add(conn, t.vm_host_region, name="eu", enabled=True, company_id=eur_company)
    region_us = await _add(conn, t.vm_host_region, name="us", enabled=True, company_id=usd_company)
    hosts = {}
    disks = {}
    for name, region in (("eu", region_eu), ("us", region_us)):
        hosts[name] = await _add(
            conn,
            t.vm_host,
            kind=VmHostKind.DUMMY,
            region_id=region,
            name=f"host-{name}",
            ip="https://h",
            cpu=64,
            memory=256 << 30,
            enabled=True,
            api_token=enc("token"),
        )
        disks[name] = await _add(
            conn,
            t.vm_host_disk,
            host_id=hosts[name],
            name="ssd",
            size=4 << 40,
            kind=DiskType.SSD,
            interface=DiskInterface.PCIE,
            enabled=True,
        )
    image = await _add(
        conn,
        t.vm_os_image,
        distribution=OsDistribution.DEBIAN,
        flavour="server",
        version="12",
        enabled=True,
        release_date=NOW - 400 * DAY,
        url="https://img",
    )
    users = []
    for i in range(3):
        users.append(
            await _add(
                conn, t.users, pubkey=pid(f"user{i}"), contact_nip17=True, contact_email=False
            )
        )
    keys = [
        await _add(conn, t.user_ssh_key, name="k", user_id=u, key_data=enc(f"key{u}"))
        for u in users
    ]
    plans = {}
    for label, amount, currency, n, unit in (
        ("monthly", 500, "EUR", 1, IntervalType.MONTH),
        ("yearly", 5000, "EUR", 1, IntervalType.YEAR),
        ("usd3m", 1500, "USD", 3, IntervalType.MONTH),
        ("daily", 20, "EUR", 7, IntervalType.DAY),
    ):
        plans[label] = await _add(
            conn,
            t.vm_cost_plan,
            name=label,
            amount=amount,
            currency=currency,
            interval_amount=n,
            interval_type=unit,
        )
    templates = {}
    for label, plan, region in (
        ("Tiny", "monthly", region_eu),
        ("Big", "yearly", region_eu),
        ("UsPlan", "usd3m", region_us),
        ("Daily", "daily", region_eu),
    ):
        templates[label] = await _add(
            conn,
            t.vm_template,
            name=label,
            enabled=True,
            cpu=2,
            memory=2 << 30,
            disk_size=40 << 30,
            disk_type=DiskType.SSD,
            disk_interface=DiskInterface.PCIE,
            cost_plan_id=plans[plan],
            region_id=region,
        )
    pricing = await _add(
        conn,
        t.vm_custom_pricing,
        name="custom-eu",
        enabled=True,
        region_id=region_eu,
        currency="EUR",
        cpu_cost=100,
        memory_cost=50,
        ip4_cost=100,
        ip6_cost=0,
    )
    custom = await _add(
        conn,
        t.vm_custom_template,
        cpu=4,
        memory=8 << 30,
        disk_size=80 << 30,
        disk_type=DiskType.SSD,
        disk_interface=DiskInterface.PCIE,
        pricing_id=pricing,
    )

    cases: dict[int, VmCase] = {}

    async def vm(
        label: str,
        *,
        host: str = "eu",
        template: str | None = None,
        custom_template: int | None = None,
        deleted: bool = False,
        auto_renew: bool = False,
        expires: datetime,
        paid: bool,
        interval: tuple[int, IntervalType],
        currency: str,
        amount: int,
        user: int = 0,
    ) -> int:
        vm_id = await _add(
            conn,
            t.vm,
            host_id=hosts[host],
            user_id=users[user],
            image_id=image,
            template_id=None if template is None else templates[template],
            custom_template_id=custom_template,
            ssh_key_id=keys[user],
            created=NOW - 100 * DAY,
            expires=expires,
            disk_id=disks[host],
            mac_address="52:54:00:00:00:01",
            deleted=deleted,
            auto_renewal_enabled=auto_renew,
        )
        desc = f"{template} (VM {vm_id})" if template else f"Custom VM {vm_id}"
        cases[vm_id] = VmCase(
            id=vm_id,
            label=label,
            deleted=deleted,
            auto_renew=auto_renew,
            expires=expires,
            paid=paid,
            interval=interval,
            currency=currency,
            amount=amount,
            description=desc,
        )
        return vm_id

    m1 = (1, IntervalType.MONTH)
    std = await vm(
        "standard-future", template="Tiny", auto_renew=True, expires=NOW + 20 * DAY,
        paid=True, interval=m1, currency="EUR", amount=500,
    )  # fmt: skip
    yearly = await vm(
        "standard-expired-yearly", template="Big", expires=NOW - 40 * DAY, paid=True,
        interval=(1, IntervalType.YEAR), currency="EUR", amount=5000, user=1,
    )  # fmt: skip
    cust = await vm(
        "custom", custom_template=custom, auto_renew=True, expires=NOW + 3 * DAY, paid=True,
        interval=m1, currency="EUR", amount=0, user=1,
    )  # fmt: skip
    gone = await vm(
        "deleted", template="Tiny", deleted=True, expires=NOW - 300 * DAY, paid=True,
        interval=m1, currency="EUR", amount=500, user=2,
    )  # fmt: skip
    unpaid = await vm(
        "never-paid", template="Tiny", expires=NOW - 99 * DAY, paid=False, interval=m1,
        currency="EUR", amount=500,
    )  # fmt: skip
    await vm(
        "no-payments-deleted-custom", custom_template=custom, deleted=True,
        expires=NOW - 10 * DAY, paid=False, interval=m1, currency="EUR", amount=0,
    )  # fmt: skip
    await vm(
        "both-templates", template="Daily", custom_template=custom, expires=NOW + DAY,
        paid=False, interval=(7, IntervalType.DAY), currency="EUR", amount=20,
    )  # fmt: skip
    us = await vm(
        "usd-company", host="us", template="UsPlan", expires=NOW + 60 * DAY, paid=True,
        interval=(3, IntervalType.MONTH), currency="USD", amount=1500, auto_renew=True,
    )  # fmt: skip
    mismatch = await vm(
        "plan-currency-mismatch", template="UsPlan", expires=NOW + 5 * DAY, paid=False,
        interval=(3, IntervalType.MONTH), currency="EUR", amount=0,
    )  # fmt: skip

    ids: list[bytes] = []

    async def pay(
        vm_id: int,
        label: str,
        *,
        kind: LegacyPaymentType = LegacyPaymentType.RENEWAL,
        paid: bool,
        expires: datetime,
        time_value: int = MONTH_S,
        data: str,
        method: PaymentMethod = PaymentMethod.LIGHTNING,
        currency: str = "BTC",
        params: str | None = None,
        rate: Decimal = Decimal("92000"),
        payment_id: bytes | None = None,
    ) -> None:
        payment_id = payment_id or pid(label)
        ids.append(payment_id)
        await conn.execute(
            insert(t.vm_payment).values(
                id=payment_id,
                vm_id=vm_id,
                created=expires - timedelta(minutes=10),
                expires=expires,
                amount=123_456_000 if currency == "BTC" else 1234,
                external_data=data,
                time_value=time_value,
                is_paid=paid,
                rate=rate,
                currency=currency,
                payment_method=method,
                external_id=None if method is PaymentMethod.LIGHTNING else f"ord-{label}",
                tax=1000,
                payment_type=kind,
                upgrade_params=params,
                processing_fee=7 if method is not PaymentMethod.LIGHTNING else 0,
                paid_at=expires - timedelta(minutes=5) if paid else None,
            )
        )

    up = LegacyPaymentType.UPGRADE
    await pay(std, "std-paid", paid=True, expires=NOW - 20 * DAY, data="lnbc1500n1pstd")
    await pay(std, "std-pending", paid=False, expires=NOW + DAY, data=enc("std-pending"))
    await pay(
        std, "std-upgrade-pending", kind=up, paid=False, expires=NOW + DAY, time_value=0,
        data=enc("up"), params='{ "new_memory" : 4294967296 ,\n  "new_cpu":4 }',
    )  # fmt: skip
    await pay(
        yearly, "yearly-paid-revolut", paid=True, expires=NOW - 400 * DAY,
        data='{"id":"ord","state":"completed","note":"café ✓"}',
        method=PaymentMethod.REVOLUT, currency="EUR", rate=Decimal("1"),
    )  # fmt: skip
    await pay(yearly, "yearly-expired", paid=False, expires=NOW - 41 * DAY, data="lnbc1expired")
    await pay(
        cust, "cust-paid-upgrade", kind=up, paid=True, expires=NOW - 2 * DAY, time_value=0,
        data=enc("cust-up"), params='{"new_disk":107374182400}', rate=Decimal("0.1"),
    )  # fmt: skip
    await pay(cust, "cust-paid", paid=True, expires=NOW - 30 * DAY, data=enc("cust-paid"))
    await pay(
        cust, "cust-upgrade-null-params", kind=up, paid=False, expires=NOW - DAY,
        time_value=0, data="lnbc1nullparams",
    )  # fmt: skip
    await pay(
        cust, "invalid-params", kind=up, paid=False, expires=NOW + DAY, time_value=0,
        data="lnbc1invalid", params="{new_cpu: 4", payment_id=INVALID_PARAMS_ID,
    )  # fmt: skip
    await pay(gone, "gone-paid", paid=True, expires=NOW - 330 * DAY, data=enc("gone"))
    await pay(
        gone, "gone-stripe", paid=True, expires=NOW - 360 * DAY, data='{"pi":"x"}',
        method=PaymentMethod.STRIPE, currency="EUR", rate=Decimal("1"),
    )  # fmt: skip
    await pay(unpaid, "unpaid-expired", paid=False, expires=NOW - 99 * DAY, data="lnbc1never")
    await pay(us, "us-paid", paid=True, expires=NOW - 30 * DAY, data=enc("us"))
    await pay(mismatch, "mismatch-expired", paid=False, expires=NOW - 3 * DAY, data="lnbc1mm")

    # A pre-existing non-VM subscription (IP range) and its payment must stay untouched.
    sub_id = await _add(
        conn,
        t.subscription,
        user_id=users[0],
        company_id=eur_company,
        name="IP range",
        currency="EUR",
        is_active=True,
        expires=NOW + 10 * DAY,
    )
    await _add(
        conn,
        t.subscription_line_item,
        subscription_id=sub_id,
        subscription_type=SubscriptionType.IP_RANGE,
        name="/29",
        amount=1000,
    )
    await conn.execute(
        text(
            "INSERT INTO subscription_payment (id, subscription_id, user_id, created, expires, "
            "amount, currency, payment_method, payment_type, external_data, is_paid, rate, tax, "
            "processing_fee, paid_at) VALUES (:id, :s, :u, :c, :e, 1000, 'EUR', 1, 0, 'x', 1, "
            "1.0, 0, 0, :c)"
        ),
        {
            "id": pid("ip-purchase"),
            "s": sub_id,
            "u": users[0],
            "c": (NOW - 20 * DAY).replace(tzinfo=None),
            "e": (NOW - 19 * DAY).replace(tzinfo=None),
        },
    )
    return LegacyFixture(vms=cases, payment_ids=tuple(ids), non_vm_subscription_id=sub_id)


async def table_counts(conn: AsyncConnection) -> dict[str, int]:
    """Row counts of the watched tables."""
    counts = {}
    for name in WATCHED:
        table = t.metadata.tables[name]
        counts[name] = int(
            (await conn.execute(select(func.count()).select_from(table))).scalar_one()
        )
    return counts


async def table_checksums(conn: AsyncConnection) -> dict[str, str]:
    """A digest of every watched table's full content (raw values, ordered)."""
    sums = {}
    for name in WATCHED:
        rows = (await conn.execute(text(f"SELECT * FROM {name}"))).all()
        digest = hashlib.sha256()
        for row in sorted(repr(tuple(row)) for row in rows):
            digest.update(row.encode())
        sums[name] = digest.hexdigest()
    return sums
