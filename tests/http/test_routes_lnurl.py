"""LNURL-pay: the payRequest, the callback on the VM id (not the subscription id), errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from unittest.mock import patch

import attrs
import pytest
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from adapters.http.client_limit import client_keys
from adapters.http.context import SERVICES
from adapters.ratelimit.memory import MemoryRateLimiter
from app.billing.lnurl import LNURL_MAX_LIVE_PER_CLIENT, NOT_PAID_YET
from domain.enums import SubscriptionPaymentType
from domain.model import Subscription, SubscriptionPayment
from domain.tax import TaxRates
from tests.http.apiapp import ALICE, NOW, ApiApp, ApiClient, api_client
from tests.http.vm_helpers import build, order, renew, settle, subscription_of, user_of


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    api = build(tax_rates=TaxRates({"IRL": Decimal(23)}))
    async with api_client(api) as client:
        async with api.store() as uow:  # a subscription first: VM ids and their
            await uow.subscriptions.add_with_line_items(  # subscription ids now differ
                Subscription(
                    id=0, user_id=1, company_id=1, name="other", created=NOW, currency="EUR"
                ),
                [],
            )
            await uow.commit()
        yield client


async def paid_vm_id(c: ApiClient) -> int:
    vm = await order(c, ALICE)
    await settle(c.api, (await renew(c, ALICE, vm["id"]))["id"])
    return int(vm["id"])


async def test_pay_request_is_raw_lud06_json(c: ApiClient) -> None:
    vm = {"id": await paid_vm_id(c)}
    resp = await c.client.get(f"/.well-known/lnurlp/{vm['id']}")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == {
        "callback": f"https://api.lnvps.test/api/v1/vm/{vm['id']}/renew-lnurlp",
        # per VM: 120 months of its EUR 2.70 plan at EUR 100 000 per BTC (D6's 120)
        "maxSendable": 120 * 2_700_000,
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


@pytest.mark.parametrize(
    ("query", "status", "reason"),
    [
        ("?amount=999", 200, "Amount must be between"),
        ("?amount=1000", 200, "Amount must be between"),
        ("?amount=99000", 200, "Amount must be between"),
        ("?amount=100000001", 200, "whole number of satoshis"),
        ("?amount=2000000000", 200, "Amount must be between"),
        ("?amount=abc", 400, "amount"),
        ("?amount=" + "9" * 5000, 400, "amount"),  # int() of it raised: a 500 before
        ("", 400, "amount"),
    ],
)
async def test_callback_errors(c: ApiClient, query: str, status: int, reason: str) -> None:
    vm_id = await paid_vm_id(c)
    resp = await c.client.get(f"/api/v1/vm/{vm_id}/renew-lnurlp{query}")
    assert resp.status == status
    body = await resp.json()
    assert body["status"] == "ERROR" and reason in body["reason"]


async def test_an_amount_above_the_vms_max_sendable_is_refused_as_lud06_error(
    c: ApiClient,
) -> None:
    """r9: 0.01 BTC bought far more than 120 intervals, and completion kept only 1 200."""
    vm_id = await paid_vm_id(c)
    offer = await (await c.client.get(f"/.well-known/lnurlp/{vm_id}")).json()
    most = offer["maxSendable"]
    resp = await c.client.get(f"/api/v1/vm/{vm_id}/renew-lnurlp?amount={most + 1_000}")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ERROR"
    assert f"between 100000 and {most} msat" in body["reason"]
    resp = await c.client.get(f"/api/v1/vm/{vm_id}/renew-lnurlp?amount={most}")
    assert resp.status == 200 and "pr" in await resp.json()


async def test_a_vm_no_amount_can_top_up_has_a_lud06_error_for_its_pay_request(
    c: ApiClient,
) -> None:
    """120 intervals below minSendable: the payRequest says so instead of max < min."""
    vm_id = await paid_vm_id(c)
    async with c.api.store() as uow:
        vm = await uow.vms.get(vm_id)
        assert vm is not None and vm.template_id is not None
        template = await uow.templates.get(vm.template_id)
        assert template is not None
        plan = await uow.cost_plans.get(template.cost_plan_id)
        assert plan is not None
        await uow.cost_plans.update(attrs.evolve(plan, currency="BTC", amount=100))
        await uow.commit()
    resp = await c.client.get(f"/.well-known/lnurlp/{vm_id}")
    body = await resp.json()
    assert resp.status == 200 and body["status"] == "ERROR"
    assert "cannot be topped up by Lightning address" in body["reason"]


async def test_callback_for_an_unknown_vm(c: ApiClient) -> None:
    resp = await c.client.get("/api/v1/vm/999/renew-lnurlp?amount=100000")
    assert resp.status == 200
    assert await resp.json() == {"status": "ERROR", "reason": "VM not found"}


async def test_a_never_paid_vm_has_no_lightning_address(c: ApiClient) -> None:
    """D25: a stranger paying 1 sat set up someone's unpaid order; now it is refused."""
    vm = await order(c, ALICE)
    resp = await c.client.get(f"/.well-known/lnurlp/{vm['id']}")
    assert resp.status == 200 and (await resp.json()) == {"status": "ERROR", "reason": NOT_PAID_YET}
    for amount in (1_000, 100_000):
        resp = await c.client.get(f"/api/v1/vm/{vm['id']}/renew-lnurlp?amount={amount}")
        body = await resp.json()
        assert resp.status == 200 and body["status"] == "ERROR"
    assert body["reason"] == NOT_PAID_YET
    sub = await subscription_of(c.api, vm["id"])
    async with c.api.store() as uow:
        assert (await uow.payments.list_by_subscription(sub.id, 10)).items == []


