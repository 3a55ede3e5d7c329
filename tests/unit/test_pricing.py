"""Plan and custom prices, N-interval renewals (D6) and pay-what-you-want (§4–7)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.enums import DiskInterface, DiskType, IntervalType, PaymentMethod
from domain.errors import (
    CurrencyMismatch,
    ExtendTimeTooShort,
    IntervalCountOutOfRange,
    NoExchangeRate,
    PaymentMethodUnsupported,
    SpecOutOfLimits,
)
from domain.exchange import ExchangeRate, RateTable
from domain.intervals import MONTHLY, Interval
from domain.model import (
    GIB,
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    IpAssignment,
    PaymentMethodConfig,
)
from domain.money import Currency, Money
from domain.pricing import (
    Charging,
    ExtendTimeTooLong,
    FreePriceNotScalable,
    InvalidCurrency,
    NoDiskPrice,
    NotWholeGib,
    billed_disk_row,
    billed_gib,
    check_custom_limits,
    cost_by_amount,
    count_addresses,
    custom_price,
    disk_price_row,
    plan_price,
    renewal_quote,
    require_whole_gib,
)
from domain.tax import TaxRates

T = TypeVar("T")
NOW = datetime(2026, 6, 17, tzinfo=UTC)
EUR_132 = Money(Currency.EUR, 132)


def rates_at(moment: datetime) -> RateTable:
    return RateTable.of([ExchangeRate(Currency.EUR, Decimal(100_000), moment)])


def lightning(moment: datetime = NOW, country: str | None = "IRL") -> Charging:
    return Charging(
        method=PaymentMethod.LIGHTNING,
        rates=rates_at(moment),
        tax_rates=TaxRates.from_config({"IE": Decimal(23)}),
        country=country,
    )


def revolut(moment: datetime = NOW) -> Charging:
    fee = PaymentMethodConfig(
        id=1,
        company_id=1,
        payment_method=PaymentMethod.REVOLUT,
        name="revolut",
        enabled=True,
        provider_type="revolut",
        config={},
        created=moment,
        modified=moment,
        processing_fee_rate=Decimal("2.8"),
        processing_fee_base=20,
        processing_fee_currency="EUR",
    )
    return Charging(
        method=PaymentMethod.REVOLUT,
        rates=rates_at(moment),
        tax_rates=TaxRates.from_config({"IRL": Decimal(23)}),
        country="IE",
        fee_config=fee,
    )


def plan(amount: int = 132, currency: str = "EUR") -> CostPlan:
    return CostPlan(
        id=1,
        name="tiny",
        created=NOW,
        amount=amount,
        currency=currency,
        interval_amount=1,
        interval_type=IntervalType.MONTH,
    )


def pricing(**overrides: Any) -> CustomPricing:
    fields: dict[str, Any] = dict(
        id=7,
        name="custom",
        enabled=True,
        created=NOW,
        expires=None,
        region_id=1,
        currency="EUR",
        cpu_cost=150,
        memory_cost=50,
        ip4_cost=50,
        ip6_cost=5,
    )
    return CustomPricing(**(fields | overrides))


def disk(
    id: int, kind: DiskType, cost: int, interface: DiskInterface = DiskInterface.PCIE, **kw: Any
) -> CustomPricingDisk:
    return CustomPricingDisk(id=id, pricing_id=7, kind=kind, interface=interface, cost=cost, **kw)


def spec(cpu: int = 2, memory: int = 2 * GIB, disk_size: int = 80 * GIB, **kw: Any) -> Any:
    fields: dict[str, Any] = dict(
        id=1,
        cpu=cpu,
        memory=memory,
        disk_size=disk_size,
        disk_type=DiskType.SSD,
        disk_interface=DiskInterface.PCIE,
        pricing_id=7,
    )
    return CustomTemplate(**(fields | kw))


def ip(address: str, deleted: bool = False) -> IpAssignment:
    return IpAssignment(id=1, vm_id=1, ip_range_id=1, ip=address, deleted=deleted)


SSD_5 = [disk(1, DiskType.SSD, 5)]

# --- list prices -------------------------------------------------------------------------


def test_plan_price_is_the_cost_plan_amount_in_its_currency() -> None:
    assert plan_price(plan(132, "eur")) == EUR_132


def test_plan_with_unknown_currency_is_invalid_currency() -> None:
    with pytest.raises(InvalidCurrency, match=r"^Invalid currency$"):
        plan_price(plan(132, "DOGE"))


def test_e4_custom_price_is_855_cents_a_month() -> None:
    price = custom_price(spec(), pricing(), SSD_5)
    assert (price.cpu_cost, price.memory_cost, price.disk_cost) == (300, 100, 400)
    assert (price.ip4_cost, price.ip6_cost) == (50, 5)
    assert price.total == Money(Currency.EUR, 855)


def test_memory_and_disk_are_billed_per_whole_gib_rounded_up() -> None:
    # the reference floored (R5.4): 3 GiB − 1 byte of memory was billed as 2 GiB
    price = custom_price(spec(memory=3 * GIB - 1, disk_size=80 * GIB + GIB // 2), pricing(), SSD_5)
    assert price.memory_cost == 3 * 50
    assert price.disk_cost == 81 * 5


@pytest.mark.parametrize(
    ("nbytes", "gib"), [(0, 0), (1, 1), (GIB - 1, 1), (GIB, 1), (GIB + 1, 2), (10 * GIB, 10)]
)
def test_billed_gib_is_the_ceiling(nbytes: int, gib: int) -> None:
    assert billed_gib(nbytes) == gib


@given(st.integers(min_value=0, max_value=2**64))
def test_billed_gib_never_bills_less_than_the_bytes(nbytes: int) -> None:
    gib = billed_gib(nbytes)
    assert gib * GIB >= nbytes > (gib - 1) * GIB


def test_whole_gib_sizes_are_accepted() -> None:
    require_whole_gib("memory", 2 * GIB)
    require_whole_gib("disk", 0)


@pytest.mark.parametrize(("name", "nbytes"), [("memory", 2 * GIB - 1), ("disk", 10**9)])
def test_a_size_that_is_not_whole_gib_is_refused(name: str, nbytes: int) -> None:
    with pytest.raises(NotWholeGib, match=rf"^{name} must be a whole number of GiB"):
        require_whole_gib(name, nbytes)


def test_addresses_are_counted_with_cidr_forms_and_garbage_ignored() -> None:
    assignments = [
        ip("10.0.0.1"),
        ip("10.0.1.0/24"),
        ip("2001:db8::1"),
        ip("2001:db8::/64"),
        ip("2001:db8::2"),
        ip("not-an-ip"),
        ip("10.0.0.2", deleted=True),
    ]
    assert count_addresses(assignments) == (2, 3)
    price = custom_price(spec(), pricing(), SSD_5, assignments)
    assert (price.ip4_cost, price.ip6_cost) == (2 * 50, 3 * 5)


def test_custom_vm_pays_for_at_least_one_address_of_each_family() -> None:
    price = custom_price(spec(), pricing(), SSD_5, [ip("2001:db8::1"), ip("2001:db8::2")])
    assert (price.ip4_cost, price.ip6_cost) == (50, 2 * 5)


IFACE_ROWS = [
    disk(9, DiskType.SSD, 99, DiskInterface.PCIE),
    disk(3, DiskType.SSD, 3, DiskInterface.SATA),
    disk(12, DiskType.SSD, 77, DiskInterface.PCIE),
    disk(1, DiskType.HDD, 1, DiskInterface.PCIE),
]


def test_disk_row_is_first_by_id_matching_type_and_interface() -> None:
    # the reference matched the type only (QUIRK R5.3): an SSD/PCIe disk was billed at row 3
    assert disk_price_row(DiskType.SSD, DiskInterface.PCIE, IFACE_ROWS).id == 9
    assert disk_price_row(DiskType.SSD, DiskInterface.SATA, IFACE_ROWS).id == 3
    assert custom_price(spec(), pricing(), IFACE_ROWS).disk_cost == 80 * 99
    sata = custom_price(spec(disk_interface=DiskInterface.SATA), pricing(), IFACE_ROWS)
    assert (sata.disk_cost, sata.disk_row_fallback) == (80 * 3, False)


def test_no_row_for_the_interface_is_no_disk_price_found() -> None:
    with pytest.raises(NoDiskPrice, match=r"^No disk price found$"):
        disk_price_row(DiskType.HDD, DiskInterface.SATA, IFACE_ROWS)


def test_an_existing_disk_whose_interface_has_no_row_is_billed_at_the_first_of_its_type() -> None:
    # a VM whose (type, interface) row was removed stays renewable at the reference's price
    price = custom_price(spec(disk_interface=DiskInterface.SATA), pricing(), IFACE_ROWS[:1])
    assert (price.disk_cost, price.disk_row_fallback) == (80 * 99, True)
    assert billed_disk_row(DiskType.SSD, DiskInterface.SATA, IFACE_ROWS[:1]) == (
        IFACE_ROWS[0],
        False,
    )


def test_disk_rows_of_another_pricing_are_ignored() -> None:
    foreign = CustomPricingDisk(
        id=1,
        pricing_id=8,
        kind=DiskType.SSD,
        interface=DiskInterface.PCIE,
        cost=1,
    )
    assert custom_price(spec(), pricing(), [foreign, disk(2, DiskType.SSD, 5)]).disk_cost == 400


def test_no_disk_row_for_the_type_is_no_disk_price_found() -> None:
    with pytest.raises(NoDiskPrice, match=r"^No disk price found$"):
        custom_price(spec(), pricing(), [disk(1, DiskType.HDD, 5)])


def test_custom_pricing_with_unknown_currency_is_invalid_currency() -> None:
    with pytest.raises(InvalidCurrency):
        custom_price(spec(), pricing(currency="XXX"), SSD_5)


# --- D21 limits --------------------------------------------------------------------------

LIMITED = pricing(min_cpu=1, max_cpu=8, min_memory=GIB, max_memory=16 * GIB)
LIMITED_DISKS = [disk(1, DiskType.SSD, 5, min_disk_size=10 * GIB, max_disk_size=100 * GIB)]


@pytest.mark.parametrize(
    ("cpu", "memory", "disk_size"),
    [(1, GIB, 10 * GIB), (8, 16 * GIB, 100 * GIB), (4, 4 * GIB, 50 * GIB)],
)
def test_spec_within_limits_inclusive_is_accepted(cpu: int, memory: int, disk_size: int) -> None:
    check_custom_limits(spec(cpu, memory, disk_size), LIMITED, LIMITED_DISKS)


@pytest.mark.parametrize(
    ("cpu", "memory", "disk_size", "message"),
    [
        (0, GIB, 10 * GIB, "CPU must be between 1 and 8, got 0"),
        (9, GIB, 10 * GIB, "CPU must be between 1 and 8, got 9"),
        (1, GIB - 1, 10 * GIB, "memory must be between 1 GiB and 16 GiB, got 1073741823 bytes"),
        (1, 17 * GIB, 10 * GIB, "memory must be between 1 GiB and 16 GiB, got 17 GiB"),
        (1, GIB, 9 * GIB, "disk size must be between 10 GiB and 100 GiB, got 9 GiB"),
        (1, GIB, 101 * GIB, "disk size must be between 10 GiB and 100 GiB, got 101 GiB"),
    ],
)
def test_spec_outside_limits_is_refused_with_a_clear_message(
    cpu: int, memory: int, disk_size: int, message: str
) -> None:
    with pytest.raises(SpecOutOfLimits) as caught:
        check_custom_limits(spec(cpu, memory, disk_size), LIMITED, LIMITED_DISKS)
    assert caught.value.message == message


def test_disk_limits_come_from_the_row_of_the_disks_interface() -> None:
    rows = [
        disk(1, DiskType.SSD, 5, DiskInterface.PCIE, max_disk_size=100 * GIB),
        disk(2, DiskType.SSD, 50, DiskInterface.SATA, max_disk_size=500 * GIB),
    ]
    sata = spec(1, GIB, 400 * GIB, disk_interface=DiskInterface.SATA)
    check_custom_limits(sata, LIMITED, rows)  # the reference judged it by row 1: > 100 GiB
    with pytest.raises(SpecOutOfLimits, match="between 5 GiB and 100 GiB, got 400 GiB"):
        check_custom_limits(spec(1, GIB, 400 * GIB), LIMITED, rows)


def test_limits_for_an_interface_without_a_row_is_no_disk_price() -> None:
    # nothing more is sold of a disk its pricing has no row for, not even at the type's row
    with pytest.raises(NoDiskPrice, match=r"^No disk price found$"):
        check_custom_limits(spec(disk_interface=DiskInterface.SATA), LIMITED, LIMITED_DISKS)


def test_limits_without_a_disk_row_is_no_disk_price() -> None:
    with pytest.raises(NoDiskPrice):
        check_custom_limits(spec(), LIMITED, [disk(1, DiskType.HDD, 5)])


# --- renewals (§6 with D6) ---------------------------------------------------------------


def test_e1_standard_plan_by_lightning() -> None:
    quote = renewal_quote(EUR_132, MONTHLY, None, NOW, 1, lightning())
    assert quote.money == Money(Currency.BTC, 1_320_000)
    assert quote.rate == Decimal(100_000)
    assert quote.time_value == 2_592_000
    assert quote.new_expiry == datetime(2026, 7, 17, tzinfo=UTC)
    assert quote.tax == 303_600
    assert quote.processing_fee == 0
    assert quote.total == 1_623_600


@pytest.mark.parametrize(
    ("cents", "msat"), [(3_800, 38_000_000), (28_200, 282_000_000), (1, 10_000), (3, 30_000)]
)
def test_e2_lightning_amounts_are_exact_not_f32(cents: int, msat: int) -> None:
    quote = renewal_quote(Money(Currency.EUR, cents), MONTHLY, None, NOW, 1, lightning())
    assert quote.amount == msat


def test_lightning_rounds_a_part_satoshi_up() -> None:
    # 1 cent at 300 000 EUR/BTC = 3 333.33… msat → 3 333 msat → 4 000 msat (4 sat)
    rates = RateTable.of([ExchangeRate(Currency.EUR, Decimal(300_000), NOW)])
    quote = renewal_quote(
        Money(Currency.EUR, 1),
        MONTHLY,
        None,
        NOW,
        1,
        Charging(method=PaymentMethod.LIGHTNING, rates=rates),
    )
    assert quote.amount == 4_000


def test_e5_three_months_from_31_january_end_30_april() -> None:
    now = datetime(2026, 1, 31, 12, tzinfo=UTC)
    quote = renewal_quote(EUR_132, MONTHLY, None, now, 3, lightning(now))
    assert quote.new_expiry == datetime(2026, 4, 30, 12, tzinfo=UTC)
    assert quote.amount == 3_960_000
    assert quote.time_value == (28 + 31 + 30) * 86_400 == 7_689_600
    assert quote.tax == 910_800


def test_one_month_from_31_january_in_a_leap_year_ends_29_february() -> None:
    now = datetime(2028, 1, 31, tzinfo=UTC)
    quote = renewal_quote(EUR_132, MONTHLY, None, now, 1, lightning(now))
    assert quote.new_expiry == datetime(2028, 2, 29, tzinfo=UTC)
    assert quote.time_value == 29 * 86_400


def test_a_year_from_29_february_ends_28_february() -> None:
    now = datetime(2028, 2, 29, tzinfo=UTC)
    quote = renewal_quote(EUR_132, Interval(IntervalType.YEAR), None, now, 1, lightning(now))
    assert quote.new_expiry == datetime(2029, 2, 28, tzinfo=UTC)
    assert quote.time_value == 365 * 86_400


def test_a_year_ending_in_a_leap_year_is_366_days() -> None:
    now = datetime(2027, 3, 1, tzinfo=UTC)
    quote = renewal_quote(EUR_132, Interval(IntervalType.YEAR), None, now, 1, lightning(now))
    assert quote.time_value == 366 * 86_400


def test_week_plan_renewed_twice_adds_fourteen_days() -> None:
    quote = renewal_quote(EUR_132, Interval(IntervalType.DAY, 7), None, NOW, 2, lightning())
    assert quote.time_value == 14 * 86_400
    assert quote.amount == 2 * 1_320_000


def test_renewal_of_a_live_vm_extends_from_its_expiry() -> None:
    expires = datetime(2026, 8, 31, 6, tzinfo=UTC)
    quote = renewal_quote(EUR_132, MONTHLY, expires, NOW, 1, lightning())
    assert quote.new_expiry == datetime(2026, 9, 30, 6, tzinfo=UTC)
    assert quote.time_value == 30 * 86_400


def test_renewal_of_a_lapsed_vm_extends_from_now() -> None:
    expires = NOW - timedelta(days=10)
    quote = renewal_quote(EUR_132, MONTHLY, expires, NOW, 1, lightning())
    assert quote.new_expiry == datetime(2026, 7, 17, tzinfo=UTC)


def test_tax_and_fee_are_recomputed_on_the_n_interval_amount() -> None:
    one = renewal_quote(Money(Currency.EUR, 999), MONTHLY, None, NOW, 1, revolut())
    three = renewal_quote(Money(Currency.EUR, 999), MONTHLY, None, NOW, 3, revolut())
    assert (one.amount, one.tax) == (999, 229)
    assert (three.amount, three.tax) == (2997, 689)  # not 3 × 229 = 687
    # fee: ceil(2997·0.028/0.972) = ceil(86.33) = 87, + 21 — not 3 × (29 + 21)
    assert three.processing_fee == 87 + 21
    assert three.currency is Currency.EUR
    assert three.rate == Decimal(1)


def test_e3_revolut_quote_carries_the_processing_fee() -> None:
    quote = renewal_quote(Money(Currency.EUR, 990), MONTHLY, None, NOW, 1, revolut())
    assert quote.processing_fee == 50
    assert quote.total == 990 + 227 + 50


@pytest.mark.parametrize("count", [0, -1, 121])
def test_interval_count_outside_1_to_120_is_refused(count: int) -> None:
    with pytest.raises(IntervalCountOutOfRange):
        renewal_quote(EUR_132, MONTHLY, None, NOW, count, lightning())


def test_btc_priced_plan_by_lightning_passes_through_rounded_to_sats() -> None:
    quote = renewal_quote(Money(Currency.BTC, 1_320_001), MONTHLY, None, NOW, 2, lightning())
    assert quote.amount == 2 * 1_321_000
    assert quote.rate == Decimal(1)


def test_btc_priced_plan_cannot_be_paid_by_revolut() -> None:
    with pytest.raises(PaymentMethodUnsupported, match="Cant get price from BTC to Revolut"):
        renewal_quote(Money(Currency.BTC, 1000), MONTHLY, None, NOW, 1, revolut())


def test_paypal_cannot_price() -> None:
    charging = Charging(method=PaymentMethod.PAYPAL, rates=rates_at(NOW))
    with pytest.raises(PaymentMethodUnsupported, match="Cant get price from EUR to PayPal"):
        renewal_quote(EUR_132, MONTHLY, None, NOW, 1, charging)


def test_lightning_quote_without_a_rate_is_unavailable() -> None:
    charging = Charging(method=PaymentMethod.LIGHTNING, rates=RateTable())
    with pytest.raises(NoExchangeRate, match="No exchange rate found for BTC/EUR"):
        renewal_quote(EUR_132, MONTHLY, None, NOW, 1, charging)


cents = st.integers(min_value=0, max_value=10**9)
counts = st.integers(min_value=1, max_value=120)
# hypothesis bounds are naive by design; `timezones` makes every generated value aware UTC
moments = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.just(UTC),
)
units = st.sampled_from(list(IntervalType))


@given(price=cents, count=counts, now=moments, unit=units)
def test_n_renewals_cost_exactly_n_times_one(
    price: int, count: int, now: datetime, unit: IntervalType
) -> None:
    for charging in (lightning(now), revolut(now)):
        one = renewal_quote(Money(Currency.EUR, price), Interval(unit), None, now, 1, charging)
        many = renewal_quote(Money(Currency.EUR, price), Interval(unit), None, now, count, charging)
        assert many.amount == count * one.amount
        assert min(many.amount, many.tax, many.processing_fee, many.time_value) >= 0
        assert many.new_expiry > now


@given(price=cents, count=counts, now=moments)
def test_lightning_amounts_are_whole_sats_never_below_the_exact_value(
    price: int, count: int, now: datetime
) -> None:
    quote = renewal_quote(Money(Currency.EUR, price), MONTHLY, None, now, count, lightning(now))
    exact_msat = price * 10_000  # price/100 EUR ÷ 100 000 EUR/BTC × 10^11 msat/BTC
    assert quote.amount % 1000 == 0
    assert exact_msat * count <= quote.amount < (exact_msat + 1000) * count


# --- cost by amount (§7) -----------------------------------------------------------------


def test_e7_1000_msat_buys_1963_seconds() -> None:
    paid = Money(Currency.BTC, 1000)
    quote = cost_by_amount(paid, EUR_132, MONTHLY, None, NOW, lightning())
    assert quote.time_value == 1963
    assert quote.amount == 1000
    assert quote.new_expiry == NOW + timedelta(seconds=1963)
    assert quote.tax == 230  # floor(1000 × 23 / 100)
    assert quote.rate == Decimal(100_000)


def test_paying_exactly_one_price_buys_exactly_one_interval() -> None:
    quote = cost_by_amount(Money(Currency.BTC, 1_320_000), EUR_132, MONTHLY, None, NOW, lightning())
    assert quote.time_value == 2_592_000


def test_cost_by_amount_of_a_lapsed_vm_counts_from_now() -> None:
    expires = NOW - timedelta(days=3)
    quote = cost_by_amount(Money(Currency.BTC, 1000), EUR_132, MONTHLY, expires, NOW, lightning())
    assert quote.new_expiry == NOW + timedelta(seconds=1963)


def test_cost_by_amount_of_a_live_vm_counts_from_its_expiry() -> None:
    expires = datetime(2026, 2, 1, tzinfo=UTC)  # February: a 28-day month from here
    now = datetime(2026, 1, 20, tzinfo=UTC)
    paid = Money(Currency.BTC, 660_000)  # half the price buys half of 28 days
    quote = cost_by_amount(paid, EUR_132, MONTHLY, expires, now, lightning(now))
    assert quote.time_value == 14 * 86_400
    assert quote.new_expiry == datetime(2026, 2, 15, tzinfo=UTC)


def test_cost_by_amount_in_another_currency_is_invalid_currency() -> None:
    with pytest.raises(CurrencyMismatch, match=r"^Invalid currency$"):
        cost_by_amount(Money(Currency.EUR, 1000), EUR_132, MONTHLY, None, NOW, lightning())


def test_zero_amount_buys_nothing_and_is_refused() -> None:
    with pytest.raises(ExtendTimeTooShort, match=r"^Extend time is less than 1 second$"):
        cost_by_amount(Money(Currency.BTC, 0), EUR_132, MONTHLY, None, NOW, lightning())


def test_one_msat_buys_one_second_of_a_cheap_plan() -> None:
    # one second costs 1 320 000 / 2 592 000 ≈ 0.51 msat
    quote = cost_by_amount(Money(Currency.BTC, 1), EUR_132, MONTHLY, None, NOW, lightning())
    assert quote.time_value == 1


def test_tiny_amount_against_an_expensive_plan_is_too_short() -> None:
    expensive = Money(Currency.EUR, 10_000_000)  # 100 000 EUR a month
    with pytest.raises(ExtendTimeTooShort):
        cost_by_amount(Money(Currency.BTC, 1000), expensive, MONTHLY, None, NOW, lightning())


def test_amount_buying_past_the_calendar_is_too_long() -> None:
    paid = Money(Currency.BTC, 10**18)
    with pytest.raises(ExtendTimeTooLong):
        cost_by_amount(paid, EUR_132, MONTHLY, None, NOW, lightning())


def test_free_plan_cannot_be_extended_by_amount() -> None:
    with pytest.raises(FreePriceNotScalable):
        cost_by_amount(
            Money(Currency.BTC, 1000), Money(Currency.EUR, 0), MONTHLY, None, NOW, lightning()
        )


def test_revolut_cost_by_amount_adds_a_fee_on_the_paid_amount() -> None:
    quote = cost_by_amount(Money(Currency.EUR, 990), EUR_132, MONTHLY, None, NOW, revolut())
    assert quote.processing_fee == 50
    assert quote.time_value == 2_592_000 * 990 // 132


@given(paid=st.integers(min_value=1, max_value=10**12), price=st.integers(1, 10**7), now=moments)
def test_cost_by_amount_is_the_exact_floor_of_the_proportion(
    paid: int, price: int, now: datetime
) -> None:
    charging = revolut(now)
    one = renewal_quote(Money(Currency.EUR, price), MONTHLY, None, now, 1, charging)
    try:
        quote = cost_by_amount(
            Money(Currency.EUR, paid), Money(Currency.EUR, price), MONTHLY, None, now, charging
        )
    except ExtendTimeTooShort:
        assert one.time_value * paid < price
        return
    except ExtendTimeTooLong:
        assert (
            one.time_value * paid // price
            > (datetime.max.replace(tzinfo=UTC) - now).total_seconds()
        )
        return
    assert quote.time_value * price <= one.time_value * paid < (quote.time_value + 1) * price
    assert quote.new_expiry == now + timedelta(seconds=quote.time_value)
