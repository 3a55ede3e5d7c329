"""The upgrade charge is D7-exact: each side pro-rated and converted exactly, the difference
rounded once as D2 rounds a charge (msat half up, then up to a whole sat; a fiat charge up
to the cent), never below it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from domain.enums import PaymentMethod
from domain.exchange import ExchangeRate, RateTable
from domain.intervals import MONTHLY
from domain.money import Currency, Money
from domain.upgrade import upgrade_quote

EXPIRES = datetime(2026, 3, 31, tzinfo=UTC)  # the month ending 31 Mar: 31 days
NOW = EXPIRES - timedelta(days=1)
MONTH = 31 * 86_400
EUR_PER_BTC = Decimal(100_000)  # 1 cent = 10 000 msat
RATES = RateTable.of([ExchangeRate(Currency.EUR, EUR_PER_BTC, NOW)])
LN, REVOLUT = PaymentMethod.LIGHTNING, PaymentMethod.REVOLUT


def _msat(cents: Fraction) -> Fraction:
    """Cents in msat exactly (D2's formula, unrounded)."""
    return cents / 100 / Fraction(EUR_PER_BTC) * 10**11


def _d2_charge(msat: Fraction) -> int:
    """An exact msat charge rounded as D2 says: half up to a msat, then up to a whole sat."""
    half_up = int(msat + Fraction(1, 2))
    return -(-half_up // 1000) * 1000


def test_the_reviewers_example_charges_what_d7_asks() -> None:
    """EUR 1.24 → 10.20 a month, one day left of a 31-day month: the new side is 32.903…
    cents, the old 4 exactly. Flooring the new side to 32 cents before converting charged
    280 000 msat; exact, the difference is 289 032.26 msat, charged 290 000."""
    quote = upgrade_quote(
        Money(Currency.EUR, 124), MONTHLY, Money(Currency.EUR, 1020), EXPIRES, NOW, LN, RATES
    )
    assert quote.upgrade.money == Money(Currency.BTC, 290_000)
    assert quote.upgrade.rate == EUR_PER_BTC


def test_a_card_charge_in_the_list_currency_is_the_exact_difference_rounded_up() -> None:
    """The same upgrade by card: 32.903… − 4 = 28.903… cents, 29 (it was 32 − 4 = 28)."""
    quote = upgrade_quote(
        Money(Currency.EUR, 124), MONTHLY, Money(Currency.EUR, 1020), EXPIRES, NOW, REVOLUT, RATES
    )
    assert quote.upgrade.money == Money(Currency.EUR, 29)


@given(
    old=st.integers(0, 10**7),
    new=st.integers(0, 10**7),
    left=st.integers(1, MONTH - 1),
)
def test_a_lightning_charge_is_the_exact_difference_rounded_once_never_below_it(
    old: int, new: int, left: int
) -> None:
    now = EXPIRES - timedelta(seconds=left)
    rates = RateTable.of([ExchangeRate(Currency.EUR, EUR_PER_BTC, now)])
    quote = upgrade_quote(
        Money(Currency.EUR, old), MONTHLY, Money(Currency.EUR, new), EXPIRES, now, LN, rates
    )
    exact = max(Fraction(0), _msat(Fraction((new - old) * left, MONTH)))
    charged = quote.upgrade.money.amount
    assert charged == (_d2_charge(exact) if exact else 0)
    assert charged % 1000 == 0
    assert exact - Fraction(1, 2) <= charged < exact + 1000  # the operator is never underpaid


@given(
    old=st.integers(0, 10**7),
    new=st.integers(0, 10**7),
    left=st.integers(1, MONTH - 1),
)
def test_a_card_charge_is_the_exact_difference_rounded_up_to_the_cent(
    old: int, new: int, left: int
) -> None:
    """Review r18: half up, 1 → 1.10 EUR with 22 h 40 min left of a 28-day month (3.37…
    cents) charged 3; up to the cent, never below the exact difference."""
    now = EXPIRES - timedelta(seconds=left)
    rates = RateTable.of([ExchangeRate(Currency.EUR, EUR_PER_BTC, now)])
    quote = upgrade_quote(
        Money(Currency.EUR, old), MONTHLY, Money(Currency.EUR, new), EXPIRES, now, REVOLUT, rates
    )
    exact = max(Fraction(0), Fraction((new - old) * left, MONTH))
    assert exact <= quote.upgrade.money.amount < exact + 1


def _card_charge(old: int, new: int, expires: datetime, now: datetime) -> int:
    rates = RateTable.of([ExchangeRate(Currency.EUR, EUR_PER_BTC, now)])
    quote = upgrade_quote(
        Money(Currency.EUR, old), MONTHLY, Money(Currency.EUR, new), expires, now, REVOLUT, rates
    )
    return quote.upgrade.money.amount


def test_a_card_upgrade_in_two_steps_costs_no_less_than_in_one() -> None:
    """Review r18: ~38 minutes left of a 28-day month, 0 → 5.35 EUR cost 1 cent at once and
    nothing in two steps (0 → 0.01, then 0.01 → 5.35, each under half a cent)."""
    now = datetime(2026, 3, 10, 12, tzinfo=UTC)
    expires = now + timedelta(seconds=2261)
    one = _card_charge(0, 535, expires, now)
    assert one == 1
    assert _card_charge(0, 1, expires, now) + _card_charge(1, 535, expires, now) >= one
