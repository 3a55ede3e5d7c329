"""A payment rail as a plug-in: quote currency, create and check a charge, cancel it, webhook."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from domain.enums import PaymentMethod
from domain.errors import DomainError, InvalidInput
from domain.money import Currency


class RailUnavailable(Exception):
    """The rail's provider cannot be reached or failed the call; callers answer 503. The
    message is for the log (it may quote the provider), never for users."""


class RailRefused(RailUnavailable):
    """The rail's provider refused the call for good (a permanent 4xx): asking again will
    not help, so callers answer 502 rather than 503 "try again"."""


class WebhookSignatureInvalid(DomainError):
    """A webhook whose signature is missing, malformed, stale or wrong: answer 401 (D14).

    `reason` is for the log, never for the caller.
    """

    kind = "unauthorized"
    status = 401

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WebhookPayloadInvalid(InvalidInput):
    """A correctly signed webhook whose body is not the JSON event we expect (400)."""


@attrs.frozen(kw_only=True)
class ChargeRequest:
    """What to charge: `amount` smallest units of `currency` (msat for BTC), all included."""

    amount: int
    currency: Currency
    memo: str
    #: how long the payment stays payable (the rail may not honour a longer one)
    expiry: timedelta
    #: when the quote was made (aware UTC, from the Clock): it lapses at `created + expiry`
    created: datetime


@attrs.frozen(kw_only=True)
class Charge:
    """A charge the rail created.

    `payment_id`: the id the payment must carry (a Lightning payment hash), or None for a
    random one. `external_id`: the provider's id (order, session, transfer reference).
    `external_data`: what the client pays with (a BOLT11 string, or a JSON object as text),
    stored on the payment and shown under the method's wire name. `amount`: what the payer
    is really asked for, in the request's smallest units: the request's amount, or more
    when the provider cannot charge it exactly (a Lightning invoice is whole sats), never
    less. The payment records the difference as processing fee, so its total is this.
    """

    payment_id: bytes | None
    external_id: str | None
    external_data: str
    amount: int
    #: how long it stays payable when the rail needs longer than asked (a bank transfer)
    expiry: timedelta | None = None


#: `MoneyBack.what` of a chargeback: the payer's bank took the money back (or may).
DISPUTE = "dispute"
#: `MoneyBack.what` of a refund made at the provider (by an operator, in its dashboard).
REFUND = "refund"


@attrs.frozen(kw_only=True)
class MoneyBack:
    """A dispute (chargeback) or refund a provider reports on a charge: money going back.

    `key` names this report at the provider (a dispute's id, a charge's id with its refunded
    total, an order's id with the dispute's state): the admins hear of each key once.
    `reference` is the provider's id of the charge's order, or of a payment under it (a
    Stripe PaymentIntent, which the rail resolves to its Checkout Session). `amount` is in
    the provider's own smallest units of `currency`, None when the event does not say.
    """

    what: str
    key: str
    reference: str
    amount: int | None = None
    currency: str | None = None
    detail: str = ""


@attrs.frozen(kw_only=True)
class WebhookEvent:
    """A verified provider event: its type, the charge it is about, and whether it means
    paid; `money_back` when it reports a dispute or refund (the admins are told)."""

    kind: str
    external_id: str | None
    completes: bool
    money_back: MoneyBack | None = None


@attrs.frozen(kw_only=True)
class WebhookDelivery:
    """A webhook request as received, with the time and tolerance its signature is judged by."""

    headers: Mapping[str, str]
    body: bytes
    now: datetime
    tolerance_s: int | None


class WebhookVerifier(Protocol):
    """A provider's webhook wire format: signature check and event parsing, pure."""

    @property
    def method(self) -> PaymentMethod: ...

    @property
    def default_tolerance_s(self) -> int | None:
        """Seconds a signed timestamp may be off from now by default; None: no timestamp."""
        ...

    def verify(self, delivery: WebhookDelivery, secret: str) -> WebhookEvent:
        """The event of a body correctly signed with `secret`; raises
        `WebhookSignatureInvalid` (401) or `WebhookPayloadInvalid` (400)."""
        ...


class PaymentRail(Protocol):
    """One way of being paid. The billing core never sees a provider's wire format."""

    @property
    def method(self) -> PaymentMethod: ...

    @property
    def webhook(self) -> WebhookVerifier | None:
        """How the provider's webhooks are checked; None: the rail has no webhook."""
        ...

    def quote_currency(self, list_currency: Currency) -> Currency:
        """The currency this rail charges a price listed in `list_currency` in; raises
        `PaymentMethodUnsupported` when it cannot charge it."""
        ...

    async def create_charge(self, request: ChargeRequest) -> Charge:
        """Create the charge at the provider; failures raise `RailUnavailable` (a refusal
        for good: `RailRefused`)."""
        ...

    async def is_paid(self, payment_id: bytes, external_id: str | None) -> bool | None:
        """The provider's own word on the charge; None when the rail cannot tell (a manual
        transfer, which an operator confirms)."""
        ...

    async def cancel(self, payment_id: bytes, external_id: str | None) -> None:
        """Cancel an unpaid charge; an unknown or finished one is not an error."""
        ...
