"""Lightning settlements complete payments exactly once, also across restarts and replays."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from adapters.lightning.dev import DevLightningNode
from app.billing.rails import PaymentRails
from app.settlement import listen_once, replay_point, run_settlement_listener
from tests.unit.billing.world import Shop, new_shop


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
