"""Over HTTP: a never-paid order's bank-transfer quote does not keep its host's room for days."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs

from adapters.fiat.bank_transfer import BankTransferRail
from adapters.http.context import SERVICES
from domain.model import GIB
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from tests.http.apiapp import BOB, ApiApp, ApiClient, api_client
from tests.http.vm_helpers import add_key, build
from tests.nostr_signing import NostrKey

#: a free key that orders the whole demo host (16 CPU / 64 GiB) and never pays
GRABBER = NostrKey.from_seed(4242)


def _room_limits_off(api: ApiApp) -> ApiApp:
    """Without D25's room limits, which refuse the whole-host order outright
    (tests/http/test_unpaid_room.py): how long an order holds its room is tested here."""
    api.services = attrs.evolve(api.services, unpaid_room=NO_UNPAID_ROOM_LIMITS)
    api.app[SERVICES] = api.services
    return api


async def _order_whole_host(c: ApiClient) -> int:
    ssh = await add_key(c.api, GRABBER)
    body = {
        "pricing_id": c.demo.custom,
        "cpu": 16,
        "memory": 64 * GIB,
        "disk": 80 * GIB,
        "disk_type": "ssd",
        "disk_interface": "pcie",
        "image_id": c.demo.ubuntu,
        "ssh_key_id": ssh.id,
    }
    resp = await c.call("POST", "/api/v1/vm/custom-template", key=GRABBER, json=body)
    assert resp.status == 200, await resp.text()
    vm_id: int = (await resp.json())["data"]["id"]
    return vm_id


async def _order_tiny(c: ApiClient) -> Any:
    ssh = await add_key(c.api, BOB, name="bob")
    body = {"template_id": c.demo.tiny, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id}
    return await c.call("POST", "/api/v1/vm", key=BOB, json=body)


async def test_a_bank_transfer_quote_does_not_hold_the_host_for_days() -> None:
    api = _room_limits_off(build(rails=[BankTransferRail({"iban": "IE29AIBK93115212345678"})]))
    async with api_client(api) as c:
        vm_id = await _order_whole_host(c)
        path = f"/api/v1/vm/{vm_id}/renew?method=bank_transfer"
        quote = await c.call("GET", path, key=GRABBER)
        assert quote.status == 200, await quote.text()
        c.api.clock.advance(timedelta(minutes=30))
        await c.api.refresh_rates()
        full = await _order_tiny(c)  # within its window the order holds its room
        assert full.status == 422, await full.text()
        c.api.clock.advance(timedelta(days=3))  # never paid; the transfer still payable
        await c.api.refresh_rates()
        resp = await _order_tiny(c)
        assert resp.status == 200, f"3 days later: {resp.status} {await resp.text()}"


async def test_control_without_a_quote_the_room_returns_after_the_window() -> None:
    async with api_client(_room_limits_off(build())) as c:
        await _order_whole_host(c)
        c.api.clock.advance(timedelta(hours=1, minutes=1))
        await c.api.refresh_rates()
        resp = await _order_tiny(c)
        assert resp.status == 200, await resp.text()
