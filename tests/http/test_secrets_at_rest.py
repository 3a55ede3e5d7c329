"""D28 through the composition root: the embedded default encrypts the NWC string at rest (raw
column `ENC:`, on SQLite and MariaDB) and the account API shows it masked, never in full."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from adapters.http.app import build_user_app
from adapters.mysql import tables
from lnvps.container import close_container, open_container
from lnvps.dev_state import DEV_ENCRYPTION_KEY_FILE
from lnvps.settings import load_settings
from tests.nostr_signing import NostrKey, sign_request

KEY = NostrKey.from_seed(2828)
SECRET = "5e" * 32
NWC = f"nostr+walletconnect://{'ab' * 32}?relay=wss%3A%2F%2Frelay.example&secret={SECRET}"


async def test_the_nwc_string_is_sealed_at_rest_and_masked_in_answers(
    migrated_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"db: {migrated_db_url}\ndev:\n  state-dir: {tmp_path}\n")
    container = await open_container(load_settings(config, environ={}))
    caplog.set_level(logging.DEBUG)
    try:
        app = build_user_app(container.services())
        async with TestClient(TestServer(app)) as client:

            async def call(method: str, body: object = None) -> tuple[int, str]:
                url = str(client.make_url("/api/v1/account"))
                headers = {"Authorization": sign_request(KEY, url, method, int(time.time()))}
                resp = await client.request(method, "/api/v1/account", json=body, headers=headers)
                return resp.status, await resp.text()

            status, _ = await call(
                "PATCH",
                {"contact_nip17": True, "contact_email": False, "nwc_connection_string": NWC},
            )
            assert status == 200
            status, text = await call("GET")
            assert status == 200
            assert '"nwc_connection_string":"nostr+walletconnect://abab\u2026"' in text
            assert SECRET not in text
        engine = container.engine()
        assert engine is not None
        async with engine.connect() as conn:
            stored = (
                await conn.execute(
                    select(tables.users.c.nwc_connection_string).where(
                        tables.users.c.pubkey == KEY.pubkey
                    )
                )
            ).scalar_one()
        assert stored.startswith("ENC:") and SECRET not in stored
        async with container.uow_factory()() as uow:
            user = await uow.users.get_by_pubkey(KEY.pubkey)
        assert user is not None and user.nwc_connection_string == NWC
        assert SECRET not in repr(user)
        key_file = tmp_path / DEV_ENCRYPTION_KEY_FILE
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    finally:
        await close_container(container)
    assert SECRET not in caplog.text
