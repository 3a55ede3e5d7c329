"""Yardstick servers for `bench.http`: a bare aiohttp JSON handler and the minimal-stack probe.

`python -m bench.http_probe bare PORT` answers every GET with a small JSON object.
`python -m bench.http_probe probe PORT DB_URL` answers `GET /api/v1/vm/{id}` after one NIP-98
BIP-340 signature check and two primary-key SELECTs (the user, the VM) with SQLAlchemy Core:
SQLite through the synchronous `sqlite3` driver run in the event loop, MariaDB through the
async engine (asyncmy), the least the real endpoint could do on each backend.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from typing import Any

from aiohttp import web
from coincurve import PublicKeyXOnly
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import select

from adapters.mysql import tables
from adapters.mysql.engine import create_engine, normalize_db_url


def _bare_app() -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"data": {"id": 1, "name": "bare", "enabled": True}})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


def _verified_pubkey(header: str | None) -> bytes | None:
    """The signer of a `Nostr <base64 event>` header when its id and signature hold."""
    if header is None or not header.startswith("Nostr "):
        return None
    event = json.loads(base64.b64decode(header[6:]))
    canonical = json.dumps(
        [0, event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    event_id = hashlib.sha256(canonical).digest()
    if event_id.hex() != event["id"]:
        return None
    pubkey = bytes.fromhex(event["pubkey"])
    if not PublicKeyXOnly(pubkey).verify(bytes.fromhex(event["sig"]), event_id):
        return None
    return pubkey


def _vm_json(user: Any, vm: Any) -> dict[str, Any]:
    return {
        "data": {
            "id": vm.id,
            "user": user.id,
            "expires": vm.expires.isoformat() if vm.expires else None,
            "mac_address": vm.mac_address,
            "template_id": vm.template_id,
        }
    }


def _probe_app(db_url: str, user_id: int) -> web.Application:
    url = normalize_db_url(db_url)
    users_q = select(tables.users).where(tables.users.c.id == user_id)
    app = web.Application()

    async def ready(request: web.Request) -> web.StreamResponse:
        return web.json_response({"ready": True})

    app.router.add_get("/", ready)
    if url.get_backend_name() == "sqlite":
        sync = create_sync_engine(url.set(drivername="sqlite+pysqlite"))

        async def sqlite_handler(request: web.Request) -> web.StreamResponse:
            if _verified_pubkey(request.headers.get("Authorization")) is None:
                return web.json_response({"error": "auth"}, status=401)
            vm_id = int(request.match_info["id"])
            with sync.connect() as conn:
                user = conn.execute(users_q).one()
                vm = conn.execute(select(tables.vm).where(tables.vm.c.id == vm_id)).one()
            return web.json_response(_vm_json(user, vm))

        app.router.add_get("/api/v1/vm/{id}", sqlite_handler)
        return app
    engine = create_engine(url, pool_size=32, max_overflow=0)

    async def mysql_handler(request: web.Request) -> web.StreamResponse:
        if _verified_pubkey(request.headers.get("Authorization")) is None:
            return web.json_response({"error": "auth"}, status=401)
        vm_id = int(request.match_info["id"])
        async with engine.connect() as conn:
            user = (await conn.execute(users_q)).one()
            vm = (await conn.execute(select(tables.vm).where(tables.vm.c.id == vm_id))).one()
        return web.json_response(_vm_json(user, vm))

    async def dispose(app: web.Application) -> None:
        await engine.dispose()

    app.router.add_get("/api/v1/vm/{id}", mysql_handler)
    app.on_cleanup.append(dispose)
    return app


def main(argv: list[str]) -> None:
    kind, port = argv[0], int(argv[1])
    app = _bare_app() if kind == "bare" else _probe_app(argv[2], int(argv[3]))
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


if __name__ == "__main__":
    main(sys.argv[1:])
