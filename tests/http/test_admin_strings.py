"""Strings of admin POST/PATCH bodies (issue 8 §4, issue 11 §1): each has a length (at most its
column's) and a form, refused with 400 and nothing changed, on every backend (MariaDB answered
an over-long value with a 500; SQLite and memory stored it as sent)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.http.apiapp import ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database

__all__ = ["admin", "backend", "c", "database"]

A = "/api/admin/v1"


async def refused(resp: Any) -> str:
    assert resp.status == 400, (resp.status, await resp.text())
    message: str = (await resp.json())["error"]
    return message


async def ok(resp: Any) -> Any:
    assert resp.status == 200, (resp.status, await resp.text())
    return (await resp.json())["data"]


# --- users ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("billing_name", "n" * 201),
        ("billing_name", "Alice\nBcc: evil@example.com"),
        ("billing_address_1", "a" * 201),
        ("billing_address_2", "nul\x00"),
        ("billing_city", "c" * 101),
        ("billing_state", "s" * 101),
        ("billing_postcode", "p" * 51),
        ("billing_tax_id", "t" * 51),
        ("email", "a" * 250 + "@x.com"),
        ("country_code", "ZZZ"),
        ("country_code", "XX"),
        ("country_code", "I" * 900),
        ("admin_role", "r" * 51),
    ],
)
async def test_admin_user_patch_strings_are_bounded(
    c: ApiClient, admin: ApiClient, field: str, value: str
) -> None:
    user_id = await c.user_id()
    path = f"{A}/users/{user_id}"
    await ok(
        await admin.call(
            "PATCH", path, key=ROOT, json={"country_code": "IE", "billing_city": "Dublin"}
        )
    )
    before = await ok(await admin.call("GET", path, key=ROOT))
    message = await refused(
        await admin.call(
            "PATCH",
            path,
            key=ROOT,
            json={field: value, "billing_name": "Changed" if field != "billing_name" else value},
        )
    )
    assert field in message or "country" in message.lower()
    assert await ok(await admin.call("GET", path, key=ROOT)) == before
    assert (before["country_code"], before["billing_name"]) == ("IRL", None)


async def test_admin_country_code_alpha2_is_stored_as_alpha3_and_empty_clears(
    c: ApiClient, admin: ApiClient
) -> None:
    path = f"{A}/users/{await c.user_id()}"
    await ok(await admin.call("PATCH", path, key=ROOT, json={"country_code": "de"}))
    assert (await ok(await admin.call("GET", path, key=ROOT)))["country_code"] == "DEU"
    await ok(await admin.call("PATCH", path, key=ROOT, json={"country_code": ""}))
    assert (await ok(await admin.call("GET", path, key=ROOT)))["country_code"] is None


# --- subscriptions and line items ---------------------------------------------------------------


async def _subscription(c: ApiClient) -> tuple[int, int]:
    """A subscription of the user with one line item, made through the user API."""
    items = [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip4_tier_24}]
    sub = await ok(await c.call("POST", "/api/v1/subscriptions", json={"line_items": items}))
    async with c.api.store() as uow:
        line_items = await uow.line_items.list_by_subscription(sub["id"])
    return sub["id"], line_items[0].id


BAD_SUBSCRIPTION = [
    {"name": "n" * 201},
    {"name": "two\nlines"},
    {"description": "d" * 10_001},
    {"description": "nul\x00"},
    {"currency": "EURO!"},
    {"currency": "XYZ"},
    {"external_id": "e" * 256},
    {"external_id": "tab\t"},
]


@pytest.mark.parametrize("body", BAD_SUBSCRIPTION)
async def test_admin_subscription_patch_strings_are_bounded(
    c: ApiClient, admin: ApiClient, body: dict[str, Any]
) -> None:
    sub_id, _ = await _subscription(c)
    path = f"{A}/subscriptions/{sub_id}"
    before = await ok(await admin.call("GET", path, key=ROOT))
    await refused(await admin.call("PATCH", path, key=ROOT, json={"is_active": False, **body}))
    assert await ok(await admin.call("GET", path, key=ROOT)) == before


@pytest.mark.parametrize("body", BAD_SUBSCRIPTION)
async def test_admin_subscription_create_strings_are_bounded(
    c: ApiClient, admin: ApiClient, body: dict[str, Any]
) -> None:
    user_id = await c.user_id()
    companies = await ok(await admin.call("GET", f"{A}/companies", key=ROOT))
    good = {
        "user_id": user_id,
        "company_id": companies[0]["id"],
        "name": "Plan",
        "is_active": True,
        "currency": "EUR",
        "setup_fee": 0,
        "auto_renewal_enabled": False,
        "description": "two\nlines are fine",
    }
    await refused(await admin.call("POST", f"{A}/subscriptions", key=ROOT, json={**good, **body}))
    listed = await admin.call("GET", f"{A}/subscriptions?user_id={user_id}", key=ROOT)
    assert (await listed.json())["total"] == 0
    await ok(await admin.call("POST", f"{A}/subscriptions", key=ROOT, json=good))


@pytest.mark.parametrize(
    "body",
    [
        {"name": "n" * 201},
        {"name": "a\rb"},
        {"description": "d" * 10_001},
        {"configuration": {"blob": "x" * 20_000}},
    ],
)
async def test_admin_line_item_patch_strings_are_bounded(
    c: ApiClient, admin: ApiClient, body: dict[str, Any]
) -> None:
    _, item_id = await _subscription(c)
    path = f"{A}/subscription_line_items/{item_id}"
    before = await ok(await admin.call("GET", path, key=ROOT))
    await refused(await admin.call("PATCH", path, key=ROOT, json={"amount": 1, **body}))
    assert await ok(await admin.call("GET", path, key=ROOT)) == before


# --- payment methods, companies, hosts ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"name": "n" * 201},
        {"name": "a\nb"},
        {"processing_fee_currency": "EUROS"},
        {"supported_currencies": ["EUR", "X" * 200]},
        {"supported_currencies": ["EUR"] * 50},
        {"config": {"type": "lnd", "url": "u" * 5000}},
        {"config": {"type": "lnd", "macaroon_path": "/p\x00"}},
    ],
)
async def test_admin_payment_method_patch_strings_are_bounded(
    c: ApiClient, admin: ApiClient, body: dict[str, Any]
) -> None:
    methods = await ok(await admin.call("GET", f"{A}/payment_methods", key=ROOT))
    target = methods[0]
    assert target["provider_type"] == "lnd"  # the demo's
    path = f"{A}/payment_methods/{target['id']}"
    before = await ok(await admin.call("GET", path, key=ROOT))
    await refused(await admin.call("PATCH", path, key=ROOT, json={"enabled": False, **body}))
    assert await ok(await admin.call("GET", path, key=ROOT)) == before


async def test_admin_payment_method_currencies_are_stored_once_upper_case(
    c: ApiClient, admin: ApiClient
) -> None:
    methods = await ok(await admin.call("GET", f"{A}/payment_methods", key=ROOT))
    path = f"{A}/payment_methods/{methods[0]['id']}"
    got = await ok(
        await admin.call(
            "PATCH", path, key=ROOT, json={"supported_currencies": ["eur", "EUR", " usd "]}
        )
    )
    assert got["supported_currencies"] == ["EUR", "USD"]


@pytest.mark.parametrize("body", [{"country_code": "ZZZ"}, {"city": "c" * 101}, {"name": "a\nb"}])
async def test_admin_company_strings_and_country_are_checked(
    c: ApiClient, admin: ApiClient, body: dict[str, Any]
) -> None:
    companies = await ok(await admin.call("GET", f"{A}/companies", key=ROOT))
    path = f"{A}/companies/{companies[0]['id']}"
    before = await ok(await admin.call("GET", path, key=ROOT))
    await refused(await admin.call("PATCH", path, key=ROOT, json={"phone": "123", **body}))
    assert await ok(await admin.call("GET", path, key=ROOT)) == before
    got = await ok(await admin.call("PATCH", path, key=ROOT, json={"country_code": "ie"}))
    assert got["country_code"] == "IRL"
