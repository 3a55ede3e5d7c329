"""`lnvps serve`: prepare the database, then run the user API, the worker and the listeners."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

from adapters.cache.redis_catalogue import RedisInvalidatedCache
from adapters.clock.system import SystemClock
from adapters.http.admin.app import build_admin_app
from adapters.http.app import build_user_app
from adapters.http.auth import AuthBinding
from adapters.http.replay import ReplayShares
from adapters.http.routes_webhooks import WebhookSecrets
from adapters.mysql.legacy_backfill import prepare_database
from adapters.mysql.seal_secrets import seal_plaintext_secrets
from app.queries.bitcoin_offers import bitcoin_priced_offers
from app.rates_refresh import refresh_rates, run_rate_refresher
from app.settlement import run_settlement_listener
from app.worker.loop import run as run_worker
from domain.enums import PaymentMethod, VmHostKind
from domain.model import Host
from lnvps.container import (
    Container,
    close_container,
    lightning_kind,
    open_container,
    storage_kind,
)
from lnvps.demo import seed_demo_catalogue
from lnvps.settings import Settings
from ports.rates import RateSourceUnavailable
from ports.replay import ReplayGuard

log = logging.getLogger("lnvps.serve")

#: fixed demo rates are re-dated often so that a dev clock jump never leaves them stale for long.
FIXED_RATES_REFRESH_S = 10.0


def parse_listen(listen: str) -> tuple[str, int]:
    """`HOST:PORT` (IPv6 hosts in brackets) → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _summary(settings: Settings) -> str:
    """What runs where, for the start-up log line; never includes secrets."""
    kind = storage_kind(settings)
    db = "memory" if kind == "memory" else settings.db.split("://")[0]
    rail = {
        "lnd": "lnd",
        "off": "off (fiat only)",
        "dev": "dev (pay with `lnvps dev pay PAYMENT_ID`)",
    }[lightning_kind(settings)]
    queue = "redis" if settings.redis else "in-process"
    return f"db={db} lightning={rail} rates={settings.rate_source} queue={queue}"


async def _prepare(settings: Settings, container: Container) -> None:
    engine = container.engine()
    if engine is not None:
        report = await prepare_database(settings.db)
        log.info("database ready: %s", report.summary().splitlines()[0])
        sealed = await seal_plaintext_secrets(engine, container.secret_box())
        if sealed:
            log.info("sealed %d plain-text secret value(s) (D28)", sealed)
    services = container.services()
    if not settings.is_embedded_default:
        async with services.uow_factory() as uow:
            hosts = await uow.hosts.list_all()
        if (warning := dummy_hosts_warning(hosts)) is not None:
            log.warning("%s", warning)
    if settings.lightning_off:
        offers = await bitcoin_priced_offers(services.uow_factory)
        if (warning := bitcoin_offers_warning(offers)) is not None:
            log.warning("%s", warning)
    if settings.is_embedded_default and settings.dev.seed_demo:
        seeded = await seed_demo_catalogue(services.uow_factory, services.clock.now())
        if seeded:
            log.info("seeded the demo catalogue")
    try:
        await refresh_rates(
            container.rate_source(),
            container.rate_store(),
            clock=services.clock,
            guard=container.rate_guard(),
        )
    except RateSourceUnavailable as exc:
        log.warning("exchange rates unavailable at start-up: %s", exc)


#: youngest-generation threshold of the cyclic GC while serving (CPython's default: 700)
GC_GEN0_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once started: freeze what start-up allocated (modules, SQLAlchemy metadata and caches,
    the container) so that no collection walks it again, and collect the youngest generation
    every 10 000 allocations instead of 700. A request allocates thousands of short-lived
    objects; with the defaults, full collections over the whole start-up heap showed as
    latency spikes and ~10 % of the CPU of a write request (issue 10)."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


#: what runs where: `all` (one box), or `api` and `worker` processes sharing Redis.
MODES = ("all", "api", "worker")


def check_mode(mode: str, settings: Settings) -> None:
    """API and worker in separate processes need Redis for the queue and the state cache."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode != "all" and settings.redis is None:
        raise ValueError(f"--mode {mode} needs `redis` configured (queue and VM state cache)")


def _background(
    container: Container, settings: Settings, stop: asyncio.Event, mode: str
) -> list[Coroutine[Any, Any, None]]:
    """The loops a process runs: rates everywhere; worker and settlements unless `api`."""
    services = container.services()
    interval = FIXED_RATES_REFRESH_S if settings.rate_source == "fixed" else 120.0
    refresher = run_rate_refresher(
        container.rate_source(),
        container.rate_store(),
        stop_event=stop,
        interval_s=interval,
        clock=services.clock,
        guard=container.rate_guard(),
    )
    loops = [refresher]
    cache = services.catalogue_cache
    if mode != "worker" and isinstance(cache, RedisInvalidatedCache):
        loops.append(cache.listen(stop))  # admin changes on any node clear this one's catalogue
    if mode == "api":
        return loops
    node = container.lightning()
    if node is not None:  # Lightning off: no node whose settlements to listen to
        loops.append(
            run_settlement_listener(
                node,
                services.uow_factory,
                services.clock,
                services.rails,
                services.queue,
                stop,
            )
        )
    loops.append(
        run_worker(
            services.queue,
            container.worker_handlers(),
            stop,
            interval_s=settings.worker.check_interval,
        )
    )
    return loops


class ListenError(Exception):
    """An API address cannot be bound (taken, not ours, unknown host): one line for the CLI."""


def admin_binding_warning(settings: Settings) -> str | None:
    """What to warn about when the user API's events are bound to `public-url` but the admin
    API's are bound to nothing (`admin-public-url` unset): it accepts events for any host."""
    if settings.admin_listen and settings.public_url and not settings.admin_public_url:
        return (
            "public-url is set but admin-public-url is not: the admin API accepts NIP-98 "
            "events signed for any host; set admin-public-url to its public address"
        )
    return None


