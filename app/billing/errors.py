"""Named errors of the billing use cases; `kind` tells the HTTP layer the status (D19)."""

from __future__ import annotations

from domain.errors import DomainError, InvalidInput


class NotFound(DomainError):
    """Unknown, or not the caller's: the same answer either way, never revealing others' (D19)."""

    kind = "not_found"


class UserNotFound(NotFound):
    pass


class CompanyNotFound(NotFound):
    pass


class VmNotFound(NotFound):
    pass


class SubscriptionNotFound(NotFound):
    pass


class TemplateNotFound(NotFound):
    pass


class PricingNotFound(NotFound):
    pass


class ImageNotFound(NotFound):
    pass


class SshKeyNotFound(NotFound):
    pass


class PaymentNotFound(NotFound):
    pass


class VmDeleted(DomainError):
    """A renewal of a subscription whose VM was deleted (an admin, the grace period, the unpaid
    cleanup, 422): nothing is quoted, so no wallet or credit pays for it. D24 revives a deleted
    VM only for a payment that was pending when it was deleted (ended then, paid anyway)."""


class OfferUnavailable(DomainError):
    """A template, custom pricing or image that may no longer be ordered (422, §6.1 step 2)."""


class NoHostAvailable(DomainError):
    """No enabled host of the region can take the VM now (422: a business rule, not an outage)."""


class NoRoomToUpgrade(DomainError):
    """The VM's host cannot take the bigger size (422): the upgrade is not quoted, so nobody
    pays for a size the host cannot give."""


class UpgradeWouldRebill(DomainError):
    """A standard VM's upgrade that would move its subscription to monthly billing while the
    subscription bills other line items with an amount per its current interval (422): those
    amounts cannot be rescaled exactly, so they would silently cost more or less."""


class UpgradeOfSharedSubscription(DomainError):
    """An upgrade of a VM whose subscription bills another VM too (422): a paid upgrade is
    booked per subscription and applied to every VM it bills, so one payment would grow
    them all."""


class UpgradeQuoteOutdated(DomainError):
    """An upgrade paid from account credit alone whose subscription's expiry moved since its
    quote, which priced the growth up to the old expiry (409): nothing booked, quote again."""

    kind = "conflict"


class UpgradeNoLongerPossible(DomainError):
    """An upgrade paid from account credit alone that can no longer be made as quoted (its
    pricing withdrawn, or its VM grown past it by another upgrade meanwhile, 409): nothing
    booked, quote again."""

    kind = "conflict"


class UpgradeRepriced(DomainError):
    """An upgrade paid from account credit alone whose charge at the prices in force differs
    from its quote's (a plan, template or pricing re-priced meanwhile, 409): nothing booked,
    quote again."""

    kind = "conflict"


class CreditBuysNothing(DomainError):
    """An automatic renewal paid from account credit alone that would buy nothing by the time
    it is booked (no room or IP range left for it, its subscription switched off; a deleted
    VM that cannot be restored is `VmDeleted`, a period renewed otherwise
    `RenewalNoLongerDue`), 422: nothing booked, the credit given back."""


class RenewalNoLongerDue(DomainError):
    """A renewal asked for one period (the worker's automatic renewal) after the subscription's
    expiry moved past it, a renewal paid meanwhile (409): nothing quoted or charged."""

    kind = "conflict"


class TooManyUnpaidVms(DomainError):
    """The user already holds the most never-paid VMs allowed at once (D25, 422)."""


class UnsupportedDisk(InvalidInput):
    """The custom pricing offers no disk of the requested type and interface (400)."""


class EmailNotVerified(DomainError):
    """Ordering needs a verified e-mail address while e-mail is configured (D22, 422)."""


class NothingToUpgrade(InvalidInput):
    """An upgrade request that changes nothing (400)."""


class SubscriptionHasNoLineItems(DomainError):
    """A subscription with nothing to bill (422, §5.4 step 2)."""


class VmNotPaidYet(DomainError):
    """LNURL for a VM whose first payment never came (422, D25)."""


class TooManyOpenInvoices(DomainError):
    """A VM already has the most live LNURL invoices allowed (422, D25)."""


class TooManyOpenQuotes(DomainError):
    """The subscription already holds the most live renewal and upgrade quotes allowed
    (`max-live-quotes`, 422 as D25's caps): pay one or wait until one expires."""


class AmountOutOfRange(InvalidInput):
    """An LNURL-pay amount outside what the service accepts (400)."""


class PaymentMethodNotConfigured(DomainError):
    """The rail is not set up on this server ("Revolut not configured"): 422, since retrying
    cannot help; an outage of a configured rail is `PaymentProviderUnavailable` (D19)."""


class LightningNotOffered(PaymentMethodNotConfigured):
    """Lightning is turned off on this server (a fiat-only shop): a renewal, upgrade or
    LNURL payment by Lightning or NWC is refused (422), naming the methods offered."""


class BitcoinPriceNeedsLightning(DomainError):
    """An offer or subscription priced in BTC on a server that takes no Lightning: only
    Lightning can charge BTC, so it could never be paid (422)."""


class NothingToCharge(DomainError):
    """A card order for nothing (a free upgrade): 422, a gateway cannot take a 0 order."""


class PaymentProviderUnavailable(DomainError):
    """The Lightning node or fiat gateway failed or is unreachable; nothing was stored (503).
    Its message is generic ("Stripe is unavailable; try again later"): the provider's own
    words go to the log only (D19)."""

    kind = "unavailable"


class PaymentProviderRefused(DomainError):
    """The provider refused the request for good (a 4xx other than 408/409/429, such as a
    parameter it will not take or a rejected API key); nothing was stored. Not a 503 "try
    again": asking again gets the same answer. 502, with a generic message (D19)."""

    kind = "provider_refused"


class ChargeBelowMinimum(DomainError):
    """What is left to pay by card is below the card provider's smallest charge (Stripe:
    EUR 0.50 …), which it would refuse on every attempt: refused before the provider is
    asked, telling the user to pay another way (422)."""


class IdempotencyKeyReused(DomainError):
    """The same Idempotency-Key came with another request body (409, D11)."""

    kind = "conflict"


class IdempotencyKeyRace(IdempotencyKeyReused):
    """Another request stored the same Idempotency-Key while this one ran: which request it
    was (the same body or another) is known only in a new transaction, which MariaDB's
    snapshot of this one cannot see (`renew_idempotent` asks again, once)."""


class OrderLapsed(DomainError):
    """A never-paid order past its payment window with nothing pending: its room was let go
    (D25), so no new invoice is made for it; the user orders again (422)."""


class PriceChanged(DomainError):
    """The price changed while the invoice was being made; nothing was stored (409, D23)."""

    kind = "conflict"


class ShortSettlement(DomainError):
    """The Lightning node reports less received than the payment's total: not completed (an
    operator looks into it; only amount invoices are issued, so this should never happen)."""


class WalletInvoiceEnded(DomainError):
    """The renewal invoice an automatic renewal was about to hand its wallet ended first
    (paid, expired or withdrawn) or cannot carry the wallet's claim (`domain.wallet_claim`):
    the wallet is not asked (409)."""

    kind = "conflict"
