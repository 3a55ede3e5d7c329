"""The renewal's reuse lookup reads a subscription's live unpaid payments only (MariaDB rows
read, counted by the server), however many paid or expired ones its history holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from adapters.mysql.uow import SqlUnitOfWork
from domain.enums import PaymentMethod, SubscriptionPaymentType
from ports.storage import UnitOfWorkFactory
from ports.storage.payments import PendingKind
from tests.contract import storage_backends
from tests.contract.storage_backends import Backend, at, new_payment, seed_world

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

HISTORY = 150  # of each: paid, and unpaid but expired


async def _rows_read(uow: SqlUnitOfWork) -> int:
    found = await uow._connection().execute(text("SHOW SESSION STATUS LIKE 'Handler_read%'"))
    return sum(int(value) for name, value in found if name != "Handler_read_key")


async def test_the_reuse_lookup_reads_only_live_unpaid_payments(
    backend: Backend, uow_factory: UnitOfWorkFactory
) -> None:
    if backend.kind != "mysql":
        pytest.skip("rows read are counted by MariaDB")
    async with uow_factory() as uow:
        w = await seed_world(uow)
        sub = w.subscription
        for n in range(HISTORY):
            created = at(1) + timedelta(minutes=n)
            await uow.payments.add(new_payment(sub, created=created, is_paid=True))
            await uow.payments.add(new_payment(sub, created=created, expires=at(3)))
        live = await uow.payments.add(new_payment(sub, created=at(4), expires=at(10)))
        await uow.commit()
    kind = PendingKind(sub.id, PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL)
    async with uow_factory() as uow:
        assert isinstance(uow, SqlUnitOfWork)
        await uow._connection().execute(text("ANALYZE TABLE subscription_payment"))
        before = await _rows_read(uow)
        found = await uow.payments.newest_pending(kind, at(5), lambda meta: True)
        read = await _rows_read(uow) - before
    assert found == live
    assert read <= 5, f"{read} rows read for 1 live payment among {2 * HISTORY + 1}"
