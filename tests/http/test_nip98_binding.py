"""D26: a NIP-98 event binds the query, the public URL's origin, and a non-GET is good once."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.http.auth import AUTHENTICATOR, Authenticator
from adapters.http.nip98 import Nip98Error, Origin
from adapters.http.replay import InProcessReplayGuard
from ports.replay import ReplayGuardUnavailable, Share
from tests.http.apiapp import ALICE, ApiClient, api_client
from tests.http.vm_helpers import build, order, user_of
from tests.nostr_signing import NostrKey, auth_header, nip98_event, sign_request, verify_nip98

NOW = datetime(2026, 6, 17, 10, 0, 0, tzinfo=UTC)
KEY = NostrKey.from_seed(5)
BASE = "https://api.lnvps.test"
RENEW = "/api/v1/vm/42/renew"
NWC_A = "nostr+walletconnect://" + "ab" * 32 + "?relay=wss%3A%2F%2Fr.example&secret=" + "cd" * 32
NWC_B = "nostr+walletconnect://" + "ef" * 32 + "?relay=wss%3A%2F%2Fr.example&secret=" + "01" * 32


def header(url: str, method: str = "GET") -> str:
    return sign_request(KEY, url, method, NOW)


def refusal(url: str, target: str, origin: Origin | None = None, method: str = "GET") -> str:
    with pytest.raises(Nip98Error) as info:
        verify_nip98(header(url, method), method, target, NOW, None, origin=origin)
    return info.value.text


# --- the query string is part of what is signed -------------------------------------------------


def test_an_event_for_one_interval_is_refused_for_another_query() -> None:
    signed = f"{BASE}{RENEW}?method=lightning&intervals=1"
    assert (
        verify_nip98(header(signed), "GET", f"{RENEW}?method=lightning&intervals=1", NOW, None)
        == KEY.pubkey
    )
    for target in (
        f"{RENEW}?method=lightning&intervals=120",
        f"{RENEW}?method=lightning",
        RENEW,
        f"{RENEW}?method=lightning&intervals=1&intervals=120",
        f"{RENEW}?intervals=1&method=lightning",
    ):
        assert refusal(signed, target) == "Auth check failed: U tag does not match", target


def test_an_event_without_a_query_is_refused_for_a_request_with_one() -> None:
    assert refusal(f"{BASE}{RENEW}", f"{RENEW}?intervals=120") == (
        "Auth check failed: U tag does not match"
    )
    assert refusal(RENEW, f"{RENEW}?intervals=120") == "Auth check failed: U tag does not match"


def test_queries_compare_as_the_pairs_the_handler_reads() -> None:
    """Percent-encoding that decodes to the same pairs is the same request (how the web
    client's `encodeURIComponent` and a browser's normalisation may differ)."""
    signed = f"{BASE}/api/v1/image?arch=x86%5F64&q=a+b"
    for target in ("/api/v1/image?arch=x86_64&q=a%20b", "/api/v1/image?arch=x86%5f64&q=a+b"):
        assert verify_nip98(header(signed), "GET", target, NOW, None) == KEY.pubkey


# --- the public URL's origin --------------------------------------------------------------------


def test_with_a_public_url_an_event_for_another_service_is_refused() -> None:
    origin = Origin.of(BASE)
    target = "/api/v1/account"
    for url in (
        "https://other-service.example/api/v1/account",
        "http://api.lnvps.test/api/v1/account",
        "https://api.lnvps.test:8443/api/v1/account",
        "https://api.lnvps.test.evil.example/api/v1/account",
        "/api/v1/account",
    ):
        assert refusal(url, target, origin) == "Auth check failed: U tag does not match", url


def test_with_a_public_url_its_own_origin_is_accepted_in_any_case_and_default_port() -> None:
    origin = Origin.of(BASE)
    for url in (f"{BASE}/api/v1/account", "HTTPS://API.LNVPS.TEST:443/api/v1/account"):
        assert (
            verify_nip98(header(url), "GET", "/api/v1/account", NOW, None, origin=origin)
            == KEY.pubkey
        )


def test_without_a_public_url_the_host_is_not_compared_as_in_the_reference() -> None:
    url = "https://other-service.example/api/v1/account"
    assert verify_nip98(header(url), "GET", "/api/v1/account", NOW, None) == KEY.pubkey


def test_a_public_url_that_is_not_absolute_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="public-url"):
        Authenticator(uow_factory=None, clock=None, public_url="api.lnvps.test")  # type: ignore[arg-type]


# --- through the application ---------------------------------------------------------------------


def signed_once(c: ApiClient, path: str, method: str, key: NostrKey = ALICE) -> dict[str, str]:
    """One header, as a client would send it once; the tests below reuse it as an attacker."""
    event = nip98_event(key, c.url(path), method, c.api.clock.now())
    return {"Authorization": auth_header(event), "Content-Type": "application/json"}


def account_body(nwc: str) -> dict[str, Any]:
    return {"contact_nip17": True, "contact_email": False, "nwc_connection_string": nwc}


async def test_a_replayed_patch_is_401_and_changes_nothing() -> None:
    async with api_client(build()) as c:
        headers = signed_once(c, "/api/v1/account", "PATCH")
        first = await c.client.patch("/api/v1/account", json=account_body(NWC_A), headers=headers)
        assert first.status == 200, await first.text()
        again = await c.client.patch("/api/v1/account", json=account_body(NWC_B), headers=headers)
        assert again.status == 401
        assert await again.json() == {"error": "Auth check failed: Event already used"}
        assert (await user_of(c.api, ALICE)).nwc_connection_string == NWC_A


async def test_concurrent_replays_of_one_event_pass_once() -> None:
    async with api_client(build()) as c:
        headers = signed_once(c, "/api/v1/account", "PATCH")
        sent = await asyncio.gather(
            *[
                c.client.patch("/api/v1/account", json=account_body(NWC_A), headers=headers)
                for _ in range(6)
            ]
        )
        assert sorted(r.status for r in sent) == [200, 401, 401, 401, 401, 401]


async def test_a_get_event_may_be_used_again_within_its_window() -> None:
    async with api_client(build()) as c:
        headers = signed_once(c, "/api/v1/account", "GET")
        for _ in range(2):
            assert (await c.client.get("/api/v1/account", headers=headers)).status == 200


async def test_a_renewal_signed_for_one_interval_cannot_buy_a_hundred_and_twenty() -> None:
    async with api_client(build()) as c:
        vm = await order(c, ALICE)
        signed = f"/api/v1/vm/{vm['id']}/renew?method=lightning&intervals=1"
        headers = signed_once(c, signed, "GET")
        resp = await c.client.get(
            f"/api/v1/vm/{vm['id']}/renew?method=lightning&intervals=120", headers=headers
        )
        assert resp.status == 401
        async with c.api.store() as uow:
            assert (await uow.payments.list_by_vm(vm["id"], 10)).items == []
        ok = await c.client.get(signed, headers=headers)
        assert ok.status == 200, await ok.text()


async def test_behind_a_proxy_events_name_the_public_url_not_the_listening_address() -> None:
    api = build()
    api.app[AUTHENTICATOR] = Authenticator(api.store, api.clock, public_url=BASE)
    async with api_client(api) as c:
        now = c.api.clock.now()
        public = sign_request(ALICE, f"{BASE}/api/v1/account", "GET", now)
        assert (
            await c.client.get("/api/v1/account", headers={"Authorization": public})
        ).status == 200
        for url in (c.url("/api/v1/account"), "https://other-service.example/api/v1/account"):
            resp = await c.client.get(
                "/api/v1/account", headers={"Authorization": sign_request(ALICE, url, "GET", now)}
            )
            assert resp.status == 401, url


class DownGuard:
    """A shared replay store that cannot be reached."""

    async def first_use(
        self, key: bytes, now: datetime, until: datetime, shares: Sequence[Share] = ()
    ) -> bool:
        raise ReplayGuardUnavailable("Authentication store unavailable")


async def test_when_the_replay_store_is_down_non_get_requests_are_503_and_change_nothing() -> None:
    api = build()
    api.app[AUTHENTICATOR] = Authenticator(api.store, api.clock, replays=DownGuard())
    async with api_client(api) as c:
        resp = await c.call("PATCH", "/api/v1/account", json=account_body(NWC_A))
        assert resp.status == 503
        assert await resp.json() == {"error": "Authentication store unavailable"}
        assert (await c.call("GET", "/api/v1/account")).status == 200
        assert (await user_of(c.api, ALICE)).nwc_connection_string is None


async def test_a_flood_that_fills_the_in_process_guard_is_refused_not_replayable() -> None:
    api = build()
    api.app[AUTHENTICATOR] = Authenticator(
        api.store, api.clock, replays=InProcessReplayGuard(capacity=1)
    )
    async with api_client(api) as c:
        captured = signed_once(c, "/api/v1/account", "PATCH")
        first = await c.client.patch("/api/v1/account", json=account_body(NWC_A), headers=captured)
        assert first.status == 200, await first.text()
        flood = await c.call("PATCH", "/api/v1/account", json=account_body(NWC_B))
        assert flood.status == 503
        assert await flood.json() == {"error": "Too many signed requests at once; retry shortly"}
        again = await c.client.patch("/api/v1/account", json=account_body(NWC_B), headers=captured)
        assert again.status == 401  # the captured event is still remembered
        assert (await user_of(c.api, ALICE)).nwc_connection_string == NWC_A
