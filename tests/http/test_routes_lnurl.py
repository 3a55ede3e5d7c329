"""LNURL-pay: the payRequest, the callback on the VM id (not the subscription id), errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import attrs
import pytest

from domain.enums import SubscriptionPaymentType
from domain.model import Subscription
from domain.tax import TaxRates
from tests.http.apiapp import ALICE, NOW, ApiClient, api_client
from tests.http.vm_helpers import build, order, renew, settle, subscription_of, user_of


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    api = build(tax_rates=TaxRates({"IRL": Decimal(23)}))
    async with api_client(api) as client:
        async with api.store() as uow:  # a subscription first: VM ids and their
            await uow.subscriptions.add_with_line_items(  # subscription ids now differ
                Subscription(id=0, user_id=1, company_id=1, name="other", created=NOW,
                             currency="EUR"), [])
            await uow.commit()
        yield client


async def paid_vm_id(c: ApiClient) -> int:
    vm = await order(c, ALICE)
    await settle(c.api, (await renew(c, ALICE, vm["id"]))["id"])
    return int(vm["id"])


async def test_pay_request_is_raw_lud06_json(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    resp = await c.client.get(f"/.well-known/lnurlp/{vm['id']}")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == {
        "callback": f"https://api.lnvps.test/api/v1/vm/{vm['id']}/renew-lnurlp",
        "maxSendable": 1_000_000_000,
        "minSendable": 100_000,
        "tag": "payRequest",
        "metadata": f'[["text/plain","Extend VM {vm["id"]}"]]',
        "allowsNostr": None,
        "nostrPubkey": None,
    }
    missing = await c.client.get("/.well-known/lnurlp/999")
    assert missing.status == 200 and await missing.text() == "VM not found"


async def test_callback_invoices_exactly_the_amount_for_the_vms_subscription(
    c: ApiClient,
) -> None:
    vm_id = await paid_vm_id(c)
    user = await user_of(c.api, ALICE)
    async with c.api.store() as uow:
        await uow.users.update(attrs.evolve(user, country_code="IRL"))
        await uow.commit()
    sub = await subscription_of(c.api, vm_id)
    assert sub.id != vm_id
    resp = await c.client.get(f"/api/v1/vm/{vm_id}/renew-lnurlp?amount=1230000")
    assert resp.status == 200
    body = await resp.json()
    assert set(body) == {"pr", "routes", "hodl_invoice"} and body["pr"].startswith("lnbcrt")
    async with c.api.store() as uow:
        page = await uow.payments.list_by_subscription(sub.id, 10)
    newest = page.items[0]
    assert newest.external_data == body["pr"]
    assert newest.payment_type is SubscriptionPaymentType.RENEWAL
    assert (newest.amount, newest.tax) == (1_000_000, 230_000)  # tax inside the amount
    before = sub.expires
    assert before is not None
    await settle(c.api, newest.id.hex())
    after = (await subscription_of(c.api, vm_id)).expires
    assert after is not None and after > before


@pytest.mark.parametrize(("query", "status", "reason"), [
    ("?amount=999", 200, "Amount must be between"),
    ("?amount=1000001", 200, "whole number of satoshis"),
    ("?amount=2000000000", 200, "Amount must be between"),
    ("?amount=abc", 400, "amount"),
    ("", 400, "amount"),
])
async def test_callback_errors(c: ApiClient, query: str, status: int, reason: str) -> None:
    vm_id = await paid_vm_id(c)
    resp = await c.client.get(f"/api/v1/vm/{vm_id}/renew-lnurlp{query}")
    assert resp.status == status
    body = await resp.json()
    assert body["status"] == "ERROR" and reason in body["reason"]


async def test_callback_for_an_unknown_vm(c: ApiClient) -> None:
    resp = await c.client.get("/api/v1/vm/999/renew-lnurlp?amount=100000")
    assert resp.status == 200
    assert await resp.json() == {"status": "ERROR", "reason": "VM not found"}
