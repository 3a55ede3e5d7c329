"""Specific, named errors raised by the domain rules; callers map them to statuses."""

from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


class DomainError(Exception):
    """Base of every rule violation the domain reports; never raised directly."""

    #: what kind of failure this is, for the HTTP layer (D19): bad_input, not_found,
    #: conflict, unprocessable or unavailable.
    kind = "unprocessable"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def found(record: T | None, missing: DomainError) -> T:
    """`record`, or `missing` raised where a look-up found nothing."""
    if record is None:
        raise missing
    return record


class InvalidInput(DomainError):
    """The caller sent a value the rules cannot accept (400)."""

    kind = "bad_input"


class UnknownCurrency(InvalidInput):
    """A currency code outside the supported set."""


class CurrencyMismatch(InvalidInput):
    """Two amounts of different currencies were combined."""


class NegativeAmount(InvalidInput):
    """A money amount below zero was formed or would be formed by a subtraction."""


class IntervalCountOutOfRange(InvalidInput):
    """An interval count outside 1..120 (D6)."""


class InvalidInterval(InvalidInput):
    """An interval of zero or negative length, or an unknown interval type."""


class SpecOutOfLimits(InvalidInput):
    """A custom VM spec outside the pricing's min/max limits (D21)."""


class DowngradeRefused(InvalidInput):
    """An upgrade request that lowers CPU, memory or disk (D8)."""


class InvalidProcessingFeeRate(InvalidInput):
    """A processing-fee rate outside [0, 100) percent (D4)."""


class NoExchangeRate(DomainError):
    """No usable (present and fresh) exchange rate for a conversion (503)."""

    kind = "unavailable"


class PaymentMethodUnsupported(DomainError):
    """The payment method cannot charge this currency (e.g. BTC via Revolut)."""


class PricingUnavailable(DomainError):
    """The catalogue lacks what a price needs (no disk price, no matching custom pricing)."""


class NotAStandardVm(DomainError):
    """A standard-plan rule was applied to a VM without a standard template."""


class NotACustomVm(DomainError):
    """A custom-pricing rule was applied to a VM without a custom template."""


class ExtendTimeTooShort(InvalidInput):
    """A pay-what-you-want amount buys less than one second of service."""


class SubscriptionNotRenewable(DomainError):
    """The subscription cannot be quoted now (deleted VM, never paid, already expired)."""


class PaymentAlreadyCompleted(DomainError):
    """A payment that is already paid was completed again (409)."""

    kind = "conflict"


class PaymentNotForSubscription(InvalidInput):
    """A payment was applied to a subscription it does not belong to."""


class NegativeTimeValue(InvalidInput):
    """A payment's `time_value` is negative: paying must never move expiry backwards."""


class DuplicateKey(DomainError):
    """Storage refused an insert or update: a row with the same unique key exists (409).

    The use cases look for a duplicate first; this is what the loser of two concurrent
    writes of the same key sees, instead of the storage's integrity error (a 500)."""

    kind = "conflict"


#: what a DuplicateKey says, the same on every storage backend
IMAGE_EXISTS = "An image with this distribution, flavour and version exists"
IP_SPACE_EXISTS = "IP space with this CIDR already exists"
PRICING_EXISTS = "Pricing already exists for this prefix size"


class RoleNameTaken(DomainError):
    """An admin role with that name exists already (409; `admin_roles.name` is unique)."""

    kind = "conflict"


class IllegalStateTransition(DomainError):
    """A subscription or VM state change that the lifecycle tables do not allow (§10)."""

    kind = "conflict"


class SubscriptionSwitchedOff(DomainError):
    """A renewal or an upgrade of a subscription an admin switched off (422): it is not
    quoted, so no invoice is made and no wallet or credit pays for it (`domain.switch_off`)."""
