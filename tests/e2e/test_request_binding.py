"""The real `lnvps serve` behind a proxy (D26, D28): events name `public-url`, not the address
the server listens on; a signed POST is good once; the NWC string is encrypted at rest."""

from __future__ import annotations

import json
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

from tests.dbtest import sqlite_url_for
from tests.e2e.serve_process import running_server
from tests.e2e.test_pulumi_walk import KEY, SSH_KEY
from tests.nostr_signing import sign_request

PUBLIC = "https://api.lnvps.test"
ADMIN_PUBLIC = "https://admin.lnvps.test"
ADMIN_URL_REFUSED = "Auth check failed: U tag does not match"
NWC = "nostr+walletconnect://" + "ab" * 32 + "?relay=wss%3A%2F%2Fr.example&secret=" + "cd" * 32


async def _admin_get(server: Any, path: str, signed_for: str) -> tuple[int, str]:
    auth = sign_request(KEY, signed_for, "GET", int(time.time()))
    async with server.session.get(server.admin_url + path, headers={"Authorization": auth}) as resp:
        return resp.status, await resp.text()


async def test_a_server_behind_a_proxy_binds_events_to_its_public_url(tmp_path: Path) -> None:
    db = tmp_path / "bound.db"
    config = f"public-url: {PUBLIC}\nadmin-public-url: {ADMIN_PUBLIC}\n"
    async with running_server(tmp_path, sqlite_url_for(db), config) as server:

        async def send(
            method: str, path: str, signed_url: str, header: str | None = None, body: object = None
        ) -> tuple[int, str, str]:
            auth = header or sign_request(KEY, signed_url, method, int(time.time()))
            async with server.session.request(
                method,
                server.base_url + path,
                data=None if body is None else json.dumps(body),
                headers={"Authorization": auth, "Content-Type": "application/json"},
            ) as resp:
                return resp.status, await resp.text(), auth

        status, text, _ = await send("GET", "/api/v1/account", server.base_url + "/api/v1/account")
        assert status == 401, text  # signed for the listening address, not the public one
        status, _, _ = await send("GET", "/api/v1/account", PUBLIC + "/api/v1/account")
        assert status == 200
        key = {"name": "k", "key_data": SSH_KEY}
        status, _, header = await send(
            "POST", "/api/v1/ssh-key", PUBLIC + "/api/v1/ssh-key", body=key
        )
        assert status == 200
        status, text, _ = await send("POST", "/api/v1/ssh-key", "", header, {**key, "name": "x"})
        assert status == 401
        assert json.loads(text) == {"error": "Auth check failed: Event already used"}
        account = {"contact_nip17": True, "contact_email": False, "nwc_connection_string": NWC}
        status, _, _ = await send(
            "PATCH", "/api/v1/account", PUBLIC + "/api/v1/account", body=account
        )
        assert status == 200
        status, text, _ = await send("GET", "/api/v1/account", PUBLIC + "/api/v1/account")
        assert "cd" * 32 not in text
        # the admin API binds events to its own public URL: not the user API's, not its port
        roles = "/api/admin/v1/roles"
        for signed_for in (server.admin_url + roles, PUBLIC + roles):
            status, text = await _admin_get(server, roles, signed_for)
            assert (status, json.loads(text)) == (401, {"error": ADMIN_URL_REFUSED}), signed_for
        status, text = await _admin_get(server, roles, ADMIN_PUBLIC + roles)
        assert status == 403, text  # authenticated; not an admin
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("SELECT nwc_connection_string FROM users").fetchone()
        names = [row[0] for row in conn.execute("SELECT name FROM user_ssh_key")]
    assert stored.startswith("ENC:") and names == ["k"]
    assert stat.S_IMODE((tmp_path / "lnvps-encryption.key").stat().st_mode) == 0o600
