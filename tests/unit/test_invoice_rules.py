"""Invoice rules: numbers, reverse charge, the tax rate a charged tax stands for, Lightning
amounts shown in the listed currency, the credit-applied line, and the snapshot round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.exchange import msat_to_fiat
from domain.invoice import (
    Invoice,
    InvoiceContent,
    credit_note_parts,
    credit_note_series,
    document_number,
    effective_tax_rate,
    invoice_series,
    is_reverse_charge,
)
from domain.invoice_content import CREDIT_LINE, build_content
from domain.model import Company, Subscription, SubscriptionPayment, User
from domain.tax import tax_on

NOW = datetime(2027, 3, 4, 10, 0, tzinfo=UTC)
SELLER = Company(id=1, created=NOW, name="Seller Ltd", country_code="IE", tax_id="IE1")


def _buyer(**kw: Any) -> User:
    fields: dict[str, Any] = {
        "id": 7,
        "pubkey": b"\x02" * 32,
        "created": NOW,
        "billing_name": "Buyer",
        "country_code": "DE",
    }
    return User(**{**fields, **kw})


def _payment(**kw: Any) -> SubscriptionPayment:
    fields: dict[str, Any] = {
        "id": b"\x05" * 32,
        "subscription_id": 3,
        "user_id": 7,
        "created": NOW,
        "expires": NOW,
        "amount": 1000,
        "currency": "EUR",
        "payment_method": PaymentMethod.REVOLUT,
        "payment_type": SubscriptionPaymentType.RENEWAL,
        "external_data": "",
        "tax": 0,
        "rate": Decimal(1),
        "is_paid": True,
        "paid_at": NOW,
    }
    return SubscriptionPayment(**{**fields, **kw})


SUB = Subscription(id=3, user_id=7, company_id=1, name="VPS", created=NOW, currency="EUR")


def _content(payment: SubscriptionPayment, buyer: User | None = None) -> InvoiceContent:
    return build_content(
        payment=payment,
        subscription=SUB,
        items=[],
        seller=SELLER,
        buyer=buyer or _buyer(),
        issued_at=NOW,
        supply=None,
    )


def test_numbers_and_series() -> None:
    assert invoice_series(NOW) == "2027" and credit_note_series(NOW) == "CN-2027"
    assert document_number("2027", 123) == "2027-000123"
    with pytest.raises(ValueError):
        document_number("2027", 0)


def test_reverse_charge_needs_a_validated_id_and_two_eu_countries() -> None:
    assert is_reverse_charge("IRL", "DEU", "DE1", True)
    assert not is_reverse_charge("IRL", "DEU", "DE1", False)  # not validated
    assert not is_reverse_charge("IRL", "IRL", "IE2", True)  # same country
    assert not is_reverse_charge("IRL", "USA", "US1", True)  # outside the EU
    assert not is_reverse_charge("IRL", "DEU", None, True)  # no id
    validated = _buyer(billing_tax_id="DE1", billing_vat_validated=True)
    assert _content(_payment(), validated).reverse_charge
    assert not _content(_payment(), _buyer(billing_tax_id="DE1")).reverse_charge


@given(net=st.integers(1, 10**12), rate=st.sampled_from(["0", "7", "19", "20", "23", "8.1"]))
def test_the_charged_tax_gives_back_its_configured_rate(net: int, rate: str) -> None:
    tax = tax_on(net, Decimal(rate))
    shown = effective_tax_rate(net, tax)
    assert tax_on(net, shown) == tax  # always a rate that gives the tax charged
    if net >= 10_000 and tax:
        assert shown == Decimal(rate)  # and for any real amount, the configured one


def test_lightning_is_invoiced_in_the_listed_currency_with_the_btc_amount_and_rate() -> None:
    # EUR 10.00 at 50 000 EUR/BTC is 20 000 sat; 23 % tax; a 1 000 sat (EUR 0.50) fee
    paid = _payment(
        amount=20_000_000,
        tax=4_600_000,
        processing_fee=1_000_000,
        currency="BTC",
        payment_method=PaymentMethod.LIGHTNING,
        rate=Decimal(50_000),
    )
    doc = _content(paid)
    assert doc.currency == "EUR" and doc.btc_msat == paid.total and doc.btc_rate == 50_000
    service, fee = doc.lines
    assert (service.net, service.tax, service.tax_rate) == (1000, 230, Decimal(23))
    assert (fee.net, fee.tax) == (50, 0)
    assert doc.total == 1280 and doc.charged == 1280


@given(
    amount=st.integers(0, 10**9),
    tax_pct=st.sampled_from(["0", "19", "23", "8.1"]),
    credit=st.integers(1, 10**9),
)
def test_credit_applied_is_a_line_and_the_lines_add_up_to_the_payment_row(
    amount: int, tax_pct: str, credit: int
) -> None:
    """Credit is net value: the service line is the full value bought at the quote's rate,
    the credit line takes its net and the tax it spared off, and what is left is exactly the
    payment row (the tax a revenue report sums), at the rate the payer was charged."""
    tax = tax_on(amount, Decimal(tax_pct))
    meta = {"credit_applied": {"amount": credit, "currency": "EUR"}, "tax_rate": tax_pct}
    doc = _content(_payment(amount=amount, tax=tax, metadata=meta))
    service, applied = doc.lines
    assert (service.net, service.tax) == (
        amount + credit,
        tax_on(amount + credit, Decimal(tax_pct)),
    )
    assert applied.description == CREDIT_LINE and applied.net == -credit
    assert service.tax_rate == applied.tax_rate == Decimal(tax_pct)
    assert (doc.net, doc.tax) == (amount, tax) and doc.total == doc.charged == amount + tax
    assert doc.credit_applied == credit and doc.credit_line
    assert InvoiceContent.from_json(doc.to_json()) == doc


def test_a_renewal_paid_wholly_from_credit_shows_its_rate_and_totals_zero() -> None:
    """1.32 EUR at 23 % covered by credit: 23 % VAT on the value bought (0.30), all of it
    taken off again by the credit line; an invoice that read the rate off the row's amounts
    (0 and 0) printed 0 % VAT."""
    meta = {"credit_applied": {"amount": 132, "currency": "EUR"}, "tax_rate": "23"}
    doc = _content(_payment(amount=0, tax=0, metadata=meta))
    service, applied = doc.lines
    assert (service.net, service.tax_rate, service.tax) == (132, Decimal(23), 30)
    assert (applied.net, applied.tax_rate, applied.tax) == (-132, Decimal(23), -30)
    assert doc.net == doc.tax == doc.total == doc.charged == 0


def test_a_partly_credit_paid_renewal_prints_the_rate_it_was_charged() -> None:
    """1.32 EUR at 23 % with 0.63 credit: the row is 0.69 + 0.15 VAT (D3 on the rest); the
    invoice prints 23 %, not the 19.1 % read off a gross split, and its VAT is the row's."""
    meta = {"credit_applied": {"amount": 63, "currency": "EUR"}, "tax_rate": "23"}
    doc = _content(_payment(amount=69, tax=15, metadata=meta))
    assert [(line.net, line.tax_rate, line.tax) for line in doc.lines] == [
        (132, Decimal(23), 30),
        (-63, Decimal(23), -15),
    ]
    assert (doc.net, doc.tax, doc.total) == (69, 15, 84)


