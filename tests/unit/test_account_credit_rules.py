"""Account-credit rules: entry shapes, never below zero, and how a quote is split (hypothesis)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.account_credit import (
    CREDIT_APPLIED_KEY,
    CreditReason,
    InsufficientCredit,
    Levy,
    applied_json,
    balance_after,
    charged_credit,
    checked_entry,
    credit_applied,
    credit_taken,
    split_quote,
    unpaid_charged,
)
from domain.enums import PaymentMethod
from domain.errors import InvalidInput, UnknownCurrency
from domain.exchange import RateTable, fiat_to_msat, msat_to_fiat
from domain.fees import gross_up_fee
from domain.model import PaymentMethodConfig
from domain.money import Currency
from domain.pricing import Charging, levy_of
from domain.tax import tax_on

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
PERCENT = st.decimals(min_value=Decimal(0), max_value=Decimal(30), places=1)


def _levy(tax_pct: Decimal, fee_pct: Decimal, base: int) -> Levy:
    """The quote's own rule on a net amount: D3 tax and the D4 gross-up with one base fee."""
    return lambda net: (tax_on(net, tax_pct), gross_up_fee(net, fee_pct, base))


@given(
    balance=st.integers(0, 10**6),
    amount=st.integers(0, 10**9),
    tax_pct=PERCENT,
    fee_pct=PERCENT,
    base=st.integers(0, 100),
    rate=st.one_of(st.none(), RATES),
)
def test_a_split_never_spends_more_than_the_balance_and_taxes_the_rest(
    balance: int, amount: int, tax_pct: Decimal, fee_pct: Decimal, base: int, rate: Decimal | None
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
        levy=_levy(tax_pct, fee_pct, base),
        to_charged=to_c,
        to_balance=to_b,
    )
    if split is None:
        assert balance == 0 or amount == 0 or to_c(balance) == 0
        return
    assert 0 < split.credit <= balance
    assert split.charged_credit + split.amount == amount
    assert split.charged_credit <= to_c(split.credit)  # the credit is worth what it pays
    if split.fully_covered:
        assert split.credit == 1 or to_c(split.credit - 1) < amount  # the least that covers it
    else:
        assert split.credit == balance and split.amount > 0
        # the rest bears the quote's own tax and fee on itself, not a share of the whole's
        assert split.tax == tax_on(split.amount, tax_pct)
        assert split.processing_fee == gross_up_fee(split.amount, fee_pct, base)


def test_the_rest_of_a_taxed_quote_pays_floor_tax_on_itself() -> None:
    """1.32 net at 23 %, 0.63 credit: 0.69 charged, tax floor(0.69 × 23 %) = 0.15 (D3); a
    share of the whole quote's tax rounded up made it 0.16."""
    split = split_quote(
        balance=63,
        amount=132,
        levy=_levy(Decimal(23), Decimal(0), 0),
        to_charged=lambda n: n,
        to_balance=lambda n: n,
    )
    assert split is not None
    assert (split.amount, split.tax, split.processing_fee) == (69, 15, 0)


def test_the_rest_of_a_card_quote_carries_the_whole_base_fee() -> None:
    """10.00 with 9.00 credit on a card at 2.9 % + 0.30: the rest's fee is the D4 gross-up
    of 1.00 with the whole base fee (0.34); a share of the whole quote's fee was 0.07, less
    than the provider's fixed 0.30."""
    charging = Charging(
        method=PaymentMethod.STRIPE,
        rates=RateTable(),
        fee_config=PaymentMethodConfig(
            id=1,
            company_id=1,
            payment_method=PaymentMethod.STRIPE,
            name="card",
            enabled=True,
            provider_type="stripe",
            config={},
            created=NOW,
            modified=NOW,
            processing_fee_rate=Decimal("2.9"),
            processing_fee_base=30,
            processing_fee_currency="EUR",
        ),
    )
    split = split_quote(
        balance=900,
        amount=1000,
        levy=levy_of(charging, Currency.EUR, NOW),
        to_charged=lambda n: n,
        to_balance=lambda n: n,
    )
    assert split is not None
    assert (split.amount, split.tax, split.processing_fee) == (100, 0, 3 + 31)


def test_an_unpaid_share_of_mixed_credit_is_valued_kind_by_kind_and_never_undercounted() -> None:
    """100 ordinary (worth 100) and 123 VAT-free (worth 100 net, 23 VAT) applied: 50 of the
    ordinary short is worth 50, 50 of the VAT-free ceil(100 × 50 / 123) = 41; what was taken
    keeps its share of the net (rounded down) and of the VAT (rounded up)."""
    applied = applied_json(223, "EUR", 200, vat_free=123, vat_free_net=100, vat=23)
    meta = {CREDIT_APPLIED_KEY: applied}
    assert unpaid_charged(meta, 50) == 50
    assert unpaid_charged(meta, 50, 50) == 41
    assert unpaid_charged(meta, 223, 123) == 200
    taken = credit_taken(meta, 50, 50)[CREDIT_APPLIED_KEY]
    assert taken == applied_json(173, "EUR", 159, vat_free=73, vat_free_net=59, vat=14)
