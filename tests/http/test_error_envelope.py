"""Framework refusals in the `{"error"}` envelope (issue 8 §4): the router's 404/405 and any
aiohttp HTTPException answer `application/json`, on the user and the admin app (the router's
answers used to have an empty body)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from adapters.http.app import build_user_app
from tests.http.apiapp import build_api_app


@pytest.mark.parametrize(
    ("app_kind", "method", "path", "status", "message"),
    [
        ("user", "GET", "/api/v1/nothing", 404, "Not Found"),
        ("user", "GET", "/api/v1/vm/templates/", 404, "Not Found"),
        ("user", "DELETE", "/api/v1/image", 405, "Method Not Allowed"),
        ("user", "PUT", "/api/v1/account", 405, "Method Not Allowed"),
        ("admin", "GET", "/api/admin/v1/nothing", 404, "Not Found"),
        ("admin", "DELETE", "/api/admin/v1/users", 405, "Method Not Allowed"),
    ],
)
async def test_router_refusals_are_json(
    app_kind: str, method: str, path: str, status: int, message: str
) -> None:
    services = build_api_app().services
    app = build_user_app(services) if app_kind == "user" else build_admin_app(services)
    async with TestClient(TestServer(app)) as client:
        resp = await client.request(method, path)
        assert resp.status == status
        assert resp.content_type == "application/json"
        assert await resp.json() == {"error": message}
        if status == 405:
            assert resp.headers["Allow"]


async def test_a_body_over_the_size_limit_is_a_json_413() -> None:
    async with TestClient(TestServer(build_user_app(build_api_app().services))) as client:
        resp = await client.post(
            "/api/v1/vm/custom-template/price",
            data=b"x" * (1024**2 + 1),
            headers={"Content-Type": "application/json"},
        )
        assert resp.status == 413 and resp.content_type == "application/json"
        assert "error" in await resp.json()