def test_the_recorded_rate_is_printed_and_an_old_row_reads_it_off_its_amounts() -> None:
    """0.69 at 23 % is 0.15 tax, which 22 % gives too: read off the amounts, the rate is the
    shortest one that gives that tax; the quote's recorded rate is printed as it is."""
    assert _content(_payment(amount=69, tax=15)).lines[0].tax_rate == Decimal(22)
    recorded = _content(_payment(amount=69, tax=15, metadata={"tax_rate": "23"}))
    assert recorded.lines[0].tax_rate == Decimal(23)


def test_a_lightning_invoice_total_is_the_conversion_of_what_was_paid() -> None:
    """At 100 000 EUR/BTC a cent is 10 000 msat: 1 235 000 net (123.5 cents), 284 050 tax
    (28.405) and 5 000 fee (0.5) converted one by one make 124 + 28 + 1 = 153 cents, though
    the 1 524 050 msat paid are 152.405 cents: the total is the conversion of what was paid,
    the net what is left of it."""
    paid = _payment(
        amount=1_235_000,
        tax=284_050,
        processing_fee=5_000,
        currency="BTC",
        payment_method=PaymentMethod.LIGHTNING,
        rate=Decimal(100_000),
        metadata={"tax_rate": "23"},
    )
    doc = _content(paid)
    assert doc.btc_msat == paid.total and doc.btc_rate is not None
    assert doc.total == msat_to_fiat(paid.total, doc.btc_rate) == 152
    service, fee = doc.lines
    assert (service.net, service.tax, service.tax_rate, fee.net) == (123, 28, Decimal(23), 1)


