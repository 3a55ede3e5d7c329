"""Prices of plans and custom specs, N-interval renewals and pay-what-you-want (pricing.md §4–7)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

import attrs

from domain.enums import DiskInterface, DiskType, PaymentMethod
from domain.errors import (
    CurrencyMismatch,
    ExtendTimeTooShort,
    InvalidInput,
    PricingUnavailable,
    SpecOutOfLimits,
    UnknownCurrency,
    found,
)
from domain.exchange import RateTable, charge_amount
from domain.fees import processing_fee
from domain.intervals import MONTHLY, Interval, renewal_base, renewal_period
from domain.model import (
    GIB,
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    IpAssignment,
    PaymentMethodConfig,
)
from domain.money import Currency, Money
from domain.tax import NO_TAX, TaxRates

#: custom specs are always billed one calendar month at a time (R5.7).
CUSTOM_INTERVAL = MONTHLY


class NoDiskPrice(PricingUnavailable):
    """The custom pricing has no disk row for the spec's disk type and interface (R5.3)."""


class NotWholeGib(InvalidInput):
    """A custom memory or disk size asked for that is not a whole number of GiB (400)."""


class InvalidCurrency(UnknownCurrency):
    """A plan or pricing row holds a currency code outside the supported set (R4.2, R5.6)."""


class FreePriceNotScalable(PricingUnavailable):
    """Pay-what-you-want needs a price above zero to scale time by."""


class ExtendTimeTooLong(InvalidInput):
    """A pay-what-you-want amount that would push the expiry past the calendar (year 9999)."""


class Spec(Protocol):
    """What a price depends on: a standard template or a custom template."""

    @property
    def cpu(self) -> int: ...
    @property
    def memory(self) -> int: ...
    @property
    def disk_size(self) -> int: ...
    @property
    def disk_type(self) -> DiskType: ...


class PricedSpec(Spec, Protocol):
    """A spec a custom pricing prices: its disk's interface picks the disk row (R5.3)."""

    @property
    def disk_interface(self) -> DiskInterface: ...


def parse_list_currency(text: str) -> Currency:
    try:
        return Currency.parse(text)
    except UnknownCurrency:
        raise InvalidCurrency("Invalid currency") from None


def plan_price(plan: CostPlan) -> Money:
    """List price of a standard plan for one of its own intervals (R4.2)."""
    return Money(parse_list_currency(plan.currency), plan.amount)


def count_addresses(assignments: Iterable[IpAssignment]) -> tuple[int, int]:
    """(IPv4, IPv6) counts of live assignments; CIDR forms count, unparseable strings do not."""
    return count_ips(a.ip for a in assignments if not a.deleted)


def count_ips(ips: Iterable[str]) -> tuple[int, int]:
    """(IPv4, IPv6) counts of addresses; CIDR forms count, unparseable strings do not."""
    v4 = v6 = 0
    for ip in ips:
        try:
            version = ipaddress.ip_interface(ip).version
        except ValueError:
            continue
        if version == 4:
            v4 += 1
        else:
            v6 += 1
    return v4, v6


def disk_price_row(
    disk_type: DiskType, disk_interface: DiskInterface, disks: Iterable[CustomPricingDisk]
) -> CustomPricingDisk:
    """The disk row that sells a disk of this type AND interface: first by ascending id.

    Unlike the reference (QUIRK R5.3, which matched the type only) the interface is compared
    too: the admin API keeps one row per (type, interface), each with its own cost and size
    limits, and ordering, placement and the upgrade's choice of pricing (R11.1) honour the
    interface, so the price and the limits must come from that same row. No such row →
    "No disk price found".
    """
    return found(
        find_disk_row(disk_type, disk_interface, disks), NoDiskPrice("No disk price found")
    )


def find_disk_row(
    disk_type: DiskType, disk_interface: DiskInterface, disks: Iterable[CustomPricingDisk]
) -> CustomPricingDisk | None:
    """`disk_price_row`, or None when no row sells that disk."""
    for row in sorted(disks, key=lambda d: d.id):
        if row.kind is disk_type and row.interface is disk_interface:
            return row
    return None


def billed_disk_row(
    disk_type: DiskType, disk_interface: DiskInterface, disks: Iterable[CustomPricingDisk]
) -> tuple[CustomPricingDisk, bool]:
    """The row an existing disk is billed at, and whether it is the exact (type, interface)
    row (`disk_price_row`).

    A VM whose interface lost its row (the admin removed or re-typed it, or a VM ordered
    under the reference's type-only rule) falls back to the first row of its type, the row
    the reference billed it at, so it stays renewable; the caller warns the operator. No
    row of its type at all → "No disk price found", as before.
    """
    rows = sorted(disks, key=lambda d: d.id)
    try:
        return disk_price_row(disk_type, disk_interface, rows), True
    except NoDiskPrice:
        for row in rows:
            if row.kind is disk_type:
                return row, False
        raise


