"""Subscription routes: list/create/get/payments/renew with real NIP-98, ownership, errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from adapters.http.openapi import documented_operations, served_operations
from adapters.http.routes_subscriptions import add_subscription_routes
from app.admin.subscriptions import SubscriptionPatch, update_subscription
from app.billing.completion import complete_payment
from app.billing.ordering import OrderTerms, order_vm
from domain.enums import PaymentMethod
from domain.switch_off import REFUSED as SWITCHED_OFF
from domain.tax import TaxRates
from ports.fiat import FiatOrder, OrderExpiry
from tests.http.apiapp import ALICE, BOB, ApiClient, api_client, build_api_app

SUBS = "/api/v1/subscriptions"
HEX64 = set("0123456789abcdef")


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build_api_app()) as client:
        yield client


async def ok(resp: Any) -> Any:
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def create(c: ApiClient, key: Any = ALICE, **body: Any) -> dict[str, Any]:
    body.setdefault("line_items", [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip4_tier_24}])
    data: dict[str, Any] = (await ok(await c.call("POST", SUBS, key=key, json=body)))["data"]
    return data


async def renew(c: ApiClient, sub_id: int, query: str = "", key: Any = ALICE) -> Any:
    return await c.call("GET", f"{SUBS}/{sub_id}/renew{query}", key=key)


# --- create / get / list ------------------------------------------------------------------------


async def test_create_an_ip_range_subscription_with_the_documented_shape(c: ApiClient) -> None:
    sub = await create(c)
    assert sub == {
        "id": sub["id"],
        "name": "Subscription",
        "description": None,
        "created": "2026-06-17T10:00:00Z",
        "expires": None,
        "is_active": False,
        "auto_renewal_enabled": True,
        "line_items": [
            {
                "id": sub["line_items"][0]["id"],
                "subscription_id": sub["id"],
                "name": "IP Range: /24 from 185.18.224.0/22",
                "description": "/24 IP range from 185.18.224.0/22 block",
                "price": {"currency": "EUR", "amount": 15_000},
                "setup_fee": {"currency": "EUR", "amount": 5_000},
                "configuration": {
                    "ip_space_pricing_id": c.demo.ip4_tier_24,
                    "available_ip_space_id": c.demo.ip4_space,
                    "prefix_size": 24,
                },
            }
        ],
    }
    assert isinstance(sub["id"], int)
    got = await ok(await c.call("GET", f"{SUBS}/{sub['id']}"))
    assert got == {"data": sub}
    async with c.api.store() as uow:
        stored = await uow.subscriptions.get(sub["id"])
    assert stored is not None
    assert (stored.currency, stored.setup_fee, stored.is_setup, stored.company_id) == (
        "EUR",
        5_000,
        False,
        c.demo.company,
    )


async def test_create_with_every_option(c: ApiClient) -> None:
    sub = await create(
        c,
        name="My range",
        description="for the lab",
        currency="usd",
        auto_renewal_enabled=False,
        # two IPv6 /48s: unpaid, a /24 and a /23 of IPv4 would pass the per-user address cap
        line_items=[{"type": "ip_range", "ip_space_pricing_id": c.demo.ip6_tier}] * 2,
    )
    assert (sub["name"], sub["description"], sub["auto_renewal_enabled"]) == (
        "My range",
        "for the lab",
        False,
    )
    assert [i["price"]["amount"] for i in sub["line_items"]] == [1_000, 1_000]


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"line_items": []}, 400, "At least one line item is required"),
        ({}, 400, "`line_items` must be an array"),
        (
            {"line_items": [{"type": "asn_sponsoring", "asn": 64500}]},
            422,
            "ASN sponsoring not yet implemented",
        ),
        (
            {"line_items": [{"type": "dns_hosting", "domain": "example.com"}]},
            422,
            "DNS hosting not yet implemented",
        ),
        ({"line_items": [{"type": "vps"}]}, 400, "unknown line item type `vps`"),
        ({"line_items": [{"type": "ip_range"}]}, 400, "missing field `ip_space_pricing_id`"),
        (
            {"line_items": [{"type": "ip_range", "ip_space_pricing_id": 999}]},
            404,
            "IP space pricing not found",
        ),
        ({"line_items": ["ip_range"]}, 400, "The request body must be a JSON object"),
        (
            {"currency": "XYZ", "line_items": [{"type": "ip_range", "ip_space_pricing_id": 1}]},
            400,
            "unknown currency: XYZ",
        ),
        (
            {"currency": "USD", "line_items": [{"type": "ip_range", "ip_space_pricing_id": 1}]},
            400,
            "These IP ranges are priced in EUR, not USD",
        ),
        (
            {
                "line_items": [
                    {"type": "ip_range", "ip_space_pricing_id": 1},
                    {"type": "ip_range", "ip_space_pricing_id": 3},
                ]
            },
            400,
            "All line items must be priced in the same currency",
        ),
        (
            {"name": 5, "line_items": [{"type": "ip_range", "ip_space_pricing_id": 1}]},
            400,
            "`name` must be a string",
        ),
    ],
)
async def test_create_refusals(c: ApiClient, body: dict[str, Any], status: int, error: str) -> None:
    resp = await c.call("POST", SUBS, json=body)
    assert (resp.status, await resp.json()) == (status, {"error": error})
    page = await ok(await c.call("GET", SUBS))
    assert page["total"] == 0


async def test_a_reserved_space_cannot_be_bought(c: ApiClient) -> None:
    resp = await c.call(
        "POST",
        SUBS,
        json={"line_items": [{"type": "ip_range", "ip_space_pricing_id": c.demo.reserved_tier}]},
    )
    assert (resp.status, await resp.json()) == (
        422,
        {"error": "IP space is not available for allocation"},
    )


async def test_list_is_a_newest_first_page_of_my_subscriptions_only(c: ApiClient) -> None:
    v6 = [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip6_tier}]  # within the unpaid caps
    ids = [(await create(c, line_items=v6))["id"] for _ in range(3)]
    await create(c, key=BOB, line_items=v6)
    page = await ok(await c.call("GET", f"{SUBS}?limit=2"))
    assert list(page) == ["data", "total", "limit", "offset"]
    assert ([s["id"] for s in page["data"]], page["total"], page["limit"], page["offset"]) == (
        ids[::-1][:2],
        3,
        2,
        0,
    )
    rest = await ok(await c.call("GET", f"{SUBS}?limit=2&offset=2"))
    assert [s["id"] for s in rest["data"]] == [ids[0]]
    clamped = await ok(await c.call("GET", f"{SUBS}?limit=101"))
    assert clamped["limit"] == 100
    assert (await c.call("GET", f"{SUBS}?offset=-1")).status == 400


async def test_vm_subscriptions_are_listed_too(c: ApiClient) -> None:
    user_id, key_id = await c.user_id(), await c.ssh_key_id()
    vm = await order_vm(
        c.api.store,
        c.api.clock,
        OrderTerms(user_id=user_id, image_id=c.demo.ubuntu, ssh_key_id=key_id),
        c.demo.tiny,
    )
    [sub] = (await ok(await c.call("GET", SUBS)))["data"]
    assert sub["name"] == f"VM{vm.id} subscription"
    [item] = sub["line_items"]
    assert (item["name"], item["price"], item["configuration"]) == (
        f"VM{vm.id} - Tiny",
        {"currency": "EUR", "amount": 270},
        None,
    )


async def test_renewing_the_subscription_of_a_deleted_vm_is_422_and_stores_nothing(
    c: ApiClient,
) -> None:
    user_id, key_id = await c.user_id(), await c.ssh_key_id()
    vm = await order_vm(
        c.api.store,
        c.api.clock,
        OrderTerms(user_id=user_id, image_id=c.demo.ubuntu, ssh_key_id=key_id),
        c.demo.tiny,
    )
    [sub] = (await ok(await c.call("GET", SUBS)))["data"]
    async with c.api.store() as uow:
        await uow.vms.delete(vm.id)
        await uow.commit()
    resp = await renew(c, sub["id"])
    assert (resp.status, await resp.json()) == (
        422,
        {"error": "The VM of this subscription was deleted: it cannot be renewed"},
    )
    assert (await ok(await c.call("GET", f"{SUBS}/{sub['id']}/payments")))["data"] == []


async def test_renewing_a_subscription_an_admin_switched_off_is_422_and_stores_nothing(
    c: ApiClient,
) -> None:
    sub = await create(c)
    owner = await c.user_id()  # switching one's own subscription moves no money
    for active in (True, False):  # switched on, then off (`domain.switch_off`)
        patch = SubscriptionPatch(is_active=active)
        await update_subscription(
            c.api.store, sub["id"], patch, clock=c.api.clock, rails=None, admin_id=owner
        )
    resp = await renew(c, sub["id"])
    assert (resp.status, await resp.json()) == (422, {"error": SWITCHED_OFF})
    assert (await ok(await c.call("GET", f"{SUBS}/{sub['id']}/payments")))["data"] == []


async def test_other_users_subscriptions_are_not_found(c: ApiClient) -> None:
    sub_id = (await create(c))["id"]
    for path in (f"{SUBS}/{sub_id}", f"{SUBS}/{sub_id}/payments", f"{SUBS}/{sub_id}/renew"):
        resp = await c.call("GET", path, key=BOB)
        assert (resp.status, await resp.json()) == (404, {"error": "Subscription not found"})
    missing = await c.call("GET", f"{SUBS}/424242")
    assert missing.status == 404
    assert (await c.call("GET", f"{SUBS}/99999999999999999999")).status == 404
    for bad in ("abc", "1a", "-1"):
        resp = await c.call("GET", f"{SUBS}/{bad}/payments")
        assert (resp.status, await resp.json()) == (400, {"error": f"Invalid id: {bad}"})
    assert (await c.call("GET", f"{SUBS}/abc", signed=False)).status == 401  # auth comes first
    assert (await c.call("GET", f"{SUBS}/")).status == 404
    assert (await c.call("GET", f"{SUBS}/{sub_id}", signed=False)).status == 401


# --- renew / payments ---------------------------------------------------------------------------


async def test_renew_creates_a_purchase_with_setup_fee_and_reuses_it(c: ApiClient) -> None:
    sub_id = (await create(c))["id"]
    payment = (await ok(await renew(c, sub_id, "?method=lightning")))["data"]
    assert list(payment) == [
        "id",
        "subscription_id",
        "created",
        "expires",
        "amount",
        "payment_method",
        "payment_type",
        "is_paid",
        "tax",
        "processing_fee",
    ]
    assert len(payment["id"]) == 64 and set(payment["id"]) <= HEX64
    # EUR 150 + 50 setup at 100 000 EUR/BTC = 0.002 BTC
    assert payment["amount"] == {"currency": "BTC", "amount": 200_000_000}
    assert (payment["payment_method"], payment["payment_type"], payment["is_paid"]) == (
        "lightning",
        "Purchase",
        False,
    )
    assert (payment["created"], payment["expires"]) == (
        "2026-06-17T10:00:00Z",
        "2026-06-17T10:10:00Z",
    )
    assert payment["tax"] == payment["processing_fee"] == {"currency": "BTC", "amount": 0}
    again = (await ok(await renew(c, sub_id)))["data"]
    unknown_method = (await ok(await renew(c, sub_id, "?method=bitcoin")))["data"]
    assert again["id"] == unknown_method["id"] == payment["id"]
    page = await ok(await c.call("GET", f"{SUBS}/{sub_id}/payments"))
    assert (page["data"], page["total"]) == ([payment], 1)


async def test_paying_activates_and_the_next_renewal_has_no_setup_fee(c: ApiClient) -> None:
    sub_id = (await create(c))["id"]
    first = (await ok(await renew(c, sub_id)))["data"]
    c.api.clock.advance(timedelta(minutes=1))
    await c.api.node.settle(bytes.fromhex(first["id"]))
    await complete_payment(
        c.api.store,
        c.api.clock,
        c.api.services.rails,
        c.api.queue,
        payment_id=bytes.fromhex(first["id"]),
    )
    sub = (await ok(await c.call("GET", f"{SUBS}/{sub_id}")))["data"]
    assert (sub["is_active"], sub["expires"]) == (True, "2026-07-17T10:01:00Z")
    second = (await ok(await renew(c, sub_id)))["data"]
    assert (second["payment_type"], second["amount"]["amount"]) == ("Renewal", 150_000_000)
    page = await ok(await c.call("GET", f"{SUBS}/{sub_id}/payments?limit=1"))
    assert (page["total"], page["limit"], [p["id"] for p in page["data"]]) == (2, 1, [second["id"]])
    paid = (await ok(await c.call("GET", f"{SUBS}/{sub_id}/payments?offset=1")))["data"][0]
    assert (paid["is_paid"], paid["paid_at"]) == (True, "2026-06-17T10:01:00Z")
    assert "paid_at" not in second


async def test_renew_intervals_extension_and_its_limits(c: ApiClient) -> None:
    sub_id = (await create(c))["id"]
    three = (await ok(await renew(c, sub_id, "?intervals=3")))["data"]
    assert three["amount"]["amount"] == 3 * 150_000_000 + 50_000_000
    for bad in ("0", "121", "x"):
        resp = await renew(c, sub_id, f"?intervals={bad}")
        assert resp.status == 400, bad


async def test_renew_tax_follows_the_buyers_country() -> None:
    api = build_api_app(tax_rates=TaxRates.from_config({"IE": 23}))
    async with api_client(api) as c:
        await c.call(
            "PATCH",
            "/api/v1/account",
            json={"contact_nip17": True, "contact_email": False, "country_code": "IRL"},
        )
        sub_id = (await create(c))["id"]
        payment = (await ok(await renew(c, sub_id)))["data"]
    assert payment["amount"]["amount"] == 200_000_000
    assert payment["tax"] == {"currency": "BTC", "amount": 46_000_000}


async def test_no_exchange_rate_is_503_and_unconfigured_revolut_is_422(c: ApiClient) -> None:
    sub_id = (await create(c))["id"]
    revolut = await renew(c, sub_id, "?method=revolut")
    assert (revolut.status, await revolut.json()) == (422, {"error": "Revolut not configured"})
    c.api.clock.advance(timedelta(seconds=301))
    stale = await renew(c, sub_id)
    assert stale.status == 503
    assert "BTC/EUR" in (await stale.json())["error"]


async def test_post_renew_honours_an_idempotency_key(c: ApiClient) -> None:
    sub_id = (await create(c))["id"]
    path = f"{SUBS}/{sub_id}/renew"
    first = (await ok(await c.call("POST", path, headers={"Idempotency-Key": "k1"})))["data"]
    c.api.clock.advance(timedelta(minutes=11))  # the first payment has expired
    await c.api.refresh_rates()
    replay = (await ok(await c.call("POST", path, headers={"Idempotency-Key": "k1"})))["data"]
    assert replay["id"] == first["id"]
    other = await c.call("POST", f"{path}?intervals=2", headers={"Idempotency-Key": "k1"})
    assert other.status == 409
    fresh = (await ok(await c.call("POST", path)))["data"]
    assert fresh["id"] != first["id"]


class FakeRevolut:
    """Records orders; `external_data` is the order JSON with its token, as Revolut's."""

    def __init__(self) -> None:
        self.orders: list[tuple[int, str, str]] = []

    async def create_order(
        self,
        amount_minor: int,
        currency: str,
        description: str,
        expiry: OrderExpiry | None = None,
    ) -> FiatOrder:
        self.orders.append((amount_minor, currency, description))
        n = len(self.orders)
        return FiatOrder(
            external_id=f"order-{n}",
            external_data=f'{{"token":"tok-{n}"}}',
            amount_minor=amount_minor,
        )

    async def cancel_order(self, external_id: str) -> None:
        return None

    async def is_paid(self, external_id: str) -> bool:
        return False


