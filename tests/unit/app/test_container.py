"""The container picks adapters from settings and builds a working Services bundle."""

from __future__ import annotations

import logging
import secrets
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from adapters.cache.redis_replay import RedisReplayGuard
from adapters.clock.offset import OffsetClock
from adapters.http.replay import InProcessReplayGuard
from adapters.lightning.dev import DevLightningNode
from adapters.lightning.lnd import LndRestNode
from adapters.memory.storage import MemoryUnitOfWorkFactory
from adapters.mysql.schema_upgrade import upgrade_database
from adapters.mysql.uow import SqlUnitOfWorkFactory
from adapters.queue.memory import InProcessQueue
from adapters.queue.redis_streams import RedisStreamsQueue
from adapters.ratelimit.memory import MemoryRateLimiter
from adapters.ratelimit.redis import RedisRateLimiter
from adapters.rates.fixed import FixedRateSource
from adapters.rates.mempool import MempoolRateSource
from app.account.profile import AccountPatch
from app.worker.context import NEVER_PAID_LOOKBACK, never_paid_lookback
from domain.exchange import ExchangeRate
from domain.model import GIB
from domain.money import Currency
from domain.nwc_uri import RelayPolicy
from lnvps.container import (
    EncryptionNotConfigured,
    close_container,
    open_container,
)
from lnvps.dev_state import DEV_ENCRYPTION_KEY_FILE
from lnvps.settings import SettingsError, load_settings, resolve_db_url
from ports.jobs import CheckVms, SendAdminNotification, SendEmailVerification
from tests.redistest import REDIS_URL, connect_redis


async def test_the_embedded_default_is_sqlite_dev_rail_dummy_host_and_fixed_rates(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"db: sqlite:///{tmp_path}/x.db\ndev:\n  state-dir: {tmp_path}\n")
    container = await open_container(load_settings(cfg, environ={}))
    try:
        services = container.services()
        assert isinstance(services.uow_factory, SqlUnitOfWorkFactory)
        assert isinstance(container.lightning(), DevLightningNode)
        assert container.lightning().state_file == tmp_path / "lnvps-dev-lightning.json"
        assert isinstance(services.clock, OffsetClock)
        assert isinstance(services.queue, InProcessQueue)
        assert isinstance(container.rate_source(), FixedRateSource)
        rates = await container.rate_source().fetch()
        assert {r.quote for r in rates} == {Currency.EUR, Currency.USD}
        assert services.require_verified_email is False
        assert container.services() is services
        # D26: the admin API has its own in-process replay guard, out of the user API's reach
        assert isinstance(container.nip98_replays(), InProcessReplayGuard)
        assert isinstance(container.nip98_admin_replays(), InProcessReplayGuard)
        assert container.nip98_admin_replays() is not container.nip98_replays()
    finally:
        await close_container(container)


async def test_production_settings_pick_lnd_redis_and_live_rates(tmp_path: Path) -> None:
    macaroon = tmp_path / "admin.macaroon"
    macaroon.write_bytes(b"\x01\x02")
    cfg = tmp_path / "prod.yaml"
    cfg.write_text(
        "db: mysql://root@127.0.0.1:3306/test\n"
        f"lightning:\n  lnd:\n    url: http://127.0.0.1:1\n    macaroon: {macaroon}\n"
        "redis:\n  url: redis://127.0.0.1:6379\n"
        "rates:\n  source: mempool\n"
        "smtp:\n  server: mail.example\n"
        f"encryption:\n  key-file: {tmp_path / 'key'}\n  auto-generate: true\n"
    )
    container = await open_container(load_settings(cfg, environ={}))
    try:
        assert isinstance(container.lightning(), LndRestNode)
        assert isinstance(container.queue(), RedisStreamsQueue)
        assert isinstance(container.rate_source(), MempoolRateSource)
        assert container.services().require_verified_email is True
        assert not isinstance(container.services().clock, OffsetClock)
        assert isinstance(container.services().lnurl_limiter, RedisRateLimiter)  # multi-node
        assert isinstance(container.services().order_limiter, RedisRateLimiter)
        assert isinstance(container.nip98_replays(), RedisReplayGuard)  # no bound to fill
        assert container.nip98_admin_replays() is container.nip98_replays()
        assert isinstance(container.services().email_verify_limiter, RedisRateLimiter)
        assert container.worker_deps().payment_canceller is container.rails()  # D24
        # production: public wss:// relays only, at PATCH and at connect time
        assert container.services().nwc_relays == RelayPolicy(require_tls=True)
        assert container.nwc_wallet().allow_private_relays is False
    finally:
        await close_container(container)


