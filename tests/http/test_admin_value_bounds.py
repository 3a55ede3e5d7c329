"""Values an admin may store stay usable later: interval amounts bounded per unit, prices and
sizes capped, and a quote no payment row can hold is a 422, on every storage backend."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from adapters.http.envelope import format_time
from domain.intervals import add_months
from domain.limits import MAX_EXPIRY_AHEAD_MONTHS, MAX_PRICE, MAX_SIZE
from tests.http.admin import catalogue_bodies as b
from tests.http.apiapp import ALICE, ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.http.vm_helpers import order, paid_vm, subscription_of, user_of

__all__ = ["admin", "backend", "c", "database"]

BASE = "/api/admin/v1"
U64 = 2**64 - 1


async def call(admin: ApiClient, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    resp = await admin.call(method, BASE + path, key=ROOT, **kw)
    return resp.status, await resp.json()


async def total(admin: ApiClient, path: str) -> int:
    status, body = await call(admin, "GET", path)
    assert status == 200, body
    return len(body["data"]) if "total" not in body else int(body["total"])


@pytest.mark.parametrize(("unit", "most"), [("day", 36_500), ("month", 1_200), ("year", 100)])
async def test_a_cost_plan_interval_is_bounded_by_its_unit(
    c: ApiClient, admin: ApiClient, unit: str, most: int
) -> None:
    before = await total(admin, "/cost_plans")
    for bad in (most + 1, 36_500 if unit != "day" else 36_501):
        body = {**b.cost_plan(), "interval_type": unit, "interval_amount": bad}
        status, answer = await call(admin, "POST", "/cost_plans", json=body)
        assert status == 400 and "interval_amount" in answer["error"], (bad, answer)
    assert await total(admin, "/cost_plans") == before
    body = {**b.cost_plan(), "interval_type": unit, "interval_amount": most}
    status, answer = await call(admin, "POST", "/cost_plans", json=body)
    assert status == 200, answer


async def _renews(c: ApiClient, vm: dict[str, Any]) -> None:
    """The VM's renewal is still quoted (not a 400 "outside the calendar")."""
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew", key=ALICE)
    assert resp.status == 200, await resp.text()


async def test_patching_the_unit_alone_is_checked_and_renewals_keep_working(
    c: ApiClient, admin: ApiClient
) -> None:
    """The reviewer's case: 36 500 years saved, then every renewal was a 400."""
    vm = await order(c, ALICE)
    plan = f"/cost_plans/{c.demo.tiny_plan}"
    status, answer = await call(
        admin, "PATCH", plan, json={"interval_type": "year", "interval_amount": 36_500}
    )
    assert status == 400 and "from 1 to 100 for a year" in answer["error"], answer
    status, answer = await call(admin, "PATCH", plan, json={"interval_amount": 36_500})
    assert status == 400 and "from 1 to 1200 for a month" in answer["error"], answer
    status, answer = await call(admin, "GET", plan)
    assert (answer["data"]["interval_amount"], answer["data"]["interval_type"]) == (1, "month")
    status, answer = await call(
        admin, "PATCH", plan, json={"interval_type": "year", "interval_amount": 100}
    )
    assert status == 200, answer
    await _renews(c, vm)


async def test_a_template_cannot_smuggle_a_long_interval_into_its_plan(
    c: ApiClient, admin: ApiClient
) -> None:
    body = b.template(
        c.demo,
        cost_plan_id=None,
        cost_plan_amount=100,
        cost_plan_interval_type="year",
        cost_plan_interval_amount=101,
    )
    status, answer = await call(admin, "POST", "/vm_templates", json=body)
    assert status == 400 and "interval_amount" in answer["error"], answer
    edit = {"cost_plan_interval_type": "year", "cost_plan_interval_amount": 36_500}
    status, answer = await call(admin, "PATCH", f"/vm_templates/{c.demo.tiny}", json=edit)
    assert status == 400 and "interval_amount" in answer["error"], answer


async def _subscription(c: ApiClient) -> tuple[int, dict[str, Any]]:
    """ALICE's id and the body of a new subscription of hers."""
    alice = (await user_of(c.api, ALICE)).id
    body = {
        "user_id": alice,
        "company_id": c.demo.company,
        "name": "x",
        "is_active": True,
        "currency": "EUR",
        "setup_fee": 0,
        "auto_renewal_enabled": False,
    }
    return alice, body


async def test_an_admin_subscription_interval_is_bounded_by_its_unit(
    c: ApiClient, admin: ApiClient
) -> None:
    alice, body = await _subscription(c)
    body["interval_type"] = "month"
    for bad in (1_201, 1_000_000, 2**63 - 1):
        status, answer = await call(
            admin, "POST", "/subscriptions", json={**body, "interval_amount": bad}
        )
        assert status == 400 and "interval_amount" in answer["error"], (bad, answer)
    async with c.api.store() as uow:
        assert (await uow.subscriptions.list_by_user(alice, 10, 0)).total == 0
    status, answer = await call(
        admin, "POST", "/subscriptions", json={**body, "interval_amount": 1_200}
    )
    assert status == 200, answer
    status, answer = await call(
        admin, "POST", "/subscriptions", json={**body, "setup_fee": MAX_PRICE + 1}
    )
    assert status == 400 and "setup_fee" in answer["error"], answer


