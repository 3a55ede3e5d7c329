"""The VM actions (start, stop, restart, re-install: each a hypervisor call) are rate-limited
per user: an empty bucket is a 429 with Retry-After and no host call."""

from __future__ import annotations

from typing import Any

import attrs

from adapters.http.context import SERVICES
from adapters.ratelimit.memory import MemoryRateLimiter
from domain.model import Host
from ports.vmhost import VmHost, VmHostResolver
from tests.http.apiapp import ALICE, BOB, api_client
from tests.http.vm_helpers import build, paid_vm


class Tick:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


class CountingHosts:
    """The real hosts, with every call to a VM's host counted by method name."""

    def __init__(self, inner: VmHostResolver) -> None:
        self.inner = inner
        self.calls: list[str] = []

    def for_host(self, host: Host) -> VmHost:
        return _Counting(self.inner.for_host(host), self.calls)


class _Counting:
    def __init__(self, inner: VmHost, calls: list[str]) -> None:
        self._inner, self._calls = inner, calls

    def __getattr__(self, name: str) -> Any:
        self._calls.append(name)
        return getattr(self._inner, name)


async def test_vm_actions_past_the_users_bucket_are_429_with_no_host_call() -> None:
    api = build()
    tick = Tick()
    hosts = CountingHosts(api.services.hosts)
    api.services = attrs.evolve(
        api.services,
        hosts=hosts,
        vm_action_limiter=MemoryRateLimiter(1, 2, now=tick),  # 2 at once, then one a minute
    )
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        vm = await paid_vm(c, ALICE)
        bobs = await paid_vm(c, BOB)
        for action in ("stop", "start"):
            assert (await c.call("PATCH", f"/api/v1/vm/{vm['id']}/{action}")).status == 200
        made = len(hosts.calls)
        for action in ("restart", "re-install"):
            resp = await c.call("PATCH", f"/api/v1/vm/{vm['id']}/{action}", json={})
            assert resp.status == 429, action
            assert resp.headers["Retry-After"] == "60"
            assert await resp.json() == {"error": "Too many VM actions: try again in 60 s"}
        assert len(hosts.calls) == made  # refused before the host was asked
        resp = await c.call("PATCH", f"/api/v1/vm/{bobs['id']}/restart", key=BOB)
        assert resp.status == 200  # another user's bucket
        tick.value += 60
        assert (await c.call("PATCH", f"/api/v1/vm/{vm['id']}/restart")).status == 200
        assert (await c.call("PATCH", f"/api/v1/vm/{vm['id']}/restart")).status == 429
