"""Ceilings on admin-set prices, sizes and expiries, and on what one payment may total."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.errors import DomainError, InvalidInput
from domain.intervals import add_months

#: the largest price, fee or cost an admin may set, in smallest units (as a credit entry's
#: ceiling): 120 intervals of it plus 100 % tax and a processing fee still fit one column.
MAX_PRICE = 10**15
#: the largest memory or disk size (bytes) an admin may set: 1 PiB, so sums over a host's VMs
#: and per-GiB prices stay far inside a signed BIGINT.
MAX_SIZE = 2**50
#: the largest total (amount + tax + fee) one payment may ask, below a signed BIGINT's
#: 2^63 - 1 (SQLite's and MariaDB's widest column) with room for a rail's rounding up.
MAX_CHARGE = 10**18
#: how far ahead of now an admin may set a subscription's expiry: 10 years, as far as the
#: longest default purchase (120 monthly intervals) reaches. Renewals add their time to the
#: expiry, so one set near the calendar's end (year 9999) made every later renewal a 400.
MAX_EXPIRY_AHEAD_MONTHS = 120
#: the earliest expiry an admin may set: no business time is older than the Unix epoch.
MIN_EXPIRY = datetime(1970, 1, 1, tzinfo=UTC)


class ChargeTooLarge(DomainError):
    """A quote whose total no payment row can hold (a huge price, or one converted at a low
    exchange rate): refused as unprocessable (422) instead of failing while it is stored."""


def check_price(amount: object, name: str) -> int:
    """A whole number of smallest units in 0..MAX_PRICE, else `InvalidInput` (400)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_PRICE:
        raise InvalidInput(f"{name} must be a whole number from 0 to {MAX_PRICE}")
    return amount


def check_expiry(expires: datetime | None, now: datetime) -> None:
    """Accept None, or an expiry from MIN_EXPIRY to MAX_EXPIRY_AHEAD_MONTHS after `now`, else
    `InvalidInput` (400)."""
    if expires is None:
        return None
    latest = add_months(now, MAX_EXPIRY_AHEAD_MONTHS)
    if not MIN_EXPIRY <= expires <= latest:
        raise InvalidInput(
            f"expires must be from {MIN_EXPIRY.isoformat()} to {latest.isoformat()} "
            f"({MAX_EXPIRY_AHEAD_MONTHS // 12} years ahead); a later one leaves no room to renew"
        )


def check_charge(amount: int, tax: int, fee: int) -> None:
    """Refuse a payment whose total (amount + tax + fee) is above MAX_CHARGE (`ChargeTooLarge`)."""
    if amount + tax + fee > MAX_CHARGE:
        raise ChargeTooLarge(
            f"The amount to pay ({amount + tax + fee} smallest units with tax and fees) is too "
            f"large to charge (at most {MAX_CHARGE}); choose fewer intervals"
        )
