"""The composition root: one dependency-injector container picking every adapter from settings."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.cache.local import LocalCatalogueCache
from adapters.cache.rates import CachedRateStore
from adapters.cache.redis_catalogue import RedisInvalidatedCache
from adapters.cache.redis_replay import RedisReplayGuard
from adapters.cache.redis_vm_state import RedisVmStateCache
from adapters.clock.offset import OffsetClock
from adapters.clock.system import SystemClock
from adapters.crypto.secretbox import AesGcmSecretBox
from adapters.fiat.bank_transfer import BankTransferRail
from adapters.fiat.revolut import RevolutGateway
from adapters.fiat.revolut_webhook import RevolutWebhook
from adapters.fiat.stripe import StripeGateway
from adapters.fiat.stripe_webhook import StripeWebhook
from adapters.http.replay import InProcessReplayGuard
from adapters.lightning.dev import DevLightningNode
from adapters.lightning.lnd import LndRestNode
from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.memory.vm_state import MemoryVmStateCache
from adapters.mysql.engine import create_engine
from adapters.mysql.uow import SqlUnitOfWorkFactory
from adapters.notify.log import LogNotifier
from adapters.notify.smtp import SmtpNotifier
from adapters.nwc.client import NwcClient
from adapters.queue.memory import InProcessQueue
from adapters.queue.redis_streams import RedisStreamsQueue
from adapters.ratelimit.memory import MemoryRateLimiter
from adapters.ratelimit.redis import RedisRateLimiter
from adapters.rates.fixed import FixedRateSource
from adapters.rates.mempool import MempoolRateSource
from adapters.rates.store import MemoryRateStore, RedisRateStore
from adapters.vmhost.dummy import DummyVmHost
from adapters.vmhost.proxmox_api import ProxmoxConfig
from adapters.vmhost.resolver import VmHostClients
from app.autorenew import NwcAutoRenewer
from app.billing.credit_settle import completion_settle
from app.billing.rail_kinds import LightningRail, OrderRail
from app.billing.rails import PaymentRails
from app.rates_refresh import RateGuard
from app.services import Services
from app.worker.context import NoAutoRenewal, WorkerDeps, never_paid_lookback
from app.worker.jobs import QueuedNotifier, build_handlers
from domain.enums import PaymentMethod
from domain.money import Currency
from domain.nwc_uri import RelayPolicy
from domain.tax import TaxRates
from lnvps.dev_state import (
    DEV_CLOCK_FILE,
    DEV_ENCRYPTION_KEY_FILE,
    DEV_LIGHTNING_FILE,
    DUMMY_HOST_FILE,
    state_path,
)
from lnvps.settings import HourlyRateSettings, LnurlSettings, Settings
from ports.clock import Clock
from ports.jobs import SendAdminNotification
from ports.lightning import LightningNode
from ports.payment_rail import PaymentRail


class EncryptionNotConfigured(ValueError):
    """Production without `encryption.key-file`: secrets would be stored in plain text (D28)."""


def storage_kind(settings: Settings) -> str:
    """`memory` for `db: memory`, else the SQL adapter (SQLite or MariaDB/MySQL by URL)."""
    return "memory" if settings.db == "memory" else "sql"


def encryption_key_file(settings: Settings) -> tuple[Path, bool]:
    """(key file, create it when missing) for the `ENC:` columns, which are always encrypted.

    The embedded default keeps a generated key in its state folder; production must name its
    key file, since a lost key is lost data and a plaintext fallback is a leak (D28).
    """
    if settings.encryption is not None:
        return Path(settings.encryption.key_file), settings.encryption.auto_generate
    if settings.is_embedded_default:
        return state_path(settings, DEV_ENCRYPTION_KEY_FILE), True
    raise EncryptionNotConfigured(
        "encryption.key-file is required outside dev mode (secrets are stored encrypted)"
    )


def _secret_box(settings: Settings) -> AesGcmSecretBox:
    path, auto_generate = encryption_key_file(settings)
    return AesGcmSecretBox.from_key_file(path, auto_generate=auto_generate)


def _fixed_rates(settings: Settings) -> dict[Currency, Any]:
    return {Currency.parse(code): rate for code, rate in settings.rates.fixed.items()}


def _rate_guard(settings: Settings, queue: Any) -> RateGuard:
    """What a fetched rate must meet (`rates.max-feed-age`, `rates.max-change`); a rate
    refused as a glitch is told to the admins through the work queue."""
    rates = settings.rates

    async def alert(title: str, text: str) -> None:
        await queue.send(SendAdminNotification(title=title, message=text))

    return RateGuard(
        max_feed_age=timedelta(seconds=rates.max_feed_age),
        max_change=None if rates.max_change is None else rates.max_change / 100,
        alert=alert,
    )


def _lnd(settings: Settings) -> LndRestNode:
    lnd = settings.lightning.lnd
    if lnd is None:
        raise ValueError("lightning.lnd is not configured")
    return LndRestNode(lnd.url, macaroon_path=lnd.macaroon, tls_cert_path=lnd.cert)


def _delivery(settings: Settings, uow_factory: Any) -> SmtpNotifier | LogNotifier:
    """Where notices are finally delivered: e-mail when SMTP is configured, else the log."""
    smtp = settings.smtp
    if smtp is None:
        return LogNotifier()
    return SmtpNotifier(
        uow_factory,
        server=smtp.server,
        port=smtp.port,
        username=smtp.username,
        password=smtp.password,
        sender=smtp.sender,
        admin_emails=smtp.admin_emails,
    )


def _never_paid_lookback(settings: Settings) -> timedelta:
    bank = settings.bank_transfer
    return never_paid_lookback(None if bank is None else bank.days_to_pay)


def _public_url(settings: Settings) -> str:
    return settings.public_url or f"http://{settings.listen}"


def _nwc_relays(settings: Settings) -> RelayPolicy:
    """Relays a wallet string may name: public `wss://` ones in production (dev: any)."""
    return RelayPolicy(
        allow_private=settings.nwc_allows_private_relays,
        require_tls=not settings.is_embedded_default,
    )


#: every provider webhook format we can check, configured rail or not (its URL is
#: `/api/v1/webhook/<wire name>`).
WEBHOOKS = (RevolutWebhook(), StripeWebhook())


def _payment_rails(settings: Settings, lightning: LightningNode | None) -> PaymentRails:
    """The registry: Lightning (LND or the dev rail) unless it is turned off, then each rail
    its settings section configures (an unconfigured one answers 422 when used). A new rail
    is one line here."""
    rails: list[PaymentRail] = [] if lightning is None else [LightningRail(lightning)]
    if (revolut := settings.revolut) is not None:
        gateway = RevolutGateway(revolut.url, revolut.token, revolut.api_version)
        rails.append(OrderRail(PaymentMethod.REVOLUT, gateway, RevolutWebhook()))
    if (stripe := settings.stripe) is not None:
        checkout = StripeGateway(
            stripe.url,
            secret_key=stripe.secret_key,
            success_url=stripe.success_url or _public_url(settings),
            cancel_url=stripe.cancel_url or _public_url(settings),
        )
        rails.append(OrderRail(PaymentMethod.STRIPE, checkout, StripeWebhook()))
    if (bank := settings.bank_transfer) is not None:
        rails.append(BankTransferRail(bank.account_details(), days_to_pay=bank.days_to_pay))
    return PaymentRails(rails=rails, webhooks=WEBHOOKS, lightning_off=settings.lightning_off)


def lightning_kind(settings: Settings) -> str:
    """`lnd` (a real node), `off` (a fiat-only shop, `lightning.enabled: false`), else the
    embedded default's `dev` rail."""
    if settings.lightning.lnd is not None:
        return "lnd"
    return "off" if settings.lightning_off else "dev"


