"""Property, on memory, SQLite and MariaDB: over any sequence of gifts, renewals paid partly or
wholly from credit, payments (late ones too), expiry and releases, the balance is never
negative, equals the ledger's sum, and every quote's credit is spent, released and spent
again at most once each."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any, cast

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.billing.credit_balance import adjust_credit
from app.billing.credit_quote import CreditChanged
from app.billing.credit_release import release_expired_credit
from app.billing.credit_settle import completion_settle
from app.billing.errors import TooManyOpenQuotes
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment, Vm
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory
from tests.contract.storage_backends import Database, engine_for
from tests.unit.billing.world import ALICE, Shop, new_shop, seed

database = storage_backends.database


@attrs.frozen
class Give:
    cents: int


@attrs.frozen
class Renew:
    intervals: int
    fiat: bool


@attrs.frozen
class Pay:
    pick: int


@attrs.frozen
class Later:
    minutes: int


Op = Give | Renew | Pay | Later
OPS = st.lists(
    st.one_of(
        st.builds(Give, st.integers(1, 400)),
        st.builds(Renew, st.sampled_from([1, 2, 3]), st.booleans()),
        st.builds(Renew, st.sampled_from([1, 2, 3]), st.booleans()),
        st.builds(Pay, st.integers(0, 20)),
        st.builds(Pay, st.integers(0, 20)),
        st.builds(Later, st.sampled_from([5, 30, 120])),
    ),
    min_size=4,
    max_size=16,
)


async def _check(shop: Shop) -> None:
    async with shop.factory() as uow:
        balances = await uow.credit_ledger.balances(ALICE)
        page = await uow.credit_ledger.list_page(ALICE, 1000, 0)
    total = sum(e.amount for e in page.items)
    assert balances.get("EUR", 0) == total >= 0
    running = 0
    for e in reversed(page.items):  # never negative at any point in booking order
        running += e.amount
        assert running >= 0
    events = Counter((e.reason, e.reference) for e in page.items if e.reference is not None)
    assert all(n == 1 for n in events.values()), events


async def _run(shop: Shop, ops: list[Op]) -> None:
    vm: Vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    pending: list[SubscriptionPayment] = []
    for op in ops:
        if isinstance(op, Give):
            await adjust_credit(
                shop.factory,
                shop.clock,
                admin_id=ALICE,
                user_id=ALICE,
                currency="EUR",
                amount=op.cents,
                note="gift",
            )
        elif isinstance(op, Renew):
            method = PaymentMethod.REVOLUT if op.fiat else PaymentMethod.LIGHTNING
            try:
                payment = await shop.renew(vm, intervals=op.intervals, method=method, settle=settle)
            except (CreditChanged, TooManyOpenQuotes):
                continue  # refused, nothing stored: 3 interval counts × 2 rails pass the cap
            if not payment.is_paid:
                pending.append(payment)
        elif isinstance(op, Pay):
            if pending:
                await shop.complete(pending.pop(op.pick % len(pending)))
        else:
            shop.clock.advance(timedelta(minutes=op.minutes))
            await release_expired_credit(shop.factory, shop.clock)
        await _check(shop)


async def _on_backend(database: Database, ops: list[Op]) -> None:
    if database.url is None:
        await _run(await new_shop(), ops)
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        factory: UnitOfWorkFactory = sql_factory(engine)
        await seed(factory)
        await _run(attrs.evolve(await new_shop(), factory=cast(Any, factory)), ops)


def test_credit_stays_exact_through_renewals_payments_and_releases(database: Database) -> None:
    @settings(
        max_examples=40 if database.url is None else 8,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(ops=OPS)
    def check(ops: list[Op]) -> None:
        asyncio.run(_on_backend(database, ops))

    check()
