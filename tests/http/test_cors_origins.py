"""CORS (issue 8 §4): any origin without credentials by default; `cors-origins` restricts the
mirrored origins and only then allows credentials. Before, every origin was mirrored with
`Access-Control-Allow-Credentials: true`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from adapters.http.app import build_user_app
from lnvps.settings import load_settings
from tests.http.apiapp import build_api_app

WEB = "https://lnvps.example"
EVIL = "https://evil.example"
PREFLIGHT = {
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "authorization,content-type",
}


@pytest.fixture(params=["user", "admin"])
async def restricted(
    request: pytest.FixtureRequest,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The real user or admin app, configured with one allowed origin."""
    services = build_api_app().services
    app = (
        build_user_app(services, cors_origins=[WEB + "/"])
        if request.param == "user"
        else build_admin_app(services, cors_origins=[WEB])
    )
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def default() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(build_user_app(build_api_app().services))) as client:
        yield client


async def test_default_mirrors_any_origin_without_credentials(
    default: TestClient[web.Request, web.Application],
) -> None:
    for resp in (
        await default.get("/api/v1/image", headers={"Origin": EVIL}),
        await default.options("/api/v1/account", headers={"Origin": EVIL, **PREFLIGHT}),
        await default.get("/nowhere", headers={"Origin": EVIL}),
    ):
        assert resp.headers["Access-Control-Allow-Origin"] == EVIL
        assert "Access-Control-Allow-Credentials" not in resp.headers


@pytest.mark.parametrize("path", ["/api/v1/image", "/api/admin/v1/users", "/nowhere"])
async def test_configured_origins_only_are_mirrored_with_credentials(
    restricted: TestClient[web.Request, web.Application], path: str
) -> None:
    allowed = await restricted.get(path, headers={"Origin": WEB})
    assert allowed.headers["Access-Control-Allow-Origin"] == WEB
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    other = await restricted.get(path, headers={"Origin": EVIL})
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Credentials" not in other.headers
    preflight = await restricted.options(path, headers={"Origin": EVIL, **PREFLIGHT})
    assert preflight.status == 200
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Methods" not in preflight.headers
    ok = await restricted.options(path, headers={"Origin": WEB, **PREFLIGHT})
    assert ok.headers["Access-Control-Allow-Methods"] == "PATCH"
    assert ok.headers["Access-Control-Allow-Headers"] == "authorization,content-type"


def test_cors_origins_setting(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("cors-origins: [https://lnvps.example, https://beta.lnvps.example]\n")
    assert load_settings(config, environ={}).cors_origins == [WEB, "https://beta.lnvps.example"]
    assert load_settings(None, environ={}).cors_origins == []
