"""Issue 8 §8, property-based, on memory, SQLite and MariaDB: over any sequence of quotes,
upgrades, payments and time travel on one subscription, no payment buys more time than its
money is worth at the price in force when it completes, and fresh N-interval payments add
exactly N calendar months (D6, D23). By value, the worth is measured on the subscription's
grid of months counted from its creation (review r18: so split payments add up)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any, cast

import attrs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.account.profile import AccountPatch, update_account
from app.billing.errors import TooManyOpenQuotes
from app.billing.lnurl import renew_by_amount
from app.billing.upgrades import create_upgrade_payment
from domain.errors import DomainError
from domain.intervals import add_months
from domain.model import GIB, SubscriptionPayment, Vm
from domain.upgrade import UpgradeConfig
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory
from tests.contract.storage_backends import Database, engine_for
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, Shop, new_shop, seed

database = storage_backends.database  # module fixture: memory, SQLite, MariaDB

#: the shop's custom pricing per month (EUR cents): CPU 200, memory 100 / GiB, disk 50 / GiB
CPU_CENTS, GIB_CENTS, DISK_GIB_CENTS = 200, 100, 50
TINY = (2, 2, 64)  # the Tiny plan's CPU, memory GiB, disk GiB
#: 1 EUR cent at the fake's 100 000 EUR/BTC is exactly 10 000 msat
MSAT_PER_CENT = 10_000


@attrs.frozen
class Quote:
    intervals: int


@attrs.frozen
class Lnurl:
    sats: int


@attrs.frozen
class Upgrade:
    cpu: int
    memory_gib: int


@attrs.frozen
class Pay:
    pick: int


@attrs.frozen
class Travel:
    seconds: int


@attrs.frozen
class Country:
    code: str


Op = Quote | Lnurl | Upgrade | Pay | Travel | Country

OPS = st.lists(
    st.one_of(
        st.builds(Quote, st.sampled_from([1, 1, 1, 2, 3, 12, 120])),
        st.builds(Lnurl, st.integers(1_000, 1_000_000)),
        st.builds(Upgrade, st.integers(2, 8), st.integers(2, 16)),
        st.builds(Pay, st.integers(0, 50)),
        st.builds(Pay, st.integers(0, 50)),
        st.builds(Travel, st.sampled_from([60, 660, 3_600, 86_400, 15 * 86_400, 40 * 86_400])),
        st.builds(Country, st.sampled_from(["IE", "DE"])),
    ),
    min_size=1,
    max_size=16,
)


@attrs.define
class Model:
    """What the test knows independently of the code: the spec, its price, the expiry."""

    anchor: datetime  # the subscription's creation: the grid time by value is measured on
    spec: tuple[int, int, int] | None = None  # None: still the Tiny plan
    expires: datetime | None = None
    #: unpaid quotes, with the price (cents a month) they were made at
    pending: list[tuple[SubscriptionPayment, int]] = attrs.field(factory=list)

    @property
    def cents(self) -> int:
        if self.spec is None:
            return PLAN_EUR_CENTS
        cpu, memory, disk = self.spec
        return cpu * CPU_CENTS + memory * GIB_CENTS + disk * DISK_GIB_CENTS


def _value_end(anchor: datetime, base: datetime, months: Fraction) -> Fraction:
    """Where `months` of paid time ends, in exact seconds after `base`, on the grid of months
    counted from `anchor` (the subscription's creation): the rest of the grid month holding
    `base` at its own length, then whole grid months, then the share of the last one."""

    def edge(k: int) -> datetime:
        return add_months(anchor, k)

    def seconds(a: datetime, b: datetime) -> int:
        return int((b - a).total_seconds())

    k = 0
    while edge(k) > base:
        k -= 1
    while edge(k + 1) <= base:
        k += 1
    target = k + Fraction(seconds(edge(k), base), seconds(edge(k), edge(k + 1))) + months
    last = target.numerator // target.denominator
    share = (target - last) * seconds(edge(last), edge(last + 1))
    return seconds(base, edge(last)) + share


async def _run(shop: Shop, ops: list[Op]) -> None:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    sub = await shop.subscription(vm)
    model = Model(anchor=sub.created, expires=sub.expires)
    for op in ops:
        await _step(shop, vm, model, op)
        assert (await shop.subscription(vm)).expires == model.expires


async def _step(shop: Shop, vm: Vm, model: Model, op: Op) -> None:
    if isinstance(op, Travel):
        shop.clock.advance(timedelta(seconds=op.seconds))
    elif isinstance(op, Quote):
        try:
            payment = await shop.renew(vm, intervals=op.intervals)
        except TooManyOpenQuotes:
            return  # over the live-quote cap: refused, nothing stored
        if payment.id not in {p.id for p, _ in model.pending}:
            model.pending.append((payment, model.cents))
    elif isinstance(op, Lnurl):
        try:
            payment = await renew_by_amount(
                shop.factory,
                shop.clock,
                shop.rails,
                shop.rates,
                shop.tax_rates,
                vm_id=vm.id,
                amount_msat=op.sats * 1000,
            )
        except DomainError:
            return  # too little or too much for the current price: refused, nothing stored
        if payment.id not in {p.id for p, _ in model.pending}:  # a live one is reused (D25)
            model.pending.append((payment, model.cents))
    elif isinstance(op, Country):
        await update_account(
            shop.factory,
            shop.clock,
            shop.queue,
            ALICE,
            AccountPatch(contact_nip17=False, contact_email=False, country_code=op.code),
            public_url="https://x",
            rails=shop.rails,
        )
    elif isinstance(op, Upgrade):
        await _upgrade(shop, vm, model, op)
    else:
        await _pay(shop, model, op)


async def _upgrade(shop: Shop, vm: Vm, model: Model, op: Upgrade) -> None:
    cpu, memory, disk = model.spec or TINY
    target = (max(cpu, op.cpu), max(memory, op.memory_gib), disk)
    cfg = UpgradeConfig(new_cpu=target[0], new_memory=target[1] * GIB)
    try:
        payment = await create_upgrade_payment(
            shop.factory, shop.clock, shop.rails, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=cfg
        )
    except DomainError:
        return  # expired VM, nothing to upgrade …: refused, nothing changes
    report = await shop.complete(payment)
    assert report.completed and report.problems == ()
    model.spec = target


async def _pay(shop: Shop, model: Model, op: Pay) -> None:
    if not model.pending:
        return
    payment, quoted_cents = model.pending.pop(op.pick % len(model.pending))
    now = shop.clock.now()
    assert model.expires is not None
    base = max(model.expires, now)
    report = await shop.complete(payment)  # expired or not: a late settlement still arrives
    assert report.completed
    async with shop.factory() as uow:
        sub = await uow.subscriptions.get(payment.subscription_id)
    assert sub is not None and sub.expires is not None
    added = Fraction(int((sub.expires - base).total_seconds()))
    # the money is worth this many months at the price in force now
    worth = Fraction(payment.amount, model.cents * MSAT_PER_CENT)
    count = _count(payment)
    if count is not None and quoted_cents == model.cents:
        # a fresh N-month quote: exactly N calendar months from the expiry at completion,
        # which is what its money is worth counted from there (D6)
        assert sub.expires == add_months(base, count)
    else:
        # credited by value: the exact value on the subscription's grid of months, floored
        # to a whole second, never more
        limit = _value_end(model.anchor, base, worth)
        assert limit - 1 < added <= limit, (payment.metadata, added, limit)
    model.expires = sub.expires


def _count(payment: SubscriptionPayment) -> int | None:
    meta: Any = payment.metadata
    intervals = meta.get("intervals") if isinstance(meta, dict) else None
    return intervals if isinstance(intervals, int) else None


async def _on_backend(database: Database, ops: list[Op]) -> None:
    if database.url is None:
        await _run(await new_shop(), ops)
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        factory: UnitOfWorkFactory = sql_factory(engine)
        await seed(factory)
        await _run(attrs.evolve(await new_shop(), factory=cast(Any, factory)), ops)


def test_time_bought_never_exceeds_the_value_paid_and_fresh_quotes_add_calendar_months(
    database: Database,
) -> None:
    examples = 60 if database.url is None else 12

    @settings(
        max_examples=examples,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(ops=OPS)
    def check(ops: list[Op]) -> None:
        asyncio.run(_on_backend(database, ops))

    check()
