"""A never-paid order or a paid VM cannot make Lightning invoices or card orders without
bound over HTTP: each new interval count (1..120) or upgrade request was a new free invoice;
past the live-quote cap the answer is 422 and nothing is made at the rail."""

from __future__ import annotations

from datetime import timedelta

from domain.credit import MAX_LIVE_QUOTES
from tests.http.apiapp import ApiClient, api_client
from tests.http.vm_helpers import build, order, paid_vm, with_revolut
from tests.nostr_signing import NostrKey

ATTACKER = NostrKey.from_seed(777)


def _count_node_invoices(c: ApiClient) -> list[int]:
    made = [0]
    node = c.api.node
    real = node.create_invoice

    async def counting(amount_msat: int, memo: str, expiry_seconds: int):  # type: ignore[no-untyped-def]
        made[0] += 1
        return await real(amount_msat, memo, expiry_seconds)

    node.create_invoice = counting  # type: ignore[method-assign]
    return made


async def test_a_never_paid_order_makes_at_most_the_cap_of_node_invoices_at_once() -> None:
    async with api_client(build()) as c:
        vm = await order(c, ATTACKER)
        made = _count_node_invoices(c)
        for rounds in range(3):  # 3 of the 6 ten-minute rounds the order's hour allows
            before = made[0]
            for n in range(1, 121):
                resp = await c.call(
                    "GET", f"/api/v1/vm/{vm['id']}/renew?intervals={n}", key=ATTACKER
                )
                assert resp.status in (200, 422), await resp.text()
                if resp.status == 422:
                    assert "open invoices" in (await resp.json())["error"]
            made_now = made[0] - before  # the cap's places (one may hold the order's own quote)
            assert MAX_LIVE_QUOTES - 1 <= made_now <= MAX_LIVE_QUOTES, f"round {rounds}: {made_now}"
            c.api.clock.advance(timedelta(minutes=11))  # every Lightning invoice expired
            await c.api.refresh_rates()
        assert made[0] <= 3 * MAX_LIVE_QUOTES  # was 360


async def test_the_web_clients_renewal_asked_again_is_the_same_invoice_at_the_cap() -> None:
    async with api_client(build()) as c:
        vm = await order(c, ATTACKER)
        path = f"/api/v1/vm/{vm['id']}/renew"
        first = (await (await c.call("GET", f"{path}?intervals=1", key=ATTACKER)).json())["data"]
        for n in range(2, MAX_LIVE_QUOTES + 3):
            await c.call("GET", f"{path}?intervals={n}", key=ATTACKER)
        again = await c.call("GET", f"{path}?intervals=1", key=ATTACKER)
        assert again.status == 200 and (await again.json())["data"]["id"] == first["id"]


async def test_a_never_paid_order_cannot_open_hundreds_of_card_orders() -> None:
    api = build()
    gateway = with_revolut(api)
    async with api_client(api) as c:
        vm = await order(c, ATTACKER)
        for n in range(1, 121):
            resp = await c.call(
                "GET", f"/api/v1/vm/{vm['id']}/renew?method=revolut&intervals={n}", key=ATTACKER
            )
            assert resp.status in (200, 422), await resp.text()
        # the order's own Lightning quote (if any) shares the cap with the card orders
        orders = len(gateway.orders)
        assert MAX_LIVE_QUOTES - 1 <= orders <= MAX_LIVE_QUOTES, f"{orders} Revolut orders"


async def test_an_upgrade_asked_again_makes_invoices_only_up_to_the_cap() -> None:
    """Upgrade payments are never reused (D10): each POST is a new invoice until the
    subscription's live quotes (here two renewal quotes too) reach the cap, then 422."""
    async with api_client(build()) as c:
        vm = await paid_vm(c, ATTACKER)
        path = f"/api/v1/vm/{vm['id']}"
        renewals = 2
        for n in range(2, 2 + renewals):
            resp = await c.call("GET", f"{path}/renew?intervals={n}", key=ATTACKER)
            assert resp.status == 200, await resp.text()
        made = _count_node_invoices(c)
        ids, statuses = set(), []
        for _ in range(40):
            resp = await c.call("POST", f"{path}/upgrade", key=ATTACKER, json={"cpu": 2})
            statuses.append(resp.status)
            body = await resp.json()
            if resp.status == 200:
                ids.add(body["data"]["id"])
            else:
                assert resp.status == 422 and "open invoices" in body["error"], body
        places = MAX_LIVE_QUOTES - renewals
        assert statuses == [200] * places + [422] * (40 - places)
        assert made[0] == places and len(ids) == places  # was 40
