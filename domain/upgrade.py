"""VM upgrades: request, target custom spec and the pro-rated quote (pricing.md §10–11, D7–D8)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import attrs

from domain.enums import CpuArch, CpuMfg, PaymentMethod
from domain.errors import (
    DowngradeRefused,
    InvalidInput,
    PricingUnavailable,
    SubscriptionNotRenewable,
)
from domain.exchange import (
    ChargedAmount,
    RateTable,
    charge_amount,
    charged_currency,
    exact_charge_value,
    round_charge,
)
from domain.intervals import MONTHLY, Interval, require_utc, whole_seconds
from domain.model import CustomPricing, CustomPricingDisk, CustomTemplate, VmTemplate
from domain.money import Currency, Money
from domain.pricing import Spec, check_custom_limits, find_disk_row, require_whole_gib
from domain.unused_time import intervals_left, unused_value

_U16_MAX = 2**16 - 1
_U64_MAX = 2**64 - 1


class InvalidUpgradeConfig(InvalidInput):
    """An upgrade request that is not `{"new_cpu":…,"new_memory":…,"new_disk":…}` of ints ≥ 1."""


#: key of an adopted Upgrade payment's `metadata` keeping its legacy `upgrade_params` text
#: verbatim when that text could not be read (`domain.legacy.map_payment`, D18)
LEGACY_UPGRADE_PARAMS_KEY = "legacy_upgrade_params"


class NoCustomPricing(PricingUnavailable):
    """No enabled custom pricing of the region can host the VM's disk and CPU (R11.1)."""


class VmDeleted(SubscriptionNotRenewable):
    """The VM is deleted: nothing remains to pro-rate."""


class NoExpiry(SubscriptionNotRenewable):
    """The VM's subscription has no expiry, so no remaining time."""


class AlreadyExpired(SubscriptionNotRenewable):
    """The VM's subscription expires at or before the moment asked about."""


