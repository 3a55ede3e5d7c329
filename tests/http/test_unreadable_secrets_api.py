"""Through the composition root, on SQLite and MariaDB: a user whose wallet string or e-mail
address was sealed with another key (a lost or rotated one) still signs in and reads their
account; the wallet shows as unreadable, the address as absent; echoing the account back keeps
the sealed values byte for byte; a new wallet string replaces the unreadable one."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.http.app import build_user_app
from adapters.mysql import tables
from app.account.profile import UNREADABLE_NWC, email_hash
from lnvps.container import Container, close_container, open_container
from lnvps.settings import load_settings
from tests.nostr_signing import NostrKey, sign_request

KEY = NostrKey.from_seed(2929)
NWC = f"nostr+walletconnect://{'ab' * 32}?relay=wss%3A%2F%2Frelay.example&secret={'5e' * 32}"
WALLET = NostrKey.from_seed(3030).pubkey.hex()
NEW_NWC = f"nostr+walletconnect://{WALLET}?relay=wss%3A%2F%2Frelay.example&secret={'6f' * 32}"
LOST = AesGcmSecretBox(bytes(range(32, 64)))
users = tables.users


class Account:
    def __init__(self, client: TestClient[Any, Any], engine: AsyncEngine) -> None:
        self.client = client
        self.engine = engine
        self.signed = int(time.time()) - 300  # each request's event a second apart (replays)

    async def call(self, method: str, body: object = None) -> tuple[int, Any]:
        url = str(self.client.make_url("/api/v1/account"))
        self.signed += 1
        headers = {"Authorization": sign_request(KEY, url, method, self.signed)}
        resp = await self.client.request(method, "/api/v1/account", json=body, headers=headers)
        text = await resp.text()
        return resp.status, json.loads(text) if text else None

    async def get(self) -> dict[str, Any]:
        status, body = await self.call("GET")
        assert status == 200, body
        data: dict[str, Any] = body["data"]
        return data

    async def echo(self, **changes: Any) -> None:
        """A client saving the account as it showed it (with `changes`)."""
        shown = await self.get()
        shown.pop("credit")
        status, body = await self.call("PATCH", {**shown, **changes})
        assert status == 200, body

    async def column(self, name: str) -> Any:
        async with self.engine.connect() as conn:
            query = select(users.c[name]).where(users.c.pubkey == KEY.pubkey)
            return (await conn.execute(query)).scalar_one()

    async def seal_with_lost_key(self, name: str, plain: str) -> str:
        sealed = LOST.encrypt(plain)
        async with self.engine.begin() as conn:
            await conn.execute(
                update(users).where(users.c.pubkey == KEY.pubkey).values({name: sealed})
            )
        return sealed


@pytest.fixture
async def container(migrated_db_url: str, tmp_path: Path) -> AsyncIterator[Container]:
    config = tmp_path / "c.yaml"
    config.write_text(f"db: {migrated_db_url}\ndev:\n  state-dir: {tmp_path}\n")
    opened = await open_container(load_settings(config, environ={}))
    try:
        yield opened
    finally:
        await close_container(opened)


@pytest.fixture
async def account(container: Container) -> AsyncIterator[Account]:
    engine = container.engine()
    assert engine is not None
    async with TestClient(TestServer(build_user_app(container.services()))) as client:
        yield Account(client, engine)


async def test_a_wallet_string_sealed_with_a_lost_key_leaves_the_account_usable(
    account: Account,
) -> None:
    status, _ = await account.call(
        "PATCH",
        {
            "contact_nip17": True,
            "contact_email": True,
            "email": "alice@example.com",
            "nwc_connection_string": NWC,
        },
    )
    assert status == 200
    sealed = await account.seal_with_lost_key("nwc_connection_string", NWC)

    shown = await account.get()
    assert shown["nwc_connection_string"] == UNREADABLE_NWC
    assert shown["email"] == "alice@example.com" and shown["contact_email"] is True

    await account.echo(name="Alice")
    assert await account.column("nwc_connection_string") == sealed
    assert await account.column("billing_name") == "Alice"

    await account.echo(nwc_connection_string=NEW_NWC)
    masked = f"nostr+walletconnect://{WALLET[:4]}\u2026"
    assert (await account.get())["nwc_connection_string"] == masked
    assert await account.column("nwc_connection_string") != sealed


async def test_an_address_sealed_with_a_lost_key_reads_as_none_and_is_kept(
    account: Account,
) -> None:
    body = {"contact_nip17": False, "contact_email": True, "email": "alice@example.com"}
    status, _ = await account.call("PATCH", body)
    assert status == 200
    sealed = await account.seal_with_lost_key("email", "alice@example.com")

    shown = await account.get()
    assert "email" not in shown and shown["contact_email"] is True

    await account.echo(city="Lisbon")  # contact_email as it was: not refused for the address
    assert await account.column("email") == sealed
    assert await account.column("email_hash") == email_hash("alice@example.com")
    assert await account.column("billing_city") == "Lisbon"

    flags = {"contact_nip17": False, "contact_email": False}
    status, _ = await account.call("PATCH", flags)
    assert status == 200 and await account.column("email") == sealed
    status, refused = await account.call("PATCH", {**flags, "contact_email": True})
    assert status == 400 and "email address is required" in refused["error"]

    await account.echo(email="alice@example.org", contact_email=True)
    assert (await account.get())["email"] == "alice@example.org"
    assert await account.column("email_hash") == email_hash("alice@example.org")
