"""build_admin_app: CORS like the user API, and `auth_clock` judging NIP-98 timestamps."""

from __future__ import annotations

from datetime import timedelta

import attrs
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from adapters.memory.clock import FakeClock
from tests.http.admin.adminapp import ROOT, AdminWorld
from tests.http.apiapp import ApiClient


async def test_cors_preflight_and_headers(world: AdminWorld) -> None:
    resp = await world.admin.client.options(
        "/api/admin/v1/vms",
        headers={"Origin": "https://admin.example", "Access-Control-Request-Method": "GET"},
    )
    assert resp.status == 200
    assert "Access-Control-Allow-Origin" in resp.headers
    got = await world.call("GET", "/vms", headers={"Origin": "https://admin.example"})
    assert got.status == 200 and "Access-Control-Allow-Origin" in got.headers


async def test_auth_clock_judges_signatures_when_the_business_clock_moved(
    world: AdminWorld,
) -> None:
    services = attrs.evolve(
        world.api.services, clock=FakeClock(world.api.clock.now() + timedelta(days=30))
    )
    for auth_clock, status in ((None, 401), (world.api.clock, 200)):
        app = build_admin_app(services, auth_clock=auth_clock)
        async with TestClient(TestServer(app)) as client:
            resp = await ApiClient(client, world.api).call("GET", "/api/admin/v1/vms", key=ROOT)
            assert resp.status == status, await resp.text()
