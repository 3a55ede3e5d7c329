"""A card provider's orders (Revolut orders, Stripe Checkout Sessions), wrapped into a rail."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

import attrs


class FiatUnavailable(Exception):
    """The gateway cannot be reached or failed the call; callers answer 503. The message is
    for the log (it may quote the provider), never for users."""


class FiatRefused(FiatUnavailable):
    """The provider answered that it will not do this (a 4xx other than 408, 409 or 429):
    asking again will not help, so callers do not say "try again" (502)."""


class FiatNotChargeable(Exception):
    """The gateway will not ask its provider for this charge, and says so before any call.
    The message names the provider and the currency and is fit for users."""


class FiatCurrencyNotChargeable(FiatNotChargeable):
    """The gateway does not know how its provider counts this currency (a currency outside
    the catalogue, or one its provider treats specially): refused rather than guessed."""


class FiatBelowMinimum(FiatNotChargeable):
    """The charge is below the provider's smallest charge in that currency (Stripe: EUR 0.50,
    GBP 0.30, JPY 50 …), which it would refuse on every attempt. Both amounts are in the
    smallest units the gateway was asked in (hundredths, JPY too)."""

    def __init__(self, message: str, *, amount_minor: int, minimum_minor: int) -> None:
        super().__init__(message)
        self.amount_minor = amount_minor
        self.minimum_minor = minimum_minor


@attrs.frozen(kw_only=True)
class FiatOrder:
    """An order the gateway created: its id there and what the client needs to pay it.

    `external_data` is the provider's payload as text (Revolut: the order JSON; Stripe: the
    Checkout Session JSON), stored on the payment and sealed at the storage boundary.
    """

    external_id: str
    external_data: str
    #: what the order really asks, in the smallest units the gateway was asked in (hundredths):
    #: the amount asked, or less than one provider unit more where the provider counts more
    #: coarsely (whole yen), never less
    amount_minor: int


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
        """Create an order for `amount_minor` smallest units (hundredths, JPY too) of
        `currency`, converted to the provider's own unit for it and rounded up (the order's
        `amount_minor` says what it really asks); with `expiry`, the provider itself stops
        taking payment for it about then (as close as its API allows; None: the provider's
        default). A charge the gateway knows its provider cannot take raises
        `FiatNotChargeable` before any call; a provider refusal `FiatRefused`; any other
        failure `FiatUnavailable`."""
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