def public_url_warning(settings: Settings) -> str | None:
    """What to warn about when a production server has no `public-url`: NIP-98 events
    signed for any host are accepted, and the addresses it hands out (LNURL callbacks,
    payment redirects) name its listen address."""
    if not settings.is_embedded_default and not settings.public_url:
        return (
            "public-url is not set: the user API accepts NIP-98 events signed for any host"
            " and names its listen address in LNURL callbacks and payment redirects; set"
            " public-url to its public address"
        )
    return None


def dummy_hosts_warning(hosts: Sequence[Host]) -> str | None:
    """What to warn about when a production server still has enabled dummy hosts (a trial's
    demo catalogue on the same database): VMs sold on them exist only in a state file."""
    dummy = [h.name for h in hosts if h.enabled and h.kind is VmHostKind.DUMMY]
    if not dummy:
        return None
    return (
        f"enabled dummy (mock) VM host(s) {', '.join(sorted(dummy))}: VMs ordered there are"
        " paid for but never built on a real machine; disable them through the admin API"
        " (PATCH /api/admin/v1/hosts/ID with enabled: false) unless this is a trial"
    )


def bitcoin_offers_warning(offers: Sequence[str]) -> str | None:
    """What to warn about when Lightning is off but offers are priced in BTC: only Lightning
    charges bitcoin, so nobody can pay for them (VM orders of them are refused, renewals of
    such subscriptions find no rail)."""
    if not offers:
        return None
    return (
        f"Lightning is off (lightning.enabled: false) but {', '.join(offers)} are priced in"
        " BTC, which only Lightning can charge: new VM orders of them are refused and such"
        " subscriptions cannot be renewed; re-price them in a fiat currency or disable them"
        " through the admin API"
    )


def user_auth_binding(settings: Settings, replays: ReplayGuard | None) -> AuthBinding:
    """D26 for the user API: the public URL events must name, the replay guard, and each
    client's share of it (`replay-shares`)."""
    shares = ReplayShares(
        per_key=settings.replay_shares.per_key, per_address=settings.replay_shares.per_address
    )
    return AuthBinding(public_url=settings.public_url, replays=replays, shares=shares)


def webhook_secrets(settings: Settings) -> WebhookSecrets:
    """The providers' signing secrets from the settings file and their timestamp windows
    (unset: the verifier's default, 300 s for both); a method without a secret here falls
    back to its payment-method config rows (docs/payment-rails.md)."""
    secrets: dict[PaymentMethod, str] = {}
    tolerances: dict[PaymentMethod, int | None] = {}
    for method, section in (
        (PaymentMethod.REVOLUT, settings.revolut),
        (PaymentMethod.STRIPE, settings.stripe),
    ):
        if section is None:
            continue
        if section.webhook_secret:
            secrets[method] = section.webhook_secret
        tolerances[method] = section.webhook_tolerance
    return WebhookSecrets(secrets, tolerances)


async def _start(app: web.Application, listen: str) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = parse_listen(listen)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        await runner.cleanup()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise ListenError(f"cannot listen on {listen}: {reason}") from None
    return runner


async def serve(
    settings: Settings,
    *,
    mode: str = "all",
    stop: asyncio.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Run until `stop` is set (or SIGINT/SIGTERM); the database is prepared first (§3).

    `api` serves HTTP only; `worker` runs the job loop, the schedules and the settlement
    listener without HTTP; `all` does both in one process (the embedded default).
    """
    check_mode(mode, settings)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    container = await open_container(settings)
    runners: list[web.AppRunner] = []
    tasks: list[asyncio.Task[None]] = []
    try:
        container.secret_box()  # D28: no key, no start (before anything is served or written)
        await _prepare(settings, container)
        if mode == "worker":
            tasks = [asyncio.create_task(c) for c in _background(container, settings, stop, mode)]
            log.info("lnvps worker running (%s)", _summary(settings))
            await stop.wait()
            return
        secrets = webhook_secrets(settings)
        replays = container.nip98_replays()
        app = build_user_app(
            container.services(),
            webhook_secrets=secrets,
            auth_clock=SystemClock(),
            auth_binding=user_auth_binding(settings, replays),
            cors_origins=settings.cors_origins,
        )
        runners.append(await _start(app, settings.listen))
        if settings.admin_listen:
            admin = build_admin_app(
                container.services(),
                auth_clock=SystemClock(),
                auth_binding=AuthBinding(
                    public_url=settings.admin_public_url,
                    replays=container.nip98_admin_replays(),
                ),
                cors_origins=settings.cors_origins,
                webhook_secrets=secrets,
            )
            runners.append(await _start(admin, settings.admin_listen))
            log.info("lnvps admin API listening on http://%s", settings.admin_listen)
            if (warning := admin_binding_warning(settings)) is not None:
                log.warning("%s", warning)
        if (warning := public_url_warning(settings)) is not None:
            log.warning("%s", warning)
        # the worker starts once both ports are ours: a busy port stops nothing half-begun
        tasks = [asyncio.create_task(c) for c in _background(container, settings, stop, mode)]
        settle_heap()
        host, port = parse_listen(settings.listen)
        url = f"http://{host}:{port}"
        log.info("lnvps listening on %s (%s)", url, _summary(settings))
        if on_ready is not None:
            on_ready(url)
        await stop.wait()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for runner in runners:
            await runner.cleanup()
        await close_container(container)
