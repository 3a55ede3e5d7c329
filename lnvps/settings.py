"""Service settings: a kebab-case YAML file (the reference's config.yaml) with LNVPS_* overrides."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, ClassVar

import attrs
import cattrs
import yaml
from cattrs.v import format_exception

from domain.credit import MAX_LIVE_QUOTES
from domain.model import GIB
from domain.unpaid_ip_room import (
    DEFAULT_SPACE_SHARE_PERCENT,
    DEFAULT_UNPAID_IPV4_PREFIX,
    DEFAULT_UNPAID_IPV6_PREFIX,
    UnpaidIpRoom,
)
from domain.unpaid_room import (
    DEFAULT_HOST_SHARE_PERCENT,
    DEFAULT_UNPAID_CPU,
    DEFAULT_UNPAID_DISK,
    DEFAULT_UNPAID_MEMORY,
    UnpaidRoom,
)
from lnvps.config_keys import unknown_keys
from ports.replay import ADDRESS_SHARE, KEY_SHARE

#: the embedded default: a SQLite file in the working directory.
DEFAULT_DB_URL = "sqlite:///lnvps.db"
DEFAULT_LISTEN = "127.0.0.1:8000"
DEFAULT_ADMIN_LISTEN = "127.0.0.1:8001"


class SettingsError(Exception):
    """The configuration file or an override cannot be used."""


def _problem(exc: BaseException, type_: type | None) -> str:
    """cattrs' wording of one problem, with a validator's own reason (`'x' must be > 0`)."""
    said = format_exception(exc, type_)
    if isinstance(exc, ValueError) and str(exc):
        return f"{said} ({exc})"
    return said


def _check_public_url(value: str | None, key: str = "public-url") -> None:
    """NIP-98 events must name this URL (D26), so it has to be a whole `http(s)://host` URL."""
    if value is not None and not re.fullmatch(r"https?://[^/?#\s]+(/\S*)?", value):
        raise SettingsError(f"{key} must look like https://host[:port], got {value!r}")


@attrs.frozen(kw_only=True)
class EncryptionSettings:
    key_file: str
    auto_generate: bool = False


@attrs.frozen(kw_only=True)
class LndSettings:
    url: str
    macaroon: str
    cert: str | None = None


@attrs.frozen(kw_only=True)
class LightningSettings:
    """`lnd` for a real node; absent means the dev rail (invoices paid by `lnvps dev pay`).

    `enabled: false` is the fiat-only shop: no Lightning at all (no node, no dev rail, no
    NWC auto-renewal, no LNURL), the real clock, and only the configured fiat rails
    (`lnvps.dev_mode.check_lightning_off` refuses it with `lnd` or without a fiat rail).
    """

    lnd: LndSettings | None = None
    enabled: bool = True


@attrs.frozen(kw_only=True)
class RedisSettings:
    """Redis for the work queue, the exchange rates and the VM state cache."""

    url: str
    ttl: int = 300
    #: the jobs stream (the reference's `worker`); its consumer group is `workers`
    stream: str = "worker"
    #: prepended to the rate (`exchange_rate:…`) and VM state (`vm_state:…`) keys
    key_prefix: str = ""


#: where BTC prices come from: a live feed, or prices written in the configuration
RATE_SOURCES = ("mempool", "fixed")


def _check_max_change(_: object, __: object, value: Decimal | None) -> None:
    if value is not None and not value > 0:
        raise ValueError("rates.max-change must be above 0 (percent), or null for no bound")


@attrs.frozen(kw_only=True)
class RatesSettings:
    """`mempool` reads live BTC prices; `fixed` uses the given prices. Unset: `fixed` in the
    embedded default (the dev rail), `mempool` with a real Lightning node
    (`Settings.rate_source`); `fixed` with a real node is refused at start unless
    `allow-fixed-in-production: true` (Lightning would be priced at made-up rates)."""

    source: str | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.in_(RATE_SOURCES))
    )
    url: str = "https://mempool.space/api/v1/prices"
    fixed: dict[str, Decimal] = attrs.field(
        factory=lambda: {"EUR": Decimal(100_000), "USD": Decimal(110_000)}
    )
    allow_fixed_in_production: bool = False
    #: seconds: a feed's price older than this when fetched is refused (a frozen feed), and
    #: the last accepted rate goes stale 300 s after its fetch. mempool.space updates every
    #: 5 minutes; raise it for a self-hosted instance that updates less often (hourly: 3900)
    max_feed_age: int = attrs.field(default=900, validator=attrs.validators.gt(0))
    #: percent: a new rate further than this from the last accepted one is refused as a
    #: glitch (logged at ERROR, admins told) until every fetch has confirmed it for 15
    #: minutes; null: no bound. A process's first rates are compared with the shared store's
    max_change: Decimal | None = attrs.field(default=Decimal(20), validator=_check_max_change)


@attrs.frozen(kw_only=True)
class SmtpSettings:
    server: str
    port: int = 587
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    sender: str = "lnvps@localhost"
    admin_emails: list[str] = attrs.field(factory=list)


@attrs.frozen(kw_only=True)
class RevolutSettings:
    """The Revolut Merchant API (`url` as the reference's `revolut.url`) and its webhook secret."""

    url: str = "https://merchant.revolut.com"
    token: str = attrs.field(repr=False)
    api_version: str = "2024-09-01"
    webhook_secret: str | None = attrs.field(default=None, repr=False)
    #: seconds `Revolut-Request-Timestamp` may be off from now (Revolut documents 5 minutes)
    webhook_tolerance: int = attrs.field(default=300, validator=attrs.validators.gt(0))


@attrs.frozen(kw_only=True)
class StripeSettings:
    secret_key: str = attrs.field(repr=False)
    url: str = "https://api.stripe.com"
    webhook_secret: str | None = attrs.field(default=None, repr=False)
    #: seconds the `t=` of `Stripe-Signature` may be off from now (Stripe's libraries: 300)
    webhook_tolerance: int = attrs.field(default=300, validator=attrs.validators.gt(0))
    #: where Stripe Checkout sends the customer after paying / giving up (default: public-url)
    success_url: str | None = None
    cancel_url: str | None = None


@attrs.frozen(kw_only=True)
class BankTransferSettings:
    """The manual bank transfer rail: the account the customer pays into. An operator marks
    each payment received through the admin API."""

    account_name: str
    iban: str
    bic: str | None = None
    bank_name: str | None = None
    #: days a bank-transfer payment stays payable (a transfer takes a few business days)
    days_to_pay: int = attrs.field(default=7, validator=attrs.validators.gt(0))

    def account_details(self) -> dict[str, str]:
        """The account as shown to the payer (empty fields left out)."""
        fields = {
            "account_name": self.account_name,
            "iban": self.iban,
            "bic": self.bic,
            "bank_name": self.bank_name,
        }
        return {name: value for name, value in fields.items() if value}


@attrs.frozen(kw_only=True)
class DevSettings:
    """Dev-only switches: where the dev rail, dummy host and dev clock keep their state."""

    state_dir: str = "."
    seed_demo: bool = True
    #: `true` runs the dev tools with a config that looks like production (a database
    #: server, a fiat rail, …): a trial on the real services (`lnvps.dev_mode`)
    enabled: bool | None = None


@attrs.frozen(kw_only=True)
class WorkerSettings:
    """How often the worker schedules CheckVms / CheckSubscriptions (the reference: 30 s)."""

    check_interval: float = attrs.field(default=30.0, validator=attrs.validators.gt(0))

    @property
    def min_check_gap(self) -> timedelta:
        """How soon after one run a periodic check may run again: 10 s, or half the interval
        when that is shorter. The gap skips the jobs that piled up during a stall; a fixed 10 s
        made `check-interval: 1` (dev, e2e tests) check only every 10 s."""
        return min(timedelta(seconds=10), timedelta(seconds=self.check_interval / 2))


@attrs.frozen(kw_only=True)
class LnurlSettings:
    """D25: a token bucket per client address on the unauthenticated LNURL-pay endpoints.

    `rate-per-minute: 0` turns it off. Behind a reverse proxy, `trust-forwarded-for` keys the
    bucket by the last `X-Forwarded-For` address (the one the proxy itself appended); it is
    the proxy rule of every per-address limit, the order limit (`order-rate`) included.
    """

    rate_per_minute: int = attrs.field(default=20, validator=attrs.validators.ge(0))
    burst: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    trust_forwarded_for: bool = False

    @property
    def per_minute(self) -> float:
        return self.rate_per_minute


@attrs.frozen(kw_only=True)
class ReplaySharesSettings:
    """D26: how many live NIP-98 event ids one signing key and one client address (IPv4,
    IPv6 /64; a /48 holds more) may hold in the in-process replay guard; over it, 429.

    The defaults are far above what a person or a client app signs in one event window;
    raise them for a script that signs more than one write a second with one key. Not used
    with `redis` configured: that guard has no bound one client could fill.
    """

    per_key: int = attrs.field(default=KEY_SHARE, validator=attrs.validators.ge(1))
    per_address: int = attrs.field(default=ADDRESS_SHARE, validator=attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class HourlyRateSettings:
    """A token bucket: `burst` at once, then `per-hour` an hour; `per-hour: 0` turns it off.

    Each subclass is one YAML section; the values it leaves out are the subclass's
    `default_per_hour` and `default_burst`.
    """

    default_per_hour: ClassVar[int]
    default_burst: ClassVar[int]

    per_hour: int = attrs.field(
        default=attrs.Factory(lambda self: self.default_per_hour, takes_self=True),
        validator=attrs.validators.ge(0),
    )
    burst: int = attrs.field(
        default=attrs.Factory(lambda self: self.default_burst, takes_self=True),
        validator=attrs.validators.ge(1),
    )

    @property
    def per_minute(self) -> float:
        return self.per_hour / 60  # pacing, not money: a float is fine


@attrs.frozen(kw_only=True)
class OrderRateSettings(HourlyRateSettings):
    """D25: a token bucket per client address on the order routes (`POST /api/v1/vm`, its
    custom-template twin, `POST /api/v1/subscriptions`): `burst` orders at once, then
    `per-hour` an hour.

    The per-user cap of never-paid VMs does not bound a client that signs with new keys
    (each a new user). `per-hour: 0` turns it off; behind a reverse proxy the address is
    the one `lnurl.trust-forwarded-for` picks.
    """

    default_per_hour = 10
    default_burst = 5


@attrs.frozen(kw_only=True)
class VmActionRateSettings(HourlyRateSettings):
    """A token bucket per user on the VM actions (start, stop, restart, re-install): each a
    synchronous hypervisor call (re-install rebuilds the disk). `burst` at once, then
    `per-hour` an hour; `per-hour: 0` turns it off."""

    default_per_hour = 30
    default_burst = 10


@attrs.frozen(kw_only=True)
class EmailVerifyRateSettings(HourlyRateSettings):
    """E-mail verification mails (the account's or an admin's change of an address): one
    token bucket per user and one per target address, each `burst` mails at once, then
    `per-hour` an hour; `per-hour: 0` turns it off.

    Every save of an unverified address mails it again, so without a limit one key looping
    the request, or many free keys naming one stranger's address, would make the operator's
    SMTP send without bound (and get the account suspended). Past a bucket the change is
    still saved, unmailed; the admin's change draws only from the address's bucket.
    """

    default_per_hour = 3
    default_burst = 3


def _optional_ge1() -> Any:
    return attrs.validators.optional(attrs.validators.ge(1))


@attrs.frozen(kw_only=True)
class MaxUnpaidRoomSettings:
    """D25: what one user's never-paid VM orders may hold together, the new order included
    (`null`: no limit on that one); the order beyond is refused (422) before it is placed.
    Memory and disk in GiB."""

    cpu: int | None = attrs.field(default=DEFAULT_UNPAID_CPU, validator=_optional_ge1())
    memory_gib: int | None = attrs.field(
        default=DEFAULT_UNPAID_MEMORY // GIB, validator=_optional_ge1()
    )
    disk_gib: int | None = attrs.field(
        default=DEFAULT_UNPAID_DISK // GIB, validator=_optional_ge1()
    )


def _prefix_of(bits: int) -> Any:
    """A prefix length of a `bits`-bit address family, or None."""
    return attrs.validators.optional(
        attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(bits))
    )


@attrs.frozen(kw_only=True)
class MaxUnpaidIpRoomSettings:
    """D25: the addresses one user's never-paid IP-range orders may hold together, the new
    order included, as the prefix of one block of that many (`ipv4: 23`: 512 addresses;
    `null`: no limit on that family); the order beyond is refused (422)."""

    ipv4: int | None = attrs.field(default=DEFAULT_UNPAID_IPV4_PREFIX, validator=_prefix_of(32))
    ipv6: int | None = attrs.field(default=DEFAULT_UNPAID_IPV6_PREFIX, validator=_prefix_of(128))


def _check_share(_: object, attribute: attrs.Attribute[Any], value: Decimal | None) -> None:
    if value is not None and not Decimal(0) < value <= Decimal(100):
        raise ValueError(
            f"{attribute.name.replace('_', '-')} must be above 0 and at most 100 (percent)"
        )


@attrs.frozen(kw_only=True)
class VmHostsSettings:
    """How clients of `vm_host` rows are built; URL, node and token come from the row itself.

    `proxmox` overrides `ProxmoxConfig` fields (bridge, verify-tls, poll-interval-ms, …),
    `libvirt` the `LibvirtVmHost` ones (storage-pool, network, nameservers, download-dir).
    `test-connection: false` saves host rows through the admin API without checking that the
    host answers.
    `libvirt-test-files` lets libvirt rows name a test-driver node file (tests only).
    """

    proxmox: dict[str, Any] = attrs.field(factory=dict)
    libvirt: dict[str, Any] = attrs.field(factory=dict)
    test_connection: bool = True
    libvirt_test_files: bool = False


@attrs.frozen(kw_only=True)
class NwcSettings:
    """Nostr Wallet Connect relays: the server connects where a user's wallet string says, so
    relays on private, loopback or link-local addresses are refused unless
    `allow-private-relays` is true (unset: true only in the embedded default, dev mode)."""

    allow_private_relays: bool | None = None


@attrs.frozen(kw_only=True)
class Settings:
    """What the composition root needs to build the service."""

    db: str = DEFAULT_DB_URL
    listen: str = DEFAULT_LISTEN
    #: the admin API (D20); an empty value turns it off
    admin_listen: str = DEFAULT_ADMIN_LISTEN
    delete_after: int = 3
    #: D25: never-paid VMs one user may hold at once; the next order is refused (422)
    max_unpaid_vms: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    #: never-paid IP-range subscriptions one user may hold at once; the next is refused (422)
    max_unpaid_subscriptions: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    #: D25: what one user's never-paid VM orders may hold together; the next order is 422
    max_unpaid_room: MaxUnpaidRoomSettings = MaxUnpaidRoomSettings()
    #: D25: percent of each host's CPU, memory and disk, and of each region's IPv4
    #: addresses, that never-paid orders may hold together (`null` or 100: no share); the
    #: rest is kept for paid VMs
    unpaid_host_share: Decimal | None = attrs.field(
        default=Decimal(DEFAULT_HOST_SHARE_PERCENT),
        validator=_check_share,
    )
    #: D25: the addresses one user's never-paid IP-range orders may hold together (422 past)
    max_unpaid_ip_room: MaxUnpaidIpRoomSettings = MaxUnpaidIpRoomSettings()
    #: D25: percent of each IP space's addresses never-paid orders may hold together (`null`
    #: or 100: no share); the rest is sold only to payers
    unpaid_ip_space_share: Decimal | None = attrs.field(
        default=Decimal(DEFAULT_SPACE_SHARE_PERCENT),
        validator=_check_share,
    )
    #: live (unpaid, unexpired) renewal and upgrade invoices one subscription may hold at
    #: once; a request for one more is refused (422) before the node or provider is asked
    max_live_quotes: int = attrs.field(default=MAX_LIVE_QUOTES, validator=attrs.validators.ge(1))
    read_only: bool = False
    public_url: str | None = None
    #: the admin API's own public URL (D26 for its port): events must name it when set
    admin_public_url: str | None = None
    tax_rate: dict[str, Decimal] = attrs.field(factory=dict)
    encryption: EncryptionSettings | None = None
    lightning: LightningSettings = LightningSettings()
    redis: RedisSettings | None = None
    rates: RatesSettings = RatesSettings()
    smtp: SmtpSettings | None = None
    revolut: RevolutSettings | None = None
    stripe: StripeSettings | None = None
    bank_transfer: BankTransferSettings | None = None
    dev: DevSettings = DevSettings()
    worker: WorkerSettings = WorkerSettings()
    lnurl: LnurlSettings = LnurlSettings()
    order_rate: OrderRateSettings = OrderRateSettings()
    vm_action_rate: VmActionRateSettings = VmActionRateSettings()
    email_verify_rate: EmailVerifyRateSettings = EmailVerifyRateSettings()
    vm_hosts: VmHostsSettings = VmHostsSettings()
    nwc: NwcSettings = NwcSettings()
    replay_shares: ReplaySharesSettings = ReplaySharesSettings()
    #: `text` (readable, the dev default) or `json` (one object per line)
    log_format: str | None = None
    #: browser origins allowed by CORS (with credentials); empty: any origin, no credentials
    cors_origins: list[str] = attrs.field(factory=list)
    #: the config file's keys no setting reads (`lnvps.config_keys`), warned about at start
    unknown_keys: tuple[str, ...] = ()

    @property
    def is_embedded_default(self) -> bool:
        """No real Lightning node: the dev rail, the dev clock and `lnvps dev` tools are on.

        This is the one-box trial (SQLite by default; MariaDB, Redis or a fiat rail only with
        `dev.enabled: true`, `lnvps.dev_mode`); production configures `lightning.lnd`, or
        turns Lightning off (`lightning.enabled: false`, a fiat-only shop), either of which
        turns every dev switch off.
        """
        return self.lightning.lnd is None and self.lightning.enabled

    @property
    def lightning_off(self) -> bool:
        """`lightning.enabled: false`: a fiat-only shop, no Lightning rail of any kind."""
        return not self.lightning.enabled

    @property
    def rate_source(self) -> str:
        """`rates.source`, by default `fixed` in the embedded default (demo prices) and the
        live `mempool` feed with a real Lightning node."""
        if self.rates.source is not None:
            return self.rates.source
        return "fixed" if self.is_embedded_default else "mempool"

    @property
    def unpaid_room(self) -> UnpaidRoom:
        """The D25 limits on never-paid orders' room, as the order use cases take them."""
        room, share = self.max_unpaid_room, self.unpaid_host_share
        return UnpaidRoom(
            cpu=room.cpu,
            memory=None if room.memory_gib is None else room.memory_gib * GIB,
            disk=None if room.disk_gib is None else room.disk_gib * GIB,
            host_share=None if share is None or share == 100 else Fraction(share) / 100,
        )

    @property
    def unpaid_ip_room(self) -> UnpaidIpRoom:
        """The D25 limits on never-paid IP-range orders, as `create_subscription` takes them."""
        room, share = self.max_unpaid_ip_room, self.unpaid_ip_space_share
        return UnpaidIpRoom(
            ipv4=room.ipv4,
            ipv6=room.ipv6,
            space_share=None if share is None or share == 100 else Fraction(share) / 100,
        )

    @property
    def nwc_allows_private_relays(self) -> bool:
        """`nwc.allow-private-relays`, by default on only in the embedded default."""
        allowed = self.nwc.allow_private_relays
        return self.is_embedded_default if allowed is None else allowed


def _kebab_to_snake(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k).replace("-", "_"): _kebab_to_snake(v) for k, v in value.items()}
    return value