async def test_two_hundred_identical_callbacks_store_one_payment(c: ApiClient) -> None:
    vm_id = await paid_vm_id(c)
    sub = await subscription_of(c.api, vm_id)
    async with c.api.store() as uow:
        before = (await uow.payments.list_by_subscription(sub.id, 10)).total
    prs = set()
    for _ in range(200):
        resp = await c.client.get(f"/api/v1/vm/{vm_id}/renew-lnurlp?amount=1000000")
        prs.add((await resp.json())["pr"])
    assert len(prs) == 1
    async with c.api.store() as uow:
        assert (await uow.payments.list_by_subscription(sub.id, 10)).total == before + 1


class Tick:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


async def _limited(trust_forwarded_for: bool = False) -> tuple[ApiApp, Tick]:
    api = build()
    tick = Tick()
    api.services = attrs.evolve(
        api.services,
        lnurl_limiter=MemoryRateLimiter(6, 3, now=tick),
        trust_forwarded_for=trust_forwarded_for,
    )
    api.app[SERVICES] = api.services
    return api, tick


async def test_the_lnurl_endpoints_are_rate_limited_per_client() -> None:
    api, tick = await _limited()
    async with api_client(api) as c:
        vm_id = await paid_vm_id(c)
        paths = [
            f"/.well-known/lnurlp/{vm_id}",
            f"/api/v1/vm/{vm_id}/renew-lnurlp?amount=100000",
            f"/.well-known/lnurlp/{vm_id}",
        ]
        for path in paths:  # both endpoints draw from one bucket per client
            assert (await c.client.get(path)).status == 200
        resp = await c.client.get(paths[1])
        assert resp.status == 429 and resp.headers["Retry-After"] == "10"
        body = await resp.json()
        assert body["error"] == "Too many requests: try again in 10 s"
        assert body["status"] == "ERROR"
        tick.value += 10
        assert (await c.client.get(paths[1])).status == 200
        assert (await c.client.get(paths[1])).status == 429


async def test_behind_a_trusted_proxy_the_proxys_address_entry_is_the_key() -> None:
    api, _ = await _limited(trust_forwarded_for=True)
    async with api_client(api) as c:
        vm_id = await paid_vm_id(c)
        path = f"/.well-known/lnurlp/{vm_id}"
        for i in range(3):  # a client inventing leading entries still hits its own bucket
            fake = {"X-Forwarded-For": f"10.9.9.{i}, 203.0.113.7"}
            assert (await c.client.get(path, headers=fake)).status == 200
        fake = {"X-Forwarded-For": "10.9.9.99, 203.0.113.7"}
        assert (await c.client.get(path, headers=fake)).status == 429
        other = {"X-Forwarded-For": "203.0.113.8"}
        assert (await c.client.get(path, headers=other)).status == 200


@pytest.mark.parametrize(
    ("remote", "forwarded", "trust", "keys"),
    [
        ("192.0.2.1", None, False, ("192.0.2.1",)),
        ("192.0.2.1", "198.51.100.4", False, ("192.0.2.1",)),  # not trusted: header ignored
        ("192.0.2.1", "1.1.1.1, 198.51.100.4", True, ("198.51.100.4",)),
        # one /64 is one host, and its /48 one customer's network
        ("2001:db8:1:2:aaaa::1", None, False, ("2001:db8:1:2::/64", "2001:db8:1::/48")),
        ("2001:db8:1:2:bbbb::9", None, False, ("2001:db8:1:2::/64", "2001:db8:1::/48")),
        ("2001:db8:1:ff00::9", None, False, ("2001:db8:1:ff00::/64", "2001:db8:1::/48")),
        ("::ffff:192.0.2.5", None, False, ("192.0.2.5",)),
    ],
)
def test_client_keys(
    remote: str, forwarded: str | None, trust: bool, keys: tuple[str, ...]
) -> None:
    headers = {} if forwarded is None else {"X-Forwarded-For": forwarded}
    request = make_mocked_request("GET", "/", headers=headers)
    with patch.object(type(request), "remote", new=remote):
        assert client_keys(request, trust) == keys