async def test_a_card_payment_shows_tax_and_processing_fee_in_the_list_currency() -> None:
    revolut = FakeRevolut()
    api = build_api_app(
        tax_rates=TaxRates.from_config({"IE": 23}), fiat={PaymentMethod.REVOLUT: revolut}
    )
    async with api_client(api) as c:
        await c.call(
            "PATCH",
            "/api/v1/account",
            json={"contact_nip17": True, "contact_email": False, "country_code": "IE"},
        )
        sub_id = (await create(c))["id"]
        payment = (await ok(await renew(c, sub_id, "?method=revolut")))["data"]
    # EUR 200.00 (150 + 50 setup); tax 23 % = 46.00; fee 1 % + €0.20 grossed up (D4):
    # ceil(20000·0.01/0.99) + ceil(20/0.99) = 203 + 21
    assert (payment["payment_method"], payment["payment_type"]) == ("revolut", "Purchase")
    assert payment["amount"] == {"currency": "EUR", "amount": 20_000}
    assert payment["tax"] == {"currency": "EUR", "amount": 4_600}
    assert payment["processing_fee"] == {"currency": "EUR", "amount": 224}
    assert payment["expires"] == "2026-06-17T11:00:00Z"
    assert revolut.orders == [(24_824, "EUR", "Subscription purchase: Subscription")]


