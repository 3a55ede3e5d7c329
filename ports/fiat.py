"""A card provider's orders (Revolut orders, Stripe Checkout Sessions), wrapped into a rail."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import attrs


class FiatUnavailable(Exception):
    """The gateway cannot be reached or refused the call; callers answer 503."""


@attrs.frozen(kw_only=True)
class FiatOrder:
    """An order the gateway created: its id there and what the client needs to pay it.

    `external_data` is the provider's payload as text (Revolut: the order JSON; Stripe: the
    Checkout Session JSON), stored on the payment and sealed at the storage boundary.
    """

    external_id: str
    external_data: str


@attrs.frozen(kw_only=True)
class OrderExpiry:
    """How long a new order may be paid: `lasts` from `starts` (aware UTC, the quote's
    creation by the Clock), so it stops being payable at `starts + lasts`, when its quote lapses."""

    starts: datetime
    lasts: timedelta


class FiatGateway(Protocol):
    async def create_order(
        self,
        amount_minor: int,
        currency: str,
        description: str,
        expiry: OrderExpiry | None = None,
    ) -> FiatOrder:
        """Create an order for `amount_minor` smallest units (cents) of `currency`; with
        `expiry`, the provider itself stops taking payment for it about then (as close as
        its API allows; None: the provider's default)."""
        ...

    async def cancel_order(self, external_id: str) -> None:
        """Cancel an unpaid order; cancelling an unknown or finished one is not an error."""
        ...

    async def is_paid(self, external_id: str) -> bool:
        """Whether the provider itself says the order is paid (Revolut `completed`, a Stripe
        session `paid`); an unknown order is not paid. Webhooks re-check this before completing."""
        ...


@runtime_checkable
class OrderLookup(Protocol):
    """A gateway that can tell which of its orders a payment under one belongs to."""

    async def order_of(self, reference: str) -> str | None:
        """The id of the order (as `create_order` returned it) under which the provider's
        payment `reference` was made (a Stripe PaymentIntent of a Checkout Session); None
        when the provider knows no such order. Failures raise `FiatUnavailable`."""
        ...
