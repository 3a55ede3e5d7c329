"""Money overpaid on an (untaxed) upgrade is a prepayment of the buyer's taxed supplies: it
bears the rate a renewal would charge, recorded at quote time, while the upgrade's own line
keeps its 0 tax; on memory, SQLite and MariaDB."""

from __future__ import annotations

from decimal import Decimal

import attrs

from app.billing.completion import CompletionReport, complete_payment
from app.billing.credit_overpayment import credit_settled_after_admin
from domain.credit import payment_meta
from domain.invoice import InvoiceLine
from domain.model import SubscriptionPayment
from domain.prepayment import PREPAYMENT_LINE
from domain.tax import CREDIT_TAX_RATE_KEY, TAX_RATE_KEY, TaxRates
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


async def _excess_entries(shop: Shop, payment: SubscriptionPayment) -> list[int]:
    async with shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment.id.hex() + "/excess")
    return [entry.amount for entry in entries]


async def test_an_overpaid_upgrade_declares_vat_on_its_prepayment_at_the_buyers_rate(
    shop: Shop,
) -> None:
    """The reviewer's figures: EUR 10.00 overpaid by an IE buyer (23 %) on a Lightning
    upgrade: 8.13 credit and 1.87 VAT, as for a renewal; before, 10.00 credit at 0 %."""
    up = await _upgrade(shop)
    assert up.tax == 0
    meta = payment_meta(up)
    # the upgrade charges no tax (its `tax_rate` unrecorded); the credit rate is recorded
    assert TAX_RATE_KEY not in meta and meta[CREDIT_TAX_RATE_KEY] == "23"
    assert (await _overpay(shop, up)).completed
    # a replayed settlement books nothing more
    assert not (await _overpay(shop, up)).completed
    assert await shop.balances() == {"EUR": 813}
    assert await _excess_entries(shop, up) == [813]

    invoice = await shop.invoice(up)
    upgrade_line, prepaid = invoice.document.lines
    assert (upgrade_line.tax, upgrade_line.tax_rate) == (0, Decimal(0))  # as before
    assert prepaid == InvoiceLine(description=PREPAYMENT_LINE, net=813, tax_rate=VAT, tax=187)
    assert invoice.tax == 187
    assert invoice.total == upgrade_line.net + 1000


async def test_a_reverse_charged_buyer_gets_all_the_excess_of_an_upgrade_as_credit(
    shop: Shop,
) -> None:
    """Reverse charged at quote time: 0 %, all of the excess credited, the invoice still
    reverse charged; the credit rate is the quote's even if the buyer's flags change."""
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
    assert await _excess_entries(shop, up) == [1000]
    doc = (await shop.invoice(up)).document
    assert doc.reverse_charge and doc.tax == 0
    assert doc.lines[-1] == InvoiceLine(
        description=PREPAYMENT_LINE, net=1000, tax_rate=Decimal(0), tax=0
    )


async def test_an_upgrade_quoted_before_credit_rates_were_recorded_is_credited_as_then(
    shop: Shop,
) -> None:
    """No `credit_tax_rate` in its metadata (quoted before): 0 %, as it was."""
    up = await _upgrade(shop)
    async with shop.factory() as uow:
        meta = {k: v for k, v in payment_meta(up).items() if k != CREDIT_TAX_RATE_KEY}
        await uow.payments.update(attrs.evolve(up, metadata=meta))
        await uow.commit()
    assert (await _overpay(shop, up)).completed
    assert await shop.balances() == {"EUR": 1000}


async def test_money_paid_after_an_admin_completed_an_upgrade_bears_the_buyers_rate(
    shop: Shop,
) -> None:
    """The paid-after-admin path values the money as an excess: 23 % for ALICE, once."""
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
    assert (credit.credited, credit.tax, credit.tax_rate) == (813, 187, VAT)
    async with shop.factory() as uow:
        paid = await uow.payments.get(up.id)
        assert paid is not None
        _, replayed = await credit_settled_after_admin(
            uow, paid, "EUR", EXCESS_MSAT, shop.clock.now()
        )
        await uow.commit()
    assert replayed
    assert await shop.balances() == {"EUR": 813}