# --- OpenAPI --------------------------------------------------------------------------------------


async def test_openapi_documents_exactly_the_served_subscription_routes() -> None:
    api = build_api_app(add_subscription_routes)
    async with api_client(api, seed=False) as client:
        doc = await (await client.call("GET", "/openapi.json", signed=False)).json()
    served = served_operations(api.app)
    assert documented_operations(doc) == served
    assert served - {("GET", "/openapi.json")} == {
        ("GET", SUBS),
        ("POST", SUBS),
        ("GET", f"{SUBS}/{{id}}"),
        ("GET", f"{SUBS}/{{id}}/payments"),
        ("GET", f"{SUBS}/{{id}}/ip_ranges"),
        ("GET", f"{SUBS}/{{id}}/renew"),
        ("POST", f"{SUBS}/{{id}}/renew"),
    }
    payments = doc["paths"][f"{SUBS}/{{id}}/payments"]["get"]
    assert payments["parameters"][0] == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    }
    assert payments["security"] == [{"nip98": []}]
    listing = doc["paths"][SUBS]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"limit", "offset"}
    assert listing["security"] == [{"nip98": []}]


async def test_the_full_app_documents_all_three_areas() -> None:
    api = build_api_app()
    async with api_client(api, seed=False) as client:
        doc = await (await client.call("GET", "/openapi.json", signed=False)).json()
    assert documented_operations(doc) == served_operations(api.app)
    # account: 6 with the ledger; subscriptions: 7 with their IP ranges
    assert len(documented_operations(doc)) == 6 + 6 + 7 + 1
