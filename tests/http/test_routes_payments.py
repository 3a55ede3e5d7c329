"""Renew (GET/POST + Idempotency-Key), VM payments, payment polling and the Pulumi walk."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from adapters.http.envelope import parse_time
from app.billing.completion import complete_payment
from tests.http.apiapp import ALICE, BOB, NOW, SSH_PUBLIC_KEY, ApiClient, api_client
from tests.http.vm_helpers import build, order, renew, settle, subscription_of, with_revolut

PAYMENT_KEYS = [
    "id",
    "vm_id",
    "created",
    "expires",
    "amount",
    "tax",
    "processing_fee",
    "currency",
    "is_paid",
    "data",
    "time",
    "is_upgrade",
]
MONTH = 30 * 86_400  # 17 June → 17 July


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build()) as client:
        yield client


async def test_renew_returns_a_lightning_payment_in_the_documented_shape(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?method=lightning")
    assert list(payment) == PAYMENT_KEYS
    assert len(payment["id"]) == 64 and payment["vm_id"] == vm["id"]
    assert (payment["amount"], payment["tax"], payment["processing_fee"]) == (2_700_000, 0, 0)
    assert payment["currency"] == "BTC" and payment["is_paid"] is False
    assert payment["data"]["lightning"].startswith("lnbcrt")
    assert parse_time(payment["expires"]) - parse_time(payment["created"]) == timedelta(seconds=600)
    assert payment["time"] == MONTH and payment["is_upgrade"] is False
    again = await renew(c, ALICE, vm["id"], "?method=nwc")
    assert again["id"] == payment["id"]  # D10: the pending invoice is reused


@pytest.mark.parametrize("intervals", ["0", "121", "abc", "-1", "1.5", ""])
async def test_intervals_outside_1_to_120_are_400(c: ApiClient, intervals: str) -> None:
    vm = await order(c, ALICE)
    for method in ("GET", "POST"):
        resp = await c.call(method, f"/api/v1/vm/{vm['id']}/renew?intervals={intervals}")
        assert resp.status == 400, (method, intervals)
        assert "intervals" in (await resp.json())["error"]


async def test_n_intervals_buy_n_calendar_months(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"], "?intervals=3")
    assert payment["amount"] == 3 * 2_700_000
    assert payment["time"] == (30 + 31 + 31) * 86_400  # 17 June → 17 September


async def test_revolut_renewal_and_unconfigured_rail() -> None:
    async with api_client(build()) as c:
        vm = await order(c, ALICE)
        resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=revolut")
        assert resp.status == 422 and "Revolut" in (await resp.json())["error"]
    api = build()
    gateway = with_revolut(api)
    async with api_client(api) as c:
        vm = await order(c, ALICE)
        payment = await renew(c, ALICE, vm["id"], "?method=revolut")
        assert (payment["currency"], payment["amount"]) == ("EUR", 270)
        assert payment["data"] == {"revolut": {"token": None}}
        assert parse_time(payment["expires"]) - parse_time(payment["created"]) == timedelta(hours=1)
        assert list(gateway.orders) == ["revolut-order-1"]


async def test_post_renew_with_idempotency_key(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    path = f"/api/v1/vm/{vm['id']}/renew"
    first = await c.call("POST", path, json={"intervals": 2}, headers={"Idempotency-Key": "k1"})
    assert first.status == 200, await first.text()
    paid = (await first.json())["data"]
    assert paid["amount"] == 2 * 2_700_000
    same = await c.call("POST", path, json={"intervals": 2}, headers={"Idempotency-Key": "k1"})
    assert (await same.json())["data"]["id"] == paid["id"]
    other = await c.call("POST", path, json={"intervals": 3}, headers={"Idempotency-Key": "k1"})
    assert other.status == 409 and "Idempotency-Key" in (await other.json())["error"]
    query = await c.call(
        "POST", path + "?method=lightning", json={"intervals": 2}, headers={"Idempotency-Key": "k1"}
    )
    assert query.status == 409
    await settle(c.api, paid["id"])
    replay = await c.call("POST", path, json={"intervals": 2}, headers={"Idempotency-Key": "k1"})
    assert (await replay.json())["data"] == {**paid, **(await replay.json())["data"]}
    assert (await replay.json())["data"]["is_paid"] is True
    fresh = await c.call("POST", path, json={"intervals": 2}, headers={"Idempotency-Key": "k2"})
    assert (await fresh.json())["data"]["id"] != paid["id"]
    plain = await c.call("POST", path + "?intervals=2")
    assert (await plain.json())["data"]["id"] == (await fresh.json())["data"]["id"]


async def test_vm_payments_is_a_plain_newest_first_list(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    first = await renew(c, ALICE, vm["id"])
    c.api.clock.advance(timedelta(minutes=11))
    await c.api.refresh_rates()
    second = await renew(c, ALICE, vm["id"])
    body = await (await c.call("GET", f"/api/v1/vm/{vm['id']}/payments")).json()
    assert list(body) == ["data"]
    assert [p["id"] for p in body["data"]] == [second["id"], first["id"]]
    paged = await (await c.call("GET", f"/api/v1/vm/{vm['id']}/payments?limit=1&offset=1")).json()
    assert [p["id"] for p in paged["data"]] == [first["id"]]


async def test_payment_lookup_refusals(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"])
    mine = await c.call("GET", f"/api/v1/payment/{payment['id'].upper()}")
    assert (await mine.json())["data"] == payment
    theirs = await c.call("GET", f"/api/v1/payment/{payment['id']}", key=BOB)
    assert theirs.status == 404
    assert (await c.call("GET", "/api/v1/payment/zz")).status == 400
    assert (await c.call("GET", "/api/v1/payment/" + "ab" * 32)).status == 404
    assert (await c.call("GET", "/api/v1/payment/abcd")).status == 404
    methods = await c.call("GET", "/api/v1/payment/methods", signed=False)
    assert methods.status == 200 and isinstance((await methods.json())["data"], list)


async def test_pulumi_walk_key_order_renew_settle_poll_and_vm(c: ApiClient) -> None:
    key = await c.call(
        "POST", "/api/v1/ssh-key", json={"name": "pulumi", "key_data": SSH_PUBLIC_KEY}
    )
    key_id = (await key.json())["data"]["id"]
    created = await c.call(
        "POST",
        "/api/v1/vm",
        json={
            "template_id": float(c.demo.tiny),
            "image_id": float(c.demo.ubuntu),
            "ssh_key_id": key_id,
        },
    )
    vm_id = (await created.json())["data"]["id"]
    invoice = await renew(c, ALICE, vm_id, "?method=lightning")
    assert isinstance(invoice["amount"], int) and invoice["data"]["lightning"]
    parse_time(invoice["expires"])
    poll = await (await c.call("GET", f"/api/v1/payment/{invoice['id']}")).json()
    assert poll["data"]["is_paid"] is False
    report = await settle(c.api, invoice["id"])
    assert report.completed
    poll = await (await c.call("GET", f"/api/v1/payment/{invoice['id']}")).json()
    assert poll["data"]["is_paid"] is True and "paid_at" in poll["data"]
    shown = (await (await c.call("GET", f"/api/v1/vm/{vm_id}")).json())["data"]
    assert shown["status"]["state"] == "creating"
    assert shown["ssh_key"]["id"] == key_id and shown["ip_assignments"] == []
    assert parse_time(shown["expires"]) == NOW + timedelta(seconds=MONTH)


async def test_the_same_settlement_twice_and_concurrently_extends_once(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    payment = await renew(c, ALICE, vm["id"])
    await c.api.node.settle(bytes.fromhex(payment["id"]))
    svc = c.api.services

    async def deliver() -> bool:
        report = await complete_payment(
            svc.uow_factory,
            svc.clock,
            svc.rails,
            svc.queue,
            payment_id=bytes.fromhex(payment["id"]),
        )
        return report.completed

    results = await asyncio.gather(deliver(), deliver(), deliver())
    assert sorted(results) == [False, False, True]
    assert await deliver() is False
    sub = await subscription_of(c.api, vm["id"])
    assert sub.expires == NOW + timedelta(seconds=MONTH)
    history = await (await c.call("GET", f"/api/v1/vm/{vm['id']}/history")).json()
    kinds = [e["action_type"] for e in history["data"]]
    assert kinds.count("payment_received") == 1 and kinds.count("renewed") == 1


async def test_an_order_left_unpaid_past_its_hour_gets_no_new_invoice(c: ApiClient) -> None:
    """D25: its room was let go; a 422 says so and nothing is stored (the worker deletes it)."""
    vm = await order(c, ALICE)
    c.api.clock.advance(timedelta(hours=1, seconds=1))
    await c.api.refresh_rates()
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=lightning", key=ALICE)
    assert resp.status == 422
    assert await resp.json() == {"error": "This order was not paid in time; please order again"}
    sub = await subscription_of(c.api, vm["id"])
    async with c.api.store() as uow:
        assert await uow.payments.list_pending_for_subscription(sub.id, c.api.clock.now()) == []
