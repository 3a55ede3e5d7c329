"""One settlement never stops the Lightning intake; an interrupted reconciliation skips none."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import attrs
import pytest
import sqlalchemy.exc

from adapters.lightning.dev import DevLightningNode
from app import settlement
from app.billing import completion
from app.billing.credit_quote import CreditChanged
from app.billing.rails import PaymentRails
from app.billing.upgrades import create_upgrade_payment
from app.settlement import SETTLE_CURSOR, listen_once, run_settlement_listener
from app.settlement_problems import recent_problems
from app.settlement_retries import MAX_STRIKES
from domain.errors import DomainError, NoExchangeRate
from domain.upgrade import UpgradeConfig
from ports.jobs import SendAdminNotification
from ports.lightning import LightningUnavailable, SettledInvoice
from ports.storage import StorageBusy
from tests.unit.billing.world import BOB, PRICING, Shop, new_shop


class _Refused(DomainError):
    """A rule that refuses one payment for good (what a withdrawn offer raises)."""


async def _dev_shop() -> tuple[Shop, DevLightningNode]:
    shop = await new_shop()
    node = DevLightningNode(clock=shop.clock)
    shop.rails = PaymentRails(lightning=node, fiat={})
    return shop, node


async def _cursor(shop: Shop) -> int | None:
    async with shop.factory() as uow:
        return await uow.worker_cursors.get(SETTLE_CURSOR)


async def _warm(shop: Shop, node: DevLightningNode) -> int:
    """A listener ran before: one settlement completed and the cursor stored at it."""
    earlier = await shop.renew(await shop.order(BOB))
    settled = await node.settle(earlier.id)
    await shop.complete(earlier)
    async with shop.factory() as uow:
        await uow.worker_cursors.advance(SETTLE_CURSOR, settled.settle_index)
        await uow.commit()
    return settled.settle_index


async def _listen_for(shop: Shop, node: DevLightningNode, seconds: float) -> None:
    """The production loop (reconnects after 10 ms) for a while, then stopped."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_settlement_listener(
            node, shop.factory, shop.clock, shop.rails, shop.queue, stop, retry_delay=0.01
        )
    )
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(task, timeout=2)


def _failing_for(
    payment_id: bytes,
    error: Exception,
    monkeypatch: pytest.MonkeyPatch,
    times: int | None = None,
) -> list[bytes]:
    """Completing `payment_id` raises `error` (its first `times` tries; None: every try),
    and the other payments complete as they do; returns the ids the intake tried, in order."""
    real = completion.complete_payment
    tried: list[bytes] = []

    async def complete(*args: Any, payment_id: bytes, **kw: Any) -> Any:
        tried.append(payment_id)
        if payment_id == failing and (times is None or tried.count(failing) <= times):
            raise error
        return await real(*args, payment_id=payment_id, **kw)

    failing = payment_id
    monkeypatch.setattr(settlement, "complete_payment", complete)
    return tried


async def test_a_refused_settlement_is_recorded_and_later_ones_still_complete(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, node = await _dev_shop()
    await _warm(shop, node)
    vm, other = await shop.order(), await shop.order(BOB)
    poisoned, later = await shop.renew(vm), await shop.renew(other)
    first = await node.settle(poisoned.id)
    second = await node.settle(later.id)
    _failing_for(poisoned.id, _Refused("the offer was withdrawn"), monkeypatch)

    await _listen_for(shop, node, 0.3)

    assert (await shop.payment(later.id)).is_paid  # the intake went on past it
    assert not (await shop.payment(poisoned.id)).is_paid
    assert await _cursor(shop) == second.settle_index
    [(problem, paid)] = await recent_problems(shop.factory)
    assert (problem.payment_id, problem.settle_index, paid) == (
        poisoned.id,
        first.settle_index,
        False,
    )
    assert problem.amount_paid_msat == poisoned.total
    assert (problem.error, problem.message) == ("_Refused", "the offer was withdrawn")
    notices = [j for j in shop.queue.sent if isinstance(j, SendAdminNotification)]
    assert len(notices) == 1 and poisoned.id.hex() in notices[0].message


async def test_a_replayed_refused_settlement_is_recorded_and_reported_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shop, node = await _dev_shop()
    await _warm(shop, node)
    poisoned = await shop.renew(await shop.order())
    await node.settle(poisoned.id)
    tried = _failing_for(poisoned.id, _Refused("no"), monkeypatch)
    await _run_once(shop, node)  # the stream meets it
    args = (node, shop.factory, shop.clock, shop.rails, shop.queue)
    assert await settlement.reconcile(*args) == 0  # and a reconciliation meets it again
    assert tried == [poisoned.id, poisoned.id]
    assert len(await recent_problems(shop.factory)) == 1
    assert sum(isinstance(j, SendAdminNotification) for j in shop.queue.sent) == 1


#: a lost database connection as SQLAlchemy raises it
_DB_GONE = sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionResetError("gone"))


