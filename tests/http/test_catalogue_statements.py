"""The catalogue behind its cache on SQLite and MariaDB: a repeated read runs no statement, an
admin change makes the next read load (and show) fresh data."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import attrs
from aiohttp.test_utils import TestClient, TestServer

from adapters.cache.local import LocalCatalogueCache
from adapters.http.admin.app import build_admin_app
from adapters.http.app import build_user_app
from tests.contract.storage_backends import Backend
from tests.http.apiapp import ApiClient
from tests.http.backend_apps import ROOT, admin, backend, c, database
from tests.sql_events import listening

__all__ = ["admin", "backend", "c", "database"]

CATALOGUE = ("/api/v1/vm/templates", "/api/v1/image", "/api/v1/payment/methods")


@contextmanager
def counted(backend: Backend) -> Iterator[list[str]]:
    statements: list[str] = []
    if backend.engine is None:
        yield statements
        return

    def record(*args: Any) -> None:
        statements.append(str(args[2]))

    with listening(backend.engine, "before_cursor_execute", record):
        yield statements


async def _get(client: TestClient[Any, Any], path: str) -> Any:
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return (await resp.json())["data"]


async def test_a_cached_catalogue_read_runs_no_statement_until_an_admin_change(
    backend: Backend, c: ApiClient, admin: ApiClient
) -> None:
    cache = LocalCatalogueCache()
    services = attrs.evolve(c.api.services, catalogue_cache=cache)
    async with (
        TestClient(TestServer(build_user_app(services))) as user,
        TestClient(TestServer(build_admin_app(services))) as admin_raw,
    ):
        with counted(backend) as first:
            before = {path: await _get(user, path) for path in CATALOGUE}
        if backend.engine is not None:
            assert first  # the first reads load from the database
        with counted(backend) as again:
            assert {path: await _get(user, path) for path in CATALOGUE} == before
        assert again == []

        change = ApiClient(admin_raw, c.api)
        resp = await change.call(
            "PATCH",
            f"/api/admin/v1/vm_os_images/{c.demo.debian}",
            key=ROOT,
            json={"enabled": False},
        )
        assert resp.status == 200, await resp.text()
        with counted(backend) as reload:
            images = await _get(user, "/api/v1/image")
        assert [i["id"] for i in images] == [c.demo.ubuntu]
        if backend.engine is not None:
            assert reload
