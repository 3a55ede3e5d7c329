"""`?format=pdf`: a real PDF of the issued invoice, rendered to PNG and read back from its text
layer (pypdfium2): number, seller, buyer, supply period, tax, BTC rate, credit applied."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import attrs
import pypdfium2 as pdfium
import pytest

from adapters.http import routes_invoice
from adapters.http.invoice_issued_html import render_issued_invoice
from adapters.http.invoice_pdf import cjk_font_file, render_invoice_pdf, unicode_font_dir
from adapters.http.invoice_text import totals
from domain.invoice import Invoice, InvoiceContent
from domain.tax import TaxRates
from tests.http.apiapp import ALICE, ApiClient, api_client
from tests.http.test_routes_invoice import invoice_link
from tests.http.vm_helpers import build, order, renew, settle, user_of

#: set to a path to keep the rendered first page (docs/invoice-example.png was made so)
KEEP_PNG = os.environ.get("LNVPS_INVOICE_PNG")


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build(tax_rates=TaxRates({"DEU": Decimal(19)}))) as client:
        yield client


async def _billing_details(c: ApiClient, *, validated: bool) -> None:
    user = await user_of(c.api, ALICE)
    async with c.api.store() as uow:
        await uow.users.update(
            attrs.evolve(
                user,
                billing_name="Alice Example GmbH",
                billing_address_1="Hauptstr. 1",
                billing_city="Berlin",
                billing_postcode="10115",
                country_code="DE",
                billing_tax_id="DE811907980",
                billing_vat_validated=validated,
            )
        )
        company = await uow.companies.get(c.demo.company)
        assert company is not None
        await uow.companies.update(
            attrs.evolve(
                company,
                address_1="1 Main Street",
                city="Cork",
                country_code="IE",
                tax_id="IE6388047V",
            )
        )
        await uow.commit()


async def _paid_renewal(c: ApiClient, credit: int = 0, vm_id: int | None = None) -> str:
    """A paid Purchase of a new VM, or a paid Renewal of `vm_id`."""
    if vm_id is None:
        vm_id = (await order(c, ALICE))["id"]
    payment = await renew(c, ALICE, vm_id)
    if credit:  # what the credit balance writes when credit paid part of the renewal
        async with c.api.store() as uow:
            stored = await uow.payments.get(bytes.fromhex(payment["id"]))
            assert stored is not None
            meta = {
                **(stored.metadata or {}),
                "credit_applied": {"amount": credit, "currency": "EUR"},
            }
            await uow.payments.update(attrs.evolve(stored, metadata=meta))
            await uow.commit()
    await settle(c.api, payment["id"])
    return str(payment["id"])


def _text_of(body: bytes) -> str:
    pdf = pdfium.PdfDocument(body)
    try:
        text: str = pdf[0].get_textpage().get_text_range()
    finally:
        pdf.close()
    return " ".join(text.split())


async def _pdf_text(c: ApiClient, payment_id: str, png: Path | None = None) -> str:
    resp = await c.client.get(invoice_link(c, payment_id) + "&format=pdf")
    assert resp.status == 200 and resp.content_type == "application/pdf"
    body = await resp.read()
    assert body.startswith(b"%PDF-")
    pdf = pdfium.PdfDocument(body)
    try:
        page = pdf[0]
        image = page.render(scale=2).to_pil()
        assert image.width > 1000 and image.getbbox() is not None  # a drawn A4 page
        if png is not None:
            image.save(png)
        text: str = page.get_textpage().get_text_range()
    finally:
        pdf.close()
    return " ".join(text.split())


async def test_the_pdf_carries_the_number_and_every_eu_field(c: ApiClient, tmp_path: Path) -> None:
    await _billing_details(c, validated=True)
    payment_id = await _paid_renewal(c)
    text = await _pdf_text(c, payment_id, tmp_path / "page.png")
    assert (tmp_path / "page.png").stat().st_size > 10_000
    async with c.api.store() as uow:
        issued = await uow.invoices.get_by_payment(bytes.fromhex(payment_id))
    assert issued is not None and issued.number == "2026-000001"
    for expected in (
        f"Invoice number: {issued.number}",
        "Date of issue: 2026-06-17",
        "Date of supply: 2026-06-17 to 2026-07-17",
        "Demo Hosting Ltd",
        "Cork",
        "VAT/Tax ID: IE6388047V",
        "Alice Example GmbH",
        "Berlin",
        "DEU",
        "VAT/Tax ID: DE811907980",
        "Purchase: VM1 - Tiny",
        "EUR 2.70 0 % EUR 0.00",
        "Paid over Lightning: BTC",
        "at 1 BTC = EUR",
        "Reverse charge",
    ):
        assert expected in text, (expected, text)
    # the HTML page shows the same number, the payment id and the reverse-charge wording
    page = await (await c.client.get(invoice_link(c, payment_id))).text()
    assert issued.number in page and payment_id in page and "Reverse charge" in page


async def test_a_renewal_paid_partly_from_credit_shows_the_credit_line(c: ApiClient) -> None:
    await _billing_details(c, validated=False)
    await _paid_renewal(c)
    vm = await order(c, ALICE)
    await settle(c.api, (await renew(c, ALICE, vm["id"]))["id"])
    payment_id = await _paid_renewal(c, credit=150, vm_id=vm["id"])
    text = await _pdf_text(c, payment_id, Path(KEEP_PNG) if KEEP_PNG else None)
    async with c.api.store() as uow:
        issued = await uow.invoices.get_by_payment(bytes.fromhex(payment_id))
    assert issued is not None
    doc = issued.document
    assert issued.number == "2026-000003" and doc.lines[0].description.startswith("Renewal")
    # charged 2.70 + 19 % tax (0.51) = 3.21; with 1.50 of credit (net value) the service line
    # is the 4.20 bought at 19 % (0.79), the credit line takes 1.50 and 0.28 of tax off
    service, applied = doc.lines
    assert (service.net, service.tax, service.tax_rate) == (420, 79, Decimal(19))
    assert (applied.net, applied.tax, applied.tax_rate) == (-150, 51 - 79, Decimal(19))
    assert doc.credit_applied == 150 and doc.total == doc.charged == 321
    assert "Account credit applied EUR -1.50 19 % EUR -0.28 EUR -1.78" in text, text
    assert "Net total EUR 2.70 Tax total EUR 0.51 Total EUR 3.21" in text, text
    assert "Amount charged" not in text and "Reverse charge" not in text


#: an invoice document as issued before credit was a line of its own: the credit applied
#: (1.50) was added to the gross and split at 19 %, then taken off below the lines
OLD_CREDIT_DOCUMENT = {
    "seller": {"name": "Demo Hosting Ltd", "address": ["Cork"], "country": "IRL"},
    "buyer": {"name": "Alice Example GmbH", "address": ["Berlin"], "country": "DEU"},
    "buyer_npub": "npub1" + "q" * 58,
    "issued_at": "2026-06-17T00:00:00+00:00",
    "supply_from": "2026-06-17T00:00:00+00:00",
    "supply_to": "2026-07-17T00:00:00+00:00",
    "currency": "EUR",
    "lines": [{"description": "Renewal: VM1", "net": 396, "tax_rate": "19", "tax": 75}],
    "payment_id": "05" * 32,
    "payment_method": "Lightning",
    "credit_applied": 150,
    "btc_msat": 3_210_000,
    "btc_rate": "100000",
    "reverse_charge": False,
    "overpaid": None,
}


def test_an_invoice_issued_before_credit_lines_renders_as_it_was_issued() -> None:
    """Issued invoices are drawn from their stored document: an old one with credit applied
    keeps its totals (4.71 gross, credit 1.50 taken off below, 3.21 charged) on every
    rendering, and its lines as they were."""
    doc = InvoiceContent.from_json(OLD_CREDIT_DOCUMENT)
    assert not doc.credit_line and (doc.total, doc.charged) == (471, 321)
    assert totals(doc) == [
        ("Net total", 396),
        ("Tax total", 75),
        ("Total", 471),
        ("Credit applied", -150),
        ("Amount charged", 321),
    ]
    issued = Invoice(
        id=1,
        company_id=1,
        series="2026",
        seq=1,
        number="2026-000001",
        payment_id=bytes.fromhex(doc.payment_id),
        user_id=7,
        issued_at=doc.issued_at,
        currency="EUR",
        net=doc.net,
        tax=doc.tax,
        total=doc.total,
        content=OLD_CREDIT_DOCUMENT,
    )
    text = _text_of(render_invoice_pdf(issued))
    assert "Renewal: VM1 EUR 3.96 19 % EUR 0.75 EUR 4.71" in text, text
    assert "Total EUR 4.71 Credit applied -EUR 1.50 Amount charged EUR 3.21" in text, text
    page = render_issued_invoice(issued, None)
    assert "<td>Credit applied</td><td>EUR -1.50</td>" in page
    assert "<td>Amount charged</td><td>EUR 3.21</td>" in page
    assert InvoiceContent.from_json(OLD_CREDIT_DOCUMENT).to_json() == {
        **OLD_CREDIT_DOCUMENT,
        "seller": doc.seller.to_json(),
        "buyer": doc.buyer.to_json(),
        "credit_line": False,
    }


async def test_pdf_refusals(c: ApiClient) -> None:
    payment_id = await _paid_renewal(c)
    bad = await c.client.get(invoice_link(c, payment_id) + "&format=doc")
    assert bad.status == 400
    vm = await order(c, ALICE)
    unpaid = (await renew(c, ALICE, vm["id"]))["id"]
    resp = await c.client.get(invoice_link(c, unpaid) + "&format=pdf")
    assert resp.content_type == "text/plain"
    assert "Payment is not paid" in await resp.text()


async def test_names_in_other_scripts_print_as_written(c: ApiClient) -> None:
    """A buyer named in Polish, Greek and Cyrillic letters is printed as written (DejaVu Sans,
    installed by scripts/install-system-deps), not as question marks; without a Unicode font
    the core font still draws the invoice, with `?` for what Latin-1 lacks."""
    assert unicode_font_dir() is not None, "fonts-dejavu-core is not installed"
    await _billing_details(c, validated=False)
    user = await user_of(c.api, ALICE)
    async with c.api.store() as uow:
        await uow.users.update(
            attrs.evolve(user, billing_name="Łukasz Żółć", billing_city="Αθήνα Москва")
        )
        await uow.commit()
    payment_id = await _paid_renewal(c)
    text = await _pdf_text(c, payment_id)
    assert "Łukasz Żółć" in text and "Αθήνα Москва" in text, text
    assert "?" not in text
    async with c.api.store() as uow:
        issued = await uow.invoices.get_by_payment(bytes.fromhex(payment_id))
    assert issued is not None
    fallback = _text_of(render_invoice_pdf(issued, font_dirs=()))
    assert "?ukasz ?ó??" in fallback and "Łukasz" not in fallback, fallback
    assert issued.number is not None and issued.number in fallback


async def test_chinese_japanese_and_korean_names_print_as_written(c: ApiClient) -> None:
    """DejaVu Sans has no CJK glyphs: WenQuanYi Micro Hei (scripts/install-system-deps) draws
    them as a fallback, loaded only for an invoice that needs it; without it those names
    would be lost from the PDF."""
    assert cjk_font_file() is not None, "fonts-wqy-microhei is not installed"
    await _billing_details(c, validated=False)
    user = await user_of(c.api, ALICE)
    async with c.api.store() as uow:
        await uow.users.update(
            attrs.evolve(
                user, billing_name="山田太郎 株式会社", billing_city="東京 서울 ソウル Łódź"
            )
        )
        await uow.commit()
    payment_id = await _paid_renewal(c)
    text = await _pdf_text(c, payment_id)
    assert "山田太郎 株式会社" in text and "東京 서울 ソウル Łódź" in text, text
    async with c.api.store() as uow:
        issued = await uow.invoices.get_by_payment(bytes.fromhex(payment_id))
    assert issued is not None
    without = _text_of(render_invoice_pdf(issued, cjk_files=()))
    assert "山田" not in without and "Łódź" in without, without


async def test_a_repeated_pdf_request_renders_nothing(
    c: ApiClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One `auth` token may be replayed for its window: the frozen PDF is drawn once."""
    rendered: list[str] = []

    def counting(invoice: Invoice) -> bytes:
        rendered.append(invoice.number)
        return render_invoice_pdf(invoice)

    monkeypatch.setattr(routes_invoice, "render_invoice_pdf", counting)
    first, second = await _paid_renewal(c), await _paid_renewal(c)
    link = invoice_link(c, first) + "&format=pdf"
    bodies = []
    for _ in range(3):
        resp = await c.client.get(link)
        assert resp.status == 200 and resp.content_type == "application/pdf"
        bodies.append(await resp.read())
    assert len(rendered) == 1 and bodies[0] == bodies[1] == bodies[2]
    assert _text_of(bodies[0]).count(rendered[0]) >= 1
    other = await c.client.get(invoice_link(c, second) + "&format=pdf")
    assert other.status == 200
    assert len(rendered) == 2 and rendered[0] != rendered[1]  # each invoice its own PDF
