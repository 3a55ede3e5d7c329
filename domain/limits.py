"""Ceilings on admin-set prices and sizes, and on what one payment may total (signed BIGINT)."""

from __future__ import annotations

from domain.errors import DomainError, InvalidInput

#: the largest price, fee or cost an admin may set, in smallest units (as a credit entry's
#: ceiling): 120 intervals of it plus 100 % tax and a processing fee still fit one column.
MAX_PRICE = 10**15
#: the largest memory or disk size (bytes) an admin may set: 1 PiB, so sums over a host's VMs
#: and per-GiB prices stay far inside a signed BIGINT.
MAX_SIZE = 2**50
#: the largest total (amount + tax + fee) one payment may ask, below a signed BIGINT's
#: 2^63 - 1 (SQLite's and MariaDB's widest column) with room for a rail's rounding up.
MAX_CHARGE = 10**18


class ChargeTooLarge(DomainError):
    """A quote whose total no payment row can hold (a huge price, or one converted at a low
    exchange rate): refused as unprocessable (422) instead of failing while it is stored."""


def check_price(amount: object, name: str) -> int:
    """A whole number of smallest units in 0..MAX_PRICE, else `InvalidInput` (400)."""
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= MAX_PRICE:
        raise InvalidInput(f"{name} must be a whole number from 0 to {MAX_PRICE}")
    return amount


def check_charge(amount: int, tax: int, fee: int) -> None:
    """Refuse a payment whose total (amount + tax + fee) is above MAX_CHARGE (`ChargeTooLarge`)."""
    if amount + tax + fee > MAX_CHARGE:
        raise ChargeTooLarge(
            f"The amount to pay ({amount + tax + fee} smallest units with tax and fees) is too "
            f"large to charge (at most {MAX_CHARGE}); choose fewer intervals"
        )
