"""A completion's VM history is booked in the payment's own transaction, on every storage:
a completion that dies while writing history books nothing (the kill -9 e2e test's finding)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import attrs
import pytest

from adapters.memory.clock import FakeClock
from app.billing.completion import complete_payment
from app.billing.rails import PaymentRails
from domain.enums import VmHistoryActionType
from ports.storage import UnitOfWork, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import World, at, new_payment, seed_world
from tests.unit.billing.fakes import FakeNode, RecordingQueue

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

MONTH_S = 31 * 86_400
RECEIVED, RENEWED = VmHistoryActionType.PAYMENT_RECEIVED, VmHistoryActionType.RENEWED


class Killed(Exception):
    """Stands for the process dying: the open transaction never commits."""


class _DyingHistory:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    async def add(self, entry: Any) -> Any:
        raise Killed("died while writing history")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _DyingUnitOfWork:
    """A unit of work whose history writes never happen."""

    def __init__(self, inner: UnitOfWork) -> None:
        self._inner = inner

    async def __aenter__(self) -> _DyingUnitOfWork:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)

    @property
    def vm_history(self) -> Any:
        return _DyingHistory(self._inner.vm_history)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _renewable(uow_factory: UnitOfWorkFactory) -> tuple[World, bytes]:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        sub = attrs.evolve(w.subscription, is_active=True, is_setup=True, expires=at(10))
        await uow.subscriptions.update(sub)
        payment = await uow.payments.add(new_payment(sub, time_value=MONTH_S))
        await uow.commit()
    return attrs.evolve(w, subscription=sub), payment.id


async def _complete(factory: UnitOfWorkFactory, payment_id: bytes) -> bool:
    clock = FakeClock(at(5))
    rails = PaymentRails(FakeNode(clock), {})
    report = await complete_payment(factory, clock, rails, RecordingQueue(), payment_id=payment_id)
    return report.completed


async def _history(uow_factory: UnitOfWorkFactory, vm_id: int) -> list[tuple[Any, Any]]:
    async with uow_factory() as uow:
        page = await uow.vm_history.list_by_vm(vm_id, 100)
    return sorted(
        (h.action_type, (h.metadata or {}).get("payment_id"))
        for h in page.items
        if h.action_type in (RECEIVED, RENEWED)
    )


async def test_dying_while_writing_history_books_nothing_and_a_retry_books_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w, payment_id = await _renewable(uow_factory)

    def dying() -> UnitOfWork:
        return cast(UnitOfWork, _DyingUnitOfWork(uow_factory()))

    with pytest.raises(Killed):
        await _complete(dying, payment_id)
    async with uow_factory() as uow:
        payment = await uow.payments.get(payment_id)
        sub = await uow.subscriptions.get(w.subscription.id)
    assert payment is not None and not payment.is_paid and payment.paid_at is None
    assert sub == w.subscription
    assert await _history(uow_factory, w.vm.id) == []

    assert await _complete(uow_factory, payment_id)
    assert await _history(uow_factory, w.vm.id) == [
        (RENEWED, payment_id.hex()),
        (RECEIVED, payment_id.hex()),
    ]


async def test_concurrent_completions_write_each_history_row_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w, payment_id = await _renewable(uow_factory)
    done = await asyncio.gather(*(_complete(uow_factory, payment_id) for _ in range(20)))
    assert sum(done) == 1
    assert await _history(uow_factory, w.vm.id) == [
        (RENEWED, payment_id.hex()),
        (RECEIVED, payment_id.hex()),
    ]
