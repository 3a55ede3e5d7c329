"""Integers at the HTTP edge (issue 8 §4): ids, offsets, limits and body numbers beyond what
storage binds are a 400/404 on every backend (SQLite and MariaDB raised OverflowError → 500)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.apiapp import ALICE, ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.http.vm_helpers import order

__all__ = ["admin", "backend", "c", "database"]

BIG = 2**63  # one past the largest signed BIGINT
MAX = 2**63 - 1
HUGE = "9" * 5000  # more digits than int() converts (ValueError, not a bound)


async def status_and_json(resp: Any) -> tuple[int, Any]:
    assert resp.content_type == "application/json", await resp.text()
    return resp.status, await resp.json()


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/vm/{BIG}",
        f"/api/v1/vm/{BIG}/history",
        f"/api/v1/vm/{BIG}/payments",
        f"/api/v1/vm/{BIG}/renew",
        f"/api/v1/vm/{HUGE}",
        "/api/v1/vm/0",
        "/api/v1/vm/\u0663",  # ARABIC-INDIC DIGIT THREE matches the router's \d+
        f"/api/v1/subscriptions/{BIG}",
        f"/api/v1/subscriptions/{BIG}/payments",
        f"/api/v1/ip_space/{BIG}",
    ],
)
async def test_path_ids_outside_1_to_2_63_are_404(c: ApiClient, path: str) -> None:
    status, body = await status_and_json(await c.call("GET", path))
    assert status == 404 and "error" in body


@pytest.mark.parametrize(
    "query",
    [f"offset={BIG}", f"limit={BIG}", f"offset={HUGE}", "limit=\u00b2", "offset=-1"],
)
@pytest.mark.parametrize("path", ["/api/v1/ip_space", "/api/v1/subscriptions"])
async def test_page_params_outside_bounds_are_400(c: ApiClient, path: str, query: str) -> None:
    status, body = await status_and_json(await c.call("GET", f"{path}?{query}"))
    assert status == 400 and ("offset" in body["error"] or "limit" in body["error"])


async def test_largest_offset_is_an_empty_page_and_large_limits_are_clamped(
    c: ApiClient,
) -> None:
    resp = await c.call("GET", f"/api/v1/ip_space?offset={MAX}&limit=1000")
    status, body = await status_and_json(resp)
    assert status == 200 and body["data"] == [] and (body["limit"], body["offset"]) == (100, MAX)


async def test_vm_history_and_payments_bound_limit_and_offset(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    for tail in ("history", "payments"):
        base = f"/api/v1/vm/{vm['id']}/{tail}"
        for query in (f"limit={BIG}&offset=0", f"limit=1&offset={BIG}"):
            status, _ = await status_and_json(await c.call("GET", f"{base}?{query}"))
            assert status == 400, (tail, query)
        status, body = await status_and_json(await c.call("GET", f"{base}?limit=5&offset={MAX}"))
        assert (status, body) == (200, {"data": []})


@pytest.mark.parametrize("value", [BIG, 0, -1, 1.5, True, "1"])
async def test_body_ids_outside_1_to_2_63_are_400(c: ApiClient, value: object) -> None:
    body = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": value}
    status, answer = await status_and_json(await c.call("POST", "/api/v1/vm", json=body))
    assert status == 400 and "ssh_key_id" in answer["error"]
    body = {"template_id": value, "image_id": 1, "ssh_key_id": 1}
    status, answer = await status_and_json(await c.call("POST", "/api/v1/vm", json=body))
    assert status == 400 and "template_id" in answer["error"]
    user_id = await c.user_id()
    async with c.api.store() as uow:
        assert (await uow.vms.list_by_user(user_id, 10, 0)).total == 0


async def test_custom_price_and_subscription_bodies_bound_their_integers(c: ApiClient) -> None:
    price = {
        "pricing_id": BIG,
        "cpu": 1,
        "memory": 2**30,
        "disk": 2**34,
        "disk_type": "ssd",
        "disk_interface": "pcie",
    }
    resp = await c.call("POST", "/api/v1/vm/custom-template/price", json=price, signed=False)
    assert (await status_and_json(resp))[0] == 400
    resp = await c.call(
        "POST",
        "/api/v1/vm/custom-template/price",
        json={**price, "pricing_id": c.demo.custom, "memory": BIG},
        signed=False,
    )
    assert (await status_and_json(resp))[0] == 400
    sub = {"line_items": [{"type": "ip_range", "ip_space_pricing_id": BIG}]}
    resp = await c.call("POST", "/api/v1/subscriptions", json=sub)
    assert (await status_and_json(resp))[0] == 400


async def test_lnurl_endpoints_treat_huge_ids_as_unknown_and_bound_the_amount(
    c: ApiClient,
) -> None:
    resp = await c.call("GET", f"/.well-known/lnurlp/{BIG}", signed=False)
    assert (resp.status, await resp.text()) == (200, "VM not found")
    resp = await c.call("GET", f"/api/v1/vm/{BIG}/renew-lnurlp?amount=100000", signed=False)
    status, body = await status_and_json(resp)
    assert status == 200 and body["status"] == "ERROR"
    vm = await order(c, ALICE)
    for amount in (str(BIG), HUGE, "\u00b2", "-5"):
        path = f"/api/v1/vm/{vm['id']}/renew-lnurlp?amount={amount}"
        status, body = await status_and_json(await c.call("GET", path, signed=False))
        assert status == 400 and body["status"] == "ERROR", amount


@pytest.mark.parametrize("user_part", [f"{BIG:016x}", "f" * 16, "0" * 16])
async def test_an_email_token_naming_an_impossible_user_id_is_the_invalid_page(
    c: ApiClient, user_part: str
) -> None:
    """The token's first 16 hex digits name the user: up to 2**64 - 1, which no backend
    binds (SQLite raised OverflowError: a 500 on an unauthenticated link)."""
    token = user_part + "ab" * 24
    resp = await c.call("GET", f"/api/v1/account/verify-email?token={token}", signed=False)
    assert (resp.status, resp.content_type) == (200, "text/html")
    assert "Invalid or Expired Link" in await resp.text()


@pytest.mark.parametrize("intervals", ["\u00b2", HUGE, "0", "121"])
async def test_renew_intervals_are_bounded(c: ApiClient, intervals: str) -> None:
    vm = await order(c, ALICE)
    async with c.api.store() as uow:
        found = await uow.vms.get(vm["id"])
        assert found is not None
        item = await uow.line_items.get(found.subscription_line_item_id)
        assert item is not None
    for path in (
        f"/api/v1/vm/{vm['id']}/renew",
        f"/api/v1/subscriptions/{item.subscription_id}/renew",
    ):
        resp = await c.call("GET", f"{path}?intervals={intervals}")
        status, body = await status_and_json(resp)
        assert status == 400 and "intervals" in body["error"], path


async def test_overlong_idempotency_key_is_400_and_creates_nothing(c: ApiClient) -> None:
    vm = await order(c, ALICE)
    path = f"/api/v1/vm/{vm['id']}/renew"
    resp = await c.call("POST", path, headers={"Idempotency-Key": "k" * 256})
    status, body = await status_and_json(resp)
    assert status == 400 and "Idempotency-Key" in body["error"]
    async with c.api.store() as uow:
        assert (await uow.payments.list_by_vm(vm["id"], 10, 0)).total == 0
    resp = await c.call("POST", path, headers={"Idempotency-Key": "k" * 255})
    assert resp.status == 200


async def test_admin_api_bounds_ids_and_offsets(c: ApiClient, admin: ApiClient) -> None:
    base = "/api/admin/v1"
    for path in (f"/users/{BIG}", f"/vms/{BIG}", f"/subscriptions/{BIG}", "/users/0"):
        status, _ = await status_and_json(await admin.call("GET", base + path, key=ROOT))
        assert status == 404, path
    for query in (
        f"/users?offset={BIG}",
        f"/vms?user_id={BIG}",
        f"/vms?limit={HUGE}",
        "/vms?host_id=\u00b2",
        f"/subscriptions?user_id={BIG}",
    ):
        status, _ = await status_and_json(await admin.call("GET", base + query, key=ROOT))
        assert status == 400, query
    body = {"role_id": BIG}
    user_id = await c.user_id()
    resp = await admin.call("POST", f"{base}/users/{user_id}/roles", key=ROOT, json=body)
    assert (await status_and_json(resp))[0] == 400
