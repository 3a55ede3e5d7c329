"""Credit notes never take back an invoice's prepayment to account credit (the money stays on
the balance, spendable): a refund by hand and an admin's note stop at the invoice's service
part, net and VAT; an invoice without a prepayment is capped by its total as before; on
memory, SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta

import pytest

from domain.errors import InvalidInput
from domain.invoice import Invoice
from domain.model import SubscriptionPayment, Vm
from domain.prepayment import PREPAYMENT_LINE
from ports.jobs import SendAdminNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import DAYS_USED, by_hand, records
from tests.contract.test_prepayment_vat import EXCESS_MSAT, _overpay
from tests.contract.test_upgrade_prepayment_vat import _overpay as _overpay_upgrade
from tests.contract.test_upgrade_prepayment_vat import _upgrade
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop

#: a month of the plan at 23 %: what the service line of the overpaying invoice charged
SERVICE_NET, SERVICE_TAX = 132, 30
#: EUR 10.00 overpaid at 23 %: 8.13 credited, 1.87 VAT on the prepayment line
CREDITED, PREPAID_TAX = 813, 187


async def _overpaid_vm(shop: Shop) -> tuple[Vm, Invoice]:
    """ALICE's VM, its month paid with EUR 10.00 more (a prepayment line), 4 days used."""
    vm = await shop.order(ALICE)
    payment = await shop.renew(vm)
    assert (await _overpay(shop, payment, EXCESS_MSAT)).completed
    invoice = await shop.invoice(payment)
    assert invoice.total == SERVICE_NET + SERVICE_TAX + CREDITED + PREPAID_TAX
    assert invoice.document.lines[-1].description == PREPAYMENT_LINE
    shop.clock.advance(timedelta(days=DAYS_USED))
    shop.queue.sent.clear()
    return vm, invoice


async def test_a_refund_by_hand_stops_at_the_service_part_of_an_overpaid_invoice(
    shop: Shop,
) -> None:
    """24 unused days (1.13 and its VAT), but an admin's note took 1.00 of the month's 1.62
    back before: the refund's note takes the rest of the month's net and VAT (0.62), not the
    10.00 prepaid, which stays as credit; the rest of the value is named as not paid."""
    vm, invoice = await _overpaid_vm(shop)
    first = await shop.credit_note(invoice, 100)

    await by_hand(shop, vm)

    [_, note] = await shop.credit_notes(invoice)
    assert (note.amount, note.net, note.tax) == (
        SERVICE_NET + SERVICE_TAX - 100,
        SERVICE_NET - (first.net or 0),
        SERVICE_TAX - (first.tax or 0),
    )
    assert await shop.balances(ALICE) == {"EUR": CREDITED}  # the prepaid money, still credit
    [record] = await records(shop, vm)
    assert record["credited"] == f"{SERVICE_NET + SERVICE_TAX - 100} EUR (smallest units)"
    uncovered = int(str(record["value"]).split()[0]) - (note.net or 0)
    assert uncovered > 0 and record["uncovered"] == f"{uncovered} EUR (smallest units)"
    assert record["uncovered_amount"] == uncovered
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification)
    assert "Capped" in notice.message and f"{uncovered} EUR" in notice.message


async def test_an_admins_note_may_take_back_the_service_part_only(shop: Shop) -> None:
    _, invoice = await _overpaid_vm(shop)

    with pytest.raises(InvalidInput, match="less its prepayment to account credit"):
        await shop.credit_note(invoice, invoice.total)
    with pytest.raises(InvalidInput, match=r"\(0 of 162 already credited\)"):
        await shop.credit_note(invoice, SERVICE_NET + SERVICE_TAX + 1)
    first = await shop.credit_note(invoice, 100)
    last = await shop.credit_note(invoice, SERVICE_NET + SERVICE_TAX - 100)
    with pytest.raises(InvalidInput, match=r"\(162 of 162 already credited\)"):
        await shop.credit_note(invoice, 1)

    # the two notes take back exactly the service line's net and VAT, none of the prepayment
    assert (first.net, first.tax) == (81, 19)
    assert (first.net or 0) + (last.net or 0) == SERVICE_NET
    assert (first.tax or 0) + (last.tax or 0) == SERVICE_TAX
    assert await shop.credit_notes(invoice) == [first, last]


async def test_a_note_on_an_overpaid_untaxed_upgrade_bears_no_vat(shop: Shop) -> None:
    """The upgrade charged no tax, nor does its excess's prepayment line (VAT-free credit):
    its notes are all net and stop at the upgrade's own line."""
    payment: SubscriptionPayment = await _upgrade(shop)
    assert (await _overpay_upgrade(shop, payment)).completed
    invoice = await shop.invoice(payment)
    service = invoice.document.lines[0]
    assert service.tax == 0 and invoice.tax == 0
    assert invoice.total == service.net + 1000  # the EUR 10.00 excess, whole, at 0 %

    note = await shop.credit_note(invoice, service.net)

    assert (note.net, note.tax) == (service.net, 0)
    with pytest.raises(InvalidInput, match="prepayment"):
        await shop.credit_note(invoice, 1)


async def test_an_invoice_without_a_prepayment_is_still_capped_by_its_total(shop: Shop) -> None:
    vm = await shop.order(ALICE)
    payment = await shop.renew(vm)
    assert (await shop.complete(payment)).completed
    invoice = await shop.invoice(payment)
    assert invoice.total == SERVICE_NET + SERVICE_TAX

    note = await shop.credit_note(invoice, invoice.total)

    assert (note.net, note.tax) == (invoice.net, invoice.tax)
    with pytest.raises(InvalidInput, match=r"exceed the invoice total \(162 of 162"):
        await shop.credit_note(invoice, 1)