def _size(limit: int) -> Any:
    def check(_: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
            raise InvalidUpgradeConfig(f"{attribute.name} must be a whole number from 1 to {limit}")

    return check


@attrs.frozen(kw_only=True)
class UpgradeConfig:
    """What an upgrade asks for; None keeps the current value (schema: `upgrade_params`)."""

    new_cpu: int | None = attrs.field(default=None, validator=_size(_U16_MAX))
    new_memory: int | None = attrs.field(default=None, validator=_size(_U64_MAX))
    new_disk: int | None = attrs.field(default=None, validator=_size(_U64_MAX))

    def to_json(self) -> str:
        """The reference's compact JSON, nulls included: `{"new_cpu":4,"new_memory":null,…}`."""
        fields = {"new_cpu": self.new_cpu, "new_memory": self.new_memory, "new_disk": self.new_disk}
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def from_json(cls, data: str | bytes | Mapping[str, Any]) -> UpgradeConfig:
        """Parse stored or posted JSON; missing keys are null, unknown keys are ignored (serde)."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except ValueError:
                raise InvalidUpgradeConfig("upgrade config is not valid JSON") from None
        if not isinstance(data, Mapping):
            raise InvalidUpgradeConfig("upgrade config must be a JSON object")
        if LEGACY_UPGRADE_PARAMS_KEY in data:  # kept verbatim because it could not be read
            raise InvalidUpgradeConfig("the legacy upgrade_params of this payment are unreadable")
        return cls(
            new_cpu=data.get("new_cpu"),
            new_memory=data.get("new_memory"),
            new_disk=data.get("new_disk"),
        )


#: the Upgrade payment's metadata key holding the subscription expiry its price was pro-rated
#: to (ISO 8601 UTC, whole seconds), beside the UpgradeConfig's keys
QUOTED_EXPIRY_KEY = "quoted_expires"


def quoted_for(expires: datetime) -> str:
    """The `QUOTED_EXPIRY_KEY` value of a quote pro-rated to `expires`."""
    return require_utc(expires).replace(microsecond=0).isoformat()


def quoted_expiry(metadata: Any) -> datetime | None:
    """The expiry an Upgrade payment was pro-rated to (None: it did not record one)."""
    raw = metadata.get(QUOTED_EXPIRY_KEY) if isinstance(metadata, Mapping) else None
    if not isinstance(raw, str):
        return None
    try:
        quoted = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return None if quoted.tzinfo is None else quoted


def quote_outdated(metadata: Any, expires: datetime | None) -> datetime | None:
    """The expiry an Upgrade payment was pro-rated to, when the subscription now expires at
    another second (None: the same, or a payment that did not record it). Its price covers
    the growth until that expiry only: a renewal paid meanwhile would otherwise give the
    bigger size for the renewed months at the smaller price."""
    quoted = quoted_expiry(metadata)
    if quoted is None:
        return None
    if expires is not None and int(quoted.timestamp()) == int(expires.timestamp()):
        return None
    return quoted


#: a resize job that asks for nothing new: the host is resized to what the records say (the
#: worker's VM check sends it for a paid upgrade whose job was lost)
AS_RECORDED = UpgradeConfig()


def next_resize_mark(current: datetime | None, now: datetime) -> datetime:
    """The `resize_requested` an upgrade booked at `now` writes over `current`: `now`, but
    always later than `current`, so a worker holding `current` never clears the newer one
    (compare-and-clear; storage keeps whole seconds, hence the one-second step)."""
    now = require_utc(now)
    if current is None:
        return now
    return max(now, require_utc(current) + timedelta(seconds=1))


def check_no_downgrade(current: Spec, cfg: UpgradeConfig) -> None:
    """Refuse any requested value below the current one at quote time (D8), not after payment."""
    if cfg.new_cpu is not None and cfg.new_cpu < current.cpu:
        raise DowngradeRefused("Cannot downgrade CPU")
    if cfg.new_memory is not None and cfg.new_memory < current.memory:
        raise DowngradeRefused("Cannot downgrade memory")
    if cfg.new_disk is not None and cfg.new_disk < current.disk_size:
        raise DowngradeRefused("Cannot downgrade disk")


def check_whole_gib(cfg: UpgradeConfig) -> None:
    """Refuse a new upgrade request for memory or disk that is not whole GiB (400), as a new
    order is: it would be billed for the whole GiB above it (`billed_gib`). Only new quotes
    are judged: a paid upgrade is applied as quoted."""
    if cfg.new_memory is not None:
        require_whole_gib("memory", cfg.new_memory)
    if cfg.new_disk is not None:
        require_whole_gib("disk", cfg.new_disk)


def upgrade_superseded(recorded: VmTemplate | CustomTemplate, cfg: UpgradeConfig) -> bool:
    """A paid upgrade that a later one overtook: the VM's custom spec already holds every
    value `cfg` asks for or more, and more in at least one of them.

    Two upgrades paid in a row both write the records in their booking transactions, so the
    older job may find a bigger spec than it asks for; applying it then is refused as a
    downgrade, although nothing failed (the newer job, or the VM check's `AS_RECORDED`
    re-send, resizes the host). All values equal is this upgrade applied, not overtaken. A VM
    still on a standard template never had an upgrade applied, so nothing overtook it there.
    """
    if not isinstance(recorded, CustomTemplate):
        return False
    pairs = [
        (wanted, held)
        for wanted, held in (
            (cfg.new_cpu, recorded.cpu),
            (cfg.new_memory, recorded.memory),
            (cfg.new_disk, recorded.disk_size),
        )
        if wanted is not None
    ]
    return all(wanted <= held for wanted, held in pairs) and any(
        wanted < held for wanted, held in pairs
    )


def _differ(a: object, b: object, unknown: object) -> bool:
    """Both known and different; an unknown CPU kind on either side matches anything."""
    return a is not unknown and b is not unknown and a != b


def choose_upgrade_pricing(
    template: VmTemplate,
    pricings: Iterable[CustomPricing],
    disks: Iterable[CustomPricingDisk],
) -> CustomPricing:
    """The custom pricing a standard VM upgrades into (R11.1): first by ascending id that is
    enabled, in the template's region, CPU-compatible and has a disk row of the same type AND
    interface. Pricing expiry is not checked, as in the reference.
    """
    rows = list(disks)
    for pricing in sorted(pricings, key=lambda p: p.id):
        if pricing.region_id != template.region_id or not pricing.enabled:
            continue
        if _differ(template.cpu_mfg, pricing.cpu_mfg, CpuMfg.UNKNOWN):
            continue
        if _differ(template.cpu_arch, pricing.cpu_arch, CpuArch.UNKNOWN):
            continue
        wanted, offered = template.cpu_features, pricing.cpu_features
        if wanted and offered and not set(wanted) <= set(offered):
            continue
        own = [row for row in rows if row.pricing_id == pricing.id]
        if find_disk_row(template.disk_type, template.disk_interface, own) is not None:
            return pricing
    raise NoCustomPricing(
        "No custom pricing available for this region that supports disk type "
        f"{template.disk_type.name} with interface {template.disk_interface.display_name}"
    )


def build_upgrade_spec(
    current: VmTemplate | CustomTemplate, cfg: UpgradeConfig, pricing: CustomPricing
) -> CustomTemplate:
    """The target custom spec (R11.4): new values or current ones, disk and CPU kind from the
    current template, resource limits from the pricing. A custom VM keeps its template id (it
    is updated in place, R11.13); a standard VM gets id 0, a template not yet stored.
    """
    return CustomTemplate(
        id=current.id if isinstance(current, CustomTemplate) else 0,
        cpu=current.cpu if cfg.new_cpu is None else cfg.new_cpu,
        memory=current.memory if cfg.new_memory is None else cfg.new_memory,
        disk_size=current.disk_size if cfg.new_disk is None else cfg.new_disk,
        disk_type=current.disk_type,
        disk_interface=current.disk_interface,
        pricing_id=pricing.id,
        cpu_mfg=current.cpu_mfg,
        cpu_arch=current.cpu_arch,
        cpu_features=current.cpu_features,
        limits=pricing.limits,
    )


def check_upgrade_limits(
    target: CustomTemplate,
    cfg: UpgradeConfig,
    pricing: CustomPricing,
    disks: Iterable[CustomPricingDisk],
) -> None:
    """D21's limits for the values an upgrade changes. Kept values are not re-judged, so a
    standard VM below a pricing's minimum can still grow one resource.
    """
    changed = {"cpu": cfg.new_cpu, "memory": cfg.new_memory, "disk": cfg.new_disk}
    only = [name for name, value in changed.items() if value is not None]
    check_custom_limits(target, pricing, disks, only=only)


@attrs.frozen(kw_only=True)
class RemainingTime:
    """The unused part of the paid period, priced in the list currency (§10).

    `renewal_period_seconds` is the calendar interval holding the moment asked about, the
    one the part of an interval left is a share of (`unused_time.intervals_left`)."""

    seconds_remaining: int
    renewal_cost: Money
    renewal_period_seconds: int
    prorated_cost: Money


def _check_remaining(
    expires: datetime | None, now: datetime, deleted: bool, upgrade: bool
) -> datetime:
    now = require_utc(now)
    if deleted:
        what = "Can't upgrade deleted VM" if upgrade else "Can't calculate for deleted VM"
        raise VmDeleted(what)
    if expires is None:
        raise NoExpiry("VM subscription has no expiry date")
    if require_utc(expires) <= now:
        raise AlreadyExpired(
            "Can't upgrade an expired VM"
            if upgrade
            else "Can't calculate for expired VM from the specified date"
        )
    return require_utc(expires)


def _prorate(price: Money, remaining: int, period: int) -> Fraction:
    """price × remaining / period in the list currency's smallest units, exactly (D7: each
    side is exact until the charge is rounded once; the reference truncated it to the list
    minor unit first, which D2's rounding then could not see)."""
    return Fraction(price.amount * remaining, period)


def refund_seconds(expires: datetime | None, now: datetime, *, deleted: bool = False) -> int:
    """The seconds of paid time an admin refund from `now` covers, refused as
    `remaining_time_info` refuses: a deleted VM, no expiry, nothing left after `now`."""
    return whole_seconds(_check_remaining(expires, now, deleted, upgrade=False) - now)


def remaining_time_info(
    price: Money,
    interval: Interval,
    expires: datetime | None,
    now: datetime,
    *,
    deleted: bool = False,
) -> RemainingTime:
    """Remaining seconds and their value by the calendar alone (R10.1–R10.3).

    The value is calendar-exact (`unused_value`), not D7's rate (D7 governs upgrades): each
    whole calendar interval left is worth the price, the rest its share of the calendar
    interval holding `now` (`renewal_period_seconds`), floored. One rate per second over the
    interval ending at `expires` would value 12 months left by the last month's 28–31 days.
    Admin refunds value more exactly, from the periods the payments bought
    (`paid_periods.unused_intervals`, from each payment's real start); this rule is what
    they fall back to for time no payment's period explains.
    """
    end = _check_remaining(expires, now, deleted, upgrade=False)
    left = intervals_left(interval, end, now)
    return RemainingTime(
        seconds_remaining=whole_seconds(end - now),
        renewal_cost=price,
        renewal_period_seconds=left.period,
        prorated_cost=unused_value(price, interval, end, now),
    )


@attrs.frozen(kw_only=True)
class UpgradeQuote:
    """What an upgrade costs now, in the charged currency (UpgradeCostQuote, R11.9)."""

    upgrade: ChargedAmount
    renewal: ChargedAmount
    discount: ChargedAmount
    seconds_remaining: int


def _side(
    value: Fraction,
    source: Currency,
    target: Currency,
    method: PaymentMethod,
    rates: RateTable,
    now: datetime,
) -> tuple[Fraction, ChargedAmount]:
    """One side of the charge, `value` smallest units of `source` pro-rated exactly: its
    exact value in `target`, the currency charged (`exact_charge_value`: a card charge of a
    price listed in another fiat carries the cross rate), and that value shown rounded on
    its own as D2 rounds a charge (`round_charge`)."""
    exact, rate = exact_charge_value(value, source, method, target, rates, now)
    return exact, ChargedAmount(round_charge(exact, target), rate)


def upgrade_quote(
    old_price: Money,
    old_interval: Interval,
    new_price: Money,
    expires: datetime | None,
    now: datetime,
    method: PaymentMethod,
    rates: RateTable,
    *,
    deleted: bool = False,
) -> UpgradeQuote:
    """Pro-rated upgrade charge (R11.5–R11.9 with D7).

    Each price is spread over its own calendar interval ending at `expires` (old: the plan's
    interval, or 1 month for a custom VM; new: 1 month), and that one rate per second prices
    ALL the remaining seconds, as D7 prescribes. With more than one interval left (a
    multi-interval renewal, a yearly plan) the length of the interval ending at `expires`
    therefore scales the whole span: 12 months left ending after a 28-day month are valued
    at 365/28 months, after a 31-day month at 365/31. D7 governs this charge; refunds are
    valued by the periods the payments bought instead (`paid_periods.unused_intervals`),
    never above what those payments and this charge carried for the time (`unused_time`).

    Each side's value of the remaining seconds is exact, converted exactly into the charged
    currency (the new price's; old and new list prices may be in different currencies), and
    the charge is new − old, clamped at 0 (an upgrade never pays the buyer back), rounded
    once as D2 rounds a charge: msat half up, then up to a whole sat for Lightning, so the
    operator is never underpaid; a fiat charge up to its minor unit, for the same reason.
    The reference truncated each side to the list minor unit and then rounded each up to a
    sat: EUR 1.24 → 10.20 with one day left of a 31-day month at 100 000 EUR/BTC charged
    280 000 msat where D7 asks 290 000. The discount shown is the old side rounded on its own, so it
    and the charge may not add up to the new side to the last sat.
    """
    end = _check_remaining(expires, now, deleted, upgrade=True)
    remaining = whole_seconds(end - now)
    old_value = _prorate(old_price, remaining, old_interval.seconds_of_period_ending(end))
    new_value = _prorate(new_price, remaining, MONTHLY.seconds_of_period_ending(end))
    target = charged_currency(new_price.currency, method)
    new_exact, until = _side(new_value, new_price.currency, target, method, rates, now)
    old_exact, discount = _side(old_value, old_price.currency, target, method, rates, now)
    renewal = charge_amount(new_price, method, rates, now)
    upgrade = round_charge(max(Fraction(0), new_exact - old_exact), target)
    return UpgradeQuote(
        upgrade=ChargedAmount(upgrade, until.rate),
        renewal=renewal,
        discount=discount,
        seconds_remaining=remaining,
    )