async def test_unpaid_cap_and_lnurl_limit_come_from_the_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "db: memory\nmax-unpaid-vms: 5\n"
        "lnurl:\n  rate-per-minute: 30\n  burst: 4\n  trust-forwarded-for: true\n"
    )
    container = await open_container(load_settings(cfg, environ={}))
    services = container.services()
    assert services.max_unpaid_vms == 5 and services.trust_forwarded_for is True
    assert isinstance(services.lnurl_limiter, MemoryRateLimiter)
    await close_container(container)
    cfg.write_text("db: memory\nlnurl: {rate-per-minute: 0}\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.services().lnurl_limiter is None
    assert container.services().max_unpaid_vms == 3
    await close_container(container)
    cfg.write_text("db: memory\nmax-unpaid-vms: 0\n")
    with pytest.raises(SettingsError):
        load_settings(cfg, environ={})


async def test_the_order_limit_comes_from_the_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("db: memory\norder-rate: {per-hour: 6, burst: 2}\n")
    container = await open_container(load_settings(cfg, environ={}))
    limiter = container.services().order_limiter
    assert isinstance(limiter, MemoryRateLimiter)
    assert [await limiter.acquire("a") for _ in range(2)] == [0.0, 0.0]
    assert 590 < await limiter.acquire("a") <= 600  # 6 an hour: one every 10 minutes
    await close_container(container)
    cfg.write_text("db: memory\n")  # on by default
    container = await open_container(load_settings(cfg, environ={}))
    assert isinstance(container.services().order_limiter, MemoryRateLimiter)
    await close_container(container)
    cfg.write_text("db: memory\norder-rate: {per-hour: 0}\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.services().order_limiter is None
    await close_container(container)


async def test_the_vm_action_limit_comes_from_the_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("db: memory\n")  # on by default: 10 at once, 30 an hour
    container = await open_container(load_settings(cfg, environ={}))
    limiter = container.services().vm_action_limiter
    assert isinstance(limiter, MemoryRateLimiter)
    assert [await limiter.acquire("u") for _ in range(10)] == [0.0] * 10
    assert 110 < await limiter.acquire("u") <= 120
    await close_container(container)
    cfg.write_text("db: memory\nvm-action-rate: {per-hour: 0}\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.services().vm_action_limiter is None
    await close_container(container)


async def test_the_email_verify_limit_comes_from_the_settings(tmp_path: Path) -> None:
    """On by default (3 at once, then 3 an hour, per user and per address): the account use
    case built by the container queues no more than that for one key looping its PATCH."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("db: memory\n")
    container = await open_container(load_settings(cfg, environ={}))
    services = container.services()
    assert isinstance(services.email_verify_limiter, MemoryRateLimiter)
    async with services.uow_factory() as uow:
        user = await uow.users.get_or_create_by_pubkey(b"\xab" * 32, services.clock.now())
        await uow.commit()
    patch = AccountPatch(contact_nip17=True, contact_email=False, email="victim@example.org")
    for _ in range(10):
        await services.account.update_account(user.id, patch)
    jobs = await services.queue.receive(max_jobs=100, block_ms=0)
    assert [d.job for d in jobs] == [SendEmailVerification(user_id=user.id)] * 3
    await close_container(container)
    cfg.write_text("db: memory\nemail-verify-rate: {per-hour: 6, burst: 1}\n")
    container = await open_container(load_settings(cfg, environ={}))
    limiter = container.services().email_verify_limiter
    assert isinstance(limiter, MemoryRateLimiter)
    assert await limiter.acquire("u") == 0.0
    assert 590 < await limiter.acquire("u") <= 600
    await close_container(container)
    cfg.write_text("db: memory\nemail-verify-rate: {per-hour: 0}\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.services().email_verify_limiter is None
    await close_container(container)


async def test_the_unpaid_room_limits_come_from_the_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "db: memory\nmax-unpaid-room: {cpu: 8, memory-gib: null}\nunpaid-host-share: 12.5\n"
    )
    container = await open_container(load_settings(cfg, environ={}))
    room = container.services().unpaid_room
    assert (room.cpu, room.memory, room.disk) == (8, None, 1024 * GIB)  # disk: the default
    assert room.host_share == Fraction(1, 8)
    await close_container(container)
    cfg.write_text("db: memory\nunpaid-host-share: 100\n")  # all of a host: no share
    container = await open_container(load_settings(cfg, environ={}))
    room = container.services().unpaid_room
    assert room.host_share is None and room.cpu == 16 and room.memory == 64 * GIB
    await close_container(container)
    for bad in ("unpaid-host-share: 0", "unpaid-host-share: 101", "max-unpaid-room: {cpu: 0}"):
        cfg.write_text(f"db: memory\n{bad}\n")
        with pytest.raises(SettingsError):
            load_settings(cfg, environ={})


async def test_the_unpaid_ip_limits_come_from_the_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("db: memory\nmax-unpaid-ip-room: {ipv4: 22}\nunpaid-ip-space-share: 25\n")
    container = await open_container(load_settings(cfg, environ={}))
    room = container.services().unpaid_ip_room
    assert (room.ipv4, room.ipv6, room.space_share) == (22, 44, Fraction(1, 4))  # ipv6: default
    await close_container(container)
    cfg.write_text("db: memory\nmax-unpaid-ip-room: {ipv4: null}\nunpaid-ip-space-share: 100\n")
    container = await open_container(load_settings(cfg, environ={}))
    room = container.services().unpaid_ip_room
    assert (room.ipv4, room.ipv6, room.space_share) == (None, 44, None)
    await close_container(container)
    for bad in (
        "unpaid-ip-space-share: 0",
        "unpaid-ip-space-share: 101",
        "max-unpaid-ip-room: {ipv4: 33}",
        "max-unpaid-ip-room: {ipv6: 129}",
    ):
        cfg.write_text(f"db: memory\n{bad}\n")
        with pytest.raises(SettingsError):
            load_settings(cfg, environ={})


async def test_the_unpaid_subscription_cap_comes_from_the_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("db: memory\nmax-unpaid-subscriptions: 5\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.services().max_unpaid_subscriptions == 5
    await close_container(container)
    cfg.write_text("db: memory\nmax-unpaid-subscriptions: 0\n")
    with pytest.raises(SettingsError):
        load_settings(cfg, environ={})


async def test_private_nwc_relays_are_allowed_in_dev_mode_unless_turned_off(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("db: memory\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.services().nwc_relays == RelayPolicy(allow_private=True)
    assert container.nwc_wallet().allow_private_relays is True
    await close_container(container)
    cfg.write_text("db: memory\nnwc: {allow-private-relays: false}\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.services().nwc_relays == RelayPolicy(allow_private=False)
    assert container.nwc_wallet().allow_private_relays is False
    await close_container(container)


async def test_memory_storage_is_selectable() -> None:
    container = await open_container(load_settings(None, environ={"LNVPS_DB": "memory"}))
    assert isinstance(container.services().uow_factory, MemoryUnitOfWorkFactory)
    await close_container(container)


async def test_a_bad_encryption_key_file_is_refused_when_storage_is_built(tmp_path: Path) -> None:
    key = tmp_path / "short.key"
    key.write_bytes(b"short")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"db: sqlite:///{tmp_path}/y.db\nencryption:\n  key-file: {key}\n")
    container = await open_container(load_settings(cfg, environ={}))
    try:
        with pytest.raises(Exception, match="exactly 32 raw bytes"):
            container.uow_factory()
    finally:
        await close_container(container)


async def test_production_without_an_encryption_key_file_is_refused(tmp_path: Path) -> None:
    """D28: no plaintext fallback outside dev mode; the error is one clear line."""
    macaroon = tmp_path / "admin.macaroon"
    macaroon.write_bytes(b"\x01")
    cfg = tmp_path / "prod.yaml"
    cfg.write_text(
        f"db: sqlite:///{tmp_path}/p.db\n"
        f"lightning:\n  lnd:\n    url: http://127.0.0.1:1\n    macaroon: {macaroon}\n"
    )
    container = await open_container(load_settings(cfg, environ={}))
    try:
        with pytest.raises(EncryptionNotConfigured) as info:
            container.uow_factory()
    finally:
        await close_container(container)
    assert str(info.value) == (
        "encryption.key-file is required outside dev mode (secrets are stored encrypted)"
    )


async def test_the_embedded_default_creates_its_key_file_0600_once(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"db: sqlite:///{tmp_path}/k.db\ndev:\n  state-dir: {tmp_path}\n")
    first = await open_container(load_settings(cfg, environ={}))
    box = first.secret_box()
    key_file = tmp_path / DEV_ENCRYPTION_KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_bytes()) == 32
    sealed = box.encrypt("nostr+walletconnect://secret")
    await close_container(first)
    again = await open_container(load_settings(cfg, environ={}))
    assert again.secret_box().decrypt(sealed) == "nostr+walletconnect://secret"
    await close_container(again)


async def test_the_worker_auto_renews_through_nwc(tmp_path: Path) -> None:
    from app.autorenew import NwcAutoRenewer

    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"db: sqlite:///{tmp_path}/z.db\ndev:\n  state-dir: {tmp_path}\n")
    container = await open_container(load_settings(cfg, environ={}))
    try:
        assert isinstance(container.worker_deps().auto_renewer, NwcAutoRenewer)
    finally:
        await close_container(container)


async def test_vm_hosts_settings_reach_the_registry_and_the_prober(tmp_path: Path) -> None:
    from adapters.vmhost.proxmox import ProxmoxVmHost
    from adapters.vmhost.resolver import VmHostClients
    from domain.enums import VmHostKind
    from domain.model import Host

    cfg = tmp_path / "c.yaml"
    base = f"db: sqlite:///{tmp_path}/x.db\ndev:\n  state-dir: {tmp_path}\n"
    cfg.write_text(
        base + "vm-hosts:\n  proxmox:\n    bridge: vmbr1\n    verify-tls: false\n"
        "  libvirt:\n    storage-pool: pool1\n"
    )
    container = await open_container(load_settings(cfg, environ={}))
    try:
        hosts = container.hosts()
        assert isinstance(hosts, VmHostClients) and container.services().host_prober is hosts
        row = Host(
            id=1,
            kind=VmHostKind.PROXMOX,
            region_id=1,
            name="pve",
            ip="https://pve",
            cpu=1,
            memory=1,
            enabled=True,
            api_token="t",
        )
        client = hosts.for_host(row)
        assert isinstance(client, ProxmoxVmHost)
        assert (client.config.bridge, client.config.verify_tls) == ("vmbr1", False)
    finally:
        await close_container(container)
    cfg.write_text(base + "vm-hosts:\n  test-connection: false\n")
    container = await open_container(load_settings(cfg, environ={}))
    try:
        assert container.services().host_prober is None
    finally:
        await close_container(container)


async def test_an_unknown_proxmox_setting_fails_at_start(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"db: sqlite:///{tmp_path}/x.db\ndev:\n  state-dir: {tmp_path}\n"
        "vm-hosts:\n  proxmox:\n    brigde: vmbr1\n"
    )
    with pytest.raises(ValueError, match=r"vm-hosts\.proxmox: .*brigde"):
        await open_container(load_settings(cfg, environ={}))


@pytest.mark.parametrize(("interval", "second_run"), [(1, True), (30, False)])
async def test_the_worker_checks_as_often_as_its_check_interval_says(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, interval: int, second_run: bool
) -> None:
    """A check 1 s after the last runs with `check-interval: 1`; with 30 s it is a piled-up
    job and skipped (the 10 s gap), by the dev clock."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"db: sqlite:///{tmp_path}/x.db\ndev:\n  state-dir: {tmp_path}\n"
        f"worker:\n  check-interval: {interval}\n"
    )
    settings = load_settings(cfg, environ={})
    await upgrade_database(resolve_db_url(None, settings))
    container = await open_container(settings)
    try:
        handlers = container.worker_handlers()
        clock = container.services().clock
        assert isinstance(clock, OffsetClock)
        caplog.set_level(logging.INFO, "lnvps.worker.vmcheck")
        await handlers.run(CheckVms())
        clock.advance(timedelta(seconds=1))
        await handlers.run(CheckVms())
        runs = [r for r in caplog.records if r.getMessage().startswith("VM check at ")]
        assert len(runs) == (2 if second_run else 1)
    finally:
        await close_container(container)


async def test_a_longer_bank_transfer_widens_the_never_paid_lookback(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("db: memory\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.worker_deps().never_paid_lookback == NEVER_PAID_LOOKBACK
    await close_container(container)
    bank = "bank-transfer: {account-name: A, iban: IE29AIBK93115212345678, days-to-pay: 30}"
    cfg.write_text(f"db: memory\n{bank}\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.worker_deps().never_paid_lookback == never_paid_lookback(30)
    assert never_paid_lookback(30) > NEVER_PAID_LOOKBACK
    await close_container(container)


async def test_the_auto_renewer_is_held_to_the_configured_live_quote_cap(tmp_path: Path) -> None:
    """The worker's NWC auto-renewal asks `renew` for one more live quote: it is held to the
    deployment's `max-live-quotes`, as the API's renewals are, not to the default."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text("db: memory\nmax-live-quotes: 7\n")
    container = await open_container(load_settings(cfg, environ={}))
    assert container.services().max_live_quotes == 7
    assert container.auto_renewer()._max_live_quotes == 7
    await close_container(container)


async def test_the_rate_guard_comes_from_the_settings_and_tells_the_admins(
    tmp_path: Path,
) -> None:
    """r6 F3: `rates.max-feed-age` and `rates.max-change` (percent) shape the one guard of the
    process; a rate refused as a glitch queues a notice to the admins."""
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"db: sqlite:///{tmp_path}/x.db\ndev:\n  state-dir: {tmp_path}\n"
        "rates:\n  max-feed-age: 3900\n  max-change: 12.5\n"
    )
    container = await open_container(load_settings(cfg, environ={}))
    try:
        guard = container.rate_guard()
        assert guard is container.rate_guard()  # one per process: it remembers
        assert guard.max_feed_age == timedelta(seconds=3900)
        assert guard.max_change == Decimal("0.125")
        now = container.services().clock.now()
        assert await guard.admit([ExchangeRate(Currency.EUR, Decimal(90000), now)], now)
        guard.accepted([ExchangeRate(Currency.EUR, Decimal(90000), now)])
        assert not await guard.admit([ExchangeRate(Currency.EUR, Decimal(9 * 10**9), now)], now)
        [delivery] = await container.queue().receive(block_ms=0)
        assert isinstance(delivery.job, SendAdminNotification)
        assert "BTC/EUR" in (delivery.job.title or "")
    finally:
        await close_container(container)


async def test_two_nodes_on_one_redis_share_every_abuse_budget(tmp_path: Path) -> None:
    """With Redis configured, two API processes (two containers from one settings file)
    draw the per-address and per-user limits (orders, LNURL, VM actions, verification mails)
    from one bucket each, and a NIP-98 event used on one is refused on the other: a client
    behind a load balancer gets one budget, not one per node."""
    client = await connect_redis()
    prefix = f"lnvps_test_nodes_{secrets.token_hex(4)}:"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "db: memory\n"
        f"redis:\n  url: {REDIS_URL}\n  key-prefix: '{prefix}'\n"
        "order-rate: {per-hour: 6, burst: 2}\n"
        "vm-action-rate: {per-hour: 6, burst: 2}\n"
        "email-verify-rate: {per-hour: 6, burst: 2}\n"
        "lnurl: {rate-per-minute: 6, burst: 2}\n"
    )
    settings = load_settings(cfg, environ={})
    one, two = await open_container(settings), await open_container(settings)
    try:
        for name in ("order_limiter", "lnurl_limiter", "vm_action_limiter", "email_verify_limiter"):
            first, second = getattr(one.services(), name), getattr(two.services(), name)
            assert isinstance(first, RedisRateLimiter) and first is not second, name
            assert [await first.acquire("203.0.113.7") for _ in range(2)] == [0.0, 0.0], name
            assert await second.acquire("203.0.113.7") > 0, name  # the one budget is spent
            assert await second.acquire("203.0.113.8") == 0.0, name  # another client's own
        event, now = secrets.token_bytes(32), datetime.now(UTC)
        until = now + timedelta(seconds=601)
        assert await one.nip98_replays().first_use(event, now, until)
        assert not await two.nip98_replays().first_use(event, now, until)
        assert not await two.nip98_admin_replays().first_use(event, now, until)
    finally:
        await close_container(one)
        await close_container(two)
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
