"""NwcAutoRenewer: renew for one interval and pay it from the user's NWC wallet (§5.7, §9.4)."""

from __future__ import annotations

import logging
from datetime import datetime

import attrs

from app.billing.credit_quote import Settle
from app.billing.errors import RenewalNoLongerDue, VmDeleted
from app.billing.rails import PaymentRails
from app.billing.renewal import renew
from app.billing.wallet_claims import claim_for_wallet
from app.worker.context import AutoRenewal, AutoRenewalNotStarted, RenewalOutcome
from domain.credit import MAX_LIVE_QUOTES
from domain.enums import PaymentMethod
from domain.errors import DomainError
from domain.model import Subscription, SubscriptionPayment
from domain.tax import TaxRates
from domain.unreadable import Unreadable
from ports.clock import Clock
from ports.lightning import LightningUnavailable
from ports.nwc import NwcAnswerLost, NwcError, NwcWallet
from ports.rates import RateStore
from ports.storage import StorageBusy, UnitOfWorkFactory

log = logging.getLogger("lnvps.autorenew")


class WalletPaymentFailed(DomainError):
    """`method=nwc`: the user's wallet could not pay the invoice (422, message safe to show)."""


async def pay_from_wallet(
    wallet: NwcWallet, connection_string: str | Unreadable | None, payment: SubscriptionPayment
) -> None:
    """Pay a fresh Lightning invoice from the user's Nostr Wallet Connect string (§5.7).

    Nothing is completed here: the settlement reported by the node completes the payment.
    A lost wallet answer is not a failure: the pending payment is returned and completes
    when (if) the node reports its settlement.
    """
    if payment.is_paid:
        return
    if isinstance(connection_string, Unreadable):
        raise WalletPaymentFailed(
            "Your wallet connection cannot be read: set nwc_connection_string again"
        )
    if connection_string is None or not connection_string.strip():
        raise WalletPaymentFailed("No wallet is connected: set nwc_connection_string first")
    try:
        await wallet.pay_invoice(connection_string, _bolt11(payment))
    except NwcAnswerLost as lost:
        log.warning("NWC payment %s: %s", payment.id.hex(), lost.message)
    except NwcError as err:
        raise WalletPaymentFailed(err.message) from None


def _bolt11(payment: SubscriptionPayment) -> str:
    """The invoice of a payment just made; one whose stored text cannot be decrypted (the key
    changed since) cannot be paid from a wallet."""
    if isinstance(payment.external_data, Unreadable):
        raise WalletPaymentFailed("The invoice cannot be read: ask for a new one")
    return payment.external_data


