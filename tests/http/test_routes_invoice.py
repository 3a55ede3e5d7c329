"""The HTML invoice: `?auth=` NIP-98, 200 plain-text refusals, content and escaping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from html.parser import HTMLParser

import attrs
import pytest

from adapters.http.invoice_html import format_amount, format_duration
from domain.nip19 import npub
from tests.http.apiapp import ALICE, BOB, ApiClient, api_client
from tests.http.vm_helpers import build, order, renew, settle, user_of
from tests.nostr_signing import NostrKey, encode_event, nip98_event


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build()) as client:
        yield client


def invoice_link(c: ApiClient, payment_id: str, key: NostrKey = ALICE, **kw: object) -> str:
    path = f"/api/v1/payment/{payment_id}/invoice"
    when = kw.get("when", c.api.clock.now())
    assert isinstance(when, int | datetime)
    event = nip98_event(key, str(kw.get("url", c.url(path))), "GET", when)
    return f"{path}?auth={encode_event(event, urlsafe=True)}"


async def paid_payment(c: ApiClient) -> str:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"])
    await settle(c.api, payment["id"])
    return str(payment["id"])


class Strict(HTMLParser):
    """Collects text and fails on a `<script>` element: the page must be inert."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        assert tag != "script"

    def handle_data(self, data: str) -> None:
        self.text.append(data)


async def test_invoice_shows_seller_buyer_lines_tax_total_and_status(c: ApiClient) -> None:
    user = await user_of(c.api, ALICE)
    async with c.api.store() as uow:
        await uow.users.update(
            attrs.evolve(
                user,
                billing_name="<script>alert(1)</script> & Co",
                billing_city="Dublin",
                country_code="IRL",
                billing_tax_id="IE123",
            )
        )
        company = await uow.companies.get(c.demo.company)
        assert company is not None
        await uow.companies.update(attrs.evolve(company, tax_id="IE999", city="Cork"))
        await uow.commit()
    payment_id = await paid_payment(c)
    resp = await c.client.get(invoice_link(c, payment_id))
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; Co" in page
    parser = Strict()
    parser.feed(page)
    text = " ".join(parser.text)
    for expected in (
        "Demo Hosting Ltd",
        "IE999",
        "Cork",
        "Dublin",
        "IRL",
        "IE123",
        npub(ALICE.pubkey),
        "Purchase: VM1 - Tiny",
        "30 days",
        "BTC 0.00002700",
        "Tax",
        "Total",
        "PAID on 2026-06-17 10:00 UTC",
        payment_id,
    ):
        assert expected in text, expected


async def test_refusals_are_200_plain_text(c: ApiClient) -> None:
    payment_id = await paid_payment(c)
    vm = await order(c, ALICE)
    unpaid = (await renew(c, ALICE, vm["id"]))["id"]
    cases = [
        (invoice_link(c, payment_id, BOB), "Payment not found"),
        (invoice_link(c, unpaid), "Payment is not paid, can't generate invoice"),
        (invoice_link(c, "zz"), "Invalid payment id"),
        (invoice_link(c, "ab" * 32), "Payment not found"),
        (invoice_link(c, payment_id, url=c.url("/api/v1/payment/x/invoice")), "Invalid auth event"),
        (
            invoice_link(c, payment_id, when=c.api.clock.now() - timedelta(hours=1)),
            "Invalid auth event",
        ),
        (f"/api/v1/payment/{payment_id}/invoice?auth=%%%", "Missing or invalid auth param"),
    ]
    for link, text in cases:
        resp = await c.client.get(link)
        assert resp.status == 200 and resp.content_type == "text/plain", link
        assert text in await resp.text(), (link, await resp.text())
    missing = await c.client.get(f"/api/v1/payment/{payment_id}/invoice")
    assert missing.status == 400 and await missing.json() == {"error": "Missing auth param"}


def test_formatting_helpers() -> None:
    assert format_amount(855, "EUR") == "EUR 8.55"
    assert format_amount(1_320_000, "BTC") == "BTC 0.00001320"
    assert format_duration(2_592_000) == "30 days"
    assert format_duration(93_600) == "1 day 2 h"
    assert format_duration(0) == "-"
    # NIP-19 test vector
    key = bytes.fromhex("3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d")
    assert npub(key) == "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"


async def test_an_upgrade_invoice_lists_what_was_bought(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    await settle(c.api, (await renew(c, ALICE, vm["id"]))["id"])
    resp = await c.call("POST", f"/api/v1/vm/{vm['id']}/upgrade", json={"cpu": 2})
    upgrade = (await resp.json())["data"]
    await settle(c.api, upgrade["id"])
    page = await (await c.client.get(invoice_link(c, upgrade["id"]))).text()
    assert "Upgrade: VM1 - Tiny" in page and "CPU: 2 cores" in page


async def test_the_page_of_an_issued_invoice_does_not_change_with_later_edits(
    c: ApiClient,
) -> None:
    """The number was issued for the document stored at completion (as its PDF): renaming
    the company or the buyer afterwards changes neither page."""
    payment_id = await paid_payment(c)
    before = await (await c.client.get(invoice_link(c, payment_id))).text()
    user = await user_of(c.api, ALICE)
    async with c.api.store() as uow:
        await uow.users.update(attrs.evolve(user, billing_name="Someone Else"))
        company = await uow.companies.get(c.demo.company)
        assert company is not None
        await uow.companies.update(attrs.evolve(company, name="Renamed Ltd", tax_id="XX1"))
        issued = await uow.invoices.get_by_payment(bytes.fromhex(payment_id))
        await uow.commit()
    assert issued is not None
    after = await (await c.client.get(invoice_link(c, payment_id))).text()
    assert after == before
    parser = Strict()
    parser.feed(after)
    text = " ".join(parser.text)
    assert issued.number in text and "Demo Hosting Ltd" in text
    assert "Renamed Ltd" not in text and "Someone Else" not in text
    assert f"{issued.document.lines[0].tax_rate.normalize():f} %" in text
