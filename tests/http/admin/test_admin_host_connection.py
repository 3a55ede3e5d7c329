"""The admin API's test connection: a host row is saved only when its host answers (or the
admin skips the check), on memory, SQLite and MariaDB storage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from adapters.memory.clock import FakeClock
from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.resolver import VmHostClients
from ports.vmhost import VmHostError
from tests.contract.test_vmhost import T0
from tests.fakes.fake_proxmox import NODE, TOKEN, FakeProxmox
from tests.http.admin.adminapp import ROOT
from tests.http.admin.adminapp import seed_roles as _seed_roles
from tests.http.apiapp import ApiClient
from tests.http.backend_apps import backend, c, database

__all__ = ["backend", "c", "database"]


@attrs.frozen
class World:
    admin: ApiClient
    fake: FakeProxmox
    url: str
    region: int

    def body(self, **change: Any) -> dict[str, Any]:
        return {
            "name": NODE,
            "ip": self.url,
            "api_token": TOKEN,
            "region_id": self.region,
            "kind": "proxmox",
            "cpu": 8,
            "memory": 2**34,
            **change,
        }

    async def send(self, method: str, path: str, **kw: Any) -> tuple[int, dict[str, Any]]:
        resp = await self.admin.call(method, "/api/admin/v1" + path, key=ROOT, **kw)
        return resp.status, await resp.json()

    async def host_count(self) -> int:
        async with self.admin.api.store() as uow:
            return len(await uow.hosts.list_all())


@pytest.fixture
async def w(c: ApiClient) -> AsyncIterator[World]:
    await _seed_roles(c.api)
    fake = FakeProxmox(FakeClock(T0))
    prober = VmHostClients(c.api.clock, DummyVmHost(None, c.api.clock))
    services = attrs.evolve(c.api.services, host_prober=prober)
    async with fake.serve() as url, TestClient(TestServer(build_admin_app(services))) as client:
        yield World(ApiClient(client, c.api), fake, url, c.demo.region)
    await prober.aclose()


async def test_a_proxmox_host_that_answers_is_saved(w: World) -> None:
    status, body = await w.send("POST", "/hosts", json=w.body())
    assert status == 200, body
    assert w.fake.calls("GET", "/api2/json/version") == [{}]
    assert w.fake.calls("GET", f"/nodes/{NODE}/status") == [{}]
    async with w.admin.api.store() as uow:
        stored = await uow.hosts.get(body["data"]["id"])
    assert stored is not None and stored.api_token == TOKEN and stored.ip == w.url


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"api_token": "root@pam!lnvps=wrong"}, "Proxmox 401: authentication failure"),
        ({"name": "pve9"}, "hostname lookup 'pve9' failed"),
        ({"kind": "libvirt", "ip": "qemu+tcp://127.0.0.1:1/system"}, "Connection refused"),
    ],
)
async def test_a_host_that_does_not_answer_is_refused_with_the_reason(
    w: World, change: dict[str, Any], reason: str
) -> None:
    if change.get("kind") == "libvirt":
        pytest.importorskip("libvirt")
    before = await w.host_count()
    status, body = await w.send("POST", "/hosts", json=w.body(**change))
    assert status == 422
    assert body["error"].startswith("Host connection test failed: ") and reason in body["error"]
    assert "s3cr3t" not in body["error"] and "wrong" not in body["error"]
    assert await w.host_count() == before


async def test_a_libvirt_uri_that_opens_is_saved(w: World) -> None:
    pytest.importorskip("libvirt")
    status, body = await w.send("POST", "/hosts", json=w.body(kind="libvirt", ip="test:///default"))
    assert status == 200, body


async def test_the_admin_may_skip_the_check(w: World) -> None:
    before = await w.host_count()
    status, body = await w.send(
        "POST", "/hosts?test_connection=false", json=w.body(api_token="root@pam!lnvps=wrong")
    )
    assert status == 200, body
    assert w.fake.requests == [] and await w.host_count() == before + 1


async def test_mock_hosts_are_not_checked(w: World) -> None:
    status, _ = await w.send("POST", "/hosts", json=w.body(kind="mock", ip="nowhere"))
    assert status == 200 and w.fake.requests == []


async def test_an_edit_of_the_connection_is_checked_and_refused_unchanged(w: World) -> None:
    _, made = await w.send("POST", "/hosts", json=w.body())
    path = f"/hosts/{made['data']['id']}"
    status, body = await w.send(
        "PATCH", path, json={"api_token": "root@pam!lnvps=wrong", "cpu": 64}
    )
    assert status == 422 and "Proxmox 401" in body["error"]
    async with w.admin.api.store() as uow:
        stored = await uow.hosts.get(made["data"]["id"])
    assert stored is not None and stored.api_token == TOKEN and stored.cpu == 8
    asked = len(w.fake.requests)
    status, body = await w.send("PATCH", path, json={"cpu": 64})  # not a connection field
    assert status == 200 and body["data"]["cpu"] == 64 and len(w.fake.requests) == asked
    status, _ = await w.send("PATCH", path, json={"name": NODE})  # re-checked, still fine
    assert status == 200 and len(w.fake.requests) == asked + 2


async def test_a_new_address_needs_the_token_again_so_the_stored_one_never_goes_there(
    w: World,
) -> None:
    """`hosts::update` alone must not be able to send the stored hypervisor token (which it
    cannot read: answers mask it) to an address of its choosing, by the check or later by
    the worker."""
    _, made = await w.send("POST", "/hosts", json=w.body())
    path = f"/hosts/{made['data']['id']}"
    asked = len(w.fake.requests)
    for change in ({"ip": "https://attacker.example:8006"}, {"kind": "libvirt"}):
        status, body = await w.send("PATCH", path, json=change)
        assert (status, body) == (
            400,
            {"error": "Changing a host's ip or kind needs its api_token in the same request"},
        )
        status, _ = await w.send("PATCH", path + "?test_connection=false", json=change)
        assert status == 400
    assert len(w.fake.requests) == asked  # nothing was sent anywhere
    async with w.admin.api.store() as uow:
        stored = await uow.hosts.get(made["data"]["id"])
    assert stored is not None and stored.ip == w.url and stored.api_token == TOKEN
    status, body = await w.send("PATCH", path, json={"ip": w.url, "name": NODE})
    assert status == 200, body  # the same address: nothing moves
    status, body = await w.send("PATCH", path, json={"ip": w.url + "/", "api_token": TOKEN})
    assert status == 200, body


async def test_a_libvirt_uri_that_would_run_a_command_is_refused_even_unchecked(w: World) -> None:
    before = await w.host_count()
    for path in ("/hosts", "/hosts?test_connection=false"):
        status, body = await w.send(
            "POST",
            path,
            json=w.body(kind="libvirt", ip="qemu+ssh://root@kvm1/system?command=/bin/sh"),
        )
        if path == "/hosts":
            assert status == 422 and "parameter not allowed: command" in body["error"]
            assert await w.host_count() == before
    # saved unchecked on request, but the worker's registry refuses to build a client for it
    async with w.admin.api.store() as uow:
        row = next(h for h in await uow.hosts.list_all() if "command=" in h.ip)
    with pytest.raises(VmHostError, match="parameter not allowed: command"):
        VmHostClients(w.admin.api.clock, DummyVmHost(None, w.admin.api.clock)).for_host(row)


@pytest.mark.parametrize("check", ["true", "false"])
async def test_a_proxmox_url_over_plain_http_is_refused_even_unchecked(
    w: World, check: str
) -> None:
    """The row's API token goes to its URL: http:// only to loopback (the fake node's)."""
    hosts = await w.host_count()
    status, body = await w.send(
        "POST", f"/hosts?test_connection={check}", json=w.body(ip="http://10.0.9.1:8006")
    )
    assert status == 400 and "must use https://" in body["error"], body
    assert await w.host_count() == hosts and w.fake.requests == []

    status, body = await w.send("POST", "/hosts", json=w.body())  # http://127.0.0.1:PORT
    assert status == 200, body
    host_id = body["data"]["id"]
    moved = {"ip": "http://pve1.example:8006", "api_token": TOKEN}
    status, body = await w.send("PATCH", f"/hosts/{host_id}?test_connection={check}", json=moved)
    assert status == 400 and "must use https://" in body["error"], body
