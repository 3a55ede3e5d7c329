"""An upgrade paid but not applied bought nothing: its value is account credit, a prepayment,
so its invoice bills a "Prepayment to account credit" (all of it, without VAT: upgrades bear
none, and the credit is VAT-free, its VAT declared by the taxed supply it pays), not the
upgrade; credit notes never take that money back (it stays
spendable), nor does a refund by hand; an applied upgrade's invoice is as before; on memory,
SQLite and MariaDB."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from domain.credit_note import credit_room
from domain.errors import InvalidInput
from domain.exchange import msat_to_fiat
from domain.invoice import Invoice, InvoiceLine
from domain.model import SubscriptionPayment, Vm
from domain.prepayment import PREPAYMENT_LINE
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import by_hand
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop


async def _quoted(shop: Shop) -> tuple[Vm, SubscriptionPayment]:
    """ALICE's VM, a month paid, and a Lightning upgrade quoted to her (credit rate 23 %)."""
    vm = await shop.order(ALICE)
    assert (await shop.complete(await shop.renew(vm))).completed
    upgrade = await upgrade_payment(shop, vm, tax_rates=shop.tax_rates)
    return vm, upgrade


async def _not_applied(shop: Shop) -> tuple[Vm, SubscriptionPayment]:
    """The upgrade paid after a renewal moved the expiry its price ran to: not applied."""
    vm, upgrade = await _quoted(shop)
    assert (await shop.complete(await shop.renew(vm))).completed
    assert (await shop.complete(upgrade)).completed  # the node had settled it already
    paid = await shop.payment(upgrade.id)
    assert paid.is_paid and paid.tax == 0
    return vm, paid


def _shown(invoice: Invoice, payment: SubscriptionPayment) -> int:
    """The payment row in the invoice's currency (EUR at the quote's rate)."""
    rate = invoice.document.btc_rate
    assert invoice.currency == "EUR" and rate is not None
    return msat_to_fiat(payment.total, rate)


async def test_an_upgrade_not_applied_is_invoiced_as_a_vat_free_prepayment(shop: Shop) -> None:
    _, paid = await _not_applied(shop)

    invoice = await shop.invoice(paid)
    paid_eur = _shown(invoice, paid)
    # only the prepayment: no "Upgrade: …" line, as nothing was supplied; no VAT on it
    assert invoice.document.lines == (
        InvoiceLine(description=PREPAYMENT_LINE, net=paid_eur, tax_rate=Decimal(0), tax=0),
    )
    # the lines add up to the payment row, and the stored totals are theirs
    assert (invoice.net, invoice.tax, invoice.total) == (paid_eur, 0, paid_eur)
    assert invoice.document.supply_to is None and not invoice.document.credit_line
    # all of it is credit, VAT-free (36.74, where it was once 29.86 net of 23 %)
    assert await shop.balances() == {"EUR": paid_eur}
    async with shop.factory() as uow:
        assert await uow.credit_ledger.vat_free_balances(ALICE) == {"EUR": paid_eur}


async def test_a_credit_note_on_an_upgrade_not_applied_is_refused(shop: Shop) -> None:
    _, paid = await _not_applied(shop)
    invoice = await shop.invoice(paid)

    assert credit_room(invoice, []) == 0
    with pytest.raises(InvalidInput, match="less its prepayment to account credit"):
        await shop.credit_note(invoice, invoice.total)
    with pytest.raises(InvalidInput, match="prepayment"):
        await shop.credit_note(invoice, 1)
    assert await shop.credit_notes(invoice) == []


async def test_a_refund_by_hand_takes_back_the_service_invoices_only(shop: Shop) -> None:
    """Two months paid, the upgrade credited: the refund's notes fall on the months'
    invoices, none on the upgrade's; its credit stays on the balance."""
    vm, paid = await _not_applied(shop)
    upgrade_invoice = await shop.invoice(paid)
    credited = await shop.balances()
    shop.clock.advance(timedelta(days=4))

    await by_hand(shop, vm)

    assert await shop.credit_notes(upgrade_invoice) == []
    noted = [i for i in await shop.invoices(vm) if await shop.credit_notes(i)]
    assert noted and upgrade_invoice.id not in {i.id for i in noted}
    services = [i.document.lines[0].description.split(":")[0] for i in noted]
    assert services == ["Renewal", "Purchase"]  # newest first, the upgrade's passed over
    assert await shop.balances() == credited


async def test_an_applied_upgrades_invoice_bills_the_upgrade_as_before(shop: Shop) -> None:
    _, upgrade = await _quoted(shop)
    assert (await shop.complete(upgrade)).completed
    paid = await shop.payment(upgrade.id)

    invoice = await shop.invoice(paid)
    [line] = invoice.document.lines
    assert line.description.startswith("Upgrade: ")
    assert (line.net, line.tax, line.tax_rate) == (_shown(invoice, paid), 0, Decimal(0))
    assert invoice.document.supply_to is not None
    assert await shop.balances() == {}
    await shop.credit_note(invoice, invoice.total)  # a correction may take all of it back
    assert credit_room(invoice, await shop.credit_notes(invoice)) == 0
