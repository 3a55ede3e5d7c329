"""Two concurrent writes of one unique key (images, IP space CIDR, pricing prefix): one wins,
the other is DuplicateKey (409) with nothing of it stored, on every backend; SQL storage raised
its IntegrityError (a 500) when both use cases had checked before either inserted."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import attrs
import pytest

from domain.enums import InternetRegistry, OsDistribution
from domain.errors import DuplicateKey
from domain.model import AvailableIpSpace, Company, IpSpacePricing, OsImage
from ports.storage import UnitOfWork
from tests.contract.storage_backends import Backend, at, backend, database

__all__ = ["backend", "database"]

Insert = Callable[[UnitOfWork], Awaitable[Any]]


async def race(backend: Backend, insert: Insert) -> list[BaseException | None]:
    """Both units of work open and insert before either commits (SQL backends; memory runs
    units of work one at a time, so there the second simply comes after the first)."""
    both_open = asyncio.Barrier(2) if backend.kind != "memory" else None

    async def writer() -> None:
        async with backend.factory() as uow:
            if both_open is not None:
                await both_open.wait()
            await insert(uow)
            await uow.commit()

    results = await asyncio.gather(writer(), writer(), return_exceptions=True)
    return [r if isinstance(r, BaseException) else None for r in results]


def one_won(results: list[BaseException | None]) -> DuplicateKey:
    assert results.count(None) == 1, results
    [lost] = [r for r in results if r is not None]
    assert isinstance(lost, DuplicateKey), repr(lost)
    return lost


def image(version: str = "24.04") -> OsImage:
    return OsImage(
        id=0,
        distribution=OsDistribution.UBUNTU,
        flavour="server",
        version=version,
        enabled=True,
        release_date=at(1),
        url="https://x/img",
    )


async def test_concurrent_image_creates(backend: Backend) -> None:
    lost = one_won(await race(backend, lambda uow: uow.images.add(image())))
    assert "exists" in str(lost)
    async with backend.factory() as uow:
        assert len(await uow.images.list_all()) == 1


async def test_updating_an_image_onto_another_key_is_duplicate(backend: Backend) -> None:
    async with backend.factory() as uow:
        await uow.images.add(image("24.04"))
        other = await uow.images.add(image("22.04"))
        await uow.commit()
    async with backend.factory() as uow:
        with pytest.raises(DuplicateKey):
            await uow.images.update(attrs.evolve(cast(Any, other), version="24.04"))
    async with backend.factory() as uow:
        assert sorted(i.version for i in await uow.images.list_all()) == ["22.04", "24.04"]


async def _company(backend: Backend) -> int:
    async with backend.factory() as uow:
        company = await uow.companies.add(Company(id=0, created=at(1), name="ACME", email="a@b"))
        await uow.commit()
    company_id: int = company.id
    return company_id


def space(company_id: int) -> AvailableIpSpace:
    return AvailableIpSpace(
        id=0,
        company_id=company_id,
        cidr="192.0.2.0/24",
        min_prefix_size=24,
        max_prefix_size=28,
        registry=InternetRegistry.RIPE,
        created=at(1),
        updated=at(1),
    )


async def test_concurrent_ip_space_creates(backend: Backend) -> None:
    company_id = await _company(backend)
    one_won(await race(backend, lambda uow: uow.ip_spaces.add(space(company_id))))
    async with backend.factory() as uow:
        assert len(await uow.ip_spaces.list_all()) == 1


async def test_concurrent_pricing_creates(backend: Backend) -> None:
    company_id = await _company(backend)
    async with backend.factory() as uow:
        added = await uow.ip_spaces.add(space(company_id))
        await uow.commit()

    def price(uow: UnitOfWork) -> Awaitable[Any]:
        return uow.ip_space_pricing.add(
            IpSpacePricing(
                id=0,
                available_ip_space_id=added.id,
                prefix_size=28,
                price_per_month=500,
                created=at(1),
                updated=at(1),
            )
        )

    one_won(await race(backend, price))
    async with backend.factory() as uow:
        assert len(await uow.ip_space_pricing.list_by_space(added.id)) == 1
