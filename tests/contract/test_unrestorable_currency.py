"""A card payment for a service that cannot be delivered, charged in a re-priced plan's
currency, becomes credit in its subscription's currency, on memory, SQLite and MariaDB:
converted at the quote's own rates, rounded down, once (before, it became no credit at all).
A Lightning one is rounded down too: the payer is never credited more than arrived."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import attrs
import pytest

from app.billing.credit_overpayment import credit_unrestorable
from domain.account_credit import CreditReason
from domain.enums import PaymentMethod
from domain.price_basis import RATES_KEY
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: GBP at 70 000 per BTC, EUR at 100 000: GBP 1.32 is worth EUR 1.8857… → 1.88
GBP_PER_BTC = Decimal(70_000)
WORTH_EUR = 188


async def _card_renewal_of_a_gbp_plan(shop: Shop) -> Any:
    """A paid EUR subscription whose plan the operator moved to GBP (same figure, 1.32), and
    a card renewal of it, charged in GBP, marked paid."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    await lifecycle_world.plan_moved_to_gbp(shop)
    payment = await shop.renew(vm, method=PaymentMethod.REVOLUT)
    assert (payment.currency, payment.amount) == ("GBP", PLAN_EUR_CENTS)
    return attrs.evolve(payment, is_paid=True, paid_at=shop.clock.now())


async def _book(shop: Shop, paid: Any) -> int:
    async with shop.factory() as uow:
        booked = await credit_unrestorable(uow, paid, "EUR", "host removed")
        await uow.commit()
    return booked


async def test_a_gbp_card_payment_is_credited_in_eur_at_its_quotes_rates_once(
    shop: Shop,
) -> None:
    shop = lifecycle_world.with_gbp(shop, GBP_PER_BTC)
    paid = await _card_renewal_of_a_gbp_plan(shop)

    assert await _book(shop, paid) == WORTH_EUR
    assert await _book(shop, paid) == 0  # a replay books nothing more

    async with shop.factory() as uow:
        page = await uow.credit_ledger.list_page(ALICE, 10, 0)
        assert await uow.credit_ledger.balances(ALICE) == {"EUR": WORTH_EUR}
    [entry] = page.items
    assert (entry.reason, entry.currency, entry.amount) == (
        CreditReason.OVERPAYMENT,
        "EUR",
        WORTH_EUR,
    )
    assert entry.note == (
        "host removed; GBP 1.32 as EUR 1.88 at BTC/EUR 100000, BTC/GBP 70000 (exact, rounded down)"
    )


async def test_without_the_quotes_rates_nothing_is_booked(shop: Shop) -> None:
    """A payment quoted before rates were stored cannot be valued: 0, the admins are told."""
    shop = lifecycle_world.with_gbp(shop, GBP_PER_BTC)
    paid = await _card_renewal_of_a_gbp_plan(shop)
    meta = {k: v for k, v in paid.metadata.items() if k != RATES_KEY}

    assert await _book(shop, attrs.evolve(paid, metadata=meta)) == 0

    async with shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == {}


async def _lightning_renewal_paid(shop: Shop, msat: int) -> Any:
    """A Lightning renewal (EUR at 100 000 per BTC: a cent is 10 000 msat) of which `msat`
    arrived (an upgrade's small pro-rated charge, say), marked paid."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    payment = await shop.renew(vm)
    assert payment.currency == "BTC" and payment.rate == Decimal(100_000)
    return attrs.evolve(payment, amount=msat, tax=0, is_paid=True, paid_at=shop.clock.now())


@pytest.mark.parametrize(
    ("msat", "cents"),
    [(5_000, 0), (9_999, 0), (10_000, 1), (15_000, 1), (19_999, 1), (20_000, 2)],
)
async def test_a_lightning_payment_is_credited_rounded_down(
    shop: Shop, msat: int, cents: int
) -> None:
    """Half a cent and more is not a cent (it was rounded half up: 5 sat became 1 cent)."""
    paid = await _lightning_renewal_paid(shop, msat)

    assert await _book(shop, paid) == cents
    assert await _book(shop, paid) == 0  # a replay books nothing more

    async with shop.factory() as uow:
        balances = await uow.credit_ledger.balances(ALICE)
    assert balances == ({"EUR": cents} if cents else {})