@pytest.mark.parametrize(
    "error",
    [
        StorageBusy(),
        OSError("database gone"),
        NoExchangeRate("no rate for now"),
        _DB_GONE,
        aiohttp.ClientConnectionError("connection reset"),
        TimeoutError(),
        LightningUnavailable("LND restarting"),
    ],
    ids=["busy", "oserror", "unavailable-domain-error", "db-gone", "aiohttp", "timeout", "node"],
)
async def test_a_passing_failure_still_blocks_and_skips_nothing(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop, node = await _dev_shop()
    before = await _warm(shop, node)
    vm, other = await shop.order(), await shop.order(BOB)
    blocked, later = await shop.renew(vm), await shop.renew(other)
    await node.settle(blocked.id)
    await node.settle(later.id)
    tried = _failing_for(blocked.id, error, monkeypatch)

    await _listen_for(shop, node, 0.2)

    assert tried.count(blocked.id) >= 2  # retried ...
    assert later.id not in tried  # ... and nothing after it was taken before it
    assert not (await shop.payment(later.id)).is_paid
    assert await _cursor(shop) == before
    assert await recent_problems(shop.factory) == []

    monkeypatch.undo()  # the outage ends: both complete, in order
    await _listen_for(shop, node, 0.2)
    assert (await shop.payment(blocked.id)).is_paid and (await shop.payment(later.id)).is_paid


async def _listen_until(
    shop: Shop, node: DevLightningNode, done: Callable[[], Awaitable[bool]]
) -> None:
    """The production loop (reconnects after 10 ms) until `done()` (or a generous guard)."""
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_settlement_listener(
            node, shop.factory, shop.clock, shop.rails, shop.queue, stop, retry_delay=0.01
        )
    )
    try:
        for _ in range(1000):
            if await done():
                break
            await asyncio.sleep(0.01)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=2)


