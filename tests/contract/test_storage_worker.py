"""Worker leases (host calls outside row locks) and cursors (settle index) on every storage."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import at

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

LEASE = timedelta(minutes=15)


async def test_a_lease_has_one_holder_until_released_or_stale(
    uow_factory: UnitOfWorkFactory,
) -> None:
    now = at(5)
    async with uow_factory() as uow:
        token = await uow.worker_leases.take("spawn:1", now, now - LEASE)
        assert token is not None
        assert await uow.worker_leases.take("spawn:1", now, now - LEASE) is None
        assert await uow.worker_leases.take("spawn:2", now, now - LEASE)  # another name
        await uow.commit()
    later = now + timedelta(minutes=5)
    async with uow_factory() as uow:  # a live lease is not taken over
        assert await uow.worker_leases.take("spawn:1", later, later - LEASE) is None
    stale = now + LEASE + timedelta(seconds=1)
    async with uow_factory() as uow:  # a stale one is: its holder died mid-step
        second = await uow.worker_leases.take("spawn:1", stale, stale - LEASE)
        assert second is not None and second != token
        assert not await uow.worker_leases.release("spawn:1", token)  # the old holder lost it
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.worker_leases.release("spawn:1", second)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.worker_leases.take("spawn:1", stale, stale - LEASE)
        # rolled back: the lease stays free


async def test_a_renewed_lease_stays_live_until_its_holder_loses_it(
    uow_factory: UnitOfWorkFactory,
) -> None:
    now = at(5)
    async with uow_factory() as uow:
        token = await uow.worker_leases.take("spawn:3", now, now - LEASE)
        assert token is not None
        assert await uow.worker_leases.renew("spawn:3", token, now)  # same second: still held
        assert not await uow.worker_leases.renew("spawn:3", "not-the-token", now)
        assert not await uow.worker_leases.renew("spawn:4", token, now)  # never taken
        await uow.commit()
    renewed = now + LEASE - timedelta(minutes=1)
    async with uow_factory() as uow:
        assert await uow.worker_leases.renew("spawn:3", token, renewed)
        await uow.commit()
    later = now + LEASE + timedelta(minutes=5)  # stale by its take, live by its renewal
    async with uow_factory() as uow:
        assert await uow.worker_leases.take("spawn:3", later, later - LEASE) is None
    stale = renewed + LEASE + timedelta(seconds=1)
    async with uow_factory() as uow:  # not renewed since: taken over
        second = await uow.worker_leases.take("spawn:3", stale, stale - LEASE)
        assert second is not None
        await uow.commit()
    async with uow_factory() as uow:  # the old holder finds it lost, and changes nothing
        assert not await uow.worker_leases.renew("spawn:3", token, stale)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.worker_leases.release("spawn:3", second)
        assert not await uow.worker_leases.renew("spawn:3", second, stale)  # released
        await uow.commit()


async def test_a_rolled_back_lease_is_free_again(uow_factory: UnitOfWorkFactory) -> None:
    now = at(5)
    async with uow_factory() as uow:
        assert await uow.worker_leases.take("x", now, now - LEASE)
    async with uow_factory() as uow:
        assert await uow.worker_leases.take("x", now, now - LEASE)


async def test_concurrent_takers_get_one_lease(uow_factory: UnitOfWorkFactory) -> None:
    now = at(5)

    async def take() -> bool:
        async with uow_factory() as uow:
            token = await uow.worker_leases.take("delete:7", now, now - LEASE)
            await asyncio.sleep(0)
            await uow.commit()
        return token is not None

    results = await asyncio.gather(*(take() for _ in range(8)))
    assert results.count(True) == 1


async def test_a_cursor_only_moves_forward(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        assert await uow.worker_cursors.get("lnd") is None
        await uow.worker_cursors.advance("lnd", 7)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.worker_cursors.get("lnd") == 7
        await uow.worker_cursors.advance("lnd", 5)  # never backwards
        assert await uow.worker_cursors.get("lnd") == 7
        await uow.worker_cursors.advance("lnd", 2**40)
        assert await uow.worker_cursors.get("other") is None
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.worker_cursors.get("lnd") == 2**40