async def test_an_admin_expiry_leaves_room_to_renew(c: ApiClient, admin: ApiClient) -> None:
    """Year 9999 was saved, then every renewal was a 400 ("outside the calendar")."""
    vm = await paid_vm(c, ALICE)
    sub = await subscription_of(c.api, vm["id"])
    path = f"/subscriptions/{sub.id}"
    latest = add_months(c.api.clock.now(), MAX_EXPIRY_AHEAD_MONTHS)
    for bad in ("9998-12-31T00:00:00Z", format_time(latest + timedelta(seconds=1))):
        status, answer = await call(admin, "PATCH", path, json={"expires": bad})
        assert status == 400 and "years ahead" in answer["error"], (bad, answer)
    assert (await subscription_of(c.api, vm["id"])).expires == sub.expires
    status, answer = await call(admin, "PATCH", path, json={"expires": format_time(latest)})
    assert status == 200, answer
    await _renews(c, vm)


async def test_a_new_admin_subscription_cannot_expire_past_the_horizon(
    c: ApiClient, admin: ApiClient
) -> None:
    alice, body = await _subscription(c)
    body["expires"] = "9998-12-31T00:00:00Z"
    status, answer = await call(admin, "POST", "/subscriptions", json=body)
    assert status == 400 and "years ahead" in answer["error"], answer
    async with c.api.store() as uow:
        assert (await uow.subscriptions.list_by_user(alice, 10, 0)).total == 0


async def _space_pricing(c: ApiClient, admin: ApiClient) -> str:
    status, answer = await call(admin, "POST", "/ip_space", json=b.space())
    assert status == 200, answer
    return f"/ip_space/{answer['data']['id']}/pricing"


@pytest.mark.parametrize(
    ("where", "field", "most"),
    [
        ("plan", "amount", MAX_PRICE),
        ("pricing", "cpu_cost", MAX_PRICE),
        ("pricing", "ip4_cost", MAX_PRICE),
        ("pricing", "max_memory", MAX_SIZE),
        ("pricing_disk", "cost", MAX_PRICE),
        ("pricing_disk", "max_disk_size", MAX_SIZE),
        ("space_price", "price_per_month", MAX_PRICE),
        ("space_price", "setup_fee", MAX_PRICE),
        ("host", "memory", MAX_SIZE),
        ("disk", "size", MAX_SIZE),
        ("template", "memory", MAX_SIZE),
        ("template", "disk_size", MAX_SIZE),
    ],
)
async def test_money_and_size_fields_are_capped_and_nothing_is_written(
    c: ApiClient, admin: ApiClient, where: str, field: str, most: int
) -> None:
    """2**64 - 1 was a 500 on SQLite (nothing written) and stored on MariaDB, where it later
    overflowed the payment row at quote time."""
    demo = c.demo
    path, listing, body = {
        "plan": ("/cost_plans", "/cost_plans", b.cost_plan()),
        "pricing": ("/custom_pricing", "/custom_pricing", b.pricing(demo)),
        "pricing_disk": ("/custom_pricing", "/custom_pricing", b.pricing(demo)),
        "space_price": ("", "", b.space_price()),
        "host": ("/hosts", "/hosts", b.host(demo)),
        "disk": (f"/hosts/{demo.host}/disks", f"/hosts/{demo.host}/disks", b.disk()),
        "template": ("/vm_templates", "/vm_templates", b.template(demo)),
    }[where]
    if where == "space_price":
        path = listing = await _space_pricing(c, admin)
    before = await total(admin, listing)

    def with_value(value: int) -> dict[str, Any]:
        if where == "pricing_disk":
            return {**body, "disk_pricing": [{**body["disk_pricing"][0], field: value}]}
        return {**body, field: value}

    for bad in (U64, most + 1):
        status, answer = await call(admin, "POST", path, json=with_value(bad))
        assert status == 400 and field in answer["error"] and str(most) in answer["error"], (
            bad,
            answer,
        )
    assert await total(admin, listing) == before
    status, answer = await call(admin, "POST", path, json=with_value(most))
    assert status == 200, answer


async def test_line_item_amounts_are_capped(c: ApiClient, admin: ApiClient) -> None:
    vm = await order(c, ALICE)
    async with c.api.store() as uow:
        found = await uow.vms.get(vm["id"])
        assert found is not None
        item = found.subscription_line_item_id
    for field in ("amount", "setup_amount"):
        status, answer = await call(
            admin, "PATCH", f"/subscription_line_items/{item}", json={field: MAX_PRICE + 1}
        )
        assert status == 400 and field in answer["error"], answer
    status, answer = await call(
        admin, "PATCH", f"/subscription_line_items/{item}", json={"amount": MAX_PRICE}
    )
    assert status == 200, answer


async def test_a_quote_no_payment_row_can_hold_is_422_and_stores_nothing(
    c: ApiClient, admin: ApiClient
) -> None:
    """The largest price, converted to msat for Lightning, is beyond any payment column."""
    vm = await order(c, ALICE)
    status, answer = await call(
        admin, "PATCH", f"/cost_plans/{c.demo.tiny_plan}", json={"amount": MAX_PRICE}
    )
    assert status == 200, answer
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?intervals=120", key=ALICE)
    assert resp.status == 422, await resp.text()
    assert "too large" in (await resp.json())["error"]
    async with c.api.store() as uow:
        assert (await uow.payments.list_by_vm(vm["id"], 10, 0)).total == 0
