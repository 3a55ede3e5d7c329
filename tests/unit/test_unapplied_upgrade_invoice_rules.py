"""The invoice of an upgrade not applied, its value kept as account credit: one prepayment line
in place of the upgrade's, all of it net without VAT (the credit is VAT-free), the lines
adding up to the payment row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.exchange import msat_to_fiat
from domain.invoice import InvoiceContent, InvoiceLine
from domain.invoice_content import build_content
from domain.model import SubscriptionPayment
from domain.money import Currency
from domain.overpayment import excess_value
from domain.prepayment import (
    PREPAYMENT_LINE,
    kept_value_split,
    kept_vat_free,
    vat_free_refund_part,
)
from domain.tax import tax_on
from tests.unit.test_invoice_rules import NOW, SELLER, SUB, _buyer, _payment

UPGRADE = SubscriptionPaymentType.UPGRADE
FEE_LINE = "Payment processing fee"


def _kept(payment: SubscriptionPayment, kept: bool = True) -> InvoiceContent:
    return build_content(
        payment=payment,
        subscription=SUB,
        items=[],
        seller=SELLER,
        buyer=_buyer(),
        issued_at=NOW,
        supply=None,
        kept_as_credit=kept,
    )


def _upgrade(**kw: Any) -> SubscriptionPayment:
    return _payment(payment_type=UPGRADE, **kw)


@given(
    amount=st.integers(1, 10**9),
    fee=st.integers(0, 10**4),
    rate=st.sampled_from(["0", "19", "23", "8.1"]),
    credit=st.integers(0, 10**6),
)
def test_an_untaxed_upgrade_kept_as_credit_is_one_prepayment_line_adding_up_to_the_row(
    amount: int, fee: int, rate: str, credit: int
) -> None:
    """Its money is all net at 0 %, whatever credit rate its quote recorded: VAT-free credit
    (it was once split at that rate); the credit it applied (given back) is not shown; a
    fee keeps its untaxed line."""
    meta: dict[str, Any] = {"credit_tax_rate": rate}
    if credit:
        meta["credit_applied"] = {"amount": credit, "currency": "EUR"}
    payment = _upgrade(amount=amount, processing_fee=fee, metadata=meta)
    doc = _kept(payment)
    prepaid = InvoiceLine(description=PREPAYMENT_LINE, net=amount, tax_rate=Decimal(0), tax=0)
    fee_lines = (
        [InvoiceLine(description=FEE_LINE, net=fee, tax_rate=Decimal(0), tax=0)] if fee else []
    )
    assert list(doc.lines) == [prepaid, *fee_lines]
    assert doc.total == doc.charged == payment.total == amount + fee
    assert doc.credit_applied == 0 and not doc.credit_line
    assert kept_value_split(amount, payment) == (amount, 0, Decimal(0))  # what is credited
    assert kept_vat_free(payment)
    assert InvoiceContent.from_json(doc.to_json()) == doc


def test_an_upgrade_quoted_before_credit_rates_were_recorded_is_all_net() -> None:
    [line] = _kept(_upgrade(amount=1000)).lines
    assert line == InvoiceLine(description=PREPAYMENT_LINE, net=1000, tax_rate=Decimal(0), tax=0)


def test_a_taxed_upgrade_keeps_the_rows_net_and_tax_at_the_rate_it_charged() -> None:
    """An upgrade taxed before upgrades charged none declared its VAT on the row: the
    prepayment line takes the row as it is, its credit all of the amount."""
    payment = _upgrade(amount=1000, tax=230, metadata={"tax_rate": "23", "credit_tax_rate": "19"})
    [line] = _kept(payment).lines
    assert line == InvoiceLine(description=PREPAYMENT_LINE, net=1000, tax_rate=Decimal(23), tax=230)
    assert kept_value_split(1000, payment) == (1000, 0, Decimal(0))
    assert not kept_vat_free(payment)  # its VAT was declared: ordinary credit


@pytest.mark.parametrize(
    ("msat", "floored", "half_up"),
    [
        # 1234.5678 cents: 12.34 EUR credited (rounded down), not 12.35 (half up)
        (12_345_678, 1234, 1235),
        # a whole-sat invoice at exactly half a cent: 12.34, not 12.35
        (12_345_000, 1234, 1235),
        # 1234.4999 cents: both rules agree
        (12_344_999, 1234, 1234),
    ],
)
def test_a_lightning_upgrade_kept_as_credit_invoices_what_was_credited(
    msat: int, floored: int, half_up: int
) -> None:
    """The prepayment line is the amount converted as its credit was (exactly, rounded
    down, all net at 0 %), so the line's net is the credit booked; it was the whole row
    converted half up, a cent more than the credit. The fraction of a cent is neither
    credited nor invoiced."""
    paid = _upgrade(
        amount=msat,
        currency="BTC",
        payment_method=PaymentMethod.LIGHTNING,
        rate=Decimal(100_000),
        metadata={"credit_tax_rate": "23"},
    )
    doc = _kept(paid)
    assert doc.currency == "EUR" and doc.btc_msat == paid.total
    [line] = doc.lines
    assert msat_to_fiat(paid.total, Decimal(100_000)) == half_up
    assert doc.total == excess_value(msat, Currency.EUR, Decimal(100_000)) == floored
    assert (line.net, line.tax, line.tax_rate) == (floored, 0, Decimal(0))
    assert kept_value_split(floored, paid)[:2] == (line.net, line.tax)  # what is credited


def test_an_upgrade_applied_or_another_payment_keeps_its_service_line() -> None:
    applied = _kept(_upgrade(amount=1000, metadata={"credit_tax_rate": "23"}), kept=False)
    assert [(line.description, line.net, line.tax) for line in applied.lines] == [
        ("Upgrade: VPS", 1000, 0)
    ]
    renewal = _payment(amount=1000, tax=tax_on(1000, Decimal(23)), metadata={"tax_rate": "23"})
    assert kept_value_split(1000, renewal) == (1000, 0, Decimal(0))


def test_a_refund_to_credit_gives_an_upgrades_money_and_vat_free_credit_back_vat_free() -> None:
    """An untaxed upgrade of 2.00: 1.00 money, 0.50 VAT-free credit and 0.50 ordinary
    credit; a refund giving back 1.50 of it gives 1.125 → 1.12 VAT-free (its money's and
    VAT-free credit's 3/4), the rest ordinary. A renewal's share, or a taxed upgrade's,
    is never VAT-free (its VAT was declared)."""
    applied = {"amount": 100, "currency": "EUR", "charged": 100, "vat_free": 50}
    up = _upgrade(amount=100, metadata={"credit_applied": {**applied, "vat_free_net": 50}})
    assert vat_free_refund_part(up, 150) == 112
    assert vat_free_refund_part(up, 0) == 0
    assert vat_free_refund_part(_upgrade(amount=200), 150) == 150  # all money
    ordinary = _upgrade(amount=0, metadata={"credit_applied": applied | {"vat_free": 0}})
    assert vat_free_refund_part(ordinary, 100) == 0  # paid with ordinary credit alone
    assert vat_free_refund_part(_upgrade(amount=200, tax=46), 150) == 0  # taxed once
    assert vat_free_refund_part(_payment(amount=200), 150) == 0  # a renewal
