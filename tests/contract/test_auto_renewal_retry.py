"""An NWC auto-renewal that failed before any payment request reached the wallet (no fresh
exchange rate: a passing, 503-kind cause) is tried again at later runs, each retry once (D15),
and only the last failure is told; one that asked the wallet is never repeated (r6 F1). On
memory, SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import attrs
import pytest

from app.lifecycle_codes import ACTION_CODES, auto_renew_code, auto_renew_failed_code
from app.worker.context import WorkerDeps
from app.worker.lifecycle import LifecycleReport, check_subscriptions
from domain.enums import SubscriptionPaymentType
from domain.exchange import RateTable
from domain.lifecycle import LifecycleAction, auto_renew_retry_at
from domain.model import Subscription, SubscriptionPayment, Vm
from ports.nwc import NwcError
from ports.rates import RateStore
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import (
    RecordingWallet,
    engine_on,
    sql_factory,
    with_renewer,
    worker_over,
)
from tests.contract.storage_backends import Database
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world
WALLET = "nostr+walletconnect://wallet"
RUN = timedelta(seconds=30)
MINUTE = timedelta(minutes=1)


@attrs.define
class FlakyRates:
    """The shop's rates, or none at all (the feed's rate gone stale) while `down`."""

    inner: RateStore
    down: bool = False

    async def save(self, rates: object) -> None:
        return None

    async def table(self) -> RateTable:
        return RateTable() if self.down else await self.inner.table()


class RefusingWallet(RecordingWallet):
    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        self.asked.append(bolt11)
        raise NwcError("not enough sats")


async def _set_up(
    world: World, wallet: RecordingWallet | None = None
) -> tuple[Vm, Subscription, FlakyRates, RecordingWallet]:
    rates = FlakyRates(world.shop.rates)
    world.shop.rates = rates  # type: ignore[assignment]  # any RateStore will do
    asking = with_renewer(world, wallet)
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, auto_renewal_enabled=True))
        user = await uow.users.get(sub.user_id)
        assert user is not None
        await uow.users.update(attrs.evolve(user, nwc_connection_string=WALLET))
        await uow.commit()
    sub = await world.sub(vm)
    assert sub.expires is not None
    return vm, sub, rates, asking


async def _renewals(world: World, vm: Vm) -> list[SubscriptionPayment]:
    return [
        p
        for p in await world.shop.payments(vm)
        if p.payment_type is SubscriptionPaymentType.RENEWAL
    ]


async def _marks(world: World, sub: Subscription) -> dict[int, datetime]:
    assert sub.expires is not None
    async with world.shop.factory() as uow:
        return await uow.lifecycle_marks.claims(sub.id, sub.expires)


def _attempts(world: World, reports: list[LifecycleReport]) -> int:
    return sum(1 for r in reports for d in r.done if d.action is LifecycleAction.AUTO_RENEW_ATTEMPT)


async def test_a_renewal_without_a_rate_is_tried_again_and_paid_once(world: World) -> None:
    vm, sub, rates, wallet = await _set_up(world)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=20))
    rates.down = True

    first = await world.lifecycle(runs=9, step=RUN)  # 4.5 minutes: before the first retry
    assert _attempts(world, first) == 1
    assert wallet.asked == [] and await _renewals(world, vm) == []
    assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == []  # nothing told yet
    assert set(await _marks(world, sub)) == {auto_renew_code(0), auto_renew_failed_code(0)}

    rates.down = False
    later = await world.lifecycle(runs=10, step=RUN)
    assert _attempts(world, later) == 1  # the retry, once
    [renewal] = await _renewals(world, vm)
    assert wallet.asked == [renewal.external_data]
    assert len(world.notifier.titled(f"[VM{vm.id}] Auto-Renewed")) == 1
    assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == []
    assert set(await _marks(world, sub)) == {
        auto_renew_code(0),
        auto_renew_failed_code(0),
        auto_renew_code(1),
    }


async def test_retries_are_bounded_and_the_last_failure_is_told_in_time(world: World) -> None:
    """No rate for the whole window: retries back off to the window's middle, then N3 once,
    with half the window left to renew by hand; the VM stops at expiry as before."""
    vm, sub, rates, wallet = await _set_up(world)
    assert sub.expires is not None
    start = sub.expires - timedelta(hours=23, minutes=59)
    world.at(start)
    rates.down = True

    reports = await world.lifecycle(runs=24 * 60, step=MINUTE)  # until after the expiry

    attempts = _attempts(world, reports)
    # 5, 10, 20, 40, 80, then 120 minutes apart, while before the window's middle
    assert attempts == 10
    assert wallet.asked == [] and await _renewals(world, vm) == []
    [told] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
    assert "could not be created" in told.message
    assert world.host_state(vm.id) == "stopped"
    marks = await _marks(world, sub)
    last = max(k for k in range(20) if auto_renew_code(k) in marks)
    assert last == attempts - 1
    assert marks[auto_renew_code(last)] <= sub.expires - timedelta(hours=12)  # told then
    assert auto_renew_failed_code(last) not in marks  # the told failure is no retry's ground


async def test_an_attempt_that_asked_the_wallet_is_not_repeated(world: World) -> None:
    vm, sub, rates, wallet = await _set_up(world, RefusingWallet())
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=20))
    rates.down = True
    await world.lifecycle(runs=1)
    rates.down = False

    reports = await world.lifecycle(runs=16 * 60, step=MINUTE)

    assert _attempts(world, reports) == 1  # the retry, whose wallet refused
    assert len(wallet.asked) == 1
    [told] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
    assert "not enough sats" in told.message


async def test_a_failure_after_the_wallet_was_asked_is_not_retried(world: World) -> None:
    """Without a rate problem the rule is today's: one attempt per period."""
    _, sub, _, wallet = await _set_up(world, RefusingWallet())
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=20))
    reports = await world.lifecycle(runs=8 * 60, step=MINUTE)
    assert _attempts(world, reports) == 1 and len(wallet.asked) == 1
    assert set(await _marks(world, sub)) == {ACTION_CODES[LifecycleAction.AUTO_RENEW_ATTEMPT]}


async def test_two_workers_make_each_retry_once(world: World, database: Database) -> None:
    vm, sub, rates, wallet = await _set_up(world)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=20))
    rates.down = True
    await world.lifecycle(runs=1)
    rates.down = False
    world.advance(timedelta(minutes=5))

    async def race(other: WorkerDeps) -> None:
        await asyncio.gather(check_subscriptions(world.deps), check_subscriptions(other))

    if database.url is None:
        await race(worker_over(world, world.shop.factory))
    else:
        async with engine_on(database) as engine:
            await race(worker_over(world, sql_factory(engine)))
    await world.lifecycle(runs=5, step=RUN)

    [renewal] = await _renewals(world, vm)
    assert wallet.asked == [renewal.external_data]
    assert len(world.notifier.titled(f"[VM{vm.id}] Auto-Renewed")) == 1


@pytest.mark.parametrize(
    ("failures", "wait"),
    [(1, 5), (2, 10), (3, 20), (4, 40), (5, 80), (6, 120), (16, 120)],
)
async def test_retry_waits(world: World, failures: int, wait: int) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    failed = sub.expires - timedelta(days=1)
    assert auto_renew_retry_at(sub, failed, failures) == failed + timedelta(minutes=wait)
    assert auto_renew_retry_at(sub, failed, 17) is None
    assert auto_renew_retry_at(sub, sub.expires - timedelta(hours=12, minutes=4), 1) is None
    assert auto_renew_retry_at(sub, sub.expires - timedelta(hours=12, minutes=5), 1) is not None
