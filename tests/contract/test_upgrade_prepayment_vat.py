"""Money overpaid on an (untaxed) upgrade bore no VAT, as the upgrade's own money did not: it
is kept whole as VAT-free account credit (no VAT declared now; the taxed supply it later pays
declares it), as an upgrade paid but not applied is, on memory, SQLite and MariaDB."""

from __future__ import annotations

from decimal import Decimal

import attrs

from app.billing.completion import CompletionReport, complete_payment
from app.billing.credit_overpayment import credit_settled_after_admin
from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditParts
from domain.credit import payment_meta
from domain.credit_note import creditable_parts
from domain.enums import PaymentMethod
from domain.invoice import InvoiceLine
from domain.model import SubscriptionPayment
from domain.overpayment import overpaid_of
from domain.prepayment import PREPAYMENT_LINE
from domain.tax import CREDIT_TAX_RATE_KEY, TAX_RATE_KEY, TaxRates, tax_on
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop

EXCESS_MSAT = 10_000_000  # EUR 10.00 at the fake 100 000 EUR/BTC
VAT = Decimal(23)  # ALICE's country (IE)


async def _upgrade(shop: Shop) -> SubscriptionPayment:
    """A Lightning upgrade quoted to ALICE, her VM paid once before."""
    vm = await shop.order(ALICE)
    assert (await shop.complete(await shop.renew(vm))).completed
    return await upgrade_payment(shop, vm, tax_rates=shop.tax_rates)


async def _overpay(shop: Shop, payment: SubscriptionPayment) -> CompletionReport:
    return await complete_payment(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.queue,
        payment_id=payment.id,
        received_msat=payment.total + EXCESS_MSAT,
    )


async def _excess_entries(shop: Shop, payment: SubscriptionPayment) -> list[tuple[int, int]]:
    """(amount, VAT-free part) of each ledger entry of the payment's excess."""
    async with shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment.id.hex() + "/excess")
    return [(entry.amount, entry.vat_free) for entry in entries]


async def _parts(shop: Shop) -> CreditParts:
    async with shop.factory() as uow:
        return await uow.credit_ledger.lock_parts(ALICE, "EUR")


async def test_an_overpaid_upgrade_keeps_its_excess_whole_as_vat_free_credit(
    shop: Shop,
) -> None:
    """EUR 10.00 overpaid by an IE buyer (23 %) on a Lightning upgrade: 10.00 of VAT-free
    credit and no VAT on its invoice, as an upgrade not applied is kept (before: 8.13 of
    ordinary credit and 1.87 VAT declared, money that then paid an upgrade as 8.13)."""
    up = await _upgrade(shop)
    assert up.tax == 0
    meta = payment_meta(up)
    # the upgrade charges no tax (its `tax_rate` unrecorded); the credit rate is recorded
    assert TAX_RATE_KEY not in meta and meta[CREDIT_TAX_RATE_KEY] == "23"
    assert (await _overpay(shop, up)).completed
    # a replayed settlement books nothing more
    assert not (await _overpay(shop, up)).completed
    assert await _parts(shop) == CreditParts(1000, 1000)
    assert await _excess_entries(shop, up) == [(1000, 1000)]
    excess = overpaid_of(payment_meta(await shop.payment(up.id)))
    assert excess is not None and excess.vat_free
    assert (excess.credited, excess.tax, excess.tax_rate) == (1000, 0, Decimal(0))

    invoice = await shop.invoice(up)
    upgrade_line, prepaid = invoice.document.lines
    assert (upgrade_line.tax, upgrade_line.tax_rate) == (0, Decimal(0))  # as before
    assert prepaid == InvoiceLine(description=PREPAYMENT_LINE, net=1000, tax_rate=Decimal(0), tax=0)
    assert (invoice.net, invoice.tax) == (upgrade_line.net + 1000, 0)
    assert invoice.total == upgrade_line.net + 1000
    # notes never take the prepayment back: all of them end on the upgrade's own line
    assert creditable_parts(invoice) == (upgrade_line.net, 0)


async def test_a_renewal_paid_from_an_upgrades_excess_declares_its_vat(shop: Shop) -> None:
    """The VAT the excess did not bear is declared when it pays a taxed renewal: the 10.00
    (less than the upgraded VM's month with VAT) pays 8.13 of its net and 1.87 of VAT,
    which the renewal's invoice declares; the rest is charged as usual."""
    up = await _upgrade(shop)
    assert (await _overpay(shop, up)).completed
    async with shop.factory() as uow:
        found = await uow.vms.get_by_subscription(up.subscription_id)
    assert found is not None
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    renewal = await shop.renew(found, method=PaymentMethod.REVOLUT, settle=settle)
    applied = renewal.metadata["credit_applied"]
    assert (applied["vat_free"], applied["vat_free_net"], applied["vat"]) == (1000, 813, 187)
    assert renewal.amount > 0 and renewal.tax == tax_on(renewal.amount, VAT)
    assert (await shop.complete(renewal)).completed
    invoice = await shop.invoice(renewal)
    assert invoice.tax == 187 + renewal.tax  # the credit's VAT declared here, once
    assert invoice.total == renewal.total
    assert await _parts(shop) == CreditParts(0, 0)