@pytest.mark.parametrize(
    "error",
    [
        KeyError("vm_id"),
        TypeError("unsupported operand type(s)"),
        sqlalchemy.exc.IntegrityError("INSERT", {}, ValueError("broken row")),
        CreditChanged("the balance changed"),
    ],
    ids=["keyerror", "typeerror", "broken-row", "conflict"],
)
async def test_an_error_repeating_on_one_settlement_is_recorded_after_max_strikes(
    error: Exception, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug (or a conflict that does not go away) on ONE settlement blocks the intake
    `MAX_STRIKES` times, then is kept for the operator and the later settlements complete."""
    shop, node = await _dev_shop()
    await _warm(shop, node)
    vm, other = await shop.order(), await shop.order(BOB)
    poisoned, later = await shop.renew(vm), await shop.renew(other)
    first = await node.settle(poisoned.id)
    second = await node.settle(later.id)
    tried = _failing_for(poisoned.id, error, monkeypatch)

    async def later_paid() -> bool:
        return (await shop.payment(later.id)).is_paid

    await _listen_until(shop, node, later_paid)

    assert await later_paid()
    assert tried.count(poisoned.id) == MAX_STRIKES  # retried, then passed over
    assert not (await shop.payment(poisoned.id)).is_paid
    assert await _cursor(shop) == second.settle_index
    [(problem, paid)] = await recent_problems(shop.factory)
    assert (problem.payment_id, problem.settle_index, paid) == (
        poisoned.id,
        first.settle_index,
        False,
    )
    assert problem.amount_paid_msat == poisoned.total
    assert problem.error == type(error).__name__
    reason = error.message if isinstance(error, DomainError) else str(error)
    assert problem.message == f"{reason} (failed {MAX_STRIKES} times in a row)"
    notices = [j for j in shop.queue.sent if isinstance(j, SendAdminNotification)]
    assert len(notices) == 1 and poisoned.id.hex() in notices[0].message
    recorded = [r for r in caplog.records if "failed for good" in r.getMessage()]
    assert [r.exc_info[1] if r.exc_info else None for r in recorded] == [error]  # traceback


async def test_a_conflict_on_the_first_try_is_completed_on_the_next_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A conflict a retry cures (the credit changed under the booking, a rival's row) is
    tried again, not recorded as a settlement problem."""
    shop, node = await _dev_shop()
    await _warm(shop, node)
    vm = await shop.order()
    payment = await shop.renew(vm)
    settled = await node.settle(payment.id)
    tried = _failing_for(payment.id, CreditChanged("the balance changed"), monkeypatch, times=1)

    async def paid() -> bool:
        return (await shop.payment(payment.id)).is_paid

    await _listen_until(shop, node, paid)

    assert await paid()
    assert tried == [payment.id, payment.id]
    assert await recent_problems(shop.factory) == []
    assert not any(isinstance(j, SendAdminNotification) for j in shop.queue.sent)
    assert await _cursor(shop) == settled.settle_index


async def test_passing_failures_between_strikes_neither_count_nor_skip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only the strikes count: a bug that fails fewer than `MAX_STRIKES` times, with a long
    outage in between, is completed once both are gone, and nothing is recorded."""
    shop, node = await _dev_shop()
    await _warm(shop, node)
    payment = await shop.renew(await shop.order())
    await node.settle(payment.id)
    errors: list[Exception] = [
        *(KeyError("vm_id") for _ in range(MAX_STRIKES - 1)),
        *(StorageBusy() for _ in range(3 * MAX_STRIKES)),
    ]
    real = completion.complete_payment

    async def complete(*args: Any, **kw: Any) -> Any:
        if errors:
            raise errors.pop(0)
        return await real(*args, **kw)

    monkeypatch.setattr(settlement, "complete_payment", complete)

    async def paid() -> bool:
        return (await shop.payment(payment.id)).is_paid

    await _listen_until(shop, node, paid)

    assert await paid() and errors == []
    assert await recent_problems(shop.factory) == []


async def test_a_paid_upgrade_whose_pricing_went_away_does_not_stop_the_intake() -> None:
    """The reviewer's case: an admin disabled the region's custom pricing between an
    upgrade's quote and its payment. The upgrade is booked (not applied: its value becomes
    account credit), the renewal settled after it completes and the cursor moves past both;
    nothing is left as a settlement problem."""
    shop, node = await _dev_shop()
    await _warm(shop, node)
    vm, other = await shop.order(), await shop.order(BOB)
    first = await shop.renew(vm)
    await shop.complete(first)
    up = await create_upgrade_payment(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        user_id=vm.user_id,
        vm_id=vm.id,
        cfg=UpgradeConfig(new_cpu=4),
    )
    async with shop.factory() as uow:
        pricing = await uow.custom_pricing.get(PRICING)
        assert pricing is not None
        await uow.custom_pricing.update(attrs.evolve(pricing, enabled=False))
        await uow.commit()
    renewal = await shop.renew(other)
    await node.settle(up.id)
    last = await node.settle(renewal.id)

    await _listen_for(shop, node, 0.3)

    assert (await shop.payment(renewal.id)).is_paid
    assert await _cursor(shop) == last.settle_index
    assert (await shop.payment(up.id)).is_paid
    assert await recent_problems(shop.factory) == []
    async with shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(up.id.hex())
    assert [e.amount > 0 for e in entries] == [True]  # its value, booked once as credit


class _Flaky(DevLightningNode):
    """Looking up `fail_for` fails once (the node restarting), then answers."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.fail_for: set[bytes] = set()

    async def lookup_settlement(self, payment_hash: bytes) -> SettledInvoice | None:
        if payment_hash in self.fail_for:
            self.fail_for.discard(payment_hash)
            raise LightningUnavailable("LND restarting")
        return await super().lookup_settlement(payment_hash)


