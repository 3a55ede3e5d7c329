"""D26 under a flood: one client (a key, an address, an IPv6 /48) cannot fill the in-process
replay guard for everyone, strangers cannot fill the admin API's, and replays stay refused."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import attrs
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.admin.app import build_admin_app
from adapters.http.auth import AUTHENTICATOR, AuthBinding, Authenticator
from adapters.http.client_limit import WIDE_V6_SCALE
from adapters.http.context import SERVICES
from adapters.http.nip98 import DEFAULT_MAX_SKEW
from adapters.http.replay import InProcessReplayGuard, ReplayShares
from tests.http.admin.adminapp import ROOT, VIEWER, seed_roles
from tests.http.apiapp import ALICE, ApiApp, ApiClient, api_client
from tests.http.vm_helpers import build, user_of
from tests.nostr_signing import NostrKey, auth_header, nip98_event

ACCOUNT = "/api/v1/account"
ATTACKER = "203.0.113.7"
OTHER = "198.51.100.9"
NWC = "nostr+walletconnect://" + "ab" * 32 + "?relay=wss%3A%2F%2Fr.example&secret=" + "cd" * 32
_SEEDS = itertools.count(1000)
_NONCES = itertools.count()


def fair_api(capacity: int, per_key: int, per_address: int) -> tuple[ApiApp, InProcessReplayGuard]:
    """The user API behind a trusted proxy (clients told apart by `X-Forwarded-For`)."""
    api = build()
    api.services = attrs.evolve(api.services, trust_forwarded_for=True)
    api.app[SERVICES] = api.services
    guard = InProcessReplayGuard(capacity)
    api.app[AUTHENTICATOR] = Authenticator(
        api.store, api.clock, replays=guard, shares=ReplayShares(per_key, per_address)
    )
    return api, guard


def signed(
    c: ApiClient, key: NostrKey, address: str, ahead: int = DEFAULT_MAX_SKEW
) -> dict[str, str]:
    """A PATCH of the account signed by `key`, dated `ahead` seconds in the future (the edge
    of the window by default: what keeps an id alive longest), sent from `address`."""
    url, when = c.url(ACCOUNT), c.api.clock.now() + timedelta(seconds=ahead)
    tags = [["u", url], ["method", "PATCH"], ["nonce", str(next(_NONCES))]]
    event = nip98_event(key, url, "PATCH", when, tags=tags)
    return {
        "Authorization": auth_header(event),
        "Content-Type": "application/json",
        "X-Forwarded-For": address,
    }


async def patch(c: ApiClient, headers: dict[str, str], nwc: str | None = None) -> Any:
    body = {"contact_nip17": True, "contact_email": False, "nwc_connection_string": nwc}
    return await c.client.patch(ACCOUNT, json=body, headers=headers)


async def flood(c: ApiClient, addresses: list[str], key: NostrKey | None = None) -> list[int]:
    """One signed write per address, each with a fresh key unless `key` is given."""
    statuses = []
    for address in addresses:
        sender = key or NostrKey.from_seed(next(_SEEDS))
        statuses.append((await patch(c, signed(c, sender, address))).status)
    return statuses


async def test_fresh_keys_from_one_address_cannot_lock_other_users_out() -> None:
    api, guard = fair_api(capacity=6, per_key=100, per_address=4)
    async with api_client(api) as c:
        captured = signed(c, NostrKey.from_seed(999), ATTACKER)
        assert (await patch(c, captured)).status == 200
        assert await flood(c, [ATTACKER] * 6) == [200] * 3 + [429] * 3
        refused = await patch(c, signed(c, NostrKey.from_seed(next(_SEEDS)), ATTACKER))
        assert refused.status == 429
        # its soonest id was dated at the future edge: alive until it leaves the window
        assert refused.headers["Retry-After"] == str(DEFAULT_MAX_SKEW + DEFAULT_MAX_SKEW + 1)
        assert await refused.json() == {
            "error": "Too many signed requests from this client; retry later"
        }
        assert len(guard) == 4

        mine = signed(c, ALICE, OTHER, ahead=0)
        ok = await patch(c, mine, NWC)
        assert ok.status == 200, await ok.text()
        assert (await user_of(c.api, ALICE)).nwc_connection_string == NWC
        # replays are still refused, the attacker's as replays, not as over its share
        assert (await patch(c, mine)).status == 401
        again = await patch(c, captured)
        assert (again.status, await again.json()) == (
            401,
            {"error": "Auth check failed: Event already used"},
        )
        assert (await user_of(c.api, ALICE)).nwc_connection_string == NWC

        c.api.clock.advance(timedelta(seconds=int(refused.headers["Retry-After"])))
        assert await flood(c, [ATTACKER]) == [200]  # the share frees as its ids age out


async def test_one_key_from_many_addresses_cannot_lock_other_users_out() -> None:
    api, _ = fair_api(capacity=6, per_key=3, per_address=100)
    async with api_client(api) as c:
        mallory = NostrKey.from_seed(next(_SEEDS))
        addresses = [f"203.0.113.{n}" for n in range(1, 7)]
        assert await flood(c, addresses, mallory) == [200] * 3 + [429] * 3
        assert await flood(c, addresses[:1]) == [200]  # another key from the same address
        assert (await patch(c, signed(c, ALICE, OTHER), NWC)).status == 200


async def test_cycling_ipv6_64s_inside_one_48_cannot_lock_other_users_out() -> None:
    api, _ = fair_api(capacity=WIDE_V6_SCALE + 2, per_key=100, per_address=1)
    async with api_client(api) as c:
        sixty_fours = [f"2001:db8:0:{n:x}::1" for n in range(WIDE_V6_SCALE + 2)]
        statuses = await flood(c, sixty_fours)
        assert statuses == [200] * WIDE_V6_SCALE + [429] * 2
        assert await flood(c, ["2001:db8:1::1"]) == [200]  # another /48
        assert (await patch(c, signed(c, ALICE, OTHER), NWC)).status == 200


async def test_an_event_dated_ahead_is_remembered_until_it_leaves_the_window() -> None:
    async with api_client(build()) as c:
        beyond = await patch(c, signed(c, ALICE, OTHER, ahead=DEFAULT_MAX_SKEW + 1))
        assert await beyond.json() == {
            "error": "Auth check failed: Created timestamp is out of range"
        }
        edge = signed(c, ALICE, OTHER)
        assert (await patch(c, edge, NWC)).status == 200
        # the last second it could be accepted, it is still remembered
        c.api.clock.advance(timedelta(seconds=DEFAULT_MAX_SKEW + DEFAULT_MAX_SKEW))
        again = await patch(c, edge)
        assert await again.json() == {"error": "Auth check failed: Event already used"}
        c.api.clock.advance(timedelta(seconds=1))
        late = await patch(c, edge)
        assert await late.json() == {
            "error": "Auth check failed: Created timestamp is out of range"
        }
        assert (await user_of(c.api, ALICE)).nwc_connection_string == NWC


def role_body() -> dict[str, Any]:
    n = next(_NONCES)
    return {"name": f"ops_{n}", "description": "ops", "permissions": ["users::view"]}


async def test_strangers_take_no_place_in_the_admin_apis_guard() -> None:
    """Only keys with the route's permission take places, and admins have no share to use up."""
    api = build()
    await seed_roles(api)
    guard = InProcessReplayGuard(capacity=3)
    binding = AuthBinding(replays=guard, shares=ReplayShares(per_key=1, per_address=1))
    async with api_client(api):
        app = build_admin_app(api.services, auth_binding=binding)
        async with TestClient(TestServer(app)) as client:
            admin = ApiClient(client, api)
            strangers = [NostrKey.from_seed(next(_SEEDS)) for _ in range(5)] + [VIEWER]
            for key in strangers:
                resp = await admin.call("POST", "/api/admin/v1/roles", key=key, json=role_body())
                assert resp.status == 403, await resp.text()
            assert len(guard) == 0

            for _ in range(2):  # beyond a share of 1: the admin API holds none to it
                resp = await admin.call("POST", "/api/admin/v1/roles", key=ROOT, json=role_body())
                assert resp.status == 200, await resp.text()
            captured = admin.auth("/api/admin/v1/roles", "POST", ROOT)
            resp = await client.post("/api/admin/v1/roles", json=role_body(), headers=captured)
            assert resp.status == 200, await resp.text()
            again = await client.post("/api/admin/v1/roles", json=role_body(), headers=captured)
            assert again.status == 401
            assert await again.json() == {"error": "Auth check failed: Event already used"}
            assert len(guard) == 3
