"""An encrypted column the key cannot open (sealed with a lost or rotated key, or corrupt) reads
as `Unreadable` and spoils nothing else: its row loads, the lists it is in load, a write of the
row keeps it byte for byte, a new value replaces it; the operator is told once per cell. On
SQLite and MariaDB (the memory store keeps no ciphertext)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import attrs
import pytest
from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mysql import tables
from adapters.mysql.uow import SqlUnitOfWorkFactory
from adapters.notify.smtp import SmtpNotifier
from app.account.profile import email_hash
from app.worker.jobs import QueuedNotifier, build_handlers
from domain.model import SshKey
from domain.unreadable import Unreadable
from ports.storage import UnitOfWorkFactory
from ports.storage.reads import VmFilter
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import seal_wallet_with_a_lost_key, with_renewer
from tests.contract.storage_backends import (
    LOST_KEY,
    Backend,
    Database,
    at,
    new_payment,
    stored_world,
)
from tests.fake_smtp import parsed, smtp_server
from tests.unit.worker.world import World as WorkerWorld

database = storage_backends.database
backend = storage_backends.backend
world = lifecycle_world.world

WALLET = "nostr+walletconnect://wallet?secret=5e5e"


@pytest.fixture
async def sql(backend: Backend) -> AsyncIterator[tuple[UnitOfWorkFactory, AsyncEngine]]:
    if backend.engine is None:
        pytest.skip("the memory store keeps no ciphertext")
    yield backend.factory, backend.engine


async def _put(engine: AsyncEngine, table: Table, row_id: Any, **values: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(update(table).where(table.c.id == row_id).values(**values))


async def _raw(engine: AsyncEngine, table: Table, row_id: Any, column: str) -> Any:
    async with engine.connect() as conn:
        query = select(table.c[column]).where(table.c.id == row_id)
        return (await conn.execute(query)).scalar_one()


async def test_a_wallet_string_sealed_with_another_key_leaves_the_user_readable(
    sql: tuple[UnitOfWorkFactory, AsyncEngine], caplog: pytest.LogCaptureFixture
) -> None:
    factory, engine = sql
    world = await stored_world(factory)
    async with factory() as uow:
        user = world.user
        await uow.users.update(attrs.evolve(user, email="a@example.com", email_verified=True))
        await uow.commit()
    sealed = LOST_KEY.encrypt(WALLET)
    await _put(engine, tables.users, user.id, nwc_connection_string=sealed)

    with caplog.at_level(logging.ERROR, logger="lnvps.storage.secrets"):
        async with factory() as uow:
            by_id = await uow.users.get(user.id)
            by_key = await uow.users.get_by_pubkey(user.pubkey)
            looked_up = await uow.lookups.users([user.id])
            page = await uow.users.list_page(10, 0)

    assert by_id is not None and by_id == by_key == looked_up[user.id] == page.items[0]
    assert by_id.email == "a@example.com" and by_id.email_verified
    assert isinstance(by_id.nwc_connection_string, Unreadable)
    assert not by_id.nwc_connection_string  # no usable wallet
    told = [r.getMessage() for r in caplog.records if "cannot be decrypted" in r.getMessage()]
    assert told == [told[0]] and "users.nwc_connection_string" in told[0]
    assert sealed not in caplog.text and WALLET not in caplog.text

    async with factory() as uow:  # another field changed: the sealed value stays as it was
        await uow.users.update(attrs.evolve(by_id, billing_name="Alice"))
        await uow.commit()
    assert await _raw(engine, tables.users, user.id, "nwc_connection_string") == sealed

    async with factory() as uow:  # a new value replaces it, sealed with the current key
        await uow.users.update(attrs.evolve(by_id, nwc_connection_string=WALLET))
        await uow.commit()
        again = await uow.users.get(user.id)
    assert again is not None and again.nwc_connection_string == WALLET
    assert again.billing_name is None  # the write above was the stale record's


async def test_an_unreadable_address_is_no_address_and_keeps_its_hash(
    sql: tuple[UnitOfWorkFactory, AsyncEngine],
) -> None:
    factory, engine = sql
    world = await stored_world(factory)
    digest = email_hash("a@example.com")
    async with factory() as uow:
        await uow.users.update(
            attrs.evolve(world.user, email="a@example.com", email_hash=digest, contact_email=True)
        )
        await uow.commit()
    sealed = LOST_KEY.encrypt("a@example.com")
    await _put(engine, tables.users, world.user.id, email=sealed)

    async with factory() as uow:
        user = await uow.users.get_by_email_hash(digest)
        assert user is not None and isinstance(user.email, Unreadable) and not user.email
        assert user.contact_email and user.email_hash == digest
        await uow.users.update(attrs.evolve(user, contact_nip17=False))
        await uow.commit()
    assert await _raw(engine, tables.users, world.user.id, "email") == sealed


async def test_one_unreadable_row_does_not_break_the_lists_it_is_in(
    sql: tuple[UnitOfWorkFactory, AsyncEngine],
) -> None:
    """A second SSH key, the host's token and SSH key, a payment's invoice: each list loads
    with every row, the unreadable value as `Unreadable`, the others as they were."""
    factory, engine = sql
    world = await stored_world(factory)
    async with factory() as uow:
        bad_key = await uow.ssh_keys.add(
            SshKey(id=0, name="old", user_id=world.user.id, created=at(2), key_data="ssh-rsa B")
        )
        good = await uow.payments.add(new_payment(world.subscription, created=at(3)))
        bad = await uow.payments.add(new_payment(world.subscription, created=at(2)))
        await uow.commit()
    corrupt = "ENC:" + "A" * 60  # valid base64, no valid tag under any key
    await _put(engine, tables.user_ssh_key, bad_key.id, key_data=corrupt)
    await _put(
        engine, tables.user_ssh_key, world.ssh_key.id, key_data=LOST_KEY.encrypt("ssh-ed25519")
    )
    await _put(engine, tables.vm_host, world.host.id, api_token=corrupt, ssh_key=corrupt)
    await _put(engine, tables.subscription_payment, bad.id, external_data=corrupt)

    async with factory() as uow:
        keys = await uow.ssh_keys.list_by_user(world.user.id)
        hosts = await uow.hosts.list_all()
        payments = await uow.payments.list_by_subscription(world.subscription.id, 10)
        [status] = await uow.vm_reads.vm_statuses(VmFilter(user_id=world.user.id))
        [records] = await uow.vm_reads.vm_records(VmFilter(user_id=world.user.id))

    assert [k.name for k in keys] == ["k", "old"]
    assert all(isinstance(k.key_data, Unreadable) for k in keys)
    [host] = hosts
    assert host.name == "h1" and host.ip == world.host.ip
    assert isinstance(host.api_token, Unreadable) and isinstance(host.ssh_key, Unreadable)
    assert [p.id for p in payments.items] == [good.id, bad.id]
    assert payments.items[0].external_data == "lnbc1..."
    assert isinstance(payments.items[1].external_data, Unreadable)
    assert status.id == world.vm.id and status.ssh_key is not None
    assert status.ssh_key.name == "k"
    assert records.vm.id == world.vm.id and records.ssh_key is not None

    async with factory() as uow:  # an admin renames the host: its token stays as stored
        await uow.hosts.update(attrs.evolve(host, name="h1b"))
        await uow.commit()
    assert await _raw(engine, tables.vm_host, world.host.id, "api_token") == corrupt


async def test_the_auto_renewer_mails_the_manual_notice_once_for_an_unreadable_wallet(
    world: WorkerWorld, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """As in production: notices are queued jobs the SMTP notifier delivers, reading the
    user's row for the address. The wallet string sealed with a lost key is no wallet: the
    user is mailed "Expiring Soon, renew manually" once for the period, the wallet is never
    asked, the operator is told on every run."""
    if database.url is None:
        pytest.skip("the memory store keeps no ciphertext")
    factory = world.shop.factory
    assert isinstance(factory, SqlUnitOfWorkFactory)
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    async with factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, auto_renewal_enabled=True))
        user = await uow.users.get(sub.user_id)
        assert user is not None
        await uow.users.update(
            attrs.evolve(user, email="a@example.com", email_verified=True, contact_email=True)
        )
        await uow.commit()
    await seal_wallet_with_a_lost_key(world, sub.user_id, WALLET)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    async with smtp_server() as smtp:
        mailer = SmtpNotifier(factory, server="127.0.0.1", port=smtp.port, timeout_s=5)
        world.deps = attrs.evolve(world.deps, notifier=QueuedNotifier(world.queue))
        world.handlers = build_handlers(world.deps, mailer)
        with caplog.at_level(logging.ERROR, logger="lnvps.autorenew"):
            for _ in range(3):
                await world.lifecycle()
                await world.run_jobs()
                world.advance(timedelta(seconds=30))

    subjects = [(to, parsed(body)["Subject"]) for to, body in smtp.mails]
    assert subjects == [(["a@example.com"], f"[VM{vm.id}] Expiring Soon")]
    assert "renew it manually" in parsed(smtp.mails[0][1]).get_content()
    assert wallet.asked == []
    told = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(told) == 3
