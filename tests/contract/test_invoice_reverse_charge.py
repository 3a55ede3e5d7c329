"""An invoice states reverse charge exactly as its quote decided it, with the tax the quote
charged, however the buyer's VAT flags changed before the (stale) quote was paid; on memory,
SQLite and MariaDB, for purchase, renewal, LNURL and upgrade quotes; the CSV export agrees."""

from __future__ import annotations

from decimal import Decimal

import attrs
import pytest

from adapters.http.admin.routes_invoices import CSV_COLUMNS, csv_row
from app.billing.lnurl import renew_by_amount
from domain.invoice import Invoice
from domain.model import SubscriptionPayment, Vm
from domain.tax import TaxRates
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

# pytest fixtures: one migrated database per backend for the module, emptied per test
database = storage_backends.database
world = lifecycle_world.world

KINDS = ("purchase", "renewal", "lnurl", "upgrade")
#: an IE seller, a DE buyer: 19 % unless the buyer's VAT id is validated (reverse charge)
RATES = TaxRates.from_config({"IE": 23, "DE": 19})
REVERSE_COLUMN = CSV_COLUMNS.index("reverse_charge")


async def _buyer_validated(world: World, validated: bool) -> None:
    async with world.shop.factory() as uow:
        user = await uow.users.get(ALICE)
        assert user is not None
        await uow.users.update(
            attrs.evolve(
                user,
                billing_name="Alice GmbH",
                country_code="DE",
                billing_tax_id="DE123",
                billing_vat_validated=validated,
            )
        )
        await uow.commit()


async def _seller_in_ireland(world: World) -> None:
    async with world.shop.factory() as uow:
        company = await uow.companies.get(1)
        assert company is not None
        await uow.companies.update(attrs.evolve(company, country_code="IE", tax_id="IE9"))
        await uow.commit()


async def _quote(world: World, vm: Vm, kind: str) -> SubscriptionPayment:
    shop = world.shop
    if kind == "purchase":
        return await shop.renew(vm)
    await shop.complete(await shop.renew(vm))  # paid once: renewals, LNURL and upgrades
    if kind == "renewal":
        return await shop.renew(vm)
    if kind == "lnurl":
        return await renew_by_amount(
            shop.factory,
            shop.clock,
            shop.rails,
            shop.rates,
            shop.tax_rates,
            vm_id=vm.id,
            amount_msat=2_000_000,
        )
    return await upgrade_payment(shop, vm)


async def _invoice_after_flip(world: World, kind: str, validated_at_quote: bool) -> Invoice:
    """Quote with the buyer's flags one way, flip the validation (an operator), then pay."""
    world.shop.tax_rates = RATES
    await _seller_in_ireland(world)
    await _buyer_validated(world, validated_at_quote)
    vm = await world.shop.order()
    payment = await _quote(world, vm, kind)
    await _buyer_validated(world, not validated_at_quote)
    assert (await world.shop.complete(payment)).completed
    async with world.shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(payment.id)
    assert invoice is not None
    return invoice


@pytest.mark.parametrize("kind", KINDS)
async def test_a_quote_that_charged_vat_is_not_invoiced_as_reverse_charge(
    world: World, kind: str
) -> None:
    invoice = await _invoice_after_flip(world, kind, validated_at_quote=False)
    doc = invoice.document
    assert not doc.reverse_charge
    assert csv_row(invoice)[REVERSE_COLUMN] == "0"
    if kind == "upgrade":  # upgrades charge no tax (§8.2)
        assert doc.tax == 0
    else:
        assert doc.tax > 0 and {line.tax_rate for line in doc.lines if line.tax} == {Decimal(19)}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_reverse_charged_quote_is_invoiced_as_reverse_charge(
    world: World, kind: str
) -> None:
    invoice = await _invoice_after_flip(world, kind, validated_at_quote=True)
    doc = invoice.document
    assert doc.tax == 0 and doc.reverse_charge
    assert csv_row(invoice)[REVERSE_COLUMN] == "1"
