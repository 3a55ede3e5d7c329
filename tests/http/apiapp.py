"""A real user-API aiohttp app over the memory adapters with a seeded demo catalogue, for tests.

Stable API (other route tests import it):

* `build_api_app(*route_adders, now=NOW, tax_rates=NO_TAX, require_verified_email=False,
  public_url=..., fiat=None) -> ApiApp`: error middleware, CORS, NIP-98 auth, the given
  `add_*_routes` functions in that order (none given: account, catalogue, subscriptions;
  register catalogue before VM/payment routes) and `/openapi.json`, with `Services` over
  `MemoryUnitOfWorkFactory`, a `FakeClock` at `NOW`, `FIXED_RATES` in a `MemoryRateStore`, an
  in-memory `DevLightningNode` (`api.node.settle(hash)` pays), the given fiat gateways by
  method (none: Revolut is "not configured"), an `InProcessQueue` and the dummy VM host.
* `api_client(api, seed=True)`: async context manager that seeds the demo catalogue
  (`seed_demo`, ids in `api.demo` / `client.demo`), loads the rates and yields an `ApiClient`:
  `call(method, path, key=ALICE, json=..., headers=..., signed=True)` sends a request signed
  with a real NIP-98 event for its absolute URL; `user_id(key)` and `ssh_key_id(key)` set a
  user up; `auth(path, method, key)` gives just the header.
* `ApiApp.refresh_rates()`: re-date the fixed rates at the clock's now (they go stale after
  300 s of fake time, and then conversions answer 503).
"""

from __future__ import annotations

import itertools
import json as jsonlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import attrs
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from adapters.http.auth import Authenticator, setup_auth
from adapters.http.context import SERVICES
from adapters.http.cors import setup_cors
from adapters.http.errors import error_middleware
from adapters.http.openapi import RouteTable
from adapters.http.routes_account import add_account_routes
from adapters.http.routes_catalogue import add_catalogue_routes
from adapters.http.routes_subscriptions import add_subscription_routes
from adapters.lightning.dev import DevLightningNode
from adapters.memory.clock import FakeClock
from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.queue.memory import InProcessQueue
from adapters.rates.fixed import FixedRateSource
from adapters.rates.store import MemoryRateStore
from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.resolver import VmHostClients
from app.billing.rails import PaymentRails
from app.services import Services
from domain.enums import PaymentMethod
from domain.money import Currency
from domain.tax import NO_TAX, TaxRates
from lnvps.container import WEBHOOKS
from ports.fiat import FiatGateway
from ports.payment_rail import PaymentRail
from ports.storage import UnitOfWorkFactory
from tests.http.demo_catalogue import Demo, seed_demo
from tests.nostr_signing import NostrKey, auth_header, nip98_event

NOW = datetime(2026, 6, 17, 10, 0, 0, tzinfo=UTC)
ALICE = NostrKey.from_seed(21)
BOB = NostrKey.from_seed(22)
#: BTC/fiat rates of the demo (JPY and the rest deliberately missing).
FIXED_RATES: Mapping[Currency, Decimal] = {
    Currency.EUR: Decimal(100_000),
    Currency.USD: Decimal(110_000),
    Currency.GBP: Decimal(85_000),
}
#: a valid OpenSSH public key line (ed25519, deterministic) for SSH-key and order tests.
SSH_PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4 demo@host"
)
RouteAdder = Callable[[RouteTable], None]
_NONCES = itertools.count()
DEFAULT_ROUTES: tuple[RouteAdder, ...] = (
    add_account_routes,
    add_catalogue_routes,
    add_subscription_routes,
)

__all__ = [
    "ALICE",
    "BOB",
    "FIXED_RATES",
    "NOW",
    "SSH_PUBLIC_KEY",
    "ApiApp",
    "ApiClient",
    "Demo",
    "api_client",
    "build_api_app",
    "seed_demo",
]


@attrs.define
class ApiApp:
    """The app and every fake behind it, for assertions and time travel."""

    app: web.Application
    table: RouteTable
    store: UnitOfWorkFactory
    clock: FakeClock
    rates: MemoryRateStore
    node: DevLightningNode
    queue: InProcessQueue
    services: Services
    demo: Demo | None = None

    async def refresh_rates(self) -> None:
        await self.rates.save(await FixedRateSource(FIXED_RATES, self.clock).fetch())

    async def seed(self) -> Demo:
        self.demo = await seed_demo(self.store, self.clock.now())
        return self.demo


