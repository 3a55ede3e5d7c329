"""A refund's value shared out among the payments that bought the time, so each invoice gives
back its own payment's part and no other's (found by review r3: a credit-paid month's value
was paid back from an older cash invoice)."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from domain.intervals import MONTHLY
from domain.money import Currency
from domain.paid_periods import PaidPeriod, PaidUpgrade, unused_time
from domain.refund_worth import RefundWorth, split_by_weight

EUR = Currency.EUR
JAN31, FEB27 = datetime(2026, 1, 31, tzinfo=UTC), datetime(2026, 2, 27, tzinfo=UTC)
FEB28, MAR28 = datetime(2026, 2, 28, tzinfo=UTC), datetime(2026, 3, 28, tzinfo=UTC)


def _split(
    price: int, periods: list[PaidPeriod], upgrades: tuple[PaidUpgrade, ...] = ()
) -> dict[str, int]:
    time = unused_time(MONTHLY, periods[-1].end, FEB27, periods, (), upgrades)
    worth = RefundWorth.of(((EUR, price),), EUR, time)
    value = worth.valued(None, FEB27).money.amount
    return {"value": value, **worth.split(value, None, FEB27)}


CASH = PaidPeriod(key="cash", order=1, start=JAN31, end=FEB28, paid=Fraction(132))
BY_CREDIT = PaidPeriod(key="credit", order=2, start=FEB28, end=MAR28, paid=Fraction(132))


def test_each_payment_gets_what_it_carried_for_its_own_unused_time() -> None:
    """One day of 28 of the cash month left (4.71) and the whole credit-paid month (132):
    136, of which 4 are the cash payment's (the unit rounding left goes to the newest)."""
    assert _split(132, [CASH, BY_CREDIT]) == {"value": 136, "credit": 132, "cash": 4}


def test_a_lower_price_in_force_is_shared_in_proportion() -> None:
    """The plan re-priced to 66: the value (68) is shared as the payments carried for it."""
    assert _split(66, [CASH, BY_CREDIT]) == {"value": 68, "credit": 66, "cash": 2}


def test_an_upgrade_gets_its_own_part() -> None:
    """An upgrade booked on 27 Feb for the credit month paid 70 for it: its own share."""
    up = PaidUpgrade(key="up", order=3, start=FEB27, end=MAR28, paid=Fraction(70))
    assert _split(1_000, [CASH, BY_CREDIT], (up,)) == {
        "value": 206,
        "credit": 132,
        "up": 70,
        "cash": 4,
    }


def test_time_not_known_to_a_payment_is_shared_by_its_intervals() -> None:
    unknown = PaidPeriod(key="cash", order=1, start=JAN31, end=FEB28)
    assert _split(132, [unknown, BY_CREDIT]) == {"value": 136, "credit": 132, "cash": 4}


@given(
    st.integers(min_value=0, max_value=10**9),
    st.lists(st.fractions(min_value=0, max_value=10**6), min_size=1, max_size=6),
)
def test_the_shares_add_up_to_the_total_and_each_is_within_a_unit_of_its_own(
    total: int, weights: list[Fraction]
) -> None:
    keyed = [(str(i), w) for i, w in enumerate(weights)]
    got = split_by_weight(total, keyed)
    whole = sum(weights)
    if total == 0 or whole == 0:
        assert got == {}
        return
    assert sum(got.values()) == total
    for key, weight in keyed:
        exact = total * weight / whole
        assert exact - 1 < got.get(key, 0) <= exact + 1
