"""The invoice of a short Lightning settlement an admin completed as paid: it bills what
arrived (a shortfall line), exactly, with the VAT that money holds; every other invoice is
as before."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
from hypothesis import given
from hypothesis import strategies as st

from domain.admin_completion import ADMIN_COMPLETION_KEY, AdminCompletion, NodeSettlement
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.exchange import msat_to_fiat
from domain.invoice import FEE_LINE, InvoiceContent
from domain.invoice_content import build_content
from domain.model import Company, Subscription, SubscriptionPayment, User
from domain.shortfall import SHORTFALL_LINE, shortfall_line
from domain.tax import tax_on

NOW = datetime(2027, 3, 4, 10, 0, tzinfo=UTC)
SELLER = Company(id=1, created=NOW, name="Seller Ltd", country_code="IE", tax_id="IE1")
BUYER = User(id=7, pubkey=b"\x02" * 32, created=NOW, billing_name="Buyer", country_code="IE")
SUB = Subscription(id=3, user_id=7, company_id=1, name="VPS", created=NOW, currency="EUR")
RATE = Decimal(100_000)  # EUR per BTC: a cent is 10 000 msat


def _payment(short: int | None, **kw: Any) -> SubscriptionPayment:
    admin = AdminCompletion(
        admin_id=1, settlement=NodeSettlement.COUNTED, booked_at=NOW, short_received_msat=short
    )
    fields: dict[str, Any] = {
        "id": b"\x05" * 32,
        "subscription_id": 3,
        "user_id": 7,
        "created": NOW,
        "expires": NOW,
        "amount": 1_320_000,
        "tax": 303_600,
        "processing_fee": 400,
        "currency": "BTC",
        "payment_method": PaymentMethod.LIGHTNING,
        "payment_type": SubscriptionPaymentType.RENEWAL,
        "external_data": "",
        "rate": RATE,
        "is_paid": True,
        "paid_at": NOW,
        "metadata": {
            "tax_rate": "23",
            "rates": {"EUR": str(RATE)},
            ADMIN_COMPLETION_KEY: admin.to_json(),
        },
    }
    return SubscriptionPayment(**{**fields, **kw})


def _content(payment: SubscriptionPayment) -> InvoiceContent:
    return build_content(
        payment=payment,
        subscription=SUB,
        items=[],
        seller=SELLER,
        buyer=BUYER,
        issued_at=NOW,
        supply=None,
    )


def test_a_short_settlement_is_billed_at_what_arrived() -> None:
    """EUR 1.62 due (1 624 000 msat: 132 net, 30 VAT, a 400 msat rounding fee worth 0 cents),
    1 000 000 msat (EUR 1.00) arrived: a shortfall line of -51 net, -11 VAT leaves 81 net
    and 19 VAT, the VAT in EUR 1.00 at 23 %; the document round-trips."""
    doc = _content(_payment(1_000_000))
    assert [(x.description, x.net, x.tax) for x in doc.lines] == [
        ("Renewal: VPS", 132, 30),
        (SHORTFALL_LINE, -51, -11),
    ]
    assert (doc.net, doc.tax, doc.total) == (81, 19, 100)
    assert (doc.btc_msat, doc.short_msat) == (1_000_000, 624_000)
    assert InvoiceContent.from_json(doc.to_json()) == doc


def test_a_payment_paid_in_full_has_no_shortfall_line_nor_key() -> None:
    """A completion that recorded no shortfall, or one not below the total, bills the total
    as before, and its document carries no `short_msat` key (older readers see nothing new)."""
    for short in (None, 1_624_000, 2_000_000):
        doc = _content(_payment(short))
        assert [x.description for x in doc.lines] == ["Renewal: VPS"]
        assert doc.total == 162 and doc.btc_msat == 1_624_000 and doc.short_msat is None
        assert "short_msat" not in doc.to_json()


@given(
    amount=st.integers(1, 10**11),
    tax_pct=st.sampled_from(["0", "19", "23", "8.1"]),
    fee=st.integers(0, 10**8),
    share=st.fractions(0, 1),
)
def test_the_lines_add_up_to_what_arrived_with_no_more_vat_than_billed(
    amount: int, tax_pct: str, fee: int, share: Any
) -> None:
    """Whatever arrived short of the total, the invoice's total is its conversion (half up,
    as the total of any Lightning invoice), its VAT never negative nor above the VAT the
    service billed, and the fee line untouched."""
    tax = tax_on(amount, Decimal(tax_pct))
    total = amount + tax + fee
    received = int(total * share)
    if received >= total:
        received = total - 1
    paid = _payment(received, amount=amount, tax=tax, processing_fee=fee)
    assert paid.metadata is not None
    doc = _content(attrs.evolve(paid, metadata={**paid.metadata, "tax_rate": tax_pct}))
    assert doc.total == msat_to_fiat(received, RATE)
    service = doc.lines[0]
    assert 0 <= doc.tax <= service.tax
    fees = [x for x in doc.lines if x.description == FEE_LINE]
    assert [x.net for x in fees] == ([msat_to_fiat(fee, RATE)] if msat_to_fiat(fee, RATE) else [])
    assert doc.short_msat == total - received


def test_nothing_arrived_for_the_service_bears_no_vat() -> None:
    """Received no more than the fee: the service's net and VAT are taken off whole."""
    line = shortfall_line(received=50, fee=50, lines_net=1000, lines_tax=230, rate=Decimal(23))
    assert (line.net, line.tax) == (-1000, -230)
    line = shortfall_line(received=30, fee=50, lines_net=1000, lines_tax=230, rate=Decimal(23))
    assert (line.net, line.tax) == (-1020, -230)
