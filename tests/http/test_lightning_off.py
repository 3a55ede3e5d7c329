"""A fiat-only shop (`lightning: {enabled: false}`) over HTTP: no way to pay by Lightning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import attrs
import pytest

from adapters.http.context import SERVICES
from app.billing.completion import complete_payment
from app.billing.credit_balance import adjust_credit
from app.billing.ordering import OrderTerms, order_vm
from app.billing.rails import PaymentRails
from app.billing.renewal import renew as renew_use_case
from domain.enums import PaymentMethod
from domain.tax import NO_TAX
from lnvps.container import WEBHOOKS
from tests.http.apiapp import ALICE, ApiClient, api_client
from tests.http.vm_helpers import add_key, build, order, subscription_of
from tests.unit.billing.fakes import FakeGateway

REFUSED = "Lightning payments are not taken here; please pay it by Revolut"


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    """The user API with Revolut only and Lightning off, as the container builds it."""
    api = build()
    rails = PaymentRails(
        fiat={PaymentMethod.REVOLUT: FakeGateway()}, webhooks=WEBHOOKS, lightning_off=True
    )
    api.services = attrs.evolve(api.services, rails=rails)
    api.app[SERVICES] = api.services
    async with api_client(api) as client:
        yield client


async def _error(resp: Any, status: int = 422) -> str:
    assert resp.status == status, await resp.text()
    error: str = (await resp.json())["error"]
    return error


async def _payments(c: ApiClient, vm_id: int) -> list[Any]:
    resp = await c.call("GET", f"/api/v1/vm/{vm_id}/payments")
    assert resp.status == 200, await resp.text()
    found: list[Any] = (await resp.json())["data"]
    return found


async def _paid_before_the_switch(c: ApiClient) -> int:
    """A VM bought by Lightning while the shop still took it (its node settled the invoice)."""
    vm = await order(c, ALICE)
    api, on = c.api, PaymentRails(lightning=c.api.node)
    payment = await renew_use_case(
        api.store, api.clock, on, api.rates, NO_TAX, user_id=None, vm_id=vm["id"]
    )
    await api.node.settle(payment.id)
    await complete_payment(api.store, api.clock, on, api.queue, payment_id=payment.id)
    return int(vm["id"])


async def _give_credit(c: ApiClient, amount: int) -> None:
    alice = await c.user_id(ALICE)
    await adjust_credit(
        c.api.store,
        c.api.clock,
        admin_id=alice,
        user_id=alice,
        currency="EUR",
        amount=amount,
        note="gift",
    )


async def _credit(c: ApiClient) -> list[Any]:
    resp = await c.call("GET", "/api/v1/account")
    found: list[Any] = (await resp.json())["data"]["credit"]
    return found


async def test_the_methods_list_offers_no_lightning_nwc_or_lnurl(c: ApiClient) -> None:
    """The demo's database still holds an enabled Lightning config row (one left from
    before the switch): it is not listed, nor the `nwc` and `lnurl` it would bring."""
    resp = await c.call("GET", "/api/v1/payment/methods", signed=False)
    assert resp.status == 200
    assert [m["name"] for m in (await resp.json())["data"]] == ["revolut"]


@pytest.mark.parametrize("query", ["?method=lightning", "", "?method=nwc"])
async def test_a_renewal_by_lightning_is_refused_and_writes_nothing(
    c: ApiClient, query: str
) -> None:
    vm = await order(c, ALICE)
    got = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew{query}")
    assert await _error(got) == REFUSED
    posted = await c.call("POST", f"/api/v1/vm/{vm['id']}/renew", json={"method": "lightning"})
    assert await _error(posted) == REFUSED
    assert await _payments(c, vm["id"]) == []
    by_card = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=revolut")
    assert by_card.status == 200, await by_card.text()
    assert (await by_card.json())["data"]["currency"] == "EUR"


async def test_a_lightning_renewal_the_balance_covers_is_refused_too(c: ApiClient) -> None:
    """No rail would be asked for it, yet it must not buy time "by Lightning" here."""
    await _give_credit(c, 10_000)
    vm = await order(c, ALICE)
    assert await _error(await c.call("GET", f"/api/v1/vm/{vm['id']}/renew")) == REFUSED
    assert await _credit(c) == [{"currency": "EUR", "amount": 10_000, "vat_free": 0}]
    assert (await subscription_of(c.api, vm["id"])).expires is None
    assert await _payments(c, vm["id"]) == []


async def test_a_lightning_invoice_from_before_the_switch_is_not_handed_out(
    c: ApiClient,
) -> None:
    vm = await order(c, ALICE)
    api = c.api
    old = await renew_use_case(
        api.store,
        api.clock,
        PaymentRails(lightning=api.node),
        api.rates,
        NO_TAX,
        user_id=None,
        vm_id=vm["id"],
    )
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=lightning")
    assert await _error(resp) == REFUSED
    assert [p["id"] for p in await _payments(c, vm["id"])] == [old.id.hex()]


async def test_an_upgrade_by_lightning_is_refused_and_changes_nothing(c: ApiClient) -> None:
    vm_id = await _paid_before_the_switch(c)
    await _give_credit(c, 1_000_000)  # would pay the upgrade whole, no rail asked
    paid = await _payments(c, vm_id)
    resp = await c.call("POST", f"/api/v1/vm/{vm_id}/upgrade?method=lightning", json={"cpu": 2})
    assert await _error(resp) == REFUSED
    quoted = await c.call("POST", f"/api/v1/vm/{vm_id}/upgrade/quote", json={"cpu": 2})
    assert await _error(quoted) == REFUSED  # no `method`: Lightning, priced in BTC
    by_card = await c.call(
        "POST", f"/api/v1/vm/{vm_id}/upgrade/quote?method=revolut", json={"cpu": 2}
    )
    assert by_card.status == 200, await by_card.text()
    assert (await by_card.json())["data"]["cost_difference"]["currency"] == "EUR"
    assert await _payments(c, vm_id) == paid
    assert await _credit(c) == [{"currency": "EUR", "amount": 1_000_000, "vat_free": 0}]
    shown = (await (await c.call("GET", f"/api/v1/vm/{vm_id}")).json())["data"]
    assert shown["template"]["cpu"] == 1


async def test_lnurl_pay_refuses_clearly(c: ApiClient) -> None:
    vm_id = await _paid_before_the_switch(c)
    offer = await c.client.get(f"/.well-known/lnurlp/{vm_id}")
    assert offer.status == 200
    assert await offer.json() == {
        "status": "ERROR",
        "reason": "This server takes no Lightning payments",
    }
    paid = await _payments(c, vm_id)
    callback = await c.client.get(f"/api/v1/vm/{vm_id}/renew-lnurlp?amount=1000000")
    assert callback.status == 200
    assert await callback.json() == {"status": "ERROR", "reason": REFUSED}
    assert await _payments(c, vm_id) == paid


async def test_an_order_of_an_offer_priced_in_btc_is_refused(c: ApiClient) -> None:
    ssh = await add_key(c.api, ALICE)
    body = {"template_id": c.demo.yearly, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id}
    error = await _error(await c.call("POST", "/api/v1/vm", json=body))
    assert error.startswith("This offer is priced in BTC, which only Lightning can pay")
    listed = await c.call("GET", "/api/v1/vm")
    assert (await listed.json())["data"] == []
    fiat = await c.call("POST", "/api/v1/vm", json={**body, "template_id": c.demo.tiny})
    assert fiat.status == 200, await fiat.text()


async def test_with_lightning_on_the_btc_offer_is_sold() -> None:
    async with api_client(build()) as c:
        ssh = await add_key(c.api, ALICE)
        body = {"template_id": c.demo.yearly, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id}
        resp = await c.call("POST", "/api/v1/vm", json=body)
        assert resp.status == 200, await resp.text()


async def test_a_subscription_priced_in_btc_cannot_be_renewed_or_upgraded_by_card(
    c: ApiClient,
) -> None:
    """Ordered while the shop took Lightning; no card rail charges bitcoin (422)."""
    ssh = await add_key(c.api, ALICE)
    body = {"template_id": c.demo.yearly, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id}
    terms = OrderTerms(user_id=await c.user_id(ALICE), image_id=c.demo.ubuntu, ssh_key_id=ssh.id)
    vm = await order_vm(c.api.store, c.api.clock, terms, body["template_id"])
    resp = await c.call("GET", f"/api/v1/vm/{vm.id}/renew?method=revolut")
    assert (await _error(resp)).startswith("This service is priced in BTC, which only Lightning")
    upgrade = await c.call("POST", f"/api/v1/vm/{vm.id}/upgrade?method=revolut", json={"cpu": 2})
    assert (await _error(upgrade)).startswith("This service is priced in BTC")
    assert await _payments(c, vm.id) == []


async def test_a_fiat_price_is_charged_by_card_without_any_exchange_rate(c: ApiClient) -> None:
    """The rates went stale (the feed down for an hour): a EUR order and its card renewal
    need none."""
    c.api.clock.advance(timedelta(hours=1))  # rates go stale 300 s after their fetch
    vm = await order(c, ALICE)
    resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=revolut")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["data"]["amount"] == 270


async def test_with_lightning_on_the_same_stale_rates_refuse_a_lightning_invoice() -> None:
    async with api_client(build()) as c:
        c.api.clock.advance(timedelta(hours=1))
        vm = await order(c, ALICE)
        resp = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=lightning")
        assert resp.status == 503, await resp.text()


async def _btc_tier(c: ApiClient) -> int:
    """The demo's IPv4 /24 tier, re-priced in BTC."""
    async with c.api.store() as uow:
        tier = await uow.ip_space_pricing.get(c.demo.ip4_tier_24)
        assert tier is not None
        await uow.ip_space_pricing.update(attrs.evolve(tier, currency="BTC"))
        await uow.commit()
    return tier.id


async def test_an_ip_range_order_priced_in_btc_is_refused(c: ApiClient) -> None:
    btc = await _btc_tier(c)
    order_of = {"line_items": [{"type": "ip_range", "ip_space_pricing_id": btc}]}
    error = await _error(await c.call("POST", "/api/v1/subscriptions", json=order_of))
    assert error.startswith("These IP ranges are priced in BTC, which only Lightning can pay")
    listed = await c.call("GET", "/api/v1/subscriptions")
    assert (await listed.json())["data"] == []
    dollar = {"line_items": [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip6_tier}]}
    resp = await c.call("POST", "/api/v1/subscriptions", json=dollar)
    assert resp.status == 200, await resp.text()


async def test_with_lightning_on_an_ip_range_priced_in_btc_is_sold() -> None:
    async with api_client(build()) as c:
        btc = await _btc_tier(c)
        order_of = {"line_items": [{"type": "ip_range", "ip_space_pricing_id": btc}]}
        resp = await c.call("POST", "/api/v1/subscriptions", json=order_of)
        assert resp.status == 200, await resp.text()