def test_a_lightning_credit_line_never_adds_tax() -> None:
    """A Lightning payment's tax is converted from msat (half up: 11 505 366 msat is 1 151
    cents) while the full value's tax is floored in cents (23 % of 5 003 is 1 150): the
    credit line made up the difference with tax of +1; it now takes off none."""
    credit = {"amount": 1, "currency": "EUR", "charged": 10_000}
    paid = _payment(
        amount=50_023_331,
        tax=11_505_366,
        processing_fee=0,
        currency="BTC",
        payment_method=PaymentMethod.LIGHTNING,
        rate=Decimal(100_000),
        metadata={"tax_rate": "23", "credit_applied": credit},
    )
    service, credit_line = _content(paid).lines
    assert credit_line.net == -1 and credit_line.tax == 0
    assert service.tax + credit_line.tax == msat_to_fiat(paid.tax, Decimal(100_000)) == 1151


def test_malformed_credit_is_ignored() -> None:
    for raw in (
        {"amount": -5, "currency": "EUR"},
        {"amount": True},
        "x",
        {"amount": 5, "currency": "USD"},
    ):
        assert _content(_payment(metadata={"credit_applied": raw})).credit_applied == 0


def test_a_lightning_payments_credit_in_another_fiat_is_shown_by_its_msat() -> None:
    """An upgrade priced in USD on an EUR subscription, paid by Lightning and partly from USD
    credit: the EUR invoice shows that credit as its msat worth at the quote's EUR rate."""
    meta = {
        "credit_applied": {"amount": 7, "currency": "USD", "charged": 77_778},
        "rates": {"EUR": "100000", "USD": "90000"},
    }
    payment = _payment(
        amount=4_289_000,
        currency="BTC",
        payment_method=PaymentMethod.LIGHTNING,
        rate=Decimal(90_000),
        metadata=meta,
    )
    doc = _content(payment)
    assert doc.currency == "EUR" and doc.btc_rate == Decimal(100_000)
    assert doc.credit_applied == 8  # 77 778 msat at 100 000 EUR/BTC: 7.78 cents, half up
    assert doc.charged == 429  # 4 289 000 msat: 4.29 EUR
    no_rate = _payment(
        amount=4_289_000, currency="BTC", rate=Decimal(1), metadata=meta | {"rates": {}}
    )
    assert _content(no_rate).credit_applied == 0  # no rate links them: BTC stands alone


def _invoice(net: int, tax: int) -> Invoice:
    return Invoice(
        id=1,
        company_id=1,
        series="2027",
        seq=1,
        number="2027-000001",
        payment_id=b"\x05" * 32,
        user_id=7,
        issued_at=NOW,
        currency="EUR",
        net=net,
        tax=tax,
        total=net + tax,
        content={},
    )


def test_a_credit_notes_net_and_tax_only_where_the_invoice_fixes_them() -> None:
    taxed = _invoice(1000, 230)
    assert credit_note_parts(1230, taxed) == (1000, 230)  # the whole invoice taken back
    assert credit_note_parts(500, taxed) is None  # part of a taxed one: no rule splits it
    untaxed = _invoice(1000, 0)
    assert credit_note_parts(400, untaxed) == (400, 0)
    assert credit_note_parts(1000, untaxed) == (1000, 0)
