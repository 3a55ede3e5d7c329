"""D25: the order routes are rate-limited per client address, whatever NIP-98 keys it uses."""

from __future__ import annotations

import logging
from typing import Any

import attrs
import pytest

from adapters.http import client_limit
from adapters.http.client_limit import WIDE_V6_SCALE
from adapters.http.context import SERVICES
from adapters.ratelimit.memory import MemoryRateLimiter
from domain.model import GIB
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from tests.http.apiapp import ALICE, ApiClient, api_client
from tests.http.vm_helpers import add_key, build
from tests.nostr_signing import NostrKey

FIRST = {"X-Forwarded-For": "203.0.113.7"}
OTHER = {"X-Forwarded-For": "198.51.100.9"}


class Tick:
    def __init__(self) -> None:
        self.value = 100.0

    def __call__(self) -> float:
        return self.value


async def _order(c: ApiClient, key: NostrKey, headers: dict[str, str], custom: bool = False) -> Any:
    ssh = await add_key(c.api, key)
    path = "/api/v1/vm"
    body: dict[str, Any] = {"template_id": c.demo.tiny}
    if custom:
        path = "/api/v1/vm/custom-template"
        body = {
            "pricing_id": c.demo.custom,
            "cpu": 2,
            "memory": 4 * GIB,
            "disk": 80 * GIB,
            "disk_type": "ssd",
            "disk_interface": "pcie",
        }
    body = {**body, "image_id": c.demo.ubuntu, "ssh_key_id": ssh.id}
    return await c.call("POST", path, key=key, json=body, headers=headers)


async def _vm_count(c: ApiClient) -> int:
    async with c.api.store() as uow:
        return len(await uow.vms.list_active())


async def test_new_keys_cannot_order_past_the_client_addresss_limit() -> None:
    """A new key is a new user with its own cap of unpaid VMs (D25); the address limit is not."""
    api = build()
    tick = Tick()
    api.services = attrs.evolve(
        api.services,
        order_limiter=MemoryRateLimiter(1, 3, now=tick),  # 3 at once, then one a minute
        trust_forwarded_for=True,  # two clients behind one proxy
    )
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        keys = iter(NostrKey.from_seed(100 + i) for i in range(10))
        for custom in (False, True, False):  # both order routes draw from one bucket
            resp = await _order(c, next(keys), FIRST, custom)
            assert resp.status == 200, await resp.text()
        made = await _vm_count(c)

        for custom in (False, True):
            resp = await _order(c, next(keys), FIRST, custom)
            assert resp.status == 429
            assert resp.headers["Retry-After"] == "60"
            assert (await resp.json()) == {"error": "Too many orders: try again in 60 s"}
        assert await _vm_count(c) == made  # nothing was created
        fresh = next(keys)  # refused before authentication: not even its user is created
        resp = await c.call("POST", "/api/v1/vm", key=fresh, json={}, headers=FIRST)
        assert resp.status == 429
        async with c.api.store() as uow:
            assert await uow.users.get_by_pubkey(fresh.pubkey) is None

        assert (await _order(c, next(keys), OTHER)).status == 200  # another address
        tick.value += 60
        assert (await _order(c, next(keys), FIRST)).status == 200  # a token came back
        assert (await _order(c, next(keys), FIRST)).status == 429
        assert await _vm_count(c) == made + 2


async def test_ip_range_purchases_draw_from_the_order_limit() -> None:
    api = build()
    api.services = attrs.evolve(api.services, order_limiter=MemoryRateLimiter(1, 1, now=Tick()))
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        body = {"line_items": [{"type": "ip_range", "ip_space_pricing_id": c.demo.ip4_tier_24}]}
        first = await c.call("POST", "/api/v1/subscriptions", json=body, headers=FIRST)
        assert first.status == 200, await first.text()
        again = await c.call("POST", "/api/v1/subscriptions", json=body, headers=FIRST)
        assert again.status == 429 and again.headers["Retry-After"] == "60"
        async with c.api.store() as uow:
            user = await uow.users.get_by_pubkey(ALICE.pubkey)
            assert user is not None
            assert (await uow.subscriptions.list_by_user(user.id, 10)).total == 1


async def test_one_48_does_not_get_a_fresh_order_bucket_per_64() -> None:
    """One customer is routed a /48 (65 536 /64s): its /64s share the /48's larger bucket."""
    api = build()
    tick = Tick()
    api.services = attrs.evolve(
        api.services,
        order_limiter=MemoryRateLimiter(1, 1, now=tick),  # 1 order, then 1 a minute
        trust_forwarded_for=True,
        # more unpaid Tiny VMs than the demo host's D25 share for them: not tested here
        unpaid_room=NO_UNPAID_ROOM_LIMITS,
    )
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        statuses = []
        for n in range(WIDE_V6_SCALE + 4):
            at = {"X-Forwarded-For": f"2001:db8:0:{n:x}::1"}  # all inside 2001:db8::/48
            statuses.append((await _order(c, NostrKey.from_seed(5000 + n), at)).status)
        assert statuses == [200] * WIDE_V6_SCALE + [429] * 4
        made = await _vm_count(c)
        # the refusals took nothing from the /64s they came from: each still has its token
        # once the /48 refills one (and the /48 refills at its own, larger rate)
        tick.value += 60 / WIDE_V6_SCALE
        fresh = {"X-Forwarded-For": f"2001:db8:0:{WIDE_V6_SCALE:x}::2"}
        assert (await _order(c, NostrKey.from_seed(6000), fresh)).status == 200
        assert await _vm_count(c) == made + 1
        # another /48 is another customer; one /64 alone keeps its old allowance
        home = {"X-Forwarded-For": "2001:db8:1:7::1"}
        assert (await _order(c, NostrKey.from_seed(6001), home)).status == 200
        assert (await _order(c, NostrKey.from_seed(6002), home)).status == 429


async def test_a_forwarded_for_the_limits_ignore_is_warned_about_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy with `lnurl.trust-forwarded-for` off, every client shares one bucket."""
    monkeypatch.setattr(client_limit, "_proxy_warned", False)
    api = build()
    api.services = attrs.evolve(api.services, order_limiter=MemoryRateLimiter(60, 10))
    api.app[SERVICES] = api.services
    async with api_client(api) as c:
        with caplog.at_level(logging.WARNING, logger="lnvps.http"):
            assert (await _order(c, NostrKey.from_seed(7000), {})).status == 200
            assert "trust-forwarded-for" not in caplog.text
            for n in range(2):
                resp = await _order(c, NostrKey.from_seed(7001 + n), FIRST)
                assert resp.status == 200
    warned = [r for r in caplog.records if "trust-forwarded-for is off" in r.getMessage()]
    assert len(warned) == 1
