"""An invoice that charges no VAT because its buyer is outside the EU says so, on its PDF,
its HTML page and in the CSV export; never one that charges VAT, nor one to a buyer in the
EU or of no known country, nor one reverse charged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import attrs
import pytest

from adapters.http.admin.routes_invoices import CSV_COLUMNS, csv_row
from domain.invoice import OUTSIDE_EU_TEXT, Invoice
from domain.tax import TaxRates
from tests.http.apiapp import ALICE, ApiClient, api_client
from tests.http.test_invoice_pdf import _paid_renewal, _pdf_text
from tests.http.test_routes_invoice import invoice_link
from tests.http.vm_helpers import build, user_of

#: VAT in Germany (19 %) and a sales tax configured for Canada (5 %); none for the US
RATES = TaxRates({"DEU": Decimal(19), "CAN": Decimal(5)})
STATEMENT = "Not subject to VAT: supply of services outside the EU"
OUTSIDE_COLUMN = CSV_COLUMNS.index("outside_eu")


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build(tax_rates=RATES)) as client:
        yield client


async def _parties(
    c: ApiClient, buyer_country: str | None, seller_country: str = "IE", **buyer: Any
) -> None:
    user = await user_of(c.api, ALICE)
    async with c.api.store() as uow:
        await uow.users.update(
            attrs.evolve(user, billing_name="Alice Example", country_code=buyer_country, **buyer)
        )
        company = await uow.companies.get(c.demo.company)
        assert company is not None
        await uow.companies.update(
            attrs.evolve(company, city="Cork", country_code=seller_country, tax_id="IE6388047V")
        )
        await uow.commit()


async def _issued(c: ApiClient, payment_id: str) -> Invoice:
    async with c.api.store() as uow:
        issued = await uow.invoices.get_by_payment(bytes.fromhex(payment_id))
    assert issued is not None
    return issued


async def test_a_buyer_outside_the_eu_untaxed_is_told_why(c: ApiClient) -> None:
    """A US buyer of an Irish seller, no tax configured for the US: EUR 2.70 at 0 %, and the
    statement on the PDF (bold, after the notes), the HTML page and the CSV export (1)."""
    await _parties(c, "US")
    payment_id = await _paid_renewal(c)
    issued = await _issued(c, payment_id)
    doc = issued.document
    assert (doc.total, doc.tax, doc.buyer.country) == (270, 0, "USA")
    assert doc.outside_eu and not doc.reverse_charge
    assert issued.content["outside_eu"] is True
    text = await _pdf_text(c, payment_id)
    assert "EUR 2.70 0 % EUR 0.00" in text and OUTSIDE_EU_TEXT in text, text
    assert "Reverse charge" not in text
    page = await (await c.client.get(invoice_link(c, payment_id))).text()
    assert f"<p class='note'>{OUTSIDE_EU_TEXT}</p>" in page
    assert csv_row(issued)[OUTSIDE_COLUMN] == "1"


@pytest.mark.parametrize(
    ("buyer_country", "seller_country", "buyer", "why"),
    [
        ("CA", "IE", {}, "taxed: 5 % configured for Canada"),
        ("DE", "IE", {}, "taxed: 19 % in Germany"),
        ("FR", "IE", {}, "a buyer in the EU untaxed (no rate configured) is no export"),
        (None, "IE", {}, "a buyer of no known country is not known to be outside"),
        ("US", "US", {}, "a seller outside the EU: EU VAT is not its matter"),
        (
            "DE",
            "IE",
            {"billing_tax_id": "DE811907980", "billing_vat_validated": True},
            "reverse charged: that statement, not this one",
        ),
    ],
)
async def test_no_statement_where_it_is_not_the_reason(
    c: ApiClient,
    buyer_country: str | None,
    seller_country: str,
    buyer: dict[str, Any],
    why: str,
) -> None:
    await _parties(c, buyer_country, seller_country, **buyer)
    payment_id = await _paid_renewal(c)
    issued = await _issued(c, payment_id)
    assert not issued.document.outside_eu, why
    assert "outside_eu" not in issued.content, why
    assert STATEMENT not in await _pdf_text(c, payment_id), why
    page = await (await c.client.get(invoice_link(c, payment_id))).text()
    assert STATEMENT not in page, why
    assert csv_row(issued)[OUTSIDE_COLUMN] == "0", why