async def test_a_reverse_charged_buyer_gets_all_the_excess_of_an_upgrade_as_credit(
    shop: Shop,
) -> None:
    """Reverse charged at quote time: all of the excess credited, VAT-free (it bore no VAT;
    on the buyer's untaxed quotes it counts whole), the invoice still reverse charged."""
    shop.tax_rates = TaxRates.from_config({"IE": 23, "DE": 19})
    async with shop.factory() as uow:
        company = await uow.companies.get(1)
        assert company is not None
        await uow.companies.update(attrs.evolve(company, country_code="IE", tax_id="IE9"))
        user = await uow.users.get(ALICE)
        assert user is not None
        german = attrs.evolve(
            user,
            billing_name="Alice GmbH",
            country_code="DE",
            billing_tax_id="DE123",
            billing_vat_validated=True,
        )
        await uow.users.update(german)
        await uow.commit()
    up = await _upgrade(shop)
    assert payment_meta(up)[CREDIT_TAX_RATE_KEY] == "0"
    async with shop.factory() as uow:  # an operator withdraws the validation before payment
        await uow.users.update(attrs.evolve(german, billing_vat_validated=False))
        await uow.commit()
    assert (await _overpay(shop, up)).completed
    assert not (await _overpay(shop, up)).completed
    assert await shop.balances() == {"EUR": 1000}
    assert await _excess_entries(shop, up) == [(1000, 1000)]
    doc = (await shop.invoice(up)).document
    assert doc.reverse_charge and doc.tax == 0
    assert doc.lines[-1] == InvoiceLine(
        description=PREPAYMENT_LINE, net=1000, tax_rate=Decimal(0), tax=0
    )


async def test_an_upgrade_quoted_before_credit_rates_were_recorded_keeps_it_vat_free(
    shop: Shop,
) -> None:
    """No `credit_tax_rate` in its metadata (quoted before): all of it, VAT-free (before:
    10.00 of ordinary credit, net value whose VAT nobody declared)."""
    up = await _upgrade(shop)
    async with shop.factory() as uow:
        meta = {k: v for k, v in payment_meta(up).items() if k != CREDIT_TAX_RATE_KEY}
        await uow.payments.update(attrs.evolve(up, metadata=meta))
        await uow.commit()
    assert (await _overpay(shop, up)).completed
    assert await _parts(shop) == CreditParts(1000, 1000)


async def test_money_paid_after_an_admin_completed_an_upgrade_is_vat_free_credit(
    shop: Shop,
) -> None:
    """The paid-after-admin path values the money as an upgrade's excess: whole, VAT-free,
    no VAT for the admins to declare; once."""
    up = await _upgrade(shop)
    assert (await shop.complete(up)).completed
    async with shop.factory() as uow:
        paid = await uow.payments.get(up.id)
        assert paid is not None
        credit, replayed = await credit_settled_after_admin(
            uow, paid, "EUR", EXCESS_MSAT, shop.clock.now()
        )
        await uow.commit()
    assert not replayed
    assert (credit.credited, credit.tax, credit.vat_free) == (1000, 0, True)
    async with shop.factory() as uow:
        paid = await uow.payments.get(up.id)
        assert paid is not None
        _, replayed = await credit_settled_after_admin(
            uow, paid, "EUR", EXCESS_MSAT, shop.clock.now()
        )
        await uow.commit()
    assert replayed
    assert await _parts(shop) == CreditParts(1000, 1000)


async def test_an_overpaid_upgrade_not_applied_is_vat_free_credit_whole(shop: Shop) -> None:
    """Outdated when paid (a renewal moved its expiry) and overpaid by EUR 10.00: its own
    money and the excess are both VAT-free credit, its invoice two prepayment lines at 0 %."""
    vm = await shop.order(ALICE)
    assert (await shop.complete(await shop.renew(vm))).completed
    up = await upgrade_payment(shop, vm, tax_rates=shop.tax_rates)
    assert (await shop.complete(await shop.renew(vm))).completed  # the quote is outdated now
    assert (await _overpay(shop, up)).completed

    invoice = await shop.invoice(up)
    kept, excess = invoice.document.lines
    assert kept.description == excess.description == PREPAYMENT_LINE
    assert (kept.tax_rate, kept.tax, excess.tax_rate, excess.tax) == (Decimal(0), 0, Decimal(0), 0)
    assert excess.net == 1000 and kept.net > 0
    assert (invoice.tax, invoice.total) == (0, kept.net + 1000)
    assert await _parts(shop) == CreditParts(kept.net + 1000, kept.net + 1000)
    assert creditable_parts(invoice) == (0, 0)