class _NoReplayFromZero(_Flaky):
    """LND's rule: a stream from settle index 0 replays nothing, only live settlements (the
    dev node replays from 0; `skip_to` is the index the settlements so far reached)."""

    skip_to = 0

    def settlements_after(self, settle_index: int) -> Any:
        return super().settlements_after(settle_index or self.skip_to)


async def _run_once(
    shop: Shop, node: DevLightningNode, until: Callable[[], Awaitable[bool]] | None = None
) -> None:
    task = asyncio.create_task(listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue))
    for _ in range(30):
        await asyncio.sleep(0.01)
        if until is not None and await until():
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_a_node_error_while_reconciling_leaves_no_cursor_that_skips_older_settlements() -> (
    None
):
    shop = await new_shop()
    node = _NoReplayFromZero(clock=shop.clock)
    shop.rails = PaymentRails(lightning=node, fiat={})
    older = await shop.renew(await shop.order())
    shop.clock.advance(timedelta(seconds=1))
    newer = await shop.renew(await shop.order(BOB))
    await node.settle(older.id)
    settled_newer = await node.settle(newer.id)  # both while no listener ran (first start)
    node.skip_to = settled_newer.settle_index  # as LND: from 0 the stream replays nothing
    node.fail_for = {older.id}  # LND restarts while the older one is looked up

    await _run_once(shop, node)  # first start: checks `newer`, fails on `older`
    assert (await shop.payment(newer.id)).is_paid
    assert not (await shop.payment(older.id)).is_paid
    assert not await _cursor(shop)  # not the newer one's index: that would skip `older`

    await _run_once(shop, node)  # the next start reconciles again and finds it
    assert (await shop.payment(older.id)).is_paid
    # all checked: the cursor is stored (the stream replays `newer` after it, harmlessly)
    assert await _cursor(shop) == settled_newer.settle_index
    paid_once = shop.clock.now() + timedelta(days=28)  # 31 Jan → 28 Feb, not 28 Mar
    assert (await shop.subscription(await shop.vm(1))).expires == paid_once


async def test_while_a_reconciliation_is_incomplete_live_settlements_do_not_move_the_cursor() -> (
    None
):
    shop = await new_shop()
    node = _Flaky(clock=shop.clock)
    shop.rails = PaymentRails(lightning=node, fiat={})
    missed = await shop.renew(await shop.order())
    await node.settle(missed.id)
    node.fail_for = {missed.id}
    live = await shop.renew(await shop.order(BOB))

    async def live_paid() -> bool:
        return (await shop.payment(live.id)).is_paid

    task = asyncio.create_task(listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue))
    await asyncio.sleep(0.05)
    await node.settle(live.id)
    for _ in range(100):
        if await live_paid():
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert await live_paid()  # live payments are still taken ...
    assert not await _cursor(shop)  # ... but the next start reconciles again


async def test_a_first_start_after_paid_payments_still_reconciles_the_older_unpaid_ones() -> None:
    """No cursor yet, but a Lightning payment was paid (an earlier release, or a database
    adopted from another system): the stream picks up after the newest paid settlement, and
    an older invoice settled while nothing listened is still found and completed."""
    shop = await new_shop()
    node = _NoReplayFromZero(clock=shop.clock)
    shop.rails = PaymentRails(lightning=node, fiat={})
    older = await shop.renew(await shop.order())
    shop.clock.advance(timedelta(seconds=1))
    newer = await shop.renew(await shop.order(BOB))
    await node.settle(older.id)  # settled, never completed here
    settled_newer = await node.settle(newer.id)
    await shop.complete(newer)  # completed (by the system before), no cursor stored
    node.skip_to = settled_newer.settle_index
    assert await _cursor(shop) is None

    await _run_once(shop, node)

    assert (await shop.payment(older.id)).is_paid
    assert await _cursor(shop) == settled_newer.settle_index
