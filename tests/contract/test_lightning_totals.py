"""A Lightning payment records what its whole-sat invoice asks, on memory, SQLite and MariaDB:
the rounding is processing fee, so net, tax and the invoice's tax rate stay as quoted."""

from __future__ import annotations

from decimal import Decimal

import attrs

from app.billing.credit_balance import adjust_credit
from app.billing.credit_settle import completion_settle
from domain.exchange import fiat_to_msat, msat_to_fiat
from domain.intervals import add_months
from domain.model import SubscriptionPayment, Vm
from domain.money import MSAT_PER_SAT
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.fakes import FreshRates
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop
VAT = Decimal(23)  # the shop's IE rate


async def _paid_vm(shop: Shop) -> Vm:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    return vm


def _asked(shop: Shop, payment: SubscriptionPayment) -> int:
    return shop.node.invoices[payment.id].amount_msat


async def test_a_taxed_lightning_renewal_stores_and_invoices_what_the_payer_was_asked(
    shop: Shop,
) -> None:
    """EUR 1.32 + 23 % is 1 623 600 msat, invoiced as 1 624 sats; the payment and its
    invoice document said 1 623 600, 400 msat less than was paid."""
    vm = await _paid_vm(shop)
    payment = await shop.renew(vm)
    stored = await shop.payment(payment.id)
    assert (stored.amount, stored.tax, stored.processing_fee) == (1_320_000, 303_600, 400)
    assert stored.total == _asked(shop, payment) == 1_624_000
    before = (await shop.subscription(vm)).expires
    assert before is not None
    assert (await shop.complete(payment)).completed
    # the fee buys no time: exactly one calendar month, as quoted
    assert (await shop.subscription(vm)).expires == add_months(before, 1)
    document = (await shop.invoice(payment)).document
    assert document.btc_msat == 1_624_000
    assert [line.tax_rate for line in document.lines] == [VAT]  # 400 msat is under a cent
    assert (document.net, document.tax) == (132, 30)


async def test_a_credit_reduced_lightning_rest_keeps_its_net_and_tax_rate(shop: Shop) -> None:
    """At 97 000 EUR per BTC, 1.27 EUR of credit on a 1.32 EUR renewal leaves 51 722 msat
    net and floor(51 722 × 23 %) = 11 896 tax (D3 on the rest; a share of the whole quote's
    tax rounded up made it 11 897), invoiced as 64 sats. The 382 msat of rounding are fee:
    put in the net, they showed the 23 % VAT as 22.83 % on the invoice; left out, the
    payment recorded less than it was paid. The invoice (in EUR) shows the 1.32 bought at
    23 %, the credit as a line, and adds up to the 64 sats paid at the quote's rate."""
    shop = attrs.evolve(shop, rates=FreshRates(shop.clock, Decimal(97_000)))
    vm = await _paid_vm(shop)
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=127,
        note="test",
    )
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    payment = await shop.renew(vm, settle=settle)
    charged = payment.metadata["credit_applied"]["charged"]
    assert charged == fiat_to_msat(127, Decimal(97_000)) == 1_309_278
    stored = await shop.payment(payment.id)
    assert stored.amount == 1_361_000 - charged == 51_722  # the net quote: 1 361 sats
    assert (stored.tax, stored.processing_fee) == (11_896, 382)
    assert stored.total == _asked(shop, payment) == 64 * MSAT_PER_SAT
    assert (await shop.complete(payment)).completed
    document = (await shop.invoice(payment)).document
    assert document.btc_msat == 64 * MSAT_PER_SAT and document.btc_rate == Decimal(97_000)
    assert [line.tax_rate for line in document.lines] == [VAT, VAT]
    assert document.lines[0].net == 132 and document.credit_applied == 127
    assert document.total == msat_to_fiat(64 * MSAT_PER_SAT, Decimal(97_000)) == 6
