"""Time paid from VAT-free credit and refunded to credit comes back as ordinary net credit:
its VAT was declared on the invoice that spent the credit and no note takes it back, so
the refund is net value whose VAT is declared (as a money payment's refund is); on memory,
SQLite and MariaDB, with the figures of an IE buyer (23 %)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.billing.credit_balance import book_in
from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditParts, CreditReason, checked_entry
from domain.enums import PaymentMethod
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import DAYS_USED, UNUSED, to_credit
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop
CARD = PaymentMethod.REVOLUT
#: EUR 2.00 of VAT-free credit (an upgrade not applied, say)
VAT_FREE = 200
#: the month's VAT at 23 %: floor(1.32 × 0.23)
MONTH_VAT = 30


async def _parts(shop: Shop) -> CreditParts:
    async with shop.factory() as uow:
        return await uow.credit_ledger.lock_parts(ALICE, "EUR")


async def test_time_paid_from_vat_free_credit_is_refunded_as_net_credit_its_vat_declared_once(
    shop: Shop,
) -> None:
    """2.00 VAT-free pays a month (1.32 net + 0.30 VAT, declared on its invoice; 0.38 left).
    4 of its 28 days used, the rest refunded to credit: 1.13 of ordinary credit, no note.
    The next month takes 1.13 net from it (its VAT is in the 0.30 declared) and 0.19 net +
    0.04 VAT from the VAT-free 0.38 (0.15 left). Spent: 1.85 of the 2.00, what a customer
    paying money pays (1.62, then 1.13 back as credit and 0.23 more); VAT declared 0.30 +
    0.04, on 1.32 + 0.19 of net charged. Given back VAT-free, the 1.13 would be worth only 0.91 net
    on the renewal and its VAT declared a second time; as 1.39 VAT-free (grossed up), the
    customer whole but the operator declaring 0.26 of VAT twice (notes never take back a
    VAT-free line)."""
    vm = await shop.order(ALICE)
    async with shop.factory() as uow:
        entry = checked_entry(
            user_id=ALICE,
            currency="EUR",
            amount=VAT_FREE,
            reason=CreditReason.OVERPAYMENT,
            reference="an upgrade not applied",
            note="kept as credit",
            created=shop.clock.now(),
            vat_free=VAT_FREE,
        )
        await book_in(uow, entry)
        await uow.commit()
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)

    month = await shop.renew(vm, method=CARD, settle=settle)
    applied = month.metadata["credit_applied"]
    assert (applied["vat_free"], applied["vat_free_net"], applied["vat"]) == (
        PLAN_EUR_CENTS + MONTH_VAT,
        PLAN_EUR_CENTS,
        MONTH_VAT,
    )
    first = await shop.invoice(month)
    assert (first.tax, first.total) == (MONTH_VAT, 0)  # the credit's VAT declared here
    assert await _parts(shop) == CreditParts(38, 38)

    shop.clock.advance(timedelta(days=DAYS_USED))
    booked = await to_credit(shop, vm)

    assert (booked.entry.amount, booked.entry.vat_free) == (UNUSED, 0)  # 1.13, ordinary
    assert await _parts(shop) == CreditParts(38 + UNUSED, 38)
    assert await shop.credit_notes(first) == []  # the 0.30 declared stays declared

    again = await shop.renew(vm, method=CARD, settle=settle)
    applied = again.metadata["credit_applied"]
    assert applied["charged"] == PLAN_EUR_CENTS and again.amount == 0
    assert (applied["amount"], applied["vat_free"], applied["vat_free_net"], applied["vat"]) == (
        UNUSED + 23,
        23,
        PLAN_EUR_CENTS - UNUSED,
        4,
    )
    second = await shop.invoice(again)
    assert (second.tax, second.total) == (4, 0)  # only the VAT-free part's VAT is new
    assert await _parts(shop) == CreditParts(15, 15)
    assert VAT_FREE - 15 == PLAN_EUR_CENTS + MONTH_VAT + 23  # 1.85: 1.62, then 0.23 more


async def test_an_upgrades_unused_share_refunded_to_credit_is_vat_free_credit(
    shop: Shop,
) -> None:
    """An upgrade charges no VAT: its money bore none. Refunded to credit at once after it
    was applied, its share of the refund comes back VAT-free (as its money would if it
    had not been applied); the renewal's share, whose VAT was declared, stays ordinary.
    Given back all ordinary, the upgrade's money became net credit whose VAT nobody ever
    declares: it paid a renewal's net whole, 23 % more than that money buys."""
    vm = await shop.order(ALICE)
    assert (await shop.complete(await shop.renew(vm, method=CARD))).completed
    up = await upgrade_payment(shop, vm, method=CARD, tax_rates=shop.tax_rates)
    assert up.tax == 0 and up.amount > 0
    assert (await shop.complete(up)).completed

    booked = await to_credit(shop, vm)

    assert booked.entry.amount == PLAN_EUR_CENTS + up.amount
    assert (booked.entry.amount, booked.entry.vat_free) == (
        PLAN_EUR_CENTS + up.amount,
        up.amount,
    )
    assert await _parts(shop) == CreditParts(PLAN_EUR_CENTS + up.amount, up.amount)


@pytest.mark.parametrize("vat_free", [True, False], ids=["vat-free-credit", "ordinary-credit"])
async def test_an_upgrade_paid_from_credit_gives_each_kind_back_as_it_was_spent(
    shop: Shop, vat_free: bool
) -> None:
    """An upgrade paid wholly from credit (50.00 of it) and refunded to credit at once: its
    share comes back VAT-free when VAT-free credit paid it (no VAT was ever declared on
    it), ordinary when ordinary credit did (net value whose VAT was declared before)."""
    vm = await shop.order(ALICE)
    assert (await shop.complete(await shop.renew(vm, method=CARD))).completed
    async with shop.factory() as uow:
        entry = checked_entry(
            user_id=ALICE,
            currency="EUR",
            amount=5000,
            reason=CreditReason.OVERPAYMENT,
            reference="credit",
            note="kept as credit",
            created=shop.clock.now(),
            vat_free=5000 if vat_free else 0,
        )
        await book_in(uow, entry)
        await uow.commit()
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    up = await upgrade_payment(shop, vm, method=CARD, tax_rates=shop.tax_rates, settle=settle)
    charge = up.metadata["credit_applied"]["charged"]
    assert up.amount == 0 and (await shop.payment(up.id)).is_paid and charge > 0

    booked = await to_credit(shop, vm)

    assert booked.entry.amount == PLAN_EUR_CENTS + charge
    assert booked.entry.vat_free == (charge if vat_free else 0)
    left = 5000 - charge
    assert await _parts(shop) == CreditParts(
        left + PLAN_EUR_CENTS + charge, left + charge if vat_free else 0
    )
