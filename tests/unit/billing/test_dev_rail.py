"""The billing flow over the dev Lightning rail: real-looking BOLT11, settlement, cancellation."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.lightning.bolt11 import payment_hash_of
from adapters.lightning.dev import DevLightningNode
from app.billing.completion import complete_payment
from app.billing.rails import PaymentRails
from app.billing.renewal import renew
from app.billing.upgrades import create_upgrade_payment
from domain.upgrade import UpgradeConfig
from tests.unit.billing.world import ALICE, Shop


async def test_an_order_paid_on_the_dev_node_is_spawned_and_rival_upgrades_cancelled(
    shop: Shop,
) -> None:
    node = DevLightningNode(clock=shop.clock)
    rails = PaymentRails(node)
    vm = await shop.order_custom()
    payment = await renew(
        shop.factory, shop.clock, rails, shop.rates, shop.tax_rates, user_id=ALICE, vm_id=vm.id
    )
    assert payment_hash_of(payment.external_data) == payment.id
    settled = await node.settle(payment.id)
    report = await complete_payment(
        shop.factory, shop.clock, rails, shop.queue, payment_id=settled.payment_hash
    )
    assert report.completed and [j.kind for j in report.jobs] == ["SpawnVm"]
    assert (await shop.subscription(vm)).expires == datetime(2026, 2, 28, 12, tzinfo=UTC)

    upgrades = [
        await create_upgrade_payment(
            shop.factory,
            shop.clock,
            rails,
            shop.rates,
            user_id=ALICE,
            vm_id=vm.id,
            cfg=UpgradeConfig(new_cpu=cpu),
        )
        for cpu in (4, 6)
    ]
    await node.settle(upgrades[0].id)
    report = await complete_payment(
        shop.factory, shop.clock, rails, shop.queue, payment_id=upgrades[0].id
    )
    assert report.cancelled == (upgrades[1].id,)
    assert await node.invoice_state(upgrades[1].id) == "CANCELED"
