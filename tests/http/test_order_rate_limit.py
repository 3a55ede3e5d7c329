"""D25: the order routes are rate-limited per client address, whatever NIP-98 keys it uses."""

from __future__ import annotations

from typing import Any

import attrs

from adapters.http.context import SERVICES
from adapters.ratelimit.memory import MemoryRateLimiter
from domain.model import GIB
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
