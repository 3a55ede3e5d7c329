"""Account-credit rules: entry shapes, never below zero, and how a quote is split (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.account_credit import (
    CreditReason,
    InsufficientCredit,
    balance_after,
    charged_credit,
    checked_entry,
    credit_applied,
    split_quote,
)
from domain.errors import InvalidInput, UnknownCurrency
from domain.exchange import fiat_to_msat, msat_to_fiat

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def _entry(amount: int = 5, reason: CreditReason = CreditReason.ADMIN_ADJUSTMENT, **kw: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = dict(
        user_id=1,
        currency="eur",
        amount=amount,
        reason=reason,
        reference=None,
        note=None,
        created=NOW,
    )
    values.update(kw)
    return checked_entry(**values)  # type: ignore[arg-type]


def test_entries_are_checked() -> None:
    assert _entry(5).currency == "EUR"
    for bad in (
        dict(amount=0),
        dict(amount=True),
        dict(reference=""),
        dict(note="x" * 256),
        dict(amount=10**16),
    ):
        with pytest.raises(InvalidInput):
            _entry(**bad)
    with pytest.raises(UnknownCurrency):
        _entry(5, currency="XYZ")
    with pytest.raises(InvalidInput):
        _entry(5, CreditReason.SPENT)
    with pytest.raises(InvalidInput):
        _entry(-5, CreditReason.REFUND_TO_CREDIT)
    assert _entry(-5, CreditReason.SPENT).amount == -5


def test_balance_never_goes_below_zero() -> None:
    assert balance_after(10, _entry(-10)) == 0
    with pytest.raises(InsufficientCredit):
        balance_after(10, _entry(-11))


def test_applied_metadata_is_read_strictly() -> None:
    meta = {"credit_applied": {"amount": 5, "currency": "EUR", "charged": 50}}
    assert credit_applied(meta) == (5, "EUR") and charged_credit(meta) == 50
    for value in (
        None,
        5,
        {"amount": 0, "currency": "EUR"},
        {"amount": True, "currency": "EUR"},
        {"amount": 5},
    ):
        assert credit_applied({"credit_applied": value}) is None
    assert charged_credit({}) == 0


RATES = st.decimals(min_value=Decimal(1000), max_value=Decimal(500000), places=2)


@given(
    balance=st.integers(0, 10**6),
    amount=st.integers(0, 10**9),
    tax=st.integers(0, 10**8),
    fee=st.integers(0, 10**7),
    rate=st.one_of(st.none(), RATES),
)
def test_a_split_never_spends_more_than_the_balance_and_adds_up(
    balance: int, amount: int, tax: int, fee: int, rate: Decimal | None
) -> None:
    if rate is None:  # same currency

        def to_c(n: int) -> int:
            return n

        def to_b(n: int) -> int:
            return n
    else:  # a fiat balance paying a Lightning quote

        def to_c(n: int) -> int:
            return fiat_to_msat(n, rate)

        def to_b(n: int) -> int:
            return msat_to_fiat(n, rate)

    split = split_quote(
        balance=balance,
        amount=amount,
        tax=tax,
        processing_fee=fee,
        to_charged=to_c,
        to_balance=to_b,
    )
    if split is None:
        assert balance == 0 or amount == 0 or to_c(balance) == 0
        return
    assert 0 < split.credit <= balance
    assert split.charged_credit + split.amount == amount
    assert split.charged_credit <= to_c(split.credit)  # the credit is worth what it pays
    assert 0 <= split.tax <= tax and 0 <= split.processing_fee <= fee
    if split.fully_covered:
        assert split.credit == 1 or to_c(split.credit - 1) < amount  # the least that covers it
    else:
        assert split.credit == balance and split.amount > 0
