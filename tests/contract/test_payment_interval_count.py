"""The interval count column of a payment: written with its metadata, read by the narrowed
reuse reads (the lookup, the owned-VM read's first payment, the rival count), and a row
without it (written behind the adapter's back) still judged by its metadata text."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from adapters.mysql import tables
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import SubscriptionPayment
from domain.subscription import INTERVALS_KEY, metadata_interval_count
from ports.storage import (
    MetadataKey,
    NewestPending,
    PendingCount,
    PendingKind,
    UnitOfWorkFactory,
)
from tests.contract import storage_backends
from tests.contract.storage_backends import (
    Backend,
    World,
    at,
    new_payment,
    stored_world,
)
from tests.contract.test_storage_billing import _METADATA_TEXTS

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

NOW = at(5)
_pay = tables.subscription_payment.c


async def _found(
    uow_factory: UnitOfWorkFactory, w: World, count: int
) -> tuple[SubscriptionPayment | None, SubscriptionPayment | None, int | None]:
    """What the three narrowed reads find for `count`: the reuse lookup's payment, the
    owned-VM read's first pending payment, and the pricing read's count of rivals."""
    narrow = MetadataKey(INTERVALS_KEY, count)
    kind = PendingKind(w.subscription.id, PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL)

    def wanted(meta: Any) -> bool:
        return metadata_interval_count(meta) == count

    async with uow_factory() as uow:
        found = await uow.payments.newest_pending(kind, NOW, wanted, narrow)
        newest = NewestPending(PaymentMethod.LIGHTNING, NOW, narrow)
        owned = await uow.line_items.priced_of_owned_vm(w.vm.id, w.user.pubkey, newest)
        priced = await uow.line_items.list_priced(
            w.subscription.id, pending=PendingCount(NOW, narrow)
        )
    assert owned is not None and priced is not None
    return found, owned.first_pending, priced.pending


async def _column(backend: Backend, payment: SubscriptionPayment) -> Any:
    assert backend.engine is not None
    async with backend.engine.connect() as conn:
        query = sa.select(_pay.interval_count).where(_pay.id == payment.id)
        return (await conn.execute(query)).scalar_one()


async def test_a_row_without_the_column_is_found_by_its_metadata_text(
    backend: Backend,
) -> None:
    """A payment whose metadata was written by something else (a legacy row, a hand fix)
    has a NULL column: every read still finds it by its text, beside a payment the adapter
    wrote for another count."""
    if backend.engine is None:
        pytest.skip("the memory store has no column")
    w = await stored_world(backend.factory)
    async with backend.factory() as uow:
        legacy = await uow.payments.add(new_payment(w.subscription, created=at(2)))
        five = await uow.payments.add(
            new_payment(w.subscription, created=at(3), metadata={"intervals": 5})
        )
        await uow.commit()
    async with backend.engine.begin() as conn:
        await conn.execute(
            sa.update(tables.subscription_payment)
            .where(_pay.id == legacy.id)
            .values(metadata=sa.type_coerce(sa.literal('{"intervals":3}'), sa.Text))
        )
    assert (await _column(backend, legacy), await _column(backend, five)) == (None, 5)
    legacy = attrs.evolve(legacy, metadata={"intervals": 3})
    assert await _found(backend.factory, w, 3) == (legacy, legacy, 1)
    assert await _found(backend.factory, w, 5) == (five, five, 1)
    assert await _found(backend.factory, w, 4) == (None, None, 0)


async def test_an_updated_payment_is_found_under_its_new_count_only(
    backend: Backend,
) -> None:
    w = await stored_world(backend.factory)
    async with backend.factory() as uow:
        payment = await uow.payments.add(
            new_payment(w.subscription, created=at(2), metadata={"intervals": 2})
        )
        await uow.commit()
    assert await _found(backend.factory, w, 2) == (payment, payment, 1)
    moved = attrs.evolve(payment, metadata={"intervals": 3, "price": {"amount": 1}})
    async with backend.factory() as uow:
        await uow.payments.update(moved)
        await uow.commit()
    assert await _found(backend.factory, w, 3) == (moved, moved, 1)
    found, first, count = await _found(backend.factory, w, 2)
    assert found is None
    if backend.engine is not None:  # narrowed away (memory keeps it: narrowing is optional)
        assert (first, count) == (None, 0)
        assert await _column(backend, payment) == 3
        unknown = attrs.evolve(moved, metadata={"intervals": "3"})
        async with backend.factory() as uow:
            await uow.payments.update(unknown)
            await uow.commit()
        assert await _column(backend, payment) is None


async def test_each_metadata_written_by_the_adapter_is_narrowed_as_python_reads_it(
    backend: Backend,
) -> None:
    """The texts the narrowing must judge as Python does, this time written through the
    adapter (so with the column it derives): the narrowed lookup finds what the unnarrowed
    one finds, and the other two reads keep it."""
    w = await stored_world(backend.factory)
    kind = PendingKind(w.subscription.id, PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL)
    async with backend.factory() as uow:
        payment = await uow.payments.add(new_payment(w.subscription, created=at(2)))
        await uow.commit()
    for text in _METADATA_TEXTS:
        try:
            value = None if text is None else json.loads(text)
        except ValueError:
            value = text
        stored = attrs.evolve(payment, metadata=value)
        try:
            async with backend.factory() as uow:
                await uow.payments.update(stored)
                await uow.commit()
        except sa.exc.DBAPIError:  # MariaDB's JSON column refuses NaN
            continue
        for count in (1, 2, 3, 12, 20):

            def wanted(meta: Any, count: int = count) -> bool:
                return metadata_interval_count(meta) == count

            async with backend.factory() as uow:
                plain = await uow.payments.newest_pending(kind, NOW, wanted)
            found, first, pending = await _found(backend.factory, w, count)
            assert found == plain, (text, count)
            if plain is not None:
                assert (first, pending) == (plain, 1), (text, count)
