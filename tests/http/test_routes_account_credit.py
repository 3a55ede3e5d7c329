"""The caller's credit balance on GET /api/v1/account and its paged ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.billing.credit_balance import adjust_credit, book_in
from domain.account_credit import CreditReason, checked_entry
from tests.http.apiapp import ALICE, BOB, ApiClient, api_client, build_api_app

LEDGER = "/api/v1/account/credit"


@pytest.fixture
async def c() -> AsyncIterator[ApiClient]:
    async with api_client(build_api_app()) as client:
        yield client


async def _give(c: ApiClient, user: int, amount: int, currency: str = "EUR") -> None:
    await adjust_credit(
        c.api.store,
        c.api.clock,
        admin_id=user,
        user_id=user,
        currency=currency,
        amount=amount,
        note=f"gift {amount}",
    )


async def test_the_account_shows_each_non_zero_balance(c: ApiClient) -> None:
    alice = await c.user_id(ALICE)
    await _give(c, alice, 1500)
    await _give(c, alice, 700, "USD")
    await _give(c, alice, -700, "USD")
    resp = await c.call("GET", "/api/v1/account")
    assert (await resp.json())["data"]["credit"] == [
        {"currency": "EUR", "amount": 1500, "vat_free": 0}
    ]
    bob = await c.call("GET", "/api/v1/account", key=BOB)
    assert (await bob.json())["data"]["credit"] == []


async def _vat_free(c: ApiClient, user: int, amount: int) -> None:
    """`amount` of VAT-free credit (as an upgrade not applied books it)."""
    entry = checked_entry(
        user_id=user,
        currency="EUR",
        amount=amount,
        reason=CreditReason.OVERPAYMENT,
        reference="upgrade",
        note="an upgrade not applied",
        created=c.api.clock.now(),
        vat_free=amount,
    )
    async with c.api.store() as uow:
        await book_in(uow, entry)
        await uow.commit()


async def test_the_account_shows_the_vat_free_part_of_each_balance(c: ApiClient) -> None:
    """An added key (`vat_free`), the old ones as they were: 36.74 of VAT-free credit and
    15.00 of ordinary credit show as 51.74 of which 36.74 VAT-free; each ledger entry says
    its VAT-free part too."""
    alice = await c.user_id(ALICE)
    await _vat_free(c, alice, 3674)
    await _give(c, alice, 1500)
    resp = await c.call("GET", "/api/v1/account")
    assert (await resp.json())["data"]["credit"] == [
        {"currency": "EUR", "amount": 5174, "vat_free": 3674}
    ]
    body = await (await c.call("GET", LEDGER)).json()
    assert [(e["amount"], e["vat_free"]) for e in body["data"]] == [(1500, 0), (3674, 3674)]


async def test_the_ledger_is_paged_newest_first_and_private(c: ApiClient) -> None:
    alice = await c.user_id(ALICE)
    for amount in (100, 200, 300):
        await _give(c, alice, amount)
    await _give(c, alice, 50, "USD")
    body = await (await c.call("GET", f"{LEDGER}?limit=2&offset=1")).json()
    assert body["total"] == 4 and body["limit"] == 2 and body["offset"] == 1
    assert [(e["amount"], e["currency"]) for e in body["data"]] == [(300, "EUR"), (200, "EUR")]
    first = body["data"][0]
    assert first["reason"] == "admin_adjustment" and first["note"] == "gift 300"
    assert set(first) == {
        "id",
        "currency",
        "amount",
        "vat_free",
        "reason",
        "reference",
        "note",
        "created",
    }
    eur = await (await c.call("GET", f"{LEDGER}?currency=eur")).json()
    assert eur["total"] == 3
    assert (await (await c.call("GET", LEDGER, key=BOB)).json())["total"] == 0


async def test_bad_ledger_queries_are_400(c: ApiClient) -> None:
    for query in ("?currency=XYZ", "?limit=-1", "?offset=x"):
        resp = await c.call("GET", LEDGER + query)
        assert resp.status == 400, query
    assert (await c.call("GET", LEDGER, signed=False)).status == 401