def build_api_app(
    *route_adders: RouteAdder,
    now: datetime = NOW,
    tax_rates: TaxRates = NO_TAX,
    require_verified_email: bool = False,
    public_url: str = "https://api.lnvps.test",
    fiat: Mapping[PaymentMethod, FiatGateway] | None = None,
    store: UnitOfWorkFactory | None = None,
    rails: Iterable[PaymentRail] = (),
) -> ApiApp:
    """The app (not yet seeded, not yet serving); `api_client` seeds and starts it.

    `store` replaces the in-memory storage (an empty, migrated SQL database, for example).
    """
    clock = FakeClock(now)
    store = store if store is not None else MemoryUnitOfWorkFactory()
    node = DevLightningNode(clock=clock)
    queue = InProcessQueue()
    rates = MemoryRateStore()
    services = Services(
        uow_factory=store,
        clock=clock,
        rails=PaymentRails(lightning=node, fiat=fiat, rails=rails, webhooks=WEBHOOKS),
        rates=rates,
        queue=queue,
        hosts=VmHostClients(clock, DummyVmHost(None, clock)),
        tax_rates=tax_rates,
        require_verified_email=require_verified_email,
        public_url=public_url,
    )
    app = web.Application(middlewares=[error_middleware])
    setup_cors(app)
    setup_auth(app, Authenticator(uow_factory=store, clock=clock))
    app[SERVICES] = services
    table = RouteTable()
    for add in route_adders or DEFAULT_ROUTES:
        add(table)
    table.add_openapi_route()
    table.register(app)
    return ApiApp(app, table, store, clock, rates, node, queue, services)


@attrs.frozen
class ApiClient:
    """A test client that signs each request like the real clients do (NIP-98, absolute `u`)."""

    client: TestClient[web.Request, web.Application]
    api: ApiApp

    @property
    def demo(self) -> Demo:
        assert self.api.demo is not None, "build the client with seed=True"
        return self.api.demo

    def url(self, path: str) -> str:
        return str(self.client.make_url(path))

    def auth(self, path: str, method: str = "GET", key: NostrKey = ALICE) -> dict[str, str]:
        # Real clients' events differ by `created_at`; the fake clock stands still, so a nonce
        # tag keeps two identical requests from reusing one event (refused for non-GET, D26).
        url = self.url(path)
        tags = [["u", url], ["method", method], ["nonce", str(next(_NONCES))]]
        event = nip98_event(key, url, method, self.api.clock.now(), tags=tags)
        return {"Authorization": auth_header(event)}

    async def call(
        self,
        method: str,
        path: str,
        *,
        key: NostrKey = ALICE,
        json: Any = None,
        data: bytes | None = None,
        signed: bool = True,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one request; `json` is sent as `application/json; charset=utf-8` like Pulumi."""
        sent: dict[str, str] = dict(self.auth(path, method, key) if signed else {})
        if json is not None:
            data = jsonlib.dumps(json).encode()
            sent["Content-Type"] = "application/json; charset=utf-8"
        sent.update(headers or {})
        return await self.client.request(method, path, data=data, headers=sent)

    async def user_id(self, key: NostrKey = ALICE) -> int:
        """The id of `key`'s user, created by an authenticated GET /api/v1/account if new."""
        async with self.api.store() as uow:
            user = await uow.users.get_or_create_by_pubkey(key.pubkey, self.api.clock.now())
            await uow.commit()
        return user.id

    async def ssh_key_id(self, key: NostrKey = ALICE, name: str = "laptop") -> int:
        """Add `SSH_PUBLIC_KEY` for `key`'s user through the API; its id."""
        resp = await self.call(
            "POST", "/api/v1/ssh-key", key=key, json={"name": name, "key_data": SSH_PUBLIC_KEY}
        )
        assert resp.status == 200, await resp.text()
        key_id: int = (await resp.json())["data"]["id"]
        return key_id


@asynccontextmanager
async def api_client(api: ApiApp, *, seed: bool = True) -> AsyncIterator[ApiClient]:
    """Seed (unless `seed=False`), load the rates, start a test server and yield a client."""
    if seed and api.demo is None:
        await api.seed()
    await api.refresh_rates()
    async with TestClient(TestServer(api.app)) as client:
        yield ApiClient(client, api)
