"""Every record kind round-trips through storage field for field, with the id storage assigned."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import attrs
import pytest
from sqlalchemy import insert, select

from adapters.mysql import tables
from adapters.mysql.seal_secrets import seal_plaintext_secrets
from adapters.mysql.uow import SqlUnitOfWorkFactory
from domain.enums import (
    AdminAction,
    AdminResource,
    CpuArch,
    CpuMfg,
    DiskInterface,
    DiskType,
    InternetRegistry,
    IpRangeAllocationMode,
    LegacyPaymentType,
    PaymentMethod,
    SubscriptionPaymentType,
    VmHistoryActionType,
)
from domain.model import (
    GIB,
    AdminRole,
    AvailableIpSpace,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    IpAssignment,
    IpRange,
    IpRangeSubscription,
    IpSpacePricing,
    LegacyVmPayment,
    PaymentMethodConfig,
    ResourceLimits,
    RoleAssignment,
    RolePermission,
    SshKey,
    User,
    VmHistory,
)
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import Backend, at, new_payment, seed_world

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

LIMITS = ResourceLimits(
    disk_iops_read=100,
    disk_iops_write=200,
    disk_mbps_read=300,
    disk_mbps_write=400,
    network_mbps=1000,
    cpu_limit=Decimal("0.5"),
)


async def test_the_seeded_world_reads_back_exactly(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        await uow.commit()
    assert (
        w.vm.id > 0 and w.subscription.id > 0 and w.line_item.subscription_id == w.subscription.id
    )
    async with uow_factory() as uow:
        assert await uow.companies.get(w.company.id) == w.company
        assert await uow.regions.list_all() == [w.region]
        assert await uow.hosts.get(w.host.id) == w.host
        assert await uow.hosts.list_by_region(w.region.id) == [w.host]
        assert await uow.host_disks.list_by_host(w.host.id) == [w.disk]
        assert await uow.images.get(w.image.id) == w.image
        assert await uow.cost_plans.get(w.plan.id) == w.plan
        assert await uow.templates.list_all() == [w.template]
        assert await uow.users.get(w.user.id) == w.user
        assert await uow.ssh_keys.list_by_user(w.user.id) == [w.ssh_key]
        assert await uow.line_items.get(w.line_item.id) == w.line_item
        assert await uow.vms.get(w.vm.id) == w.vm


async def test_user_round_trip_and_get_or_create_is_idempotent(
    uow_factory: UnitOfWorkFactory,
) -> None:
    full = User(
        id=0,
        pubkey=b"\x07" * 32,
        created=at(3),
        email="me@example.com",
        email_verified=True,
        email_verify_token="tok",
        contact_nip17=False,
        contact_email=True,
        country_code="IRL",
        billing_name="Me",
        billing_address_1="1 Road",
        billing_address_2="Flat 2",
        billing_city="Dublin",
        billing_state="D",
        billing_postcode="D01",
        billing_tax_id="IE123",
        nwc_connection_string="nostr+walletconnect://x",
        email_hash=b"\xaa" * 32,
    )
    async with uow_factory() as uow:
        user = await uow.users.add(full)
        assert user.id > 0
        assert await uow.users.get_or_create_by_pubkey(full.pubkey, at(9)) == user
        await uow.users.update(User(**{**_fields(user), "email": "new@example.com"}))
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.users.get_by_pubkey(full.pubkey)
        assert stored == User(**{**_fields(user), "email": "new@example.com"})
        fresh = await uow.users.get_or_create_by_pubkey(b"\x08" * 32, at(4))
        assert fresh.id not in (0, user.id) and fresh.created == at(4)
        assert fresh.contact_nip17 and not fresh.contact_email and fresh.email == ""


async def test_ssh_key_delete(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        await uow.vms.update(w.vm)  # no-op update keeps the row
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ssh_keys.get(w.ssh_key.id) == w.ssh_key
        assert not await uow.ssh_keys.delete(w.ssh_key.id + 1000)


async def test_the_owner_of_a_key_is_locked_with_the_count_of_their_keys(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        other = await uow.users.get_or_create_by_pubkey(b"\x09" * 32, at(2))
        await uow.commit()
    key = SshKey(id=0, name="desk", user_id=0, created=at(3), key_data="ssh-ed25519 AAAA desk")
    async with uow_factory() as uow:
        assert await uow.ssh_keys.lock_owner(b"\x0a" * 32) is None
        assert await uow.ssh_keys.lock_owner(other.pubkey) == (other.id, 0)
        added = await uow.ssh_keys.add(attrs.evolve(key, user_id=other.id))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ssh_keys.lock_owner(w.user.pubkey) == (w.user.id, 1)
    async with uow_factory() as uow:
        assert await uow.ssh_keys.list_by_user(other.id) == [added]
        assert len(await uow.ssh_keys.list_by_user(other.id)) == 1
        assert len(await uow.ssh_keys.list_by_user(w.user.id)) == 1
        assert await uow.ssh_keys.list_by_user(w.user.id) == [w.ssh_key]  # nothing else stored


async def test_catalogue_records_round_trip(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        pricing = await uow.custom_pricing.add(
            CustomPricing(
                id=0,
                name="custom",
                enabled=True,
                created=at(1),
                expires=at(30),
                region_id=w.region.id,
                currency="EUR",
                cpu_cost=150,
                memory_cost=50,
                ip4_cost=200,
                ip6_cost=0,
                min_cpu=2,
                max_cpu=16,
                min_memory=2 * GIB,
                max_memory=32 * GIB,
                cpu_mfg=CpuMfg.AMD,
                cpu_arch=CpuArch.X86_64,
                cpu_features=("AVX2", "AES"),
                limits=LIMITS,
            )
        )
        other = await uow.custom_pricing.add(CustomPricing(**{**_fields(pricing), "id": 0}))
        disk = await uow.custom_pricing.add_disk(
            CustomPricingDisk(
                id=0,
                pricing_id=pricing.id,
                kind=DiskType.HDD,
                interface=DiskInterface.SATA,
                cost=2,
                min_disk_size=10 * GIB,
                max_disk_size=100 * GIB,
            )
        )
        custom = await uow.custom_templates.add(
            CustomTemplate(
                id=0,
                cpu=4,
                memory=8 * GIB,
                disk_size=80 * GIB,
                disk_type=DiskType.HDD,
                disk_interface=DiskInterface.SATA,
                pricing_id=pricing.id,
                cpu_mfg=CpuMfg.INTEL,
                cpu_arch=CpuArch.ARM64,
                cpu_features=("VMX",),
                limits=LIMITS,
            )
        )
        ip_range = await uow.ip_ranges.add(
            IpRange(
                id=0,
                cidr="10.0.0.0/24",
                enabled=True,
                region_id=w.region.id,
                gateway="10.0.0.1",
                reverse_zone_id="zone",
                allocation_mode=IpRangeAllocationMode.SEQUENTIAL,
                use_full_range=True,
            )
        )
        assignment = await uow.ip_assignments.add(
            IpAssignment(
                id=0,
                vm_id=w.vm.id,
                ip_range_id=ip_range.id,
                ip="10.0.0.5",
                arp_ref="a",
                dns_reverse="r.example",
                dns_reverse_ref="rr",
                dns_forward="f.example",
                dns_forward_ref="fr",
            )
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.custom_pricing.get(pricing.id) == pricing
        assert await uow.custom_pricing.list_by_region(w.region.id) == [pricing, other]
        assert await uow.custom_pricing.list_disks(pricing.id) == [disk]
        assert await uow.custom_templates.get(custom.id) == custom
        assert await uow.custom_templates.get_many([custom.id, custom.id, 999_999]) == {
            custom.id: custom
        }
        assert await uow.custom_templates.get_many([]) == {}
        assert await uow.ip_ranges.list_by_region(w.region.id) == [w.ip_range, ip_range]
        assert await uow.ip_assignments.list_by_vm(w.vm.id) == [assignment]
        await uow.ip_assignments.delete(assignment.id)
        assert await uow.ip_assignments.list_by_vm(w.vm.id) == []
        gone = await uow.ip_assignments.get(assignment.id)
        assert gone is not None and gone.deleted


async def test_vm_history_round_trips_json_and_pages_newest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        entries = [
            await uow.vm_history.add(
                VmHistory(
                    id=0,
                    vm_id=w.vm.id,
                    action_type=VmHistoryActionType.RENEWED,
                    timestamp=at(day),
                    initiated_by_user=w.user.id,
                    previous_state={"expires": None},
                    new_state={"expires": "2026-04-01", "list": [1, 2]},
                    metadata={"payment": "ab", "ok": True},
                    description=f"day {day}",
                )
            )
            for day in (3, 5, 4)
        ]
        await uow.commit()
    async with uow_factory() as uow:
        page = await uow.vm_history.list_by_vm(w.vm.id, limit=2, offset=0)
        assert page.total == 3
        assert page.items == [entries[1], entries[2]]
        rest = await uow.vm_history.list_by_vm(w.vm.id, limit=2, offset=2)
        assert rest.items == [entries[0]]


async def test_ip_space_and_payment_method_records_round_trip(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        space = await uow.ip_spaces.add(
            AvailableIpSpace(
                id=0,
                company_id=w.company.id,
                cidr="192.0.2.0/24",
                min_prefix_size=28,
                max_prefix_size=24,
                registry=InternetRegistry.RIPE,
                created=at(1),
                updated=at(2),
                external_id="ripe-1",
                is_available=False,
                is_reserved=True,
                metadata={"note": "x"},
            )
        )
        prices = [
            await uow.ip_space_pricing.add(
                IpSpacePricing(
                    id=0,
                    available_ip_space_id=space.id,
                    prefix_size=size,
                    price_per_month=1000 * size,
                    created=at(1),
                    updated=at(1),
                    currency="EUR",
                    setup_fee=5,
                )
            )
            for size in (28, 24)
        ]
        sold = await uow.ip_range_subscriptions.add(
            IpRangeSubscription(
                id=0,
                subscription_line_item_id=w.line_item.id,
                available_ip_space_id=space.id,
                created=at(2),
                cidr="192.0.2.0/28",
                started_at=at(2),
                metadata={"a": 1},
            )
        )
        config = await uow.payment_methods.add(
            PaymentMethodConfig(
                id=0,
                company_id=w.company.id,
                payment_method=PaymentMethod.REVOLUT,
                name="Revolut",
                enabled=True,
                provider_type="revolut",
                config={"type": "revolut", "token": "t"},
                created=at(1),
                modified=at(2),
                processing_fee_rate=Decimal("1.5"),
                processing_fee_base=20,
                processing_fee_currency="EUR",
                supported_currencies=("EUR", "USD"),
            )
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.ip_spaces.get(space.id) == space
        assert await uow.ip_space_pricing.list_by_space(space.id) == [prices[1], prices[0]]
        assert await uow.ip_range_subscriptions.list_by_line_item(w.line_item.id) == [sold]
        assert await uow.payment_methods.get(config.id) == config


async def test_legacy_vm_payments_round_trip_oldest_first(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        rows = [
            await uow.legacy_payments.add(
                LegacyVmPayment(
                    id=bytes([day]) * 32,
                    vm_id=w.vm.id,
                    created=at(day),
                    expires=at(day + 1),
                    amount=1000,
                    currency="BTC",
                    payment_method=PaymentMethod.LIGHTNING,
                    payment_type=LegacyPaymentType.UPGRADE,
                    external_data="lnbc",
                    time_value=0,
                    is_paid=True,
                    rate=Decimal("92000"),
                    tax=10,
                    processing_fee=1,
                    external_id="ext",
                    upgrade_params='{"new_cpu":4}',
                    paid_at=at(day),
                )
            )
            for day in (5, 2)
        ]
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.legacy_payments.list_by_vm(w.vm.id) == [rows[1], rows[0]]


async def test_roles_grant_permissions_until_the_assignment_expires(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        role = await uow.roles.add_role(
            AdminRole(id=0, name="payments", created_at=at(1), updated_at=at(1))
        )
        for action in (AdminAction.VIEW, AdminAction.UPDATE):
            await uow.roles.add_permission(
                RolePermission(
                    id=0,
                    role_id=role.id,
                    resource=AdminResource.PAYMENTS,
                    action=action,
                    created_at=at(1),
                )
            )
        assert not await uow.roles.is_admin(w.user.id, at(2))
        assign = RoleAssignment(
            id=0,
            user_id=w.user.id,
            role_id=role.id,
            assigned_at=at(1),
            expires_at=at(5),
        )
        await uow.roles.assign(assign)
        await uow.commit()
    async with uow_factory() as uow:
        expected = {
            (AdminResource.PAYMENTS, AdminAction.VIEW),
            (AdminResource.PAYMENTS, AdminAction.UPDATE),
        }
        assert await uow.roles.permissions_of(w.user.id, at(4)) == expected
        assert await uow.roles.permissions_of(w.user.id, at(6)) == frozenset()
        again = await uow.roles.assign(RoleAssignment(**{**_fields(assign), "expires_at": None}))
        assert again.expires_at is None
        assert await uow.roles.is_admin(w.user.id, at(20))
        assert await uow.roles.revoke(w.user.id, role.id)
        assert not await uow.roles.is_admin(w.user.id, at(20))


async def test_encrypted_columns_are_stored_as_enc_and_read_back_plain(backend: Backend) -> None:
    if backend.engine is None:
        pytest.skip("SQL only: memory keeps plain values")
    async with backend.factory() as uow:
        w = await seed_world(uow)
        user = await uow.users.add(
            User(
                id=0,
                pubkey=b"\x09" * 32,
                created=at(1),
                email="e@x",
                nwc_connection_string="nostr+walletconnect://s",
            )
        )
        payment = await uow.payments.add(new_payment(w.subscription, external_data="lnbc1secret"))
        await uow.commit()
    async with backend.engine.connect() as conn:
        raw = [
            *(
                await conn.execute(
                    select(tables.users.c.email, tables.users.c.nwc_connection_string).where(
                        tables.users.c.id == user.id
                    )
                )
            ).one(),
            (await conn.execute(select(tables.user_ssh_key.c.key_data))).scalar_one(),
            *(
                await conn.execute(select(tables.vm_host.c.api_token, tables.vm_host.c.ssh_key))
            ).one(),
            (await conn.execute(select(tables.subscription_payment.c.external_data))).scalar_one(),
        ]
    assert all(isinstance(v, str) and v.startswith("ENC:") for v in raw), raw
    async with backend.factory() as uow:
        assert await uow.users.get(user.id) == user
        assert await uow.ssh_keys.get(w.ssh_key.id) == w.ssh_key
        assert await uow.hosts.get(w.host.id) == w.host
        assert await uow.payments.get(payment.id) == payment


async def test_plain_text_in_an_encrypted_column_reads_as_is(backend: Backend) -> None:
    if backend.engine is None:
        pytest.skip("SQL only")
    async with backend.factory() as uow:
        w = await seed_world(uow)
        await uow.commit()
    async with backend.engine.begin() as conn:
        await conn.execute(
            insert(tables.user_ssh_key).values(
                name="old", user_id=w.user.id, created=at(1), key_data="ssh-rsa PLAIN"
            )
        )
    async with backend.factory() as uow:
        keys = await uow.ssh_keys.list_by_user(w.user.id)
        assert [k.key_data for k in keys] == ["ssh-ed25519 AAA", "ssh-rsa PLAIN"]


async def test_plain_text_from_before_encryption_is_sealed_on_its_next_write(
    backend: Backend,
) -> None:
    """D28: an adopted database may hold plaintext secrets; they read as they are and the
    row's next write stores them as `ENC:`."""
    if backend.engine is None:
        pytest.skip("SQL only")
    nwc = "nostr+walletconnect://" + "ab" * 32 + "?relay=wss://r.example&secret=" + "cd" * 32
    async with backend.engine.begin() as conn:
        result = await conn.execute(
            insert(tables.users).values(
                pubkey=b"\x07" * 32,
                created=at(1),
                email="old@example.com",
                contact_nip17=True,
                contact_email=False,
                nwc_connection_string=nwc,
            )
        )
        assert result.inserted_primary_key is not None
        user_id = result.inserted_primary_key[0]
    async with backend.factory() as uow:
        user = await uow.users.get(user_id)
        assert user is not None and user.nwc_connection_string == nwc
        await uow.users.update(attrs.evolve(user, billing_name="Old"))
        await uow.commit()
    async with backend.engine.connect() as conn:
        email, stored = (
            await conn.execute(
                select(tables.users.c.email, tables.users.c.nwc_connection_string).where(
                    tables.users.c.id == user_id
                )
            )
        ).one()
    assert email.startswith("ENC:") and stored.startswith("ENC:") and nwc not in stored
    async with backend.factory() as uow:
        again = await uow.users.get(user_id)
        assert again is not None and again.nwc_connection_string == nwc


