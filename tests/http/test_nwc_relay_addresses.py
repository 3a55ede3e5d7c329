"""A wallet string cannot make the server connect to its own network (SSRF through NWC relays)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs

from adapters.http.context import SERVICES
from adapters.nwc.client import NwcClient
from tests.http.apiapp import ALICE, api_client
from tests.http.vm_helpers import build, order

SECRET = "cd" * 32


@asynccontextmanager
async def listener() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A loopback TCP server recording what each connection sends."""
    seen: list[bytes] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(2048))
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], seen
    finally:
        server.close()
        await server.wait_closed()


async def test_a_loopback_relay_is_refused_at_patch_and_never_connected_to() -> None:
    api = build()
    api.services = attrs.evolve(api.services, nwc_wallet=NwcClient(timeout_s=3))
    api.app[SERVICES] = api.services
    async with listener() as (port, seen), api_client(api) as c:
        vm = await order(c, ALICE)
        wallet = (
            f"nostr+walletconnect://{ALICE.pubkey.hex()}"
            f"?relay=ws://127.0.0.1:{port}/internal/admin%3Fx&secret={SECRET}"
        )
        r = await c.call(
            "PATCH",
            "/api/v1/account",
            json={"contact_nip17": False, "contact_email": False, "nwc_connection_string": wallet},
        )
        assert r.status == 400, await r.text()
        assert str(port) not in (await r.json())["error"]
        r = await c.call("GET", f"/api/v1/vm/{vm['id']}/renew?method=nwc")
        assert r.status == 200  # no wallet stored: a plain Lightning invoice
    assert seen == []


async def test_plain_ws_relays_are_refused_in_production_only() -> None:
    wallet = (
        f"nostr+walletconnect://{ALICE.pubkey.hex()}?relay=ws://relay.example.com&secret={SECRET}"
    )
    body = {"contact_nip17": False, "contact_email": False, "nwc_connection_string": wallet}
    async with api_client(build()) as c:  # Services' default: production rules
        r = await c.call("PATCH", "/api/v1/account", json=body)
        assert r.status == 400 and "wss://" in (await r.json())["error"]
        r = await c.call(
            "PATCH",
            "/api/v1/account",
            json={**body, "nwc_connection_string": wallet.replace("ws://", "wss://")},
        )
        assert r.status == 200, await r.text()
