"""What a payment carried for the time it bought (the limit of a refund of that time): its net
amount and the credit it applied, at its own rates, less a Purchase's setup fees."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs

from domain.admin_completion import ADMIN_COMPLETION_KEY, AdminCompletion
from domain.credit import Credit, credit_payment, payment_meta
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.intervals import MONTHLY
from domain.model import Subscription, SubscriptionPayment
from domain.money import Currency, Money
from domain.paid_value import paid_for_time
from domain.price_basis import CREDIT_KEY, PriceBasis

NOW = datetime(2026, 3, 31, tzinfo=UTC)


def payment(
    amount: int,
    currency: str = "EUR",
    *,
    kind: SubscriptionPaymentType = SubscriptionPaymentType.RENEWAL,
    rate: Decimal = Decimal(1),
    metadata: Any = None,
) -> SubscriptionPayment:
    return SubscriptionPayment(
        id=b"\x01" * 32,
        subscription_id=1,
        user_id=1,
        created=NOW,
        expires=NOW,
        amount=amount,
        currency=currency,
        payment_method=PaymentMethod.REVOLUT,
        payment_type=kind,
        external_data="",
        rate=rate,
        tax=23,
        processing_fee=7,
        metadata=metadata,
    )


def test_a_card_payment_in_the_same_currency_is_its_net_amount() -> None:
    assert paid_for_time(payment(132), Currency.EUR) == 132  # tax and fee left out


def test_lightning_msat_are_valued_at_the_quotes_rate() -> None:
    """1 320 001 msat at 100 000 EUR/BTC (its stored rates): 132.0001 cents, exactly."""
    paid = payment(1_320_001, "BTC", rate=Decimal(100_000), metadata={"rates": {"EUR": "100000"}})
    assert paid_for_time(paid, Currency.EUR) == Fraction(1_320_001, 10_000)
    # without stored rates its own rate column is the one of its list currency
    assert paid_for_time(payment(1_320_000, "BTC", rate=Decimal(100_000)), Currency.EUR) == 132


def test_a_rate_column_is_the_rate_of_one_currency_only() -> None:
    """A row without stored rates has its `rate` column for its list currency only. A card
    payment of EUR 1.32 whose column says 92 000 (a legacy back-fill) was valued in USD at
    that figure for both fiats, at par: USD 1.32. It cannot be valued in USD (None: not
    known); in its own EUR it needs no rate. A Lightning row that names its list currency
    (its stored price) is not valued in another."""
    card = payment(132, rate=Decimal(92_000))
    assert paid_for_time(card, Currency.USD) is None
    assert paid_for_time(card, Currency.EUR) == 132
    named = {"price": {"interval": [1, 1], "recurring": {"EUR": 132}, "setup": {}}}
    lightning = payment(1_320_000, "BTC", rate=Decimal(100_000), metadata=named)
    assert paid_for_time(lightning, Currency.EUR) == 132
    assert paid_for_time(lightning, Currency.GBP) is None


def test_account_credit_it_applied_counts_as_paid() -> None:
    applied = {"credit_applied": {"amount": 50, "currency": "EUR", "charged": 50}}
    assert paid_for_time(payment(82, metadata=applied), Currency.EUR) == 132


def test_a_purchases_setup_fee_bought_no_time() -> None:
    meta = {"price": {"interval": [1, 1], "recurring": {"EUR": 132}, "setup": {"EUR": 500}}}
    purchase = payment(632, kind=SubscriptionPaymentType.PURCHASE, metadata=meta)
    assert paid_for_time(purchase, Currency.EUR) == 132
    # a renewal has no setup fee, whatever its quote's basis lists
    assert paid_for_time(payment(632, metadata=meta), Currency.EUR) == 632


def test_a_payment_that_cannot_be_valued_is_not_known() -> None:
    """Another fiat without the rates to convert it, or a currency not known."""
    assert paid_for_time(payment(132, "GBP"), Currency.EUR) is None
    assert paid_for_time(payment(132, "XYZ"), Currency.EUR) is None
    gbp = payment(132, "GBP", metadata={"rates": {"EUR": "100000", "GBP": "80000"}})
    assert paid_for_time(gbp, Currency.EUR) == Fraction(132 * 100_000, 80_000)


def test_a_short_settlement_completed_by_an_admin_carried_what_arrived() -> None:
    """1 624 000 msat asked (1 320 000 net + 23 % VAT), 162 400 arrived and the rest waived:
    it carried the net of what arrived, 132 032 msat (the VAT in it taken out, rounded
    down), worth 13.2032 cents at 100 000 EUR/BTC, not the 132 its amount is worth."""
    short = {
        ADMIN_COMPLETION_KEY: AdminCompletion(admin_id=2, short_received_msat=162_400).to_json()
    }
    paid = attrs.evolve(
        payment(1_320_000, "BTC", rate=Decimal(100_000), metadata=short),
        tax=303_600,
        processing_fee=0,
    )
    assert paid_for_time(paid, Currency.EUR) == Fraction(132_032, 10_000)
    # paid in full (no record of a short settlement): its amount
    whole = attrs.evolve(paid, metadata=None)
    assert paid_for_time(whole, Currency.EUR) == 132


#: the plan of review r23's capped payment: EUR 1.32 a month; 1 320 000 msat at 100 000 EUR/BTC
TINY = PriceBasis.of(MONTHLY, [Money(Currency.EUR, 132)], country="IRL")
MONTH_MSAT = 1_320_000
SUB = Subscription(
    id=1,
    user_id=1,
    company_id=1,
    name="s",
    created=NOW,
    currency="EUR",
    expires=datetime(2026, 4, 30, tzinfo=UTC),
    is_active=True,
    is_setup=True,
)


def _completed(paid: SubscriptionPayment, credit: Credit) -> SubscriptionPayment:
    """The row as completion stores it: how its time was counted in its metadata."""
    return attrs.evolve(paid, metadata={**payment_meta(paid), CREDIT_KEY: credit.to_json()})


def test_the_rest_of_a_capped_payment_booked_as_credit_bought_no_time() -> None:
    """Review r23: an LNURL payment worth 200 months is given 120, the other 80 months' worth
    booked as account credit: 120 months' worth paid for the time, not 200 (a refund of it
    after a price change paid up to all 200 back on top of the 80 credited)."""
    lnurl = payment(
        200 * MONTH_MSAT,
        "BTC",
        metadata={"intervals": None, "price": TINY.to_json(), "rates": {"EUR": "100000"}},
    )
    credit = credit_payment(lnurl, SUB, TINY, NOW)
    assert credit.capped and credit.uncounted == 80 * MONTH_MSAT

    assert paid_for_time(_completed(lnurl, credit), Currency.EUR) == 120 * 132


def test_an_odd_capped_rest_is_taken_off_exactly_never_rounded_in_the_payers_favour() -> None:
    """A 200-months' worth plus 1 msat: the credited rest was floored to whole msat, but the
    share that bought time is exact (120 of 200.00000075… intervals of its value), so no
    fraction of the credited rest counts as paid for the time."""
    lnurl = payment(
        200 * MONTH_MSAT + 1,
        "BTC",
        metadata={"intervals": None, "price": TINY.to_json(), "rates": {"EUR": "100000"}},
    )
    credit = credit_payment(lnurl, SUB, TINY, NOW)
    assert paid_for_time(_completed(lnurl, credit), Currency.EUR) == 120 * 132
    # a row whose share cannot be read: its floored rest and one unit more taken off
    unreadable = {**credit.to_json(), "intervals": "?"}
    odd = attrs.evolve(lnurl, metadata={**payment_meta(lnurl), CREDIT_KEY: unreadable})
    carried = paid_for_time(odd, Currency.EUR)
    assert carried is not None and carried < 120 * 132


def test_a_payment_past_the_calendar_bought_no_time() -> None:
    """All of it was booked as account credit (review r18): none of it paid for time."""
    paid = payment(132, metadata={CREDIT_KEY: {"capped_at_intervals": 0, "past_calendar": True}})
    assert paid_for_time(paid, Currency.EUR) == 0