def unpriced_disks(
    in_use: Iterable[tuple[DiskType, DiskInterface]], disks: Iterable[CustomPricingDisk]
) -> list[tuple[DiskType, DiskInterface]]:
    """The disks in use (type, interface) that `billed_disk_row` finds no row for among
    `disks` (none of their type): a VM with one can no longer be priced, so not renewed."""
    rows = list(disks)
    out = []
    for disk_type, disk_interface in sorted(set(in_use)):
        try:
            billed_disk_row(disk_type, disk_interface, rows)
        except NoDiskPrice:
            out.append((disk_type, disk_interface))
    return out


@attrs.frozen
class CustomPrice:
    """The monthly components of a custom spec, in smallest units of `currency` (R5.5)."""

    currency: Currency
    cpu_cost: int
    memory_cost: int
    disk_cost: int
    ip4_cost: int
    ip6_cost: int
    #: the disk was billed at the first row of its type: its interface has no row of its own
    disk_row_fallback: bool = False

    @property
    def total(self) -> Money:
        parts = (self.cpu_cost, self.memory_cost, self.disk_cost, self.ip4_cost, self.ip6_cost)
        return Money(self.currency, sum(parts))


def _rows_of(pricing: CustomPricing, disks: Iterable[CustomPricingDisk]) -> list[CustomPricingDisk]:
    return [d for d in disks if d.pricing_id == pricing.id]


