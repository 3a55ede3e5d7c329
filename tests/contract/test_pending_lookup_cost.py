"""The renewal's reuse lookup reads a subscription's live unpaid payments only (MariaDB rows
read, counted by the server), however many paid or expired ones its history holds."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import TypeVar

from sqlalchemy import text

from adapters.mysql.uow import SqlUnitOfWork
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import SubscriptionPayment
from domain.subscription import INTERVALS_KEY
from ports.storage import UnitOfWorkFactory
from ports.storage.payments import MetadataKey, NewestPending, PendingCount, PendingKind
from tests.contract import storage_backends
from tests.contract.storage_backends import Backend, World, at, new_payment, seed_world

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

T = TypeVar("T")
HISTORY = 150  # of each: paid, and unpaid but expired


async def _rows_read(uow: SqlUnitOfWork) -> int:
    found = await uow._connection().execute(text("SHOW SESSION STATUS LIKE 'Handler_read%'"))
    return sum(int(value) for name, value in found if name != "Handler_read_key")


async def _history(uow_factory: UnitOfWorkFactory) -> tuple[World, SubscriptionPayment]:
    """A subscription with HISTORY paid and HISTORY expired payments, then one live."""
    async with uow_factory() as uow:
        w = await seed_world(uow)
        sub = w.subscription
        for n in range(HISTORY):
            created = at(1) + timedelta(minutes=n)
            await uow.payments.add(new_payment(sub, created=created, is_paid=True))
            await uow.payments.add(new_payment(sub, created=created, expires=at(3)))
        live = await uow.payments.add(new_payment(sub, created=at(4), expires=at(10)))
        await uow.commit()
    return w, live


@storage_backends.only("mysql")
async def test_the_reuse_lookup_reads_only_live_unpaid_payments(
    backend: Backend, uow_factory: UnitOfWorkFactory
) -> None:
    w, live = await _history(uow_factory)
    sub = w.subscription
    kind = PendingKind(sub.id, PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL)
    async with uow_factory() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        await uow._connection().execute(text("ANALYZE TABLE subscription_payment"))
        before = await _rows_read(uow)
        found = await uow.payments.newest_pending(kind, at(5), lambda meta: True)
        read = await _rows_read(uow) - before
    assert found == live
    assert read <= 5, f"{read} rows read for 1 live payment among {2 * HISTORY + 1}"


@storage_backends.only("mysql")
async def test_the_reads_that_bring_or_count_pending_payments_read_only_live_ones(
    backend: Backend, uow_factory: UnitOfWorkFactory
) -> None:
    """The owned-VM pricing read with the reuse lookup's first payment (and the balance),
    and the pricing read with its count of possible rivals, read only a few rows more than
    without them."""
    w, live = await _history(uow_factory)
    sub = w.subscription
    narrow = MetadataKey(INTERVALS_KEY, 1)
    async with uow_factory() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        await uow._connection().execute(text("ANALYZE TABLE subscription_payment"))
        items = uow.line_items
        key = w.user.pubkey
        newest = NewestPending(PaymentMethod.LIGHTNING, at(5), narrow)
        # the same read when no payment is live any more: what the owned-VM read costs alone
        after_all = NewestPending(PaymentMethod.LIGHTNING, at(20), narrow)
        plain = await _rows_read_by(uow, items.priced_of_owned_vm(w.vm.id, key, after_all))
        found, with_first = await _read_by(
            uow, items.priced_of_owned_vm(w.vm.id, key, newest, credit=True)
        )
        priced = await _rows_read_by(uow, items.list_priced(sub.id))
        counted, with_count = await _read_by(
            uow, items.list_priced(sub.id, pending=PendingCount(at(5), narrow))
        )
    assert found is not None and found.first_pending == live and found.priced.credit == 0
    assert counted is not None and counted.pending == 1
    # a few for the live one (its index range, the joined row by id), none of the 300 others
    # (the balance is looked up by its key); with nothing live the read touches a handful
    # of rows (the pricing's joins), none of the history's
    assert plain <= 8, plain
    assert with_first - plain <= 8, (plain, with_first)
    assert with_count - priced <= 8, (priced, with_count)


async def _read_by(uow: SqlUnitOfWork, call: Awaitable[T]) -> tuple[T, int]:
    before = await _rows_read(uow)
    result = await call
    return result, await _rows_read(uow) - before


async def _rows_read_by(uow: SqlUnitOfWork, call: Awaitable[object]) -> int:
    return (await _read_by(uow, call))[1]


@storage_backends.only("mysql")
async def test_the_narrowed_reads_read_no_row_of_another_interval_count(
    backend: Backend, uow_factory: UnitOfWorkFactory
) -> None:
    """A subscription may hold a live invoice per interval count and method: the reuse
    lookup, the owned-VM read's first payment and the rival count read as many rows with
    one of them as with a hundred of other counts (passed over in the index by count)."""
    async with uow_factory() as uow:
        w = await seed_world(uow)
        sub = w.subscription
        live = await uow.payments.add(
            new_payment(sub, created=at(4), expires=at(10), metadata={INTERVALS_KEY: 3})
        )
        await uow.commit()
    few = await _narrowed_rows_read(uow_factory, w, live)
    async with uow_factory() as uow:
        for n in range(4, 104):
            other = {INTERVALS_KEY: n, "price": {"amount": n}}
            created = at(4, 14) + timedelta(seconds=n)  # newer than the one wanted
            await uow.payments.add(new_payment(sub, created=created, metadata=other))
        await uow.commit()
    many = await _narrowed_rows_read(uow_factory, w, live)
    assert all(m <= f + 1 for f, m in zip(few, many, strict=True)), (few, many)


async def _narrowed_rows_read(
    uow_factory: UnitOfWorkFactory, w: World, live: SubscriptionPayment
) -> list[int]:
    """Rows read by each narrowed read for 3 intervals (each must find `live`)."""
    sub = w.subscription
    narrow = MetadataKey(INTERVALS_KEY, 3)
    kind = PendingKind(sub.id, PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL)
    async with uow_factory() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        await uow._connection().execute(text("ANALYZE TABLE subscription_payment"))
        found, lookup = await _read_by(
            uow, uow.payments.newest_pending(kind, at(5), lambda meta: True, narrow)
        )
        newest = NewestPending(PaymentMethod.LIGHTNING, at(5), narrow)
        owned, first = await _read_by(
            uow, uow.line_items.priced_of_owned_vm(w.vm.id, w.user.pubkey, newest)
        )
        priced, counted = await _read_by(
            uow, uow.line_items.list_priced(sub.id, pending=PendingCount(at(5), narrow))
        )
    assert found == live
    assert owned is not None and owned.first_pending == live
    assert priced is not None and priced.pending == 1
    return [lookup, first, counted]