async def test_a_value_that_looks_sealed_is_still_encrypted(backend: Backend) -> None:
    """User input such as an e-mail of `ENC:xyz` is sealed like any other value; stored as is,
    it would fail to decrypt and break every read of that row (the admin user list too)."""
    async with backend.factory() as uow:
        user = await uow.users.add(
            User(
                id=0,
                pubkey=b"\x08" * 32,
                created=at(1),
                email="ENC:AAAA",
                nwc_connection_string="ENC:!!",
            )
        )
        await uow.commit()
    async with backend.factory() as uow:
        assert await uow.users.get(user.id) == user
    if backend.engine is not None:
        async with backend.engine.connect() as conn:
            stored = (
                await conn.execute(select(tables.users.c.email).where(tables.users.c.id == user.id))
            ).scalar_one()
        assert stored.startswith("ENC:") and stored != "ENC:AAAA"


async def test_payment_round_trip_keeps_every_field(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        payment = await uow.payments.add(
            new_payment(
                w.subscription,
                payment_method=PaymentMethod.STRIPE,
                payment_type=SubscriptionPaymentType.UPGRADE,
                rate=Decimal("95123.4"),
                tax=23,
                processing_fee=7,
                external_id="pi_1",
                is_paid=True,
                time_value=0,
                metadata={"new_cpu": 4, "new_memory": 8 * GIB},
                paid_at=at(3),
            )
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.get(payment.id) == payment
        assert await uow.payments.get_by_external_id("pi_1") == payment
        assert await uow.payments.get(b"\x00" * 32) is None


def _fields(record: Any) -> dict[str, Any]:
    import attrs

    return attrs.asdict(record, recurse=False)


async def test_concurrent_first_logins_create_one_user(uow_factory: UnitOfWorkFactory) -> None:
    async def login() -> User:
        async with uow_factory() as uow:
            user = await uow.users.get_or_create_by_pubkey(b"\x0c" * 32, at(2))
            await uow.commit()
            return user

    users = await asyncio.gather(*(login() for _ in range(20)))
    assert len({u.id for u in users}) == 1


async def test_times_are_stored_in_whole_seconds_on_every_backend(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        payment = await uow.payments.add(
            new_payment(w.subscription, created=at(2).replace(microsecond=987654))
        )
        assert await uow.payments.mark_paid(payment.id, at(3).replace(microsecond=5))
        await uow.commit()
    async with uow_factory() as uow:
        stored = await uow.payments.get(payment.id)
    assert stored is not None and (stored.created, stored.paid_at) == (at(2), at(3))


async def test_start_up_seals_every_plain_text_secret_once_and_leaves_payments_alone(
    backend: Backend,
) -> None:
    """D28: `lnvps serve` seals plain-text secrets left from before (an adopted database),
    so a spending credential is not kept in clear until its row happens to be written."""
    if backend.engine is None:
        pytest.skip("SQL only: memory keeps plain values")
    assert isinstance(backend.factory, SqlUnitOfWorkFactory)
    box = backend.factory.mappers.user.box
    nwc = "nostr+walletconnect://" + "ab" * 32 + "?relay=wss://r.example&secret=" + "cd" * 32
    async with backend.factory() as uow:
        w = await seed_world(uow)
        payment = await uow.payments.add(new_payment(w.subscription))
        await uow.commit()
    async with backend.engine.begin() as conn:
        result = await conn.execute(
            insert(tables.users).values(
                pubkey=b"\x06" * 32,
                created=at(1),
                email="old@example.com",
                contact_nip17=True,
                contact_email=False,
                nwc_connection_string=nwc,
            )
        )
        user_id = result.inserted_primary_key[0] if result.inserted_primary_key else 0
        await conn.execute(
            insert(tables.user_ssh_key).values(
                name="old", user_id=user_id, created=at(1), key_data="ssh-rsa PLAIN"
            )
        )
        await conn.execute(tables.vm_host.update().values(api_token="plain-token"))
        await conn.execute(tables.subscription_payment.update().values(external_data="lnbc1x"))
    assert await seal_plaintext_secrets(backend.engine, box, batch=1) == 4
    assert await seal_plaintext_secrets(backend.engine, box) == 0  # nothing left in clear
    async with backend.engine.connect() as conn:
        users = (
            await conn.execute(select(tables.users.c.email, tables.users.c.nwc_connection_string))
        ).all()
        keys = (await conn.execute(select(tables.user_ssh_key.c.key_data))).scalars().all()
        tokens = (await conn.execute(select(tables.vm_host.c.api_token))).scalars().all()
        invoice = await conn.execute(select(tables.subscription_payment.c.external_data))
        raw_invoice = invoice.scalar_one()
    sealed = [v for row in users for v in row if v is not None] + [*keys, *tokens]
    assert sealed and all(v.startswith("ENC:") for v in sealed), sealed
    assert raw_invoice == "lnbc1x"  # payments stay byte for byte as adopted (D18)
    async with backend.factory() as uow:
        user = await uow.users.get(user_id)
        assert user is not None and user.nwc_connection_string == nwc
        assert user.email == "old@example.com"
        assert "ssh-rsa PLAIN" in [k.key_data for k in await uow.ssh_keys.list_by_user(user_id)]
        host = await uow.hosts.get(w.host.id)
        assert host is not None and host.api_token == "plain-token"
        assert (await uow.payments.get(payment.id)) is not None