def _redis_key(settings: Settings, name: str) -> str:
    """A Redis key prefix with the configured namespace in front (several installs, one Redis)."""
    return (settings.redis.key_prefix if settings.redis else "") + name


async def _redis(settings: Settings) -> AsyncIterator[aioredis.Redis | None]:
    """The Redis client when `redis` is configured (None otherwise), closed at shutdown."""
    if settings.redis is None:
        yield None
        return
    client: aioredis.Redis = aioredis.from_url(settings.redis.url)
    try:
        yield client
    finally:
        await client.aclose()


async def _engine(settings: Settings) -> AsyncIterator[AsyncEngine | None]:
    """The SQL engine (pool) for SQLite/MariaDB storage, None for `db: memory`; disposed at
    shutdown."""
    if storage_kind(settings) != "sql":
        yield None
        return
    engine = create_engine(settings.db)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _http_session() -> AsyncIterator[aiohttp.ClientSession]:
    """The shared outgoing HTTP session (exchange rates), closed at shutdown."""
    session = aiohttp.ClientSession()
    try:
        yield session
    finally:
        await session.close()


async def _host_clients(
    clock: Clock, dummy_host: DummyVmHost, settings: Settings
) -> AsyncIterator[VmHostClients]:
    """One client per VM host row, built on first use and all closed at shutdown."""
    clients = VmHostClients(
        clock,
        dummy_host,
        proxmox=_proxmox_settings(settings),
        libvirt=settings.vm_hosts.libvirt,
        libvirt_test_files=settings.vm_hosts.libvirt_test_files,
    )
    try:
        yield clients
    finally:
        await clients.aclose()


