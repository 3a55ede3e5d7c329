"""A refund of time bought by a short Lightning settlement an admin completed as paid (the rest
waived), on memory, SQLite and MariaDB: every refund path values it at what arrived, net of
VAT, as its invoice states it, never at the amount that was asked."""

from __future__ import annotations

from datetime import timedelta

from app.billing.completion import complete_payment
from domain.admin_completion import AdminCompletion, NodeSettlement
from domain.model import Vm
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import REFUND_PATHS, RefundPath
from tests.unit.billing.world import BOB, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: a tenth of the 1 624 000 msat asked (EUR 1.32 + 23 % VAT at 100 000 EUR/BTC) arrived:
#: 162 400 msat, 132 032 msat net of VAT, worth 13.2 cents; its invoice states 13 net
ARRIVED_NET_CENTS = 13


async def _short_settled_vm(shop: Shop) -> Vm:
    """A VM whose month was paid by a Lightning settlement of a tenth of its price, which an
    admin completed as paid (the rest waived); a minute of it used."""
    vm = await shop.order()
    payment = await shop.renew(vm)
    assert payment.total == 1_624_000
    await complete_payment(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.queue,
        payment_id=payment.id,
        by_admin=AdminCompletion(
            admin_id=BOB,
            settlement=NodeSettlement.COUNTED,
            short_received_msat=payment.total // 10,
        ),
    )
    assert (await shop.invoice(payment)).net == ARRIVED_NET_CENTS
    shop.clock.advance(timedelta(minutes=1))
    shop.queue.sent.clear()
    return vm


@REFUND_PATHS
async def test_a_short_settlements_time_is_refunded_at_what_arrived(
    shop: Shop, path: RefundPath
) -> None:
    """The month's unused time is worth 13 cents (what arrived for it, net), not the 131 its
    price would give: the waived shortfall never becomes credit nor money paid back."""
    vm = await _short_settled_vm(shop)

    assert await path(shop, vm) == ARRIVED_NET_CENTS