class AutoRenewalFailed(Exception):
    """The renewal could not be paid; `message` is safe for the user (N3)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvoiceUnavailable(AutoRenewalFailed, AutoRenewalNotStarted):
    """The renewal invoice could not be made for a passing cause (no fresh exchange rate,
    the node or the database unavailable): the wallet was not asked, so it may be tried
    again (`AutoRenewalNotStarted`)."""


def _passing(err: Exception) -> bool:
    """A cause that goes away on its own: a 503-kind error, the node or storage busy."""
    if isinstance(err, DomainError):
        return err.kind == "unavailable"
    return isinstance(err, LightningUnavailable | StorageBusy)


@attrs.define
class NwcAutoRenewer:
    """Implements the worker's `AutoRenewer` over `renew` and an `NwcWallet`.

    The payment is only paid here: the subscription is extended when the node reports the
    settlement (the settlement listener completes it), never by this class. With `settle`
    (the completion use case) the account credit pays first, as for a renewal the user asks
    for: a balance that covers the interval completes it at once and the wallet is not asked;
    a part covered leaves the wallet the rest. Built with the ports in this order (attrs drops
    the leading underscore from the argument names).
    """

    _uow_factory: UnitOfWorkFactory
    _clock: Clock
    _rails: PaymentRails
    _rates: RateStore
    _tax_rates: TaxRates
    _wallet: NwcWallet
    _settle: Settle | None = None
    #: the deployment's `max-live-quotes`: an attempt is one more live quote (`renew`)
    _max_live_quotes: int = MAX_LIVE_QUOTES

    async def _nwc_string(self, subscription: Subscription) -> str | Unreadable | None:
        """The user's wallet string; None when there is none (or no such user)."""
        async with self._uow_factory() as uow:
            user = await uow.users.get(subscription.user_id)
        if user is None:
            return None
        found = user.nwc_connection_string
        if isinstance(found, str) and not found.strip():
            return None
        return found

    async def can_attempt(self, subscription: Subscription) -> bool:
        """Whether the user has a wallet string to ask. One that cannot be decrypted
        (`Unreadable`: a lost or wrong key, a corrupt value) never will be: no wallet can be
        asked, so, as with auto-renewal off, the user gets the period's expiring-soon notice
        ("renew manually", once, D15) and the operator a log line on every run. An error
        reading the user (the database unreachable for a moment) is raised: the lifecycle
        decides the subscription again on its next run."""
        found = await self._nwc_string(subscription)
        if isinstance(found, Unreadable):
            log.error(
                "OPERATOR: the wallet connection of user %s cannot be read (it cannot be"
                " decrypted); subscription %s is not auto-renewed, its user is told to renew"
                " by hand",
                subscription.user_id,
                subscription.id,
            )
            return False
        return found is not None

    async def attempt(self, subscription: Subscription, period: datetime) -> AutoRenewal:
        """Renew the period ending `period` for one interval and pay it from the wallet.

        NOT_DUE, charging nothing, once the subscription's expiry is another (a renewal the
        user paid after the worker claimed the attempt): `renew` checks it, and again under
        the subscription's lock when the invoice is stored.

        At most one payment buys one period (`domain.wallet_claim`). The wallet is asked
        only once the invoice is claimed for the period (`claim_for_wallet`): under the
        subscription's lock, which every completion takes, the period is checked unpaid and
        the invoice payable once more just before the wallet call (NOT_DUE if a renewal
        completed since `renew` handed the invoice out), and the claim is committed. The
        wallet call holds no lock; a renewal completing during it ends the claimed invoice
        at the node, so the wallet is refused (NOT_DUE, not a failure), and a wallet payment
        that lands anyway is booked as account credit, not as a second period (CREDITED).
        CREDITED too, whatever the reason, when the wallet's payment completed without
        buying time (its VM deleted meanwhile and not restorable: account credit, though
        the expiry did not move): the completion tells the user of the credit, never
        "Auto-Renewed" (`_booked`). A wallet's error is believed only when nothing shows
        the invoice paid (`_refused`): a payment booked or settled at the node anyway is
        PAID or CREDITED as above, never "renewal failed".

        Account credit that covers the interval pays it alone, without the wallet: the
        covered payment carries the claim for its period from birth (`issue`), and its
        booking, should the period be renewed otherwise (or the VM be deleted and not
        restorable) between its storing and its booking, books nothing and gives the credit
        back (`settle_covered`): NOT_DUE, nothing said, never "Auto-Renewed" for time it
        did not buy nor a second period bought from credit.
        A crash after the wallet paid asks it nothing again: the period's attempt is marked
        done before the wallet is asked (D15), and the node would refuse a second payment
        of the same invoice anyway.

        A wallet that never answers (`NwcAnswerLost`) may have paid or not: the node is
        asked for the invoice's settlement, PAID when it has one, else UNCONFIRMED with the
        invoice's expiry (the settlement, should it come, still completes the payment).
        """
        nwc = await self._nwc_string(subscription)
        if nwc is None:
            raise AutoRenewalFailed("No wallet is connected for automatic renewal")
        if isinstance(nwc, Unreadable):  # read again since `can_attempt`: the key changed
            raise AutoRenewalFailed("The wallet connection cannot be read: set it again")
        try:
            payment = await renew(
                self._uow_factory,
                self._clock,
                self._rails,
                self._rates,
                self._tax_rates,
                user_id=None,
                subscription_id=subscription.id,
                method=PaymentMethod.LIGHTNING,
                intervals=1,
                settle=self._settle,
                period=period,
                max_live_quotes=self._max_live_quotes,
            )
        except RenewalNoLongerDue:
            log.info(
                "subscription %s was renewed since the claim; not auto-renewed", subscription.id
            )
            return AutoRenewal(RenewalOutcome.NOT_DUE)
        except VmDeleted:  # its user was told of the deletion; nothing was charged
            log.info("subscription %s: its VM was deleted; not auto-renewed", subscription.id)
            return AutoRenewal(RenewalOutcome.NOT_DUE)
        except (DomainError, LightningUnavailable, StorageBusy) as err:
            log.warning("auto-renewal invoice for subscription %s failed: %s", subscription.id, err)
            if _passing(err):  # nothing reached the wallet: it may be tried again
                raise InvoiceUnavailable("The renewal invoice could not be created") from None
            raise AutoRenewalFailed("The renewal invoice could not be created") from None
        if payment.is_paid:
            return AutoRenewal(RenewalOutcome.PAID)
        bolt11 = payment.external_data
        if isinstance(bolt11, Unreadable):  # the key changed since it was made
            raise AutoRenewalFailed("The renewal invoice could not be read")
        try:
            payment = await claim_for_wallet(self._uow_factory, payment, period, self._clock.now())
        except RenewalNoLongerDue:
            log.info("subscription %s was renewed before its wallet was asked", subscription.id)
            return AutoRenewal(RenewalOutcome.NOT_DUE)
        except DomainError as err:
            log.warning("auto-renewal of subscription %s: %s", subscription.id, err.message)
            raise AutoRenewalFailed("The renewal invoice could not be paid") from None
        try:
            await self._wallet.pay_invoice(nwc, bolt11)
        except NwcAnswerLost as lost:
            log.warning("auto-renewal of subscription %s: %s", subscription.id, lost.message)
            return await self._unanswered(payment, period)
        except NwcError as err:
            refused = await self._refused(payment, period)
            if refused is None:
                raise AutoRenewalFailed(err.message) from None
            return refused
        log.info("auto-renewal of subscription %s paid: %s", subscription.id, payment.id.hex())
        _, no_time = await self._booked(payment, period)
        return AutoRenewal(RenewalOutcome.CREDITED if no_time else RenewalOutcome.PAID)

    async def _booked(self, payment: SubscriptionPayment, period: datetime) -> tuple[bool, bool]:
        """Whether the wallet's `payment` is booked (paid), and whether it buys no time:
        completed without any (its value booked as account credit, whatever the reason: its
        period renewed otherwise, its VM deleted and not restorable, …), or, not completed
        yet, another payment renewed the period ending `period` (it will then be credit:
        `domain.wallet_claim`). An error reading it says neither: the outcome is then told
        as it would have been without the race."""
        try:
            async with self._uow_factory() as uow:
                sub = await uow.subscriptions.get(payment.subscription_id)
                found = await uow.payments.get(payment.id)
        except Exception:
            log.exception("auto-renewal: subscription %s not read", payment.subscription_id)
            return False, False
        if sub is None or found is None:
            return False, False
        if found.is_paid:
            return True, not found.time_value  # not the wallet's own renewal
        return False, sub.expires != period

    async def _node_settled(self, payment: SubscriptionPayment) -> bool:
        """Whether the node holds a settlement of the invoice (no: it cannot be asked)."""
        try:
            settled = await self._rails.lightning_settlement(payment.id)
        except DomainError as err:
            log.warning("settlement of payment %s unknown: %s", payment.id.hex(), err.message)
            return False
        return settled is not None

    async def _refused(self, payment: SubscriptionPayment, period: datetime) -> AutoRenewal | None:
        """After the wallet answered with an error: None (a failure, told as such) unless
        something shows otherwise. The payment booked, or settled at the node, means the
        wallet paid whatever it said: PAID, or CREDITED when it bought no time (the user is
        told of the credit by the completion; not "renewal failed", not "Auto-Renewed").
        NOT_DUE when another renewal bought the period meanwhile (its invoice was ended, so
        the wallet was refused: nothing was charged)."""
        paid, no_time = await self._booked(payment, period)
        if paid or await self._node_settled(payment):
            return AutoRenewal(RenewalOutcome.CREDITED if no_time else RenewalOutcome.PAID)
        return AutoRenewal(RenewalOutcome.NOT_DUE) if no_time else None

    async def _unanswered(self, payment: SubscriptionPayment, period: datetime) -> AutoRenewal:
        """PAID when the node settled the invoice the silent wallet was asked to pay (CREDITED
        when that payment bought no time: another renewal bought its period first, or it
        became account credit otherwise), else UNCONFIRMED (also when the node cannot be
        asked), or NOT_DUE when another renewal bought the period meanwhile."""
        settled = await self._node_settled(payment)
        _, no_time = await self._booked(payment, period)
        if settled:
            return AutoRenewal(RenewalOutcome.CREDITED if no_time else RenewalOutcome.PAID)
        if no_time:
            return AutoRenewal(RenewalOutcome.NOT_DUE)
        return AutoRenewal(RenewalOutcome.UNCONFIRMED, pay_by=payment.expires)