def billed_gib(nbytes: int) -> int:
    """Whole GiB a custom memory or disk size is billed for: the ceiling.

    The reference floored (R5.4), which gave up to 1 GiB of memory and of disk free to a size
    just below the next GiB (the host gets the exact bytes). New orders, quotes and upgrades
    must ask for whole GiB (`require_whole_gib`), so this only matters for a VM stored with
    an odd size: it is billed for every byte it has, never less.
    """
    return -(-nbytes // GIB)


def require_whole_gib(name: str, nbytes: int) -> None:
    """Refuse a custom memory or disk size asked for that is not a whole number of GiB.

    Every LNVPS client sends whole GiB (the web UI sends `n * 1024³`, its API reference says
    1 GB = 1073741824), and what the buyer gets must be what is billed (`billed_gib`).
    """
    if nbytes % GIB != 0:
        raise NotWholeGib(f"{name} must be a whole number of GiB (a multiple of {GIB} bytes)")


def custom_price(
    spec: PricedSpec,
    pricing: CustomPricing,
    disks: Iterable[CustomPricingDisk],
    assignments: Iterable[IpAssignment] = (),
) -> CustomPrice:
    """Monthly price of a custom spec (R5.1–R5.6).

    Memory and disk are billed per whole GiB rounded up (`billed_gib`), the disk at the row
    of its type and interface (`billed_disk_row`), and every custom VM pays for at least one
    IPv4 and one IPv6 address even with none assigned (R5.2).
    """
    return custom_price_for(spec, pricing, disks, count_addresses(assignments))


def custom_price_for(
    spec: PricedSpec,
    pricing: CustomPricing,
    disks: Iterable[CustomPricingDisk],
    addresses: tuple[int, int],
) -> CustomPrice:
    """`custom_price` for a VM with these (IPv4, IPv6) address counts (`count_ips`)."""
    row, exact = billed_disk_row(spec.disk_type, spec.disk_interface, _rows_of(pricing, disks))
    currency = parse_list_currency(pricing.currency)
    v4, v6 = addresses
    return CustomPrice(
        currency=currency,
        cpu_cost=pricing.cpu_cost * spec.cpu,
        memory_cost=pricing.memory_cost * billed_gib(spec.memory),
        disk_cost=row.cost * billed_gib(spec.disk_size),
        ip4_cost=pricing.ip4_cost * max(1, v4),
        ip6_cost=pricing.ip6_cost * max(1, v6),
        disk_row_fallback=not exact,
    )


def _size(nbytes: int) -> str:
    return f"{nbytes // GIB} GiB" if nbytes % GIB == 0 else f"{nbytes} bytes"


def check_custom_limits(
    spec: PricedSpec,
    pricing: CustomPricing,
    disks: Iterable[CustomPricingDisk],
    *,
    only: Collection[str] = ("cpu", "memory", "disk"),
) -> None:
    """Refuse a custom spec outside the pricing's limits (D21; the reference does not check).

    The disk limits come from the same row that prices the disk (its type and interface,
    `disk_price_row`), so the limit and the price never disagree; a disk whose interface has
    no row is "No disk price found" here (nothing more of it is sold). `only` narrows the
    check to some of "cpu", "memory", "disk" (an upgrade judges only what it changes).
    """
    if "cpu" in only and not pricing.min_cpu <= spec.cpu <= pricing.max_cpu:
        raise SpecOutOfLimits(
            f"CPU must be between {pricing.min_cpu} and {pricing.max_cpu}, got {spec.cpu}"
        )
    if "memory" in only and not pricing.min_memory <= spec.memory <= pricing.max_memory:
        raise SpecOutOfLimits(
            f"memory must be between {_size(pricing.min_memory)} and "
            f"{_size(pricing.max_memory)}, got {_size(spec.memory)}"
        )
    if "disk" not in only:
        return
    row = disk_price_row(spec.disk_type, spec.disk_interface, _rows_of(pricing, disks))
    if not row.min_disk_size <= spec.disk_size <= row.max_disk_size:
        raise SpecOutOfLimits(
            f"disk size must be between {_size(row.min_disk_size)} and "
            f"{_size(row.max_disk_size)}, got {_size(spec.disk_size)}"
        )


@attrs.frozen(kw_only=True)
class Charging:
    """How a quote is charged: method, rates, the buyer's tax and the method's fee config."""

    method: PaymentMethod
    rates: RateTable
    tax_rates: TaxRates = NO_TAX
    country: str | None = None
    fee_config: PaymentMethodConfig | None = None
    #: the buyer accounts for the VAT (`country` is then None: no tax); quotes record it
    reverse_charge: bool = False

    @property
    def tax_rate(self) -> Decimal:
        """The percent of tax this charging puts on an amount (0 under reverse charge)."""
        return self.tax_rates.rate_for(self.country)

    @property
    def withdrawn(self) -> bool:
        """An admin disabled the seller's config of this (fiat) method: no new invoice or
        order of it may be made, though the account balance may still pay a quote whole."""
        return self.fee_config is not None and not self.fee_config.enabled


@attrs.frozen(kw_only=True)
class RenewalQuote:
    """The numbers of a new renewal payment (NewPaymentInfo, §12); amounts in charged units."""

    amount: int
    currency: Currency
    rate: Decimal
    time_value: int
    new_expiry: datetime
    tax: int
    processing_fee: int

    @property
    def money(self) -> Money:
        return Money(self.currency, self.amount)

    @property
    def total(self) -> int:
        """What the buyer pays: amount + tax + processing fee."""
        return self.amount + self.tax + self.processing_fee


def _tax_and_fee(amount: Money, charging: Charging, now: datetime) -> tuple[int, int]:
    tax = charging.tax_rates.tax_for(amount.amount, charging.country)
    fee = processing_fee(amount, charging.method, charging.fee_config, charging.rates, now)
    return tax, fee.amount


def levy_of(
    charging: Charging, currency: Currency, now: datetime
) -> Callable[[int], tuple[int, int]]:
    """The tax and fee `charging` puts on a net amount of `currency` (D3, D4, one base fee):
    what a quote charges on the part of it the account balance does not pay."""
    return lambda net: _tax_and_fee(Money(currency, net), charging, now)


def renewal_quote(
    list_price: Money,
    interval: Interval,
    expires: datetime | None,
    now: datetime,
    count: int,
    charging: Charging,
) -> RenewalQuote:
    """Quote N intervals (§6 with D6).

    The amount is N × the one-interval charged amount, so a Lightning quote stays whole sats
    and N renewals cost exactly N× one (R6.6); the time is N calendar intervals from
    max(expires, now), not N × the first one (D6); tax and fee are recomputed on the N×
    amount, not N × the single tax (R6.4).
    """
    period = renewal_period(interval, expires, now, count)
    one = charge_amount(list_price, charging.method, charging.rates, now)
    amount = one.money.times(count)
    tax, fee = _tax_and_fee(amount, charging, now)
    return RenewalQuote(
        amount=amount.amount,
        currency=amount.currency,
        rate=one.rate,
        time_value=period.time_value,
        new_expiry=period.new_expiry,
        tax=tax,
        processing_fee=fee,
    )


def cost_by_amount(
    paid: Money,
    list_price: Money,
    interval: Interval,
    expires: datetime | None,
    now: datetime,
    charging: Charging,
) -> RenewalQuote:
    """Time bought by an arbitrary amount (§7): floor(time_value × paid / cost), in integers.

    `paid` must be in the charged currency (msat for Lightning). Unlike the reference
    (QUIRK §16.9) the new expiry is counted from max(expires, now), the same base the time
    value is measured from and the one the payment is applied to (R3.6).
    """
    one = charge_amount(list_price, charging.method, charging.rates, now)
    if paid.currency is not one.money.currency:
        raise CurrencyMismatch("Invalid currency")
    if one.money.amount == 0:
        raise FreePriceNotScalable("A free plan cannot be extended by amount")
    time_value = renewal_period(interval, expires, now, 1).time_value
    new_time = time_value * paid.amount // one.money.amount
    if new_time == 0:
        raise ExtendTimeTooShort("Extend time is less than 1 second")
    try:
        new_expiry = renewal_base(expires, now) + timedelta(seconds=new_time)
    except OverflowError:
        raise ExtendTimeTooLong("Extend time is too long") from None
    tax, fee = _tax_and_fee(paid, charging, now)
    return RenewalQuote(
        amount=paid.amount,
        currency=paid.currency,
        rate=one.rate,
        time_value=new_time,
        new_expiry=new_expiry,
        tax=tax,
        processing_fee=fee,
    )
