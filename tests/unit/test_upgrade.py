"""Upgrades: request JSON, downgrade refusal (D8), target spec and calendar pro-rating (D7)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import CpuArch, CpuMfg, DiskInterface, DiskType, IntervalType, PaymentMethod
from domain.errors import (
    DowngradeRefused,
    NoExchangeRate,
    PaymentMethodUnsupported,
    SpecOutOfLimits,
)
from domain.exchange import ExchangeRate, RateTable
from domain.intervals import MONTHLY, Interval
from domain.model import (
    GIB,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    ResourceLimits,
    VmTemplate,
)
from domain.money import Currency, Money
from domain.pricing import custom_price
from domain.upgrade import (
    AlreadyExpired,
    InvalidUpgradeConfig,
    NoCustomPricing,
    NoExpiry,
    UpgradeConfig,
    VmDeleted,
    build_upgrade_spec,
    check_no_downgrade,
    check_upgrade_limits,
    choose_upgrade_pricing,
    remaining_time_info,
    upgrade_quote,
    upgrade_superseded,
)

T = TypeVar("T")
# E6 under D7: one day left of a month that ends 31 March (a 31-day month: 28 Feb → 31 Mar)
EXPIRES = datetime(2026, 3, 31, tzinfo=UTC)
NOW = EXPIRES - timedelta(days=1)
EUR_132 = Money(Currency.EUR, 132)
LN = PaymentMethod.LIGHTNING
REVOLUT = PaymentMethod.REVOLUT


def rates_at(moment: datetime) -> RateTable:
    return RateTable.of(
        [
            ExchangeRate(Currency.EUR, Decimal(100_000), moment),
            ExchangeRate(Currency.USD, Decimal(110_000), moment),
        ]
    )


RATES = rates_at(NOW)
LIMITS = ResourceLimits(network_mbps=100, disk_iops_read=5000)


def template(**kw: Any) -> VmTemplate:
    fields: dict[str, Any] = dict(
        id=11,
        name="e6",
        enabled=True,
        created=NOW,
        expires=None,
        cpu=2,
        memory=2 * GIB,
        disk_size=64 * GIB,
        disk_type=DiskType.SSD,
        disk_interface=DiskInterface.PCIE,
        cost_plan_id=1,
        region_id=1,
    )
    return VmTemplate(**(fields | kw))


def pricing(id: int = 7, **kw: Any) -> CustomPricing:
    fields: dict[str, Any] = dict(
        id=id,
        name=f"p{id}",
        enabled=True,
        created=NOW,
        expires=None,
        region_id=1,
        currency="EUR",
        cpu_cost=200,
        memory_cost=100,
        ip4_cost=0,
        ip6_cost=0,
        limits=LIMITS,
    )
    return CustomPricing(**(fields | kw))


def disk(
    pricing_id: int = 7,
    kind: DiskType = DiskType.SSD,
    interface: DiskInterface = DiskInterface.PCIE,
    **kw: Any,
) -> CustomPricingDisk:
    return CustomPricingDisk(
        id=pricing_id * 10,
        pricing_id=pricing_id,
        kind=kind,
        interface=interface,
        cost=50,
        **kw,
    )


# --- the request ---------------------------------------------------------------------------


def test_upgrade_config_serialises_to_the_reference_json_with_nulls() -> None:
    assert UpgradeConfig(new_cpu=4).to_json() == '{"new_cpu":4,"new_memory":null,"new_disk":null}'


def test_upgrade_config_reads_json_text_bytes_and_objects() -> None:
    text = '{"new_cpu": null, "new_memory": 4294967296, "new_disk": 107374182400}'
    expected = UpgradeConfig(new_memory=4 * GIB, new_disk=100 * GIB)
    assert UpgradeConfig.from_json(text) == expected
    assert UpgradeConfig.from_json(text.encode()) == expected
    assert UpgradeConfig.from_json(json.loads(text)) == expected


def test_missing_keys_are_null_and_unknown_keys_ignored() -> None:
    assert UpgradeConfig.from_json('{"new_cpu": 8, "colour": "red"}') == UpgradeConfig(new_cpu=8)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[4]",
        '"cpu"',
        '{"new_cpu": "4"}',
        '{"new_cpu": true}',
        '{"new_cpu": 0}',
        '{"new_cpu": -1}',
        '{"new_cpu": 4.5}',
        '{"new_cpu": 65536}',
        '{"new_memory": 18446744073709551616}',
    ],
)
def test_invalid_upgrade_config_is_refused(text: str) -> None:
    with pytest.raises(InvalidUpgradeConfig):
        UpgradeConfig.from_json(text)


@given(
    cpu=st.none() | st.integers(1, 2**16 - 1),
    memory=st.none() | st.integers(1, 2**64 - 1),
    disk_size=st.none() | st.integers(1, 2**64 - 1),
)
def test_upgrade_config_json_round_trips(
    cpu: int | None, memory: int | None, disk_size: int | None
) -> None:
    cfg = UpgradeConfig(new_cpu=cpu, new_memory=memory, new_disk=disk_size)
    assert UpgradeConfig.from_json(cfg.to_json()) == cfg
    assert list(json.loads(cfg.to_json())) == ["new_cpu", "new_memory", "new_disk"]


# --- D8 downgrade refusal ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (UpgradeConfig(new_cpu=1), "Cannot downgrade CPU"),
        (UpgradeConfig(new_memory=GIB), "Cannot downgrade memory"),
        (UpgradeConfig(new_disk=63 * GIB), "Cannot downgrade disk"),
        (UpgradeConfig(new_cpu=1, new_memory=GIB), "Cannot downgrade CPU"),
        (UpgradeConfig(new_cpu=8, new_disk=GIB), "Cannot downgrade disk"),
    ],
)
def test_downgrade_is_refused_at_quote_time(cfg: UpgradeConfig, message: str) -> None:
    with pytest.raises(DowngradeRefused) as caught:
        check_no_downgrade(template(), cfg)
    assert caught.value.message == message


@pytest.mark.parametrize(
    "cfg",
    [
        UpgradeConfig(),
        UpgradeConfig(new_cpu=2, new_memory=2 * GIB, new_disk=64 * GIB),
        UpgradeConfig(new_cpu=3),
        UpgradeConfig(new_disk=64 * GIB + 1),
    ],
)
def test_same_or_larger_values_are_not_a_downgrade(cfg: UpgradeConfig) -> None:
    check_no_downgrade(template(), cfg)


def _custom(cpu: int = 4, memory: int = 8 * GIB, disk_size: int = 64 * GIB) -> CustomTemplate:
    return CustomTemplate(
        id=3,
        cpu=cpu,
        memory=memory,
        disk_size=disk_size,
        disk_type=DiskType.SSD,
        disk_interface=DiskInterface.PCIE,
        pricing_id=7,
    )


@pytest.mark.parametrize(
    "cfg",
    [
        UpgradeConfig(new_memory=4 * GIB),
        UpgradeConfig(new_cpu=4, new_memory=4 * GIB),
        UpgradeConfig(new_cpu=3, new_memory=8 * GIB, new_disk=64 * GIB),
        UpgradeConfig(new_disk=32 * GIB),
    ],
)
def test_an_upgrade_the_records_already_exceed_is_superseded(cfg: UpgradeConfig) -> None:
    assert upgrade_superseded(_custom(), cfg)


@pytest.mark.parametrize(
    "cfg",
    [
        UpgradeConfig(),  # asks for nothing: the VM check's re-send
        UpgradeConfig(new_memory=8 * GIB),  # this upgrade itself, applied
        UpgradeConfig(new_cpu=4, new_memory=8 * GIB, new_disk=64 * GIB),
        UpgradeConfig(new_memory=16 * GIB),  # not applied yet
        UpgradeConfig(new_cpu=8, new_memory=4 * GIB),  # a value the records lack
        UpgradeConfig(new_memory=4 * GIB, new_disk=64 * GIB + 1),
    ],
)
def test_an_upgrade_the_records_do_not_cover_beyond_it_is_not_superseded(
    cfg: UpgradeConfig,
) -> None:
    assert not upgrade_superseded(_custom(), cfg)


def test_a_vm_on_a_standard_template_never_had_an_upgrade_to_supersede_it() -> None:
    assert not upgrade_superseded(template(), UpgradeConfig(new_cpu=1))


# --- choosing the pricing (§11.1) ----------------------------------------------------------


def test_first_enabled_pricing_by_id_with_matching_disk_type_and_interface_wins() -> None:
    pricings = [pricing(9), pricing(5, enabled=False), pricing(8), pricing(3, region_id=2)]
    disks = [disk(9), disk(5), disk(8), disk(3)]
    assert choose_upgrade_pricing(template(), pricings, disks).id == 8


def test_disk_interface_must_match_too() -> None:
    pricings = [pricing(1), pricing(2)]
    disks = [disk(1, interface=DiskInterface.SATA), disk(2)]
    assert choose_upgrade_pricing(template(), pricings, disks).id == 2


@pytest.mark.parametrize(
    ("tpl_kw", "pricing_kw", "matches"),
    [
        ({"cpu_mfg": CpuMfg.AMD}, {"cpu_mfg": CpuMfg.INTEL}, False),
        ({"cpu_mfg": CpuMfg.AMD}, {"cpu_mfg": CpuMfg.AMD}, True),
        ({"cpu_mfg": CpuMfg.UNKNOWN}, {"cpu_mfg": CpuMfg.INTEL}, True),
        ({"cpu_mfg": CpuMfg.AMD}, {"cpu_mfg": CpuMfg.UNKNOWN}, True),
        ({"cpu_arch": CpuArch.X86_64}, {"cpu_arch": CpuArch.ARM64}, False),
        ({"cpu_arch": CpuArch.UNKNOWN}, {"cpu_arch": CpuArch.ARM64}, True),
        ({"cpu_features": ("AVX2", "AES")}, {"cpu_features": ("AES",)}, False),
        ({"cpu_features": ("AES",)}, {"cpu_features": ("AES", "AVX2")}, True),
        ({"cpu_features": ("AES",)}, {"cpu_features": ()}, True),
        ({"cpu_features": ()}, {"cpu_features": ("AES",)}, True),
    ],
)
def test_cpu_kind_must_be_compatible(
    tpl_kw: dict[str, Any], pricing_kw: dict[str, Any], matches: bool
) -> None:
    pricings, disks = [pricing(1, **pricing_kw)], [disk(1)]
    if matches:
        assert choose_upgrade_pricing(template(**tpl_kw), pricings, disks).id == 1
    else:
        with pytest.raises(NoCustomPricing):
            choose_upgrade_pricing(template(**tpl_kw), pricings, disks)


@pytest.mark.parametrize(
    ("kind", "interface", "message_end"),
    [
        (DiskType.SSD, DiskInterface.PCIE, "disk type SSD with interface PCIe"),
        (DiskType.HDD, DiskInterface.SATA, "disk type HDD with interface SATA"),
    ],
)
def test_no_pricing_is_the_reference_message(
    kind: DiskType, interface: DiskInterface, message_end: str
) -> None:
    tpl = template(disk_type=kind, disk_interface=interface)
    with pytest.raises(NoCustomPricing) as caught:
        choose_upgrade_pricing(
            tpl, [pricing(1)], [disk(1, kind=DiskType.SSD, interface=DiskInterface.SCSI)]
        )
    assert caught.value.message == (
        f"No custom pricing available for this region that supports {message_end}"
    )


# --- target spec (§11.4) -------------------------------------------------------------------


def test_standard_vm_target_spec_takes_new_values_and_the_pricings_limits() -> None:
    spec = build_upgrade_spec(template(cpu_mfg=CpuMfg.AMD), UpgradeConfig(new_cpu=4), pricing())
    assert (spec.id, spec.cpu, spec.memory, spec.disk_size) == (0, 4, 2 * GIB, 64 * GIB)
    assert (spec.disk_type, spec.disk_interface) == (DiskType.SSD, DiskInterface.PCIE)
    assert (spec.pricing_id, spec.cpu_mfg) == (7, CpuMfg.AMD)
    assert spec.limits == LIMITS


def test_custom_vm_target_spec_keeps_its_template_id() -> None:
    current = CustomTemplate(
        id=42,
        cpu=2,
        memory=4 * GIB,
        disk_size=80 * GIB,
        disk_type=DiskType.HDD,
        disk_interface=DiskInterface.SATA,
        pricing_id=7,
    )
    spec = build_upgrade_spec(current, UpgradeConfig(new_memory=8 * GIB), pricing())
    assert (spec.id, spec.cpu, spec.memory, spec.disk_size) == (42, 2, 8 * GIB, 80 * GIB)
    assert spec.disk_type is DiskType.HDD


def test_upgrade_limits_judge_changed_values_only() -> None:
    strict = pricing(min_cpu=1, max_cpu=4, min_memory=4 * GIB, max_memory=8 * GIB)
    disks = [disk(max_disk_size=100 * GIB)]
    # memory 2 GiB is below the minimum but is kept, so only the new CPU count is judged
    cfg = UpgradeConfig(new_cpu=4)
    check_upgrade_limits(build_upgrade_spec(template(), cfg, strict), cfg, strict, disks)
    too_many = UpgradeConfig(new_cpu=5)
    with pytest.raises(SpecOutOfLimits, match="CPU must be between 1 and 4, got 5"):
        check_upgrade_limits(
            build_upgrade_spec(template(), too_many, strict), too_many, strict, disks
        )
    too_big = UpgradeConfig(new_disk=200 * GIB)
    with pytest.raises(SpecOutOfLimits, match="disk size"):
        check_upgrade_limits(
            build_upgrade_spec(template(), too_big, strict), too_big, strict, disks
        )


# --- remaining time (§10 with D7) ----------------------------------------------------------


def test_remaining_time_uses_the_calendar_month_ending_at_expiry() -> None:
    info = remaining_time_info(EUR_132, MONTHLY, EXPIRES, NOW)
    assert info.seconds_remaining == 86_400
    assert info.renewal_period_seconds == 31 * 86_400
    assert info.prorated_cost == Money(Currency.EUR, 4)  # 132/31 = 4.26 → 4


def test_a_year_ending_in_a_leap_year_is_366_days() -> None:
    expires = datetime(2028, 3, 1, tzinfo=UTC)
    info = remaining_time_info(
        EUR_132, Interval(IntervalType.YEAR), expires, expires - timedelta(days=1)
    )
    assert info.renewal_period_seconds == 366 * 86_400


def test_twelve_months_left_are_worth_twelve_prices_but_d7_quotes_by_the_last_month() -> None:
    """12 months left ending 15 Mar 2027 (a 28-day last month): the refund value is 12 prices
    (calendar-exact), while the upgrade charge keeps D7's one rate per second over the month
    ending at expiry for all 365 days: (5200 − 4800) × 365/28, rounded once."""
    now, expires = datetime(2026, 3, 15, tzinfo=UTC), datetime(2027, 3, 15, tzinfo=UTC)
    info = remaining_time_info(Money(Currency.EUR, 4800), MONTHLY, expires, now)
    assert info.prorated_cost == Money(Currency.EUR, 12 * 4800)
    assert info.seconds_remaining == 365 * 86_400
    rates = RateTable.of([ExchangeRate(Currency.EUR, Decimal(100_000), now)])
    quote = upgrade_quote(
        Money(Currency.EUR, 4800),
        MONTHLY,
        Money(Currency.EUR, 5200),
        expires,
        now,
        PaymentMethod.REVOLUT,
        rates,
    )
    assert quote.upgrade.money == Money(Currency.EUR, 5215)  # 5214.29 up to the cent


def test_remaining_seconds_are_truncated() -> None:
    info = remaining_time_info(EUR_132, MONTHLY, EXPIRES, NOW + timedelta(microseconds=1))
    assert info.seconds_remaining == 86_399


@pytest.mark.parametrize(
    ("expires", "deleted", "error", "message"),
    [
        (EXPIRES, True, VmDeleted, "Can't calculate for deleted VM"),
        (None, False, NoExpiry, "VM subscription has no expiry date"),
        (NOW, False, AlreadyExpired, "Can't calculate for expired VM from the specified date"),
        (NOW - timedelta(seconds=1), False, AlreadyExpired, "Can't calculate for expired VM"),
    ],
)
def test_remaining_time_errors(
    expires: datetime | None, deleted: bool, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        remaining_time_info(EUR_132, MONTHLY, expires, NOW, deleted=deleted)


# --- the quote (§11.2 with D7) -------------------------------------------------------------


def test_e6_upgrade_under_d7_end_to_end() -> None:
    # By hand: the month ending 31 Mar 2026 runs from 28 Feb: 31 days = 2 678 400 s; 86 400 s
    # remain. Old: 132 × 86 400 / 2 678 400 = 4.258… cents = 42 580.6… msat (D, shown
    # rounded as a charge: 42 581 → 43 000 msat).
    # New spec 4 CPU/2 GiB/64 GiB: 4×200 + 2×100 + 64×50 = 4200 cents → R = 42 000 000 msat.
    # New: 4200 × 86 400 / 2 678 400 = 135.48… cents = 1 354 838.7… msat (U).
    # Charge U − D = 1 312 258.06… → 1 312 258 msat → 1 313 000 msat, rounded once (D7, D2);
    # flooring each side to cents first gave 1 310 000 (the reference, with 30-day months,
    # says 1 360 000).
    cfg = UpgradeConfig(new_cpu=4)
    tpl = template()
    check_no_downgrade(tpl, cfg)
    chosen = choose_upgrade_pricing(tpl, [pricing()], [disk()])
    target = build_upgrade_spec(tpl, cfg, chosen)
    new_price = custom_price(target, chosen, [disk()]).total
    assert new_price == Money(Currency.EUR, 4200)
    quote = upgrade_quote(EUR_132, MONTHLY, new_price, EXPIRES, NOW, LN, RATES)
    assert quote.discount.money == Money(Currency.BTC, 43_000)
    assert quote.renewal.money == Money(Currency.BTC, 42_000_000)
    assert quote.upgrade.money == Money(Currency.BTC, 1_313_000)
    assert quote.upgrade.rate == Decimal(100_000)
    assert quote.seconds_remaining == 86_400


def test_e6_in_a_28_day_february_costs_more_per_day() -> None:
    # month ending 1 Mar 2026 runs from 1 Feb: 28 days. Old 132/28 = 4.714… cents =
    # 47 142.86 msat; new 4200/28 = 150 cents = 1 500 000 msat; 1 452 857.14 → 1 453 000
    expires = datetime(2026, 3, 1, tzinfo=UTC)
    now = expires - timedelta(days=1)
    rates = rates_at(now)  # a rate from a month later is stale (r6), not today's
    quote = upgrade_quote(EUR_132, MONTHLY, Money(Currency.EUR, 4200), expires, now, LN, rates)
    assert quote.upgrade.money.amount == 1_453_000


def test_revolut_upgrade_is_charged_in_list_cents() -> None:
    quote = upgrade_quote(EUR_132, MONTHLY, Money(Currency.EUR, 4200), EXPIRES, NOW, REVOLUT, RATES)
    # (4200 − 132) / 31 = 131.2… cents, up to the cent (never below the exact difference)
    assert quote.upgrade.money == Money(Currency.EUR, 132)
    assert quote.renewal.money == Money(Currency.EUR, 4200)
    assert quote.upgrade.rate == Decimal(1)


def test_old_plan_interval_is_its_own_calendar_period() -> None:
    # a weekly plan of 700 cents: 100 cents a day; one day left → discount 100
    week = Interval(IntervalType.DAY, 7)
    quote = upgrade_quote(
        Money(Currency.EUR, 700), week, Money(Currency.EUR, 3100), EXPIRES, NOW, REVOLUT, RATES
    )
    assert quote.discount.money.amount == 100
    assert quote.upgrade.money.amount == 100 - 100


def test_old_and_new_list_currencies_may_differ() -> None:
    # old 3100 USD cents a month, one day of a 31-day month left → 100 USD cents
    # → 909 090.9… msat at 110 000 USD/BTC → 90.909… EUR cents, shown up to 91
    # new 3100 EUR cents → 100 EUR cents; charge 100 − 90.909… = 9.09…, up to 10
    old = Money(Currency.USD, 3100)
    quote = upgrade_quote(old, MONTHLY, Money(Currency.EUR, 3100), EXPIRES, NOW, REVOLUT, RATES)
    assert quote.discount.money == Money(Currency.EUR, 91)
    assert quote.upgrade.money == Money(Currency.EUR, 10)


def test_cheaper_target_charges_zero_never_a_negative_amount() -> None:
    quote = upgrade_quote(
        Money(Currency.EUR, 9000), MONTHLY, Money(Currency.EUR, 4200), EXPIRES, NOW, LN, RATES
    )
    assert quote.discount.money.amount > 0
    assert quote.upgrade.money == Money(Currency.BTC, 0)


def test_less_than_a_second_left_charges_nothing() -> None:
    now = EXPIRES - timedelta(microseconds=500_000)
    rates = rates_at(now)
    quote = upgrade_quote(EUR_132, MONTHLY, Money(Currency.EUR, 4200), EXPIRES, now, LN, rates)
    assert quote.seconds_remaining == 0
    assert quote.upgrade.money.amount == 0


@pytest.mark.parametrize(
    ("expires", "deleted", "error", "message"),
    [
        (EXPIRES, True, VmDeleted, "Can't upgrade deleted VM"),
        (None, False, NoExpiry, "VM subscription has no expiry date"),
        (NOW, False, AlreadyExpired, "Can't upgrade an expired VM"),
    ],
)
def test_upgrade_quote_errors(
    expires: datetime | None, deleted: bool, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        upgrade_quote(EUR_132, MONTHLY, EUR_132, expires, NOW, LN, RATES, deleted=deleted)


def test_btc_priced_plan_cannot_be_upgraded_by_revolut() -> None:
    with pytest.raises(PaymentMethodUnsupported):
        upgrade_quote(Money(Currency.BTC, 1000), MONTHLY, EUR_132, EXPIRES, NOW, REVOLUT, RATES)


def test_lightning_upgrade_without_a_rate_is_unavailable() -> None:
    with pytest.raises(NoExchangeRate):
        upgrade_quote(EUR_132, MONTHLY, EUR_132, EXPIRES, NOW, LN, RateTable())


moments = st.datetimes(
    min_value=datetime(2001, 1, 1),  # noqa: DTZ001 — hypothesis bounds are naive; tz below
    max_value=datetime(2090, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)


@given(
    old=st.integers(0, 10**8),
    new=st.integers(0, 10**8),
    extra=st.integers(0, 10**8),
    now=moments,
    left=st.integers(1, 400 * 86_400),
    unit=st.sampled_from(list(IntervalType)),
    method=st.sampled_from([LN, REVOLUT]),
)
def test_upgrade_charge_is_never_negative_and_grows_with_the_new_price(
    old: int,
    new: int,
    extra: int,
    now: datetime,
    left: int,
    unit: IntervalType,
    method: PaymentMethod,
) -> None:
    rates = rates_at(now)
    expires = now + timedelta(seconds=left)

    def charge(new_price: int, interval: Interval) -> int:
        quote = upgrade_quote(
            Money(Currency.EUR, old),
            interval,
            Money(Currency.EUR, new_price),
            expires,
            now,
            method,
            rates,
        )
        assert quote.discount.money.amount >= 0
        return quote.upgrade.money.amount

    base = charge(new, Interval(unit))
    assert base >= 0
    assert charge(new + extra, Interval(unit)) >= base
    if new <= old:
        # same monthly period on both sides and a cheaper (or equal) target: nothing to pay
        assert charge(new, MONTHLY) == 0


@given(price=st.integers(0, 10**8), now=moments, left=st.integers(1, 60 * 86_400))
def test_upgrading_to_the_same_monthly_price_costs_nothing(
    price: int, now: datetime, left: int
) -> None:
    expires = now + timedelta(seconds=left)
    for method in (LN, REVOLUT):
        same = Money(Currency.EUR, price)
        quote = upgrade_quote(same, MONTHLY, same, expires, now, method, rates_at(now))
        assert quote.upgrade.money.amount == 0