def _converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=False)
    converter.register_structure_hook(Decimal, lambda v, _: Decimal(str(v)))
    # tax-rate keys are country codes; keep them as written
    return converter


def load_settings(
    config_path: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Read the YAML file (if any), then apply `LNVPS_DB` / `LNVPS_LISTEN` overrides."""
    env = os.environ if environ is None else environ
    raw: dict[str, Any] = {}
    path = config_path or env.get("LNVPS_CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"cannot read config file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise SettingsError(f"config file {path} must hold a mapping")
        # maps keyed by codes keep their keys as written
        tax = loaded.pop("tax-rate", None)
        fixed = (
            (loaded.get("rates") or {}).pop("fixed", None)
            if isinstance(loaded.get("rates"), dict)
            else None
        )
        raw = _kebab_to_snake(loaded)
        if tax is not None:
            raw["tax_rate"] = tax
        if fixed is not None:
            raw.setdefault("rates", {})["fixed"] = fixed
    for key, name in (
        ("db", "LNVPS_DB"),
        ("listen", "LNVPS_LISTEN"),
        ("admin_listen", "LNVPS_ADMIN_LISTEN"),
        ("public_url", "LNVPS_PUBLIC_URL"),
        ("admin_public_url", "LNVPS_ADMIN_PUBLIC_URL"),
    ):
        if env.get(name):
            raw[key] = env[name]
    raw.pop("unknown_keys", None)  # not a setting a file may give
    try:
        settings = _converter().structure(raw, Settings)
    except cattrs.BaseValidationError as exc:  # each problem named by where it is
        problems = "; ".join(cattrs.transform_error(exc, path="config", format_exception=_problem))
        raise SettingsError(f"invalid configuration: {problems}") from exc
    _check_public_url(settings.public_url)
    _check_public_url(settings.admin_public_url, "admin-public-url")
    _check_rate_source(settings)
    return attrs.evolve(settings, unknown_keys=tuple(unknown_keys(raw, Settings)))


def _check_rate_source(settings: Settings) -> None:
    """Fixed rates never go stale: with a real Lightning node they would price every invoice
    at made-up BTC rates, so they must be asked for by name."""
    if (
        not settings.is_embedded_default
        and settings.rate_source == "fixed"
        and not settings.rates.allow_fixed_in_production
    ):
        raise SettingsError(
            "rates.source: fixed prices Lightning at the configured rates forever, whatever"
            " BTC trades at; with lightning.lnd configured (or Lightning off) use"
            " rates.source: mempool (the default), or set rates.allow-fixed-in-production: true"
        )


def resolve_db_url(cli_value: str | None, settings: Settings) -> str:
    """`--db URL`, else `LNVPS_DB`, else the config file's `db`, else the embedded SQLite."""
    return cli_value or settings.db
