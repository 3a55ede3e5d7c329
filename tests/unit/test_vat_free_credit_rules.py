"""How VAT-free credit pays a quote (`split_with_vat_free`), in the IE case of the finding:
EUR 36.74 paid for an upgrade that was not applied, kept whole as VAT-free credit."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from domain.account_credit import CreditParts, CreditSplit, no_levy
from domain.overpayment import prepayment_split
from domain.tax import tax_on
from domain.vat_free_credit import split_with_vat_free

VAT = Decimal(23)


def _same(n: int) -> int:
    return n


def _taxed(net: int) -> tuple[int, int]:
    return tax_on(net, VAT), 0


def _split(parts: CreditParts, amount: int, rate: Decimal | None) -> CreditSplit | None:
    return split_with_vat_free(
        parts=parts,
        amount=amount,
        levy=_taxed if rate else no_levy,
        to_charged=_same,
        to_balance=_same,
        tax_rate=rate,
    )


def test_the_same_upgrade_is_paid_whole_from_its_own_vat_free_credit() -> None:
    assert _split(CreditParts(3674, 3674), 3674, None) == CreditSplit(
        credit=3674,
        charged_credit=3674,
        amount=0,
        tax=0,
        processing_fee=0,
        vat_free=3674,
        vat_free_net=3674,
        vat=0,
    )


def test_a_renewal_of_29_86_net_costs_36_72_of_it_with_6_86_vat_declared() -> None:
    split = _split(CreditParts(3674, 3674), 2986, VAT)
    assert split is not None and split.fully_covered
    assert (split.credit, split.vat_free, split.vat_free_net, split.vat) == (3672, 3672, 2986, 686)


def test_a_renewal_larger_than_the_credit_gets_its_net_and_charges_the_rest() -> None:
    """36.74 on a 50.00 renewal: 29.86 net (floor of 3674 × 100 / 123) and 6.88 VAT; the
    20.14 left is charged with its own 4.63 VAT."""
    split = _split(CreditParts(3674, 3674), 5000, VAT)
    assert split == CreditSplit(
        credit=3674,
        charged_credit=2986,
        amount=2014,
        tax=tax_on(2014, VAT),
        processing_fee=0,
        vat_free=3674,
        vat_free_net=2986,
        vat=688,
    )


def test_ordinary_credit_pays_a_renewal_first_and_is_left_on_an_upgrade() -> None:
    renewal = _split(CreditParts(1500, 1000), 800, VAT)  # 500 ordinary, then 300 + 69 VAT
    assert renewal is not None and (renewal.credit, renewal.vat_free, renewal.vat) == (869, 369, 69)
    upgrade = _split(CreditParts(1500, 1000), 800, None)
    assert upgrade is not None and (upgrade.credit, upgrade.vat_free) == (800, 800)


@given(
    ordinary=st.integers(0, 5000),
    vat_free=st.integers(0, 5000),
    amount=st.integers(1, 10_000),
    rate=st.sampled_from([Decimal(0), Decimal(9), Decimal(23), Decimal("7.7")]),
)
def test_the_customer_never_gets_more_than_the_money_is_worth(
    ordinary: int, vat_free: int, amount: int, rate: Decimal
) -> None:
    """VAT-free credit never buys more net than the same money would (net + D3's VAT on
    it), and what it paid on a taxed quote declares at least D3's VAT."""
    split = split_with_vat_free(
        parts=CreditParts(ordinary + vat_free, vat_free),
        amount=amount,
        levy=lambda net: (tax_on(net, rate), 0),
        to_charged=_same,
        to_balance=_same,
        tax_rate=rate,
    )
    if split is None:
        assert ordinary + vat_free == 0
        return
    assert split.charged_credit + split.amount == amount
    assert split.vat_free <= vat_free and split.credit - split.vat_free <= ordinary
    ordinary_used = split.credit - split.vat_free
    assert split.charged_credit - split.vat_free_net == ordinary_used
    if rate:
        assert split.vat_free_net + tax_on(split.vat_free_net, rate) <= split.vat_free
        assert split.vat >= tax_on(split.vat_free_net, rate)
        if split.amount:  # spent whole: split as a prepayment, net rounded down
            assert split.vat_free_net == prepayment_split(split.vat_free, rate)[0]
        assert split.vat_free_net + split.vat <= split.vat_free
    else:
        assert split.vat_free_net == split.vat_free and split.vat == 0
