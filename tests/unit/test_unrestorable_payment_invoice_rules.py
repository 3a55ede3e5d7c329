"""The invoice of a Purchase or Renewal that bought nothing, its value kept as account credit
(its VM cannot be provided): one prepayment line in place of the service's, keeping the
row's net, VAT and rate (the credit is that net), the lines adding up to the payment row."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from domain.enums import SubscriptionPaymentType
from domain.invoice import InvoiceContent, InvoiceLine
from domain.prepayment import PREPAYMENT_LINE, kept_value_split
from domain.tax import tax_on
from tests.unit.test_invoice_rules import _payment
from tests.unit.test_unapplied_upgrade_invoice_rules import FEE_LINE, _kept

KINDS = (SubscriptionPaymentType.RENEWAL, SubscriptionPaymentType.PURCHASE)


@given(
    kind=st.sampled_from(KINDS),
    amount=st.integers(1, 10**9),
    fee=st.integers(0, 10**4),
    rate=st.sampled_from(["0", "19", "23", "8.1"]),
    credit=st.integers(0, 10**6),
)
def test_a_service_payment_kept_as_credit_is_one_prepayment_line_of_its_row(
    kind: SubscriptionPaymentType, amount: int, fee: int, rate: str, credit: int
) -> None:
    """Its VAT was charged on top at the quote's rate: the line is the row's net and VAT,
    its credit that net; the credit it applied (given back) is not shown; a fee keeps its
    untaxed line."""
    meta: dict[str, Any] = {"tax_rate": rate}
    if credit:
        meta["credit_applied"] = {"amount": credit, "currency": "EUR"}
    tax = tax_on(amount, Decimal(rate))
    payment = _payment(payment_type=kind, amount=amount, tax=tax, processing_fee=fee, metadata=meta)
    doc = _kept(payment)
    prepaid = InvoiceLine(description=PREPAYMENT_LINE, net=amount, tax_rate=Decimal(rate), tax=tax)
    fee_lines = (
        [InvoiceLine(description=FEE_LINE, net=fee, tax_rate=Decimal(0), tax=0)] if fee else []
    )
    assert list(doc.lines) == [prepaid, *fee_lines]
    assert doc.total == doc.charged == payment.total == amount + tax + fee
    assert doc.credit_applied == 0 and not doc.credit_line
    assert kept_value_split(amount, payment) == (amount, 0, Decimal(0))  # the credit: its net
    assert InvoiceContent.from_json(doc.to_json()) == doc


def test_a_renewal_whose_vat_rounded_to_nothing_keeps_its_quotes_rate() -> None:
    """One cent at 23 % bears no VAT: the line still says the rate the quote charged (it is
    not a reverse charge), as its service line would have."""
    payment = _payment(amount=1, tax=0, metadata={"tax_rate": "23"})
    doc = _kept(payment)
    assert list(doc.lines) == [
        InvoiceLine(description=PREPAYMENT_LINE, net=1, tax_rate=Decimal(23), tax=0)
    ]
    [service] = _kept(payment, kept=False).lines
    assert service.description == "Renewal: VPS" and service.tax_rate == Decimal(23)
    assert not doc.reverse_charge
