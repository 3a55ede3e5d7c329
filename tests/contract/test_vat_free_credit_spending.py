"""VAT-free account credit paying renewals and upgrades, on memory, SQLite and MariaDB: on a
taxed renewal it pays net and VAT (its invoice declares the VAT), spent after the ordinary
credit; on an upgrade (untaxed) it counts whole, spent first; a no-VAT buyer's renewal
counts it whole; a quote that lapses gives each kind back as it was spent."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from app.billing.credit_balance import adjust_credit, book_in
from app.billing.credit_release import RELEASE_MARGIN, release_expired_credit
from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditParts, CreditReason, checked_entry
from domain.credit_note import credit_room
from domain.enums import PaymentMethod
from domain.intervals import add_months
from domain.invoice import VAT_FREE_CREDIT_LINE, VAT_FREE_SUPPLY_SUFFIX, Invoice
from domain.model import SubscriptionPayment, Vm
from domain.overpayment import prepayment_split
from domain.tax import tax_on
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, BOB, PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop
VAT = Decimal(23)  # ALICE's country (IE)
CARD = PaymentMethod.REVOLUT
#: what a month costs ALICE in money: 1.32 + floor(1.32 × 23 %) = 1.62
GROSS_MONTH = PLAN_EUR_CENTS + tax_on(PLAN_EUR_CENTS, VAT)


def _settle(shop: Shop) -> Any:
    return completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)


async def _paid_vm(shop: Shop, user: int = ALICE) -> Vm:
    vm = await shop.order(user)
    assert (await shop.complete(await shop.renew(vm))).completed
    return vm


async def _vat_free(shop: Shop, amount: int, user: int = ALICE) -> None:
    """`amount` EUR cents of VAT-free credit, as an upgrade paid but not applied leaves."""
    async with shop.factory() as uow:
        await book_in(
            uow,
            checked_entry(
                user_id=user,
                currency="EUR",
                amount=amount,
                reason=CreditReason.OVERPAYMENT,
                reference=f"up:{amount}",
                note="an upgrade not applied",
                created=shop.clock.now(),
                vat_free=amount,
            ),
        )
        await uow.commit()


async def _ordinary(shop: Shop, amount: int) -> None:
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=amount,
        note="t",
    )


async def _parts(shop: Shop, user: int = ALICE) -> CreditParts:
    async with shop.factory() as uow:
        return await uow.credit_ledger.lock_parts(user, "EUR")


async def _spent(shop: Shop, payment: SubscriptionPayment) -> tuple[int, int]:
    async with shop.factory() as uow:
        [entry] = [
            e
            for e in await uow.credit_ledger.list_by_reference(payment.id.hex())
            if e.reason is CreditReason.SPENT
        ]
    return entry.amount, entry.vat_free


def _lines(invoice: Invoice) -> list[tuple[str, int, Decimal, int]]:
    return [(x.description, x.net, x.tax_rate, x.tax) for x in invoice.document.lines]


async def test_vat_free_credit_pays_a_renewal_vat_included_and_its_invoice_declares_the_vat(
    shop: Shop,
) -> None:
    """2 cents more than a month's 1.62 gross: the month is paid (1.32 net + 0.30 VAT, as in
    money), the invoice declares the 0.30 and charges nothing, 0.02 stays VAT-free."""
    vm = await _paid_vm(shop)
    await _vat_free(shop, GROSS_MONTH + 2)
    before = (await shop.subscription(vm)).expires
    assert before is not None

    payment = await shop.renew(vm, method=CARD, settle=_settle(shop))

    assert payment.is_paid and payment.total == 0
    applied = payment.metadata["credit_applied"]
    assert applied == {
        "amount": GROSS_MONTH,
        "currency": "EUR",
        "charged": PLAN_EUR_CENTS,
        "vat_free": GROSS_MONTH,
        "vat_free_net": PLAN_EUR_CENTS,
        "vat": tax_on(PLAN_EUR_CENTS, VAT),
    }
    assert await _spent(shop, payment) == (-GROSS_MONTH, -GROSS_MONTH)
    assert await _parts(shop) == CreditParts(2, 2)
    assert (await shop.subscription(vm)).expires == add_months(before, 1)  # a whole month
    invoice = await shop.invoice(payment)
    what = _lines(invoice)[0][0]
    assert what.startswith("Renewal: ") and what.endswith(VAT_FREE_SUPPLY_SUFFIX)
    assert _lines(invoice) == [
        (what, PLAN_EUR_CENTS, VAT, tax_on(PLAN_EUR_CENTS, VAT)),
        (VAT_FREE_CREDIT_LINE, -GROSS_MONTH, Decimal(0), 0),
    ]
    assert (invoice.tax, invoice.total) == (tax_on(PLAN_EUR_CENTS, VAT), 0)
    assert credit_room(invoice, []) == 0  # the time paid with credit is not paid back in money


async def test_vat_free_credit_smaller_than_a_renewal_pays_its_share_and_the_rest_is_charged(
    shop: Shop,
) -> None:
    """1.00 VAT-free on a 1.32 month at 23 %: it pays floor(100 × 100 / 123) = 0.81 net and
    0.19 VAT; the 0.51 left is charged with its own 0.11 VAT (and the card fee); the
    invoice declares 0.30 and notes may take back only what was charged."""
    vm = await _paid_vm(shop)
    await _vat_free(shop, 100)

    payment = await shop.renew(vm, method=CARD, settle=_settle(shop))

    net, vat = prepayment_split(100, VAT)
    assert (net, vat) == (81, 19)
    rest = PLAN_EUR_CENTS - net
    assert (payment.amount, payment.tax) == (rest, tax_on(rest, VAT))
    applied = payment.metadata["credit_applied"]
    assert (applied["charged"], applied["vat_free_net"], applied["vat"]) == (net, net, vat)
    assert await _parts(shop) == CreditParts(0, 0)
    assert (await shop.complete(payment)).completed
    invoice = await shop.invoice(payment)
    assert invoice.tax == vat + payment.tax  # 0.19 + 0.11: never below D3 on the 1.32
    assert invoice.tax >= tax_on(PLAN_EUR_CENTS, VAT)
    assert invoice.total == payment.total
    assert credit_room(invoice, []) == payment.total


async def test_a_renewal_spends_ordinary_credit_first_then_vat_free_credit(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    await _ordinary(shop, 100)
    await _vat_free(shop, 100)

    payment = await shop.renew(vm, method=CARD, settle=_settle(shop))

    rest = PLAN_EUR_CENTS - 100  # the ordinary 1.00 is net value: 0.32 net left
    gross = rest + tax_on(rest, VAT)  # paid from the VAT-free credit, its VAT included
    assert payment.is_paid and payment.total == 0
    assert await _spent(shop, payment) == (-(100 + gross), -gross)
    assert await _parts(shop) == CreditParts(100 - gross, 100 - gross)
    invoice = await shop.invoice(payment)
    # the ordinary credit lowered the taxable base; the VAT-free credit's VAT is declared
    assert (invoice.tax, invoice.total) == (gross - rest, 0)


async def test_an_upgrade_counts_vat_free_credit_whole_and_spends_it_first(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    price = (await upgrade_payment(shop, vm, method=CARD, tax_rates=shop.tax_rates)).amount
    await _ordinary(shop, 10 * price)
    await _vat_free(shop, price - 1)

    payment = await upgrade_payment(
        shop, vm, method=CARD, tax_rates=shop.tax_rates, settle=_settle(shop)
    )

    assert payment.is_paid and payment.total == 0
    assert await _spent(shop, payment) == (-price, -(price - 1))  # whole, VAT-free first
    assert await _parts(shop) == CreditParts(10 * price - 1, 0)
    invoice = await shop.invoice(payment)
    assert invoice.tax == 0 and invoice.total == 0
    assert VAT_FREE_CREDIT_LINE not in [line[0] for line in _lines(invoice)]


async def test_a_buyer_charged_no_vat_renews_with_vat_free_credit_counted_whole(
    shop: Shop,
) -> None:
    vm = await _paid_vm(shop, BOB)  # no country: no VAT
    await _vat_free(shop, PLAN_EUR_CENTS + 5, BOB)

    payment = await shop.renew(vm, method=CARD, settle=_settle(shop), user_id=BOB)

    assert payment.is_paid and payment.total == 0
    assert await _spent(shop, payment) == (-PLAN_EUR_CENTS, -PLAN_EUR_CENTS)
    assert await _parts(shop, BOB) == CreditParts(5, 5)
    assert (await shop.invoice(payment)).tax == 0


async def test_a_lapsed_quote_gives_each_kind_of_credit_back_as_it_was_spent(
    shop: Shop,
) -> None:
    vm = await _paid_vm(shop)
    await _ordinary(shop, 50)
    await _vat_free(shop, 40)

    payment = await shop.renew(vm, method=CARD, settle=_settle(shop))

    assert not payment.is_paid and await _parts(shop) == CreditParts(0, 0)
    shop.clock.advance(timedelta(hours=2) + RELEASE_MARGIN)
    assert await release_expired_credit(shop.factory, shop.clock) == 1
    assert await _parts(shop) == CreditParts(90, 40)


async def test_a_lightning_renewal_partly_paid_by_vat_free_credit_declares_its_vat_in_euro(
    shop: Shop,
) -> None:
    """1.00 VAT-free on a Lightning renewal: valued in msat at the quote's rate (1 cent is
    10 000 msat), split as VAT-inclusive money there; the EUR invoice takes the 1.00 off
    whole and declares its VAT rounded up, never below D3's on the month."""
    vm = await _paid_vm(shop)
    await _vat_free(shop, 100)

    payment = await shop.renew(vm, method=PaymentMethod.LIGHTNING, settle=_settle(shop))

    applied = payment.metadata["credit_applied"]
    net, vat = prepayment_split(100 * 10_000, VAT)
    assert (applied["vat_free"], applied["vat_free_net"], applied["vat"]) == (100, net, vat)
    assert (await shop.complete(payment)).completed
    invoice = await shop.invoice(payment)
    assert invoice.currency == "EUR"
    [credit_line] = [x for x in _lines(invoice) if x[0] == VAT_FREE_CREDIT_LINE]
    assert credit_line[1:] == (-100, Decimal(0), 0)
    [supply] = [x for x in _lines(invoice) if x[0].endswith(VAT_FREE_SUPPLY_SUFFIX)]
    assert supply[3] == -(-vat // 10_000) == 19  # 186 992 msat: 18.6992 cents, rounded up
    assert supply[1] + supply[3] == 100
    assert invoice.tax >= tax_on(PLAN_EUR_CENTS, VAT)
    assert invoice.total == invoice.document.charged
