"""A first start replays the node's settlements after the newest payment the node invoiced.

Without a stored cursor the stream starts after the settle index of `replay_point`'s payment;
LND replays nothing from 0, and the reconciliation only looks back a day. A newer paid
payment the node never invoiced (a quote paid from account credit alone keeps the Lightning
method; a card payment) must not be that point: its lookup finds nothing, the stream would
start at 0, and an invoice settled while no listener ran, created over a day before, would
never be completed.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from adapters.lightning.dev import DevLightningNode
from app.billing.credit_balance import adjust_credit
from app.billing.credit_quote import paid_by_credit_alone
from app.billing.credit_settle import completion_settle
from app.billing.rails import PaymentRails
from app.settlement import SETTLE_CURSOR, listen_once, replay_point
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment, Vm
from tests.unit.billing.world import ALICE, BOB, Shop, new_shop


class _LndNode(DevLightningNode):
    """LND's rule: a stream from settle index 0 replays nothing, only settlements made after
    it starts (the dev node replays from 0); records the index each stream started after."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.starts: list[int] = []

    def settlements_after(self, settle_index: int) -> Any:
        self.starts.append(settle_index)
        live = self._query_now(lambda state: state.last_settle_index)
        return super().settlements_after(settle_index or live)


async def _lnd_shop() -> tuple[Shop, _LndNode]:
    shop = await new_shop()
    node = _LndNode(clock=shop.clock)
    shop.rails = PaymentRails(node, {PaymentMethod.REVOLUT: shop.revolut})
    return shop, node


async def _paid_without_the_node(shop: Shop, vm: Vm, how: str) -> SubscriptionPayment:
    """A renewal paid with no invoice at the node: from account credit alone (it keeps the
    Lightning method), or by card."""
    if how == "card":
        payment = await shop.renew(vm, method=PaymentMethod.REVOLUT)
        await shop.complete(payment)
        return await shop.payment(payment.id)
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=10_000,
        note="test",
    )
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    payment = await shop.renew(vm, settle=settle)
    assert payment.payment_method is PaymentMethod.LIGHTNING and paid_by_credit_alone(payment)
    return payment


@pytest.mark.parametrize("how", ["credit", "card"])
async def test_a_first_start_replays_after_the_newest_invoice_the_node_settled(
    how: str,
) -> None:
    shop, node = await _lnd_shop()
    alice, bob = await shop.order(), await shop.order(BOB)
    first = await shop.renew(alice)
    handled = await node.settle(first.id)
    await shop.complete(first)  # a listener ran then (an earlier release, another system)
    missed = await shop.renew(bob)
    shop.clock.advance(timedelta(minutes=5))
    await node.settle(missed.id)  # while no listener ran
    shop.clock.advance(timedelta(days=2))  # `missed` is older than the reconciliation window
    newest = await _paid_without_the_node(shop, alice, how)
    assert newest.is_paid or (await shop.payment(newest.id)).is_paid

    assert await replay_point(shop.factory) == first.id

    task = asyncio.create_task(listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if (await shop.payment(missed.id)).is_paid:
            break
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)

    assert node.starts == [handled.settle_index]
    assert (await shop.payment(missed.id)).is_paid
    async with shop.factory() as uow:
        assert await uow.worker_cursors.get(SETTLE_CURSOR) == handled.settle_index + 1


async def test_no_invoice_paid_at_the_node_means_no_replay_point() -> None:
    """Only quotes paid from account credit: nothing the node could replay after."""
    shop, _ = await _lnd_shop()
    await _paid_without_the_node(shop, await shop.order(), "credit")
    assert await replay_point(shop.factory) is None
