"""What a completion writes besides the money (VM history, IP range re-activation) is booked in
the payment's own transaction, on every storage: a completion that dies while writing it books
nothing, and a retry books it once (the kill -9 e2e test's finding)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import attrs
import pytest

from adapters.memory.clock import FakeClock
from app.billing.completion import complete_payment
from app.billing.rails import PaymentRails
from domain.enums import InternetRegistry, SubscriptionType, VmHistoryActionType
from domain.model import AvailableIpSpace, IpRangeSubscription, Subscription
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


class _DyingRepository:
    def __init__(self, inner: Any, method: str) -> None:
        self._inner = inner
        self._method = method

    def __getattr__(self, name: str) -> Any:
        if name == self._method:

            async def dies(*args: Any) -> Any:
                raise Killed(f"died in {name}")

            return dies
        return getattr(self._inner, name)


class _DyingUnitOfWork:
    """A unit of work that dies when `repository.method` is called."""

    def __init__(self, inner: UnitOfWork, repository: str, method: str) -> None:
        self._inner = inner
        self._repository = repository
        self._method = method

    async def __aenter__(self) -> _DyingUnitOfWork:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        return _DyingRepository(found, self._method) if name == self._repository else found


def _dying(uow_factory: UnitOfWorkFactory, repository: str, method: str) -> UnitOfWorkFactory:
    def factory() -> UnitOfWork:
        return cast(UnitOfWork, _DyingUnitOfWork(uow_factory(), repository, method))

    return factory


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
    with pytest.raises(Killed):
        await _complete(_dying(uow_factory, "vm_history", "add"), payment_id)
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


async def _lapsed_ip_range(uow_factory: UnitOfWorkFactory) -> tuple[Subscription, int, bytes]:
    """An IP range subscription whose allocation ended when it lapsed, and a pending renewal."""
    async with uow_factory() as uow:
        w = await seed_world(uow)
        space = await uow.ip_spaces.add(
            AvailableIpSpace(
                id=0,
                company_id=w.company.id,
                cidr="203.0.113.0/24",
                min_prefix_size=24,
                max_prefix_size=29,
                registry=InternetRegistry.RIPE,
                created=at(1),
                updated=at(1),
            )
        )
        sub, [item] = await uow.subscriptions.add_with_line_items(
            attrs.evolve(w.subscription, id=0, name="range", expires=at(3)),
            [
                attrs.evolve(
                    w.line_item, id=0, subscription_type=SubscriptionType.IP_RANGE, name="/29"
                )
            ],
        )
        sold = await uow.ip_range_subscriptions.add(
            IpRangeSubscription(
                id=0,
                subscription_line_item_id=item.id,
                available_ip_space_id=space.id,
                created=at(1),
                cidr="203.0.113.0/29",
                is_active=False,
                ended_at=at(3),
            )
        )
        payment = await uow.payments.add(new_payment(sub, time_value=MONTH_S))
        await uow.commit()
    return sub, sold.id, payment.id


async def test_dying_while_reactivating_an_ip_range_books_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    sub, sold_id, payment_id = await _lapsed_ip_range(uow_factory)
    with pytest.raises(Killed):
        await _complete(_dying(uow_factory, "ip_range_subscriptions", "set_active"), payment_id)
    async with uow_factory() as uow:
        payment = await uow.payments.get(payment_id)
        sold = await uow.ip_range_subscriptions.get(sold_id)
        after = await uow.subscriptions.get(sub.id)
    assert payment is not None and not payment.is_paid
    assert sold is not None and not sold.is_active
    assert after == sub

    assert await _complete(uow_factory, payment_id)
    async with uow_factory() as uow:
        payment = await uow.payments.get(payment_id)
        sold = await uow.ip_range_subscriptions.get(sold_id)
    assert payment is not None and payment.is_paid
    assert sold is not None and sold.is_active and sold.ended_at is None
