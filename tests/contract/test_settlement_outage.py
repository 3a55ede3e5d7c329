"""Issue 8 §7: settlements made while the service was down for a week are all completed,
once, from the persisted settle-index cursor, against the wire-level fake LND."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from adapters.lightning.lnd import LndRestNode
from adapters.memory.storage import MemoryUnitOfWork, MemoryUnitOfWorkFactory
from app.billing.rails import PaymentRails
from app.settlement import SETTLE_CURSOR, listen_once
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment
from ports.jobs import SpawnVm
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory, world_over
from tests.contract.storage_backends import Database, engine_for
from tests.fakes.fake_lnd import FakeLnd, running_fake_lnd
from tests.unit.billing.world import BOB, Shop

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database

#: a generous bound so a regression fails instead of hanging; no test asserts a duration
GUARD_S = 30


@pytest.fixture
async def shop(database: Database) -> AsyncIterator[Shop]:
    """The billing shop over an empty, freshly seeded store of the module's backend."""
    if database.url is None:
        yield (await world_over(MemoryUnitOfWorkFactory())).shop
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        yield (await world_over(sql_factory(engine))).shop


@pytest.fixture
async def lnd(tmp_path: Path) -> AsyncIterator[FakeLnd]:
    async with running_fake_lnd(tmp_path, tls=False) as fake:
        yield fake


def _node(fake: FakeLnd) -> LndRestNode:
    return LndRestNode(fake.url, macaroon_hex=fake.macaroon_hex, reconnect_delay=0.01)


async def _listen_until(
    shop: Shop, node: LndRestNode, *paid: SubscriptionPayment, cursor: int
) -> None:
    """Run one listener until every payment in `paid` is paid and the stored cursor has
    reached `cursor` (the settlements are handled), then stop it."""
    listener = asyncio.create_task(
        listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue)
    )

    async def done() -> None:
        while not (
            all([(await shop.payment(p.id)).is_paid for p in paid])
            and (await _cursor(shop) or 0) >= cursor
        ):
            if listener.done():
                listener.result()  # raises what stopped it
                raise AssertionError("the listener ended before the payments were paid")
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(done(), GUARD_S)
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


class _FailsAfter:
    """A unit-of-work factory whose calls after the first `allowed` fail (storage down)."""

    def __init__(self, shop: Shop, allowed: int) -> None:
        self.shop = shop
        self.allowed = allowed
        self.calls = 0

    def __call__(self) -> MemoryUnitOfWork:  # or the SQL one, as the shop's factory gives
        self.calls += 1
        if self.calls > self.allowed:
            raise OSError("database unreachable")
        return self.shop.factory()


async def _cursor(shop: Shop) -> int | None:
    async with shop.factory() as uow:
        return await uow.worker_cursors.get(SETTLE_CURSOR)


async def test_a_week_of_settlements_missed_while_down_is_completed_once(
    shop: Shop, lnd: FakeLnd
) -> None:
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {PaymentMethod.REVOLUT: shop.revolut})
        first_vm, vms = await shop.order(), [await shop.order(BOB) for _ in range(3)]
        first = await shop.renew(first_vm)
        lnd.settle(first.id)
        await _listen_until(shop, node, first, cursor=1)  # the service heard this one
        assert await _cursor(shop) == 1

        # the service goes down; invoices issued just before are paid during the outage
        missed = [await shop.renew(vm) for vm in vms]
        for payment in missed:
            lnd.settle(payment.id)
        shop.clock.advance(timedelta(minutes=1))
        card = await shop.renew(first_vm, method=PaymentMethod.REVOLUT)  # the newest created
        shop.clock.advance(timedelta(days=7))
        # the newest paid payment is now a card payment (the API and its webhooks stayed
        # up): replaying "after the newest paid Lightning payment" would replay nothing
        assert (await shop.complete(card)).completed
        expiries = {vm.id: (await shop.subscription(vm)).expires for vm in vms}

        await _listen_until(shop, node, *missed, cursor=4)  # back after a week

        for vm in vms:
            sub = await shop.subscription(vm)
            before = expiries[vm.id]
            assert before is None and sub.expires is not None  # paid once (first payment)
        assert await _cursor(shop) == 4
        missed_vms = {vm.id for vm in vms}
        spawns = [j.vm_id for j in shop.queue.sent if isinstance(j, SpawnVm)]
        assert sorted(v for v in spawns if v in missed_vms) == sorted(missed_vms)  # once each

        # a later restart replays nothing already handled: nothing moves twice
        after = {vm.id: (await shop.subscription(vm)).expires for vm in vms}
        late = await shop.renew(vms[0])
        lnd.settle(late.id)
        await _listen_until(shop, node, late, cursor=5)
        assert await _cursor(shop) == 5
        for vm in vms[1:]:
            assert (await shop.subscription(vm)).expires == after[vm.id]


async def test_the_cursor_does_not_move_past_a_settlement_that_failed(
    shop: Shop, lnd: FakeLnd
) -> None:
    """A settlement whose completion fails (storage down) is replayed by the next stream."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        vm = await shop.order()
        first = await shop.renew(vm)
        lnd.settle(first.id)
        await _listen_until(shop, node, first, cursor=1)
        other = await shop.renew(await shop.order(BOB))
        lnd.settle(other.id)

        flaky = _FailsAfter(shop, allowed=1)  # the cursor read works, completing fails
        with pytest.raises(OSError):
            await asyncio.wait_for(
                listen_once(node, flaky, shop.clock, shop.rails, shop.queue), GUARD_S
            )
        assert flaky.calls == 2 and not (await shop.payment(other.id)).is_paid
        assert await _cursor(shop) == 1
        await _listen_until(shop, node, other, cursor=2)
        assert await _cursor(shop) == 2