@pytest.mark.parametrize(
    ("lines", "trust", "keys"),
    [
        # found by r12: only the first line was read, the one the client sends itself
        (["203.0.113.66", "198.51.100.7"], True, ("198.51.100.7",)),
        (["203.0.113.66, 10.0.0.1", "198.51.100.7"], True, ("198.51.100.7",)),
        (["203.0.113.66", "10.0.0.1, 198.51.100.7"], True, ("198.51.100.7",)),
        (["203.0.113.66, 10.0.0.1, 198.51.100.7"], True, ("198.51.100.7",)),
        (["198.51.100.7", "2001:db8:1:2::5"], True, ("2001:db8:1:2::/64", "2001:db8:1::/48")),
        (["203.0.113.66", "198.51.100.7"], False, ("192.0.2.1",)),  # not trusted: the peer
    ],
)
def test_every_x_forwarded_for_line_counts_and_the_last_entry_is_the_client(
    lines: list[str], trust: bool, keys: tuple[str, ...]
) -> None:
    """Several header lines are one comma-separated list (RFC 9110 §5.3): a proxy that adds
    its own line (HAProxy `option forwardfor`) puts the real peer last."""
    headers = CIMultiDict(("X-Forwarded-For", line) for line in lines)
    request = make_mocked_request("GET", "/", headers=headers)
    with patch.object(type(request), "remote", new="192.0.2.1"):
        assert client_keys(request, trust) == keys


async def test_a_client_line_before_the_proxys_cannot_dodge_the_limit() -> None:
    api, _ = await _limited(trust_forwarded_for=True)
    async with api_client(api) as c:
        vm_id = await paid_vm_id(c)
        path = f"/.well-known/lnurlp/{vm_id}"
        for i in range(4):  # a fresh invented first line each time; the proxy's line is last
            lines = [("X-Forwarded-For", f"10.9.9.{i}"), ("X-Forwarded-For", "203.0.113.7")]
            status = (await c.client.get(path, headers=CIMultiDict(lines))).status
            assert status == (429 if i == 3 else 200)
        other = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "203.0.113.8")]
        assert (await c.client.get(path, headers=CIMultiDict(other))).status == 200


async def test_a_stranger_cannot_fill_a_vms_lnurl_invoices_and_block_the_owner() -> None:
    """One client network holds at most LNURL_MAX_LIVE_PER_CLIENT of a VM's live invoices, so
    20 distinct amounts from a stranger no longer fill the VM's cap for 10 minutes."""
    api = build()
    api.services = attrs.evolve(api.services, trust_forwarded_for=True)
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        vm_id = await paid_vm_id(c)
        path = f"/api/v1/vm/{vm_id}/renew-lnurlp"
        stranger = {"X-Forwarded-For": "2001:db8:0:1::1"}
        for i in range(LNURL_MAX_LIVE_PER_CLIENT):
            at = {"X-Forwarded-For": f"2001:db8:0:{i:x}::1"}  # other /64s, one /48
            resp = await c.client.get(f"{path}?amount={100_000 + 1000 * i}", headers=at)
            assert "pr" in await resp.json()
        rows = len(await _payments(c, vm_id))
        invoices = len(c.api.node._memory.invoices)
        for i in range(LNURL_MAX_LIVE_PER_CLIENT, 20):
            resp = await c.client.get(f"{path}?amount={100_000 + 1000 * i}", headers=stranger)
            assert resp.status == 200
            assert await resp.json() == {
                "status": "ERROR",
                "reason": "Too many open invoices from your address for this VM:"
                " pay one or try again in a few minutes",
            }
        assert len(await _payments(c, vm_id)) == rows  # nothing stored
        assert len(c.api.node._memory.invoices) == invoices  # nothing made at the node
        again = await c.client.get(f"{path}?amount=100000", headers=stranger)
        assert "pr" in await again.json()  # its own amount is still handed back (reuse)
        owner = {"X-Forwarded-For": "198.51.100.20"}
        body = await (await c.client.get(f"{path}?amount=5000000", headers=owner)).json()
        assert "pr" in body, f"the owner's wallet was refused: {body}"
        api.clock.advance(timedelta(minutes=11))  # the stranger's invoices expired: room again
        await api.refresh_rates()
        resp = await c.client.get(f"{path}?amount=7000000", headers=stranger)
        assert "pr" in await resp.json()


async def _payments(c: ApiClient, vm_id: int) -> list[SubscriptionPayment]:
    sub = await subscription_of(c.api, vm_id)
    async with c.api.store() as uow:
        return (await uow.payments.list_by_subscription(sub.id, 100)).items
