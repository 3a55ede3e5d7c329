"""Lightning settlements complete payments exactly once, also across restarts and replays."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from adapters.lightning.dev import DevLightningNode
from app.billing.rails import PaymentRails
from app.settlement import listen_once, reconcile, replay_point, run_settlement_listener
from ports.lightning import LightningUnavailable, SettledInvoice
from tests.unit.billing.world import BOB, Shop, new_shop


@pytest.fixture
async def shop() -> Shop:
    return await new_shop()


async def _dev_shop(shop: Shop) -> tuple[Shop, DevLightningNode]:
    node = DevLightningNode(clock=shop.clock)
    shop.rails = PaymentRails(lightning=node, fiat={})
    return shop, node


async def test_a_settled_invoice_completes_its_payment_once(shop: Shop) -> None:
    shop, node = await _dev_shop(shop)
    vm = await shop.order()
    payment = await shop.renew(vm)
    listener = asyncio.create_task(
        listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue)
    )
    await asyncio.sleep(0)
    await node.settle(payment.id)
    for _ in range(100):
        if (await shop.payment(payment.id)).is_paid:
            break
        await asyncio.sleep(0.01)
    listener.cancel()
    sub = await shop.subscription(vm)
    assert (await shop.payment(payment.id)).is_paid
    assert sub.expires == shop.clock.now() + timedelta(days=28)  # 31 Jan → 28 Feb
    assert [j.kind for j in shop.queue.sent] == ["SpawnVm"]


async def test_a_restarted_listener_replays_missed_settlements_without_double_extension(
    shop: Shop,
) -> None:
    shop, node = await _dev_shop(shop)
    vm = await shop.order()
    first = await shop.renew(vm)
    await shop.complete(first)  # paid while a previous process was listening
    assert await replay_point(shop.factory) == first.id
    await node.settle(first.id)
    second = await shop.renew(vm)
    await node.settle(second.id)  # settled while nobody listened
    expires_before = (await shop.subscription(vm)).expires
    assert expires_before is not None

    stop = asyncio.Event()
    task = asyncio.create_task(
        run_settlement_listener(
            node, shop.factory, shop.clock, shop.rails, shop.queue, stop, retry_delay=0.01
        )
    )
    for _ in range(200):
        if (await shop.payment(second.id)).is_paid:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=2)
    after = (await shop.subscription(vm)).expires
    assert (await shop.payment(second.id)).is_paid
    # one calendar month from 28 Feb is 28 Mar: extended once, not twice
    assert after is not None and after - expires_before == timedelta(days=28)


async def test_an_unknown_settled_invoice_changes_nothing(shop: Shop) -> None:
    shop, node = await _dev_shop(shop)
    stranger = await node.create_invoice(5_000, "not ours", 600)
    task = asyncio.create_task(listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue))
    await asyncio.sleep(0)
    await node.settle(stranger.payment_hash)
    await asyncio.sleep(0.05)
    task.cancel()
    assert shop.queue.sent == []


async def _until_paid(shop: Shop, payment_id: bytes) -> None:
    for _ in range(200):
        if (await shop.payment(payment_id)).is_paid:
            return
        await asyncio.sleep(0.01)


async def test_a_settlement_nobody_heard_is_completed_once_when_the_listener_starts(
    shop: Shop,
) -> None:
    shop, node = await _dev_shop(shop)
    vm, other = await shop.order(), await shop.order(BOB)
    missed = await shop.renew(vm)
    still_open = await shop.renew(other)
    await node.settle(missed.id)  # while no listener ran (worker down, first boot, API only)
    # no paid Lightning payment yet: the stream replays nothing, only reconciliation helps
    assert await replay_point(shop.factory) is None

    listener = asyncio.create_task(
        listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue)
    )
    await _until_paid(shop, missed.id)
    listener.cancel()
    # a restarted listener reconciles again (and now replays after `missed`): nothing twice
    assert await replay_point(shop.factory) == missed.id
    again = asyncio.create_task(listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue))
    await asyncio.sleep(0.05)
    again.cancel()
    assert await reconcile(node, shop.factory, shop.clock, shop.rails, shop.queue) == 0

    assert (await shop.payment(missed.id)).is_paid
    sub = await shop.subscription(vm)
    assert sub.expires == shop.clock.now() + timedelta(days=28)  # extended once
    assert [j.kind for j in shop.queue.sent] == ["SpawnVm"]
    # an invoice nobody paid is left alone, at the node too
    assert not (await shop.payment(still_open.id)).is_paid
    assert await node.invoice_state(still_open.id) == "OPEN"


async def test_reconcile_looks_back_only_over_its_window(shop: Shop) -> None:
    shop, node = await _dev_shop(shop)
    vm = await shop.order()
    old = await shop.renew(vm)
    await node.settle(old.id)
    shop.clock.advance(timedelta(days=2))
    args = (node, shop.factory, shop.clock, shop.rails, shop.queue)
    assert await reconcile(*args, window=timedelta(days=1)) == 0
    assert not (await shop.payment(old.id)).is_paid
    assert await reconcile(*args, window=timedelta(days=3)) == 1
    assert await reconcile(*args, window=timedelta(days=3)) == 0
    assert (await shop.payment(old.id)).is_paid


class _LookupFails(DevLightningNode):
    async def lookup_settlement(self, payment_hash: bytes) -> SettledInvoice | None:
        raise LightningUnavailable("lookup refused")


async def test_a_node_error_while_reconciling_does_not_stop_the_listener(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    node = _LookupFails(clock=shop.clock)
    shop.rails = PaymentRails(lightning=node, fiat={})
    vm, other = await shop.order(), await shop.order(BOB)
    missed = await shop.renew(vm)
    await node.settle(missed.id)
    live = await shop.renew(other)
    with caplog.at_level(logging.WARNING, logger="lnvps.settlement"):
        listener = asyncio.create_task(
            listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue)
        )
        await asyncio.sleep(0.05)
        await node.settle(live.id)
        await _until_paid(shop, live.id)
        listener.cancel()
    assert (await shop.payment(live.id)).is_paid
    # the dev rail replays from settle index 0 (LND would not): the stream still gets it
    await _until_paid(shop, missed.id)
    assert (await shop.payment(missed.id)).is_paid
    assert "lookup refused" in caplog.text