def _limiter(
    settings: Settings,
    redis: aioredis.Redis | None,
    name: str,
    rate: LnurlSettings | HourlyRateSettings,
) -> MemoryRateLimiter | RedisRateLimiter | None:
    """The token bucket `rate` configures (None when its rate is 0), in Redis when configured
    (shared by every node, keys under `ratelimit:<name>:`), else in process. D25: `lnurl`
    and `order` per client address; `vm-action` per user; `email-verify` per user and per
    target address."""
    if rate.per_minute == 0:
        return None
    if redis is None:
        return MemoryRateLimiter(rate.per_minute, rate.burst)
    return RedisRateLimiter(
        redis, rate.per_minute, rate.burst, key_prefix=_redis_key(settings, f"ratelimit:{name}:")
    )


def _proxmox_settings(settings: Settings) -> dict[str, Any]:
    """`vm-hosts.proxmox`, checked now: an unknown or mistyped key fails at start, not at
    the first VM."""
    extra = dict(settings.vm_hosts.proxmox)
    try:
        ProxmoxConfig(base_url="", node="", token="", **extra)
    except TypeError as exc:
        raise ValueError(f"vm-hosts.proxmox: {exc}") from exc
    return extra


class Container(containers.DeclarativeContainer):
    """Everything a process needs, built lazily; nothing is constructed at import time."""

    settings = providers.Dependency(instance_of=Settings)
    kinds = providers.Dict(
        storage=providers.Callable(storage_kind, settings),
        lightning=providers.Callable(lightning_kind, settings),
        queue=providers.Callable(lambda s: "redis" if s.redis else "memory", settings),
        rates=providers.Callable(lambda s: s.rate_source, settings),
        clock=providers.Callable(lambda s: "dev" if s.is_embedded_default else "system", settings),
    )

    #: where state the processes share lives: "memory" (one process) or "redis" (every process)
    shared_state = providers.Callable(lambda k: k["queue"], kinds)

    clock = providers.Selector(
        providers.Callable(lambda k: k["clock"], kinds),
        system=providers.Singleton(SystemClock),
        dev=providers.Singleton(
            OffsetClock, providers.Callable(state_path, settings, DEV_CLOCK_FILE)
        ),
    )
    #: opened by `open_container`, closed by `close_container` (providers.Resource)
    http_session = providers.Resource(_http_session)
    redis = providers.Resource(_redis, settings)
    engine = providers.Resource(_engine, settings)
    secret_box = providers.Singleton(_secret_box, settings)
    uow_factory = providers.Selector(
        providers.Callable(lambda k: k["storage"], kinds),
        memory=providers.Singleton(MemoryUnitOfWorkFactory),
        sql=providers.Singleton(SqlUnitOfWorkFactory, engine, secret_box),
    )

    lightning = providers.Selector(
        providers.Callable(lambda k: k["lightning"], kinds),
        dev=providers.Singleton(
            DevLightningNode,
            providers.Callable(state_path, settings, DEV_LIGHTNING_FILE),
            clock=clock,
        ),
        lnd=providers.Singleton(_lnd, settings),
        #: Lightning off: no node, so no rail, no settlement listener (`lnvps.serve`)
        off=providers.Object(None),
    )
    rails = providers.Singleton(_payment_rails, settings, lightning)

    rate_source = providers.Selector(
        providers.Callable(lambda k: k["rates"], kinds),
        fixed=providers.Singleton(
            FixedRateSource, providers.Callable(_fixed_rates, settings), clock
        ),
        mempool=providers.Singleton(MempoolRateSource, settings.provided.rates.url, http_session),
    )
    rate_store = providers.Selector(
        shared_state,
        memory=providers.Singleton(MemoryRateStore),
        redis=providers.Singleton(
            CachedRateStore,
            providers.Singleton(
                RedisRateStore,
                redis,
                key_prefix=providers.Callable(_redis_key, settings, "exchange_rate:"),
            ),
        ),
    )
    queue = providers.Selector(
        shared_state,
        memory=providers.Singleton(InProcessQueue),
        redis=providers.Singleton(
            RedisStreamsQueue,
            redis,
            consumer=providers.Callable(lambda: f"{socket.gethostname()}-{os.getpid()}"),
            stream=providers.Callable(lambda s: s.redis.stream, settings),
        ),
    )
    #: one per process: it remembers the last rate accepted (`RateGuard`)
    rate_guard = providers.Singleton(_rate_guard, settings, queue)

    dummy_host = providers.Singleton(
        DummyVmHost, providers.Callable(state_path, settings, DUMMY_HOST_FILE), clock
    )
    hosts = providers.Resource(_host_clients, clock, dummy_host, settings)
    host_prober = providers.Callable(
        lambda s, h: h if s.vm_hosts.test_connection else None, settings, hosts
    )

    tax_rates = providers.Singleton(TaxRates.from_config, settings.provided.tax_rate)
    #: in one process the worker and the API share a map; with Redis, every process shares it.
    vm_states = providers.Selector(
        shared_state,
        memory=providers.Singleton(MemoryVmStateCache),
        redis=providers.Singleton(
            RedisVmStateCache,
            redis,
            settings.provided.redis.ttl,
            key_prefix=providers.Callable(_redis_key, settings, "vm_state:"),
        ),
    )
    delivery = providers.Singleton(_delivery, settings, uow_factory)
    #: D26: NIP-98 event ids of non-GET requests, shared by every API process through Redis.
    nip98_replays = providers.Selector(
        shared_state,
        memory=providers.Singleton(InProcessReplayGuard),
        redis=providers.Singleton(
            RedisReplayGuard, redis, key_prefix=providers.Callable(_redis_key, settings, "nip98:")
        ),
    )
    #: the admin API's: its own in process, so the user API's traffic cannot fill it (an event
    #: names its API's path, so none is good on both); Redis has no bound to fill, one will do.
    nip98_admin_replays = providers.Selector(
        shared_state,
        memory=providers.Singleton(InProcessReplayGuard),
        redis=nip98_replays.providers["redis"],
    )

    nwc_wallet = providers.Singleton(
        NwcClient,
        allow_private_relays=providers.Callable(lambda s: s.nwc_allows_private_relays, settings),
    )
    #: issue 10: one node keeps the catalogue in process; with Redis, admin changes reach all
    catalogue_cache = providers.Selector(
        shared_state,
        memory=providers.Singleton(LocalCatalogueCache),
        redis=providers.Singleton(
            RedisInvalidatedCache,
            redis,
            channel=providers.Callable(_redis_key, settings, "catalogue:invalidate"),
        ),
    )

    services = providers.Singleton(
        Services,
        uow_factory=uow_factory,
        clock=clock,
        rails=rails,
        rates=rate_store,
        queue=queue,
        hosts=hosts,
        tax_rates=tax_rates,
        require_verified_email=providers.Callable(lambda s: s.smtp is not None, settings),
        public_url=providers.Callable(_public_url, settings),
        delete_after_days=settings.provided.delete_after,
        vm_states=vm_states,
        nwc_wallet=nwc_wallet,
        nwc_relays=providers.Callable(_nwc_relays, settings),
        max_unpaid_vms=settings.provided.max_unpaid_vms,
        max_unpaid_subscriptions=settings.provided.max_unpaid_subscriptions,
        unpaid_room=settings.provided.unpaid_room,
        unpaid_ip_room=settings.provided.unpaid_ip_room,
        max_live_quotes=settings.provided.max_live_quotes,
        lnurl_limiter=providers.Singleton(
            _limiter, settings, redis, "lnurl", settings.provided.lnurl
        ),
        order_limiter=providers.Singleton(
            _limiter, settings, redis, "order", settings.provided.order_rate
        ),
        vm_action_limiter=providers.Singleton(
            _limiter, settings, redis, "vm-action", settings.provided.vm_action_rate
        ),
        email_verify_limiter=providers.Singleton(
            _limiter, settings, redis, "email-verify", settings.provided.email_verify_rate
        ),
        trust_forwarded_for=settings.provided.lnurl.trust_forwarded_for,
        host_prober=host_prober,
        catalogue_cache=catalogue_cache,
    )

    #: NWC auto-renewal (NIP-47): pays the renewal invoice from the user's stored wallet string.
    #: Lightning off: none, so a subscription with auto-renewal on gets the expiring-soon
    #: notice and expires as any other unpaid one (no wallet asked, no failure told)
    auto_renewer = providers.Selector(
        providers.Callable(lambda k: "none" if k["lightning"] == "off" else "nwc", kinds),
        none=providers.Singleton(NoAutoRenewal),
        nwc=providers.Singleton(
            NwcAutoRenewer,
            uow_factory,
            clock,
            rails,
            rate_store,
            tax_rates,
            nwc_wallet,
            providers.Factory(completion_settle, uow_factory, clock, rails, queue),
            settings.provided.max_live_quotes,
        ),
    )

    worker_deps = providers.Singleton(
        WorkerDeps,
        uow_factory=uow_factory,
        clock=clock,
        hosts=hosts,
        queue=queue,
        notifier=providers.Singleton(QueuedNotifier, queue),
        delete_after_days=settings.provided.delete_after,
        public_url=providers.Callable(_public_url, settings),
        read_only=settings.provided.read_only,
        states=vm_states,
        auto_renewer=auto_renewer,
        payment_canceller=rails,
        order_rails=rails,
        never_paid_lookback=providers.Callable(_never_paid_lookback, settings),
        lightning_address=providers.Callable(lambda s: not s.lightning_off, settings),
    )
    worker_handlers = providers.Singleton(
        build_handlers,
        worker_deps,
        delivery,
        min_check_gap=settings.provided.worker.min_check_gap,
    )


def build_container(settings: Settings) -> Container:
    """The container, not opened: its resources (engine, Redis, HTTP session, host clients)
    exist only after `open_container`."""
    return Container(settings=settings)


async def open_container(settings: Settings) -> Container:
    """Build the container and open its resources; every provider then answers synchronously.

    dependency-injector puts providers that depend on an async resource in "async mode"
    (they return futures); once every resource is open, that mode is switched off so the
    rest of the code calls `container.services()` as plain values.
    """
    container = build_container(settings)
    try:
        opened = container.init_resources()
        if opened is not None:
            await opened
    except BaseException:
        await close_container(container)
        raise
    provider: Any
    for provider in container.traverse():
        provider.disable_async_mode()
    return container


async def close_container(container: Container) -> None:
    """Close every resource `open_container` opened, in reverse order of opening."""
    for provider in container.traverse(types=[providers.Resource]):
        provider.enable_async_mode()
    result = container.shutdown_resources()
    if result is not None:
        await result
