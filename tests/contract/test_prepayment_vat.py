"""Money a Lightning payer sends beyond an invoice is a prepayment: credited net of VAT, its
VAT on that payment's invoice, so the VAT on every cent received is declared exactly once,
also after the credit pays a renewal; on memory, SQLite and MariaDB."""

from __future__ import annotations

from decimal import Decimal

from adapters.http.admin.routes_invoices import CSV_COLUMNS, csv_row
from app.billing.completion import CompletionReport, complete_payment
from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditReason
from domain.exchange import msat_to_fiat
from domain.invoice import InvoiceLine
from domain.model import SubscriptionPayment
from domain.overpayment import invoice_note
from domain.prepayment import PREPAYMENT_LINE
from domain.tax import tax_on
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, BOB, Shop

database = storage_backends.database
shop = lifecycle_world.shop

RATE = Decimal(100_000)  # the fake rates' EUR per BTC: 1 cent is 10 000 msat
VAT = Decimal(23)  # ALICE's country (IE); BOB has none: 0 %
EXCESS_MSAT = 10_000_000  # EUR 10.00 sent beyond the invoice


async def _overpay(shop: Shop, payment: SubscriptionPayment, msat: int) -> CompletionReport:
    return await complete_payment(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.queue,
        payment_id=payment.id,
        received_msat=payment.total + msat,
    )


async def test_the_vat_on_overpaid_money_is_declared_once_also_after_the_credit_is_spent(
    shop: Shop,
) -> None:
    """The reviewer's figures: EUR 10.00 overpaid at 23 %, then a renewal (EUR 1.32 net)
    paid from the credit. Before, EUR 10.00 of net credit was booked with no invoice and
    the renewal's VAT was taken off again: 30 cents declared against 60 due."""
    vm = await shop.order(ALICE)
    first = await shop.renew(vm)
    assert (await _overpay(shop, first, EXCESS_MSAT)).completed
    # a replayed settlement books nothing more (D9)
    assert not (await _overpay(shop, first, EXCESS_MSAT)).completed

    # EUR 10.00 received for later: 8.13 net credited (floor(1000 / 1.23)), 1.87 VAT
    assert await shop.balances(ALICE) == {"EUR": 813}
    async with shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(first.id.hex() + "/excess")
    assert [(e.reason, e.amount) for e in entries] == [(CreditReason.OVERPAYMENT, 813)]

    one = await shop.invoice(first)
    doc = one.document
    service, prepaid = doc.lines
    assert (service.net, service.tax) == (132, 30)
    assert prepaid == InvoiceLine(description=PREPAYMENT_LINE, net=813, tax_rate=VAT, tax=187)
    # the lines add up to all that was received: the invoice's own total and the excess
    assert one.total == doc.total == msat_to_fiat(first.total, RATE) + 1000 == 1162
    assert (one.net, one.tax) == (945, 217)
    assert doc.btc_msat == first.total + EXCESS_MSAT
    assert doc.overpaid is not None
    assert "as a prepayment" in invoice_note(doc.overpaid, "EUR 8.13")
    # the export carries it: net, tax and total of the invoice row
    row = dict(zip(CSV_COLUMNS, csv_row(one), strict=True))
    assert (row["net"], row["tax"], row["total"], row["charged"]) == ("945", "217", "1162", "1162")

    # the credit pays the next renewal: its VAT was declared with the prepayment already
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    second = await shop.renew(vm, settle=settle)
    two = await shop.invoice(second)
    assert [(line.net, line.tax) for line in two.document.lines] == [(132, 30), (-132, -30)]
    assert two.total == 0 and two.tax == 0
    assert await shop.balances(ALICE) == {"EUR": 681}

    # every cent received is net (services sold, credit unspent) or declared VAT, once
    received = one.total + two.total
    sold_net, unspent = 132 + 132, 681
    declared = one.tax + two.tax
    assert declared == received - sold_net - unspent == 217
    # at least the VAT due on what was sold plus what the unspent credit will bear
    assert declared >= tax_on(sold_net, VAT) + tax_on(unspent, VAT) == 60 + 156
    # and the credit is never worth more than the money received
    assert 813 + tax_on(813, VAT) <= 1000


async def test_a_buyer_charged_no_vat_gets_all_the_excess_as_credit(shop: Shop) -> None:
    """At 0 % (no rate for the country; reverse charge quotes 0 % too) net is all of it."""
    vm = await shop.order(BOB)
    payment = await shop.renew(vm)
    assert payment.tax == 0
    assert (await _overpay(shop, payment, 1_239_000)).completed  # 123.9 cents
    assert await shop.balances(BOB) == {"EUR": 123}
    doc = (await shop.invoice(payment)).document
    assert doc.lines[-1] == InvoiceLine(
        description=PREPAYMENT_LINE, net=123, tax_rate=Decimal(0), tax=0
    )
    assert doc.total == msat_to_fiat(payment.total, RATE) + 123


async def test_an_excess_too_small_to_leave_a_unit_net_is_neither_credited_nor_invoiced(
    shop: Shop,
) -> None:
    """1 cent at 23 % is 0 net: as an excess worth less than a cent, nothing is booked and
    the invoice is the payment's own (it notes the excess)."""
    vm = await shop.order(ALICE)
    payment = await shop.renew(vm)
    report = await _overpay(shop, payment, 10_000)
    assert report.completed
    assert await shop.balances(ALICE) == {}
    doc = (await shop.invoice(payment)).document
    assert [line.description for line in doc.lines] == [doc.lines[0].description]
    assert doc.total == msat_to_fiat(payment.total, RATE)
    assert doc.btc_msat == payment.total
    assert doc.overpaid is not None and doc.overpaid.credited == 0
