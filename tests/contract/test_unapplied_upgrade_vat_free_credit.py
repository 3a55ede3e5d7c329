"""An upgrade paid but not applied is kept whole as VAT-free account credit (upgrades bear no
VAT), end to end on memory, SQLite and MariaDB, for an IE buyer (23 %): its invoice bills
the prepayment without VAT; a quote of the same upgrade counts that credit whole; a renewal
paid from it declares the VAT in it and buys what that money buys with VAT included."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditParts
from domain.enums import PaymentMethod
from domain.invoice import InvoiceLine
from domain.model import SubscriptionPayment, Vm
from domain.overpayment import prepayment_split
from domain.prepayment import PREPAYMENT_LINE
from domain.tax import tax_on
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop
VAT = Decimal(23)  # ALICE's country (IE)
CARD = PaymentMethod.REVOLUT


def _settle(shop: Shop) -> Any:
    return completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)


async def _parts(shop: Shop) -> CreditParts:
    async with shop.factory() as uow:
        return await uow.credit_ledger.lock_parts(ALICE, "EUR")


async def _not_applied(shop: Shop) -> tuple[Vm, SubscriptionPayment]:
    """ALICE pays an upgrade by card after a renewal moved the expiry its price ran to."""
    vm = await shop.order(ALICE)
    assert (await shop.complete(await shop.renew(vm))).completed
    upgrade = await upgrade_payment(shop, vm, method=CARD, tax_rates=shop.tax_rates)
    assert upgrade.tax == 0 and upgrade.amount > 0
    assert (await shop.complete(await shop.renew(vm))).completed  # the quote is outdated now
    assert (await shop.complete(upgrade)).completed
    return vm, await shop.payment(upgrade.id)


async def test_an_unapplied_upgrade_is_credited_whole_as_vat_free_credit(shop: Shop) -> None:
    _, paid = await _not_applied(shop)

    assert await _parts(shop) == CreditParts(paid.amount, paid.amount)
    invoice = await shop.invoice(paid)
    assert invoice.document.lines == (
        InvoiceLine(description=PREPAYMENT_LINE, net=paid.amount, tax_rate=Decimal(0), tax=0),
    )
    assert (invoice.tax, invoice.total) == (0, paid.amount)


async def test_a_quote_of_the_same_upgrade_counts_that_credit_whole(shop: Shop) -> None:
    vm, paid = await _not_applied(shop)
    price = (await upgrade_payment(shop, vm, method=CARD, tax_rates=shop.tax_rates)).amount

    again = await upgrade_payment(
        shop, vm, method=CARD, tax_rates=shop.tax_rates, settle=_settle(shop)
    )

    applied = again.metadata["credit_applied"]
    assert applied["amount"] == applied["charged"] == min(paid.amount, price)
    assert again.amount == max(0, price - paid.amount)  # only what the credit does not pay


async def test_a_renewal_from_that_credit_declares_its_vat_and_buys_what_it_is_worth(
    shop: Shop,
) -> None:
    vm, paid = await _not_applied(shop)
    credit = paid.amount

    renewal = await shop.renew(vm, method=CARD, settle=_settle(shop))

    gross_month = PLAN_EUR_CENTS + tax_on(PLAN_EUR_CENTS, VAT)
    if credit >= gross_month:  # the month paid as in money: 1.32 + 0.30
        net, vat = PLAN_EUR_CENTS, tax_on(PLAN_EUR_CENTS, VAT)
    else:  # all of it, split as VAT-inclusive money: never more net than it is worth
        net, vat = prepayment_split(credit, VAT)
    applied = renewal.metadata["credit_applied"]
    assert (applied["vat_free_net"], applied["vat"]) == (net, vat)
    assert renewal.amount == PLAN_EUR_CENTS - net
    if not renewal.is_paid:
        assert (await shop.complete(renewal)).completed
    invoice = await shop.invoice(renewal)
    assert invoice.tax == vat + renewal.tax  # the credit's VAT declared on this invoice
    assert invoice.total == renewal.total
