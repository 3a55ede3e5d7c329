"""Upgrade quote and payment routes: shapes, refusals (D8, ownership), paying applies the spec."""

from __future__ import annotations

from collections.abc import AsyncIterator

import attrs
import pytest

from adapters.http.envelope import parse_time
from domain.credit import payment_meta
from domain.model import GIB
from domain.tax import CREDIT_TAX_RATE_KEY, TAX_RATE_KEY, TaxRates
from tests.http.apiapp import ALICE, BOB, ApiClient, api_client
from tests.http.vm_helpers import build, order, paid_vm, settle, subscription_of


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build()) as client:
        yield client


async def test_quote_shape_and_refusals(c: ApiClient) -> None:
    vm = await paid_vm(c, ALICE)
    path = f"/api/v1/vm/{vm['id']}/upgrade/quote?method=lightning"
    resp = await c.call("POST", path, json={"cpu": 2})
    assert resp.status == 200, await resp.text()
    quote = (await resp.json())["data"]
    assert list(quote) == ["cost_difference", "new_renewal_cost", "discount"]
    for price in quote.values():
        assert price["currency"] == "BTC" and isinstance(price["amount"], int)
    assert quote["cost_difference"]["amount"] > 0
    downgrade = await c.call("POST", path, json={"memory": 1})
    assert downgrade.status == 400 and "downgrade" in (await downgrade.json())["error"]
    nothing = await c.call("POST", path, json={})
    assert nothing.status == 400
    bad = await c.call("POST", path, json={"cpu": "two"})
    assert bad.status == 400
    theirs = await c.call("POST", path, key=BOB, json={"cpu": 2})
    assert theirs.status == 404
    unpaid = await order(c, ALICE)
    resp = await c.call("POST", f"/api/v1/vm/{unpaid['id']}/upgrade/quote", json={"cpu": 2})
    assert resp.status == 422 and "error" in await resp.json()


@pytest.mark.parametrize("route", ["upgrade/quote", "upgrade"])
async def test_an_upgrade_to_a_size_that_is_not_whole_gib_is_refused(
    c: ApiClient, route: str
) -> None:
    vm = await paid_vm(c, ALICE)  # Tiny: 1 GiB memory, 40 GiB disk
    path = f"/api/v1/vm/{vm['id']}/{route}"
    for field, size in (("memory", 2 * GIB - 1), ("disk", 41 * GIB - 1), ("disk", 50 * 10**9)):
        resp = await c.call("POST", path, json={field: size})
        assert resp.status == 400
        assert (await resp.json())["error"].startswith(f"{field} must be a whole number of GiB")
    whole = await c.call("POST", path, json={"memory": 2 * GIB, "disk": 41 * GIB})
    assert whole.status == 200, await whole.text()


async def test_upgrade_payment_is_never_reused_and_paying_keeps_the_expiry(
    c: ApiClient,
) -> None:
    vm = await paid_vm(c, ALICE)
    before = (await subscription_of(c.api, vm["id"])).expires
    path = f"/api/v1/vm/{vm['id']}/upgrade"
    first = (await (await c.call("POST", path, json={"cpu": 2})).json())["data"]
    assert first["is_upgrade"] is True and first["time"] == 0 and first["tax"] == 0
    assert first["upgrade_params"] == '{"new_cpu":2,"new_memory":null,"new_disk":null}'
    assert first["vm_id"] == vm["id"] and first["currency"] == "BTC"
    second = (await (await c.call("POST", path, json={"cpu": 2})).json())["data"]
    assert second["id"] != first["id"]
    await settle(c.api, second["id"])
    assert (await subscription_of(c.api, vm["id"])).expires == before
    shown = (await (await c.call("GET", f"/api/v1/vm/{vm['id']}")).json())["data"]
    assert shown["template"]["name"] == "Custom" and shown["template"]["cpu"] == 2
    rival = (await (await c.call("GET", f"/api/v1/payment/{first['id']}")).json())["data"]
    assert rival["is_paid"] is False  # D13: the rival upgrade payment expired with the payment
    assert parse_time(rival["expires"]) <= c.api.clock.now()


async def test_an_upgrade_quote_records_the_buyers_rate_for_credit_not_as_its_tax() -> None:
    """The service's tax rates reach the upgrade: an IE buyer's quote records 23 % for money
    kept as credit (an overpaid excess), while the upgrade itself charges no tax."""
    async with api_client(build(tax_rates=TaxRates.from_config({"IE": 23}))) as c:
        vm = await paid_vm(c, ALICE)
        uid = await c.user_id(ALICE)
        async with c.api.store() as uow:
            user = await uow.users.get(uid)
            assert user is not None
            await uow.users.update(attrs.evolve(user, country_code="IRL"))
            await uow.commit()
        resp = await c.call("POST", f"/api/v1/vm/{vm['id']}/upgrade", json={"cpu": 2})
        data = (await resp.json())["data"]
        assert resp.status == 200 and data["tax"] == 0
        async with c.api.store() as uow:
            payment = await uow.payments.get(bytes.fromhex(data["id"]))
        assert payment is not None and payment.tax == 0
        meta = payment_meta(payment)
        assert meta[CREDIT_TAX_RATE_KEY] == "23" and TAX_RATE_KEY not in meta
