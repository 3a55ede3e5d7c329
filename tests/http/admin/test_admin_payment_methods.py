"""Admin payment-method configs: D4 validation on save, secrets never returned."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.http.admin.adminapp import VIEWER, AdminWorld

SECRET = "sk_live_very_secret"
HOOK = "whsec_also_secret"


def stripe(world: AdminWorld, **extra: Any) -> dict[str, Any]:
    return {
        "company_id": world.user.demo.company,
        "name": "Stripe",
        "config": {
            "type": "stripe",
            "secret_key": SECRET,
            "publishable_key": "pk_live_1",
            "webhook_secret": HOOK,
        },
        "processing_fee_rate": 2.9,
        "processing_fee_base": 30,
        "processing_fee_currency": "eur",
        "supported_currencies": ["eur", "usd"],
        **extra,
    }


async def test_create_masks_secrets_and_keeps_exact_rate(world: AdminWorld) -> None:
    resp = await world.call("POST", "/payment_methods", json=stripe(world))
    text = await resp.text()
    assert resp.status == 200, text
    assert SECRET not in text and HOOK not in text
    data = (await resp.json())["data"]
    assert data["payment_method"] == "stripe" and data["provider_type"] == "stripe"
    assert data["config"] == {
        "type": "stripe",
        "publishable_key": "pk_live_1",
        "has_secret_key": True,
        "has_webhook_secret": True,
    }
    assert data["processing_fee_currency"] == "EUR"
    assert data["supported_currencies"] == ["EUR", "USD"]
    async with world.api.store() as uow:
        stored = await uow.payment_methods.get(data["id"])
    assert stored is not None and stored.processing_fee_rate == Decimal("2.9")
    assert stored.config["secret_key"] == SECRET
    listed = await world.call("GET", "/payment_methods")
    assert SECRET not in await listed.text()
    assert (await listed.json())["total"] == 4
    one = await world.call("GET", f"/payment_methods/{data['id']}")
    assert SECRET not in await one.text()


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"processing_fee_rate": 100}, "below 100 %"),
        ({"processing_fee_rate": 150.5}, "below 100 %"),
        ({"processing_fee_rate": -1}, "at least 0 %"),
        ({"processing_fee_currency": "XYZ"}, "unknown processing fee currency"),
        ({"processing_fee_currency": None}, "currency is required"),
        ({"name": "  "}, "cannot be empty"),
        ({"config": {"type": "stripe", "publishable_key": "pk"}}, "secret_key is required"),
        ({"config": {"type": "carrier-pigeon"}}, "Unknown provider type"),
    ],
)
async def test_invalid_create_is_a_400_and_stores_nothing(
    world: AdminWorld, change: dict[str, Any], fragment: str
) -> None:
    resp = await world.call("POST", "/payment_methods", json=stripe(world, **change))
    assert resp.status == 400
    assert fragment in (await resp.json())["error"]
    assert (await world.ok("GET", "/payment_methods"))["total"] == 3


async def test_one_config_per_company_and_method(world: AdminWorld) -> None:
    body = {
        "company_id": world.user.demo.company,
        "name": "Another LND",
        "config": {"type": "lnd", "url": "https://lnd", "cert_path": "/c", "macaroon_path": "/m"},
    }
    assert (await world.call("POST", "/payment_methods", json=body)).status == 409


async def test_update_partial_config_keeps_secrets_and_validates_fees(world: AdminWorld) -> None:
    created = (await world.ok("POST", "/payment_methods", json=stripe(world)))["data"]
    path = f"/payment_methods/{created['id']}"
    patched = await world.ok(
        "PATCH",
        path,
        json={
            "config": {"type": "stripe", "publishable_key": "pk_live_2"},
            "processing_fee_rate": 1.5,
        },
    )
    assert patched["data"]["config"]["publishable_key"] == "pk_live_2"
    assert patched["data"]["config"]["has_secret_key"] is True
    assert patched["data"]["processing_fee_rate"] == 1.5
    for body, status in (
        ({"processing_fee_rate": 100}, 400),
        ({"processing_fee_currency": "NOPE"}, 400),
        ({"processing_fee_currency": None}, 400),  # the base 30 still needs a currency
        ({"config": {"type": "paypal", "client_id": "x"}}, 400),
    ):
        resp = await world.call("PATCH", path, json=body)
        assert resp.status == status, await resp.text()
    cleared = await world.ok(
        "PATCH",
        path,
        json={
            "processing_fee_rate": None,
            "processing_fee_base": None,
            "processing_fee_currency": None,
        },
    )
    assert cleared["data"]["processing_fee_rate"] is None
    assert cleared["data"]["processing_fee_base"] is None
    async with world.api.store() as uow:
        stored = await uow.payment_methods.get(created["id"])
    assert stored is not None and stored.config["secret_key"] == SECRET
    assert (await world.call("PATCH", path, VIEWER, json={"name": "x"})).status == 403
    assert (await world.call("GET", "/payment_methods/999")).status == 404
