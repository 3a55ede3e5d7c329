"""The invoice page of a subscription without a VM (an IP range): its owner reads it as HTML
and PDF; anyone else is told "Payment not found", an unpaid one is refused as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.http.apiapp import ALICE, BOB, ApiClient, api_client
from tests.http.test_routes_invoice import invoice_link
from tests.http.vm_helpers import build, settle

SUBS = "/api/v1/subscriptions"


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build()) as client:
        yield client


async def _ip_range_payment(c: ApiClient) -> dict[str, Any]:
    items = [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip4_tier_24}]
    resp = await c.call("POST", SUBS, key=ALICE, json={"line_items": items})
    assert resp.status == 200, await resp.text()
    sub = (await resp.json())["data"]
    resp = await c.call("GET", f"{SUBS}/{sub['id']}/renew", key=ALICE)
    assert resp.status == 200, await resp.text()
    payment: dict[str, Any] = (await resp.json())["data"]
    return payment


async def test_the_owner_reads_the_invoice_of_a_paid_ip_range(c: ApiClient) -> None:
    pay = await _ip_range_payment(c)
    assert (await settle(c.api, pay["id"])).completed
    async with c.api.store() as uow:
        issued = await uow.invoices.get_by_payment(bytes.fromhex(pay["id"]))
    assert issued is not None
    page = await c.client.get(invoice_link(c, pay["id"]))
    body = await page.text()
    assert page.status == 200 and page.content_type == "text/html", body[:80]
    assert issued.number in body and "Purchase" in body
    pdf = await c.client.get(invoice_link(c, pay["id"]) + "&format=pdf")
    assert pdf.content_type == "application/pdf"
    assert (await pdf.read()).startswith(b"%PDF")


async def test_another_user_and_an_unpaid_ip_range_are_refused(c: ApiClient) -> None:
    pay = await _ip_range_payment(c)
    unpaid = await c.client.get(invoice_link(c, pay["id"]))
    assert await unpaid.text() == "Payment is not paid, can't generate invoice"
    assert (await settle(c.api, pay["id"])).completed
    other = await c.client.get(invoice_link(c, pay["id"], key=BOB))
    assert (other.status, other.content_type) == (200, "text/plain")
    assert await other.text() == "Payment not found"
