"""Helpers shared by the Lightning rails: request validation and the default UTC clock."""

from __future__ import annotations

from datetime import UTC, datetime

MSAT_PER_SAT = 1000


def check_invoice_request(amount_msat: int, expiry_seconds: int) -> None:
    """Refuse amounts that are not a positive whole number of sats, and non-positive expiries."""
    if isinstance(amount_msat, bool) or not isinstance(amount_msat, int):
        raise ValueError("amount_msat must be an integer")
    if amount_msat <= 0 or amount_msat % MSAT_PER_SAT:
        raise ValueError(
            f"invoice amount must be a positive whole number of sats, got {amount_msat} msat"
        )
    if isinstance(expiry_seconds, bool) or not isinstance(expiry_seconds, int):
        raise ValueError("expiry_seconds must be an integer")
    if expiry_seconds <= 0:
        raise ValueError(f"invoice expiry must be positive, got {expiry_seconds} s")


class SystemClock:
    """The wall clock as an aware UTC datetime (the default when no Clock is injected)."""

    def now(self) -> datetime:
        return datetime.now(UTC)
