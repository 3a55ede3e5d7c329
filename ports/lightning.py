"""The Lightning node the billing core creates invoices on and hears settlements from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

import attrs


class LightningUnavailable(Exception):
    """The node cannot be reached or refused the call; callers answer 503."""


@attrs.frozen(kw_only=True)
class Invoice:
    """A BOLT11 invoice the node issued; `payment_hash` becomes the payment id."""

    payment_hash: bytes
    bolt11: str
    amount_msat: int
    expires_at: datetime
    external_id: str | None = None


@attrs.frozen(kw_only=True)
class SettledInvoice:
    """A settlement reported by the node; `settle_index` orders settlements for replay."""

    payment_hash: bytes
    settle_index: int
    amount_paid_msat: int
    settled_at: datetime


class LightningNode(Protocol):
    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> Invoice:
        """Issue an invoice for a whole number of sats (amount_msat is a multiple of 1000)."""
        ...

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        """Cancel an unpaid invoice; cancelling an unknown or settled one is not an error."""
        ...

    def settled_invoices(self, after_payment_hash: bytes | None) -> AsyncIterator[SettledInvoice]:
        """Every settlement after the one of `after_payment_hash` (replay), then live ones."""
        ...

    def settlements_after(self, settle_index: int) -> AsyncIterator[SettledInvoice]:
        """Every settlement with a settle index above `settle_index`, in order (replay), then
        live ones. 0 replays nothing on LND (its own rule for SubscribeInvoices), so a
        caller starting from 0 must find earlier settlements another way."""
        ...

    async def lookup_settlement(self, payment_hash: bytes) -> SettledInvoice | None:
        """The settlement of that invoice if the node has it settled, else None.

        None for an unknown, open, accepted (held), cancelled or expired invoice; node
        failures raise LightningUnavailable. Used to reconcile settlements nobody heard.
        """
        ...
