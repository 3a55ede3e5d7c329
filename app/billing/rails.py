"""Payment rails: turn a priced payment into an invoice or order and a stored payment record."""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from app.billing.errors import (
    BitcoinPriceNeedsLightning,
    ChargeBelowMinimum,
    LightningNotOffered,
    NothingToCharge,
    PaymentMethodNotConfigured,
    PaymentProviderRefused,
    PaymentProviderUnavailable,
)
from app.billing.rail_kinds import LightningRail, OrderRail
from domain.account_credit import Levy, no_levy
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.errors import PaymentMethodUnsupported
from domain.limits import check_charge
from domain.model import Json, SubscriptionPayment
from domain.money import Currency
from ports.fiat import FiatGateway
from ports.lightning import LightningNode, SettledInvoice
from ports.payment_rail import (
    ChargeRequest,
    PaymentRail,
    RailRefused,
    RailUnavailable,
    WebhookVerifier,
)

log = logging.getLogger(__name__)

#: a Lightning invoice (and its payment) is payable for 10 minutes (R13.3).
LIGHTNING_EXPIRY_SECONDS = 600
LIGHTNING_EXPIRY = timedelta(seconds=LIGHTNING_EXPIRY_SECONDS)
#: a fiat order (and its payment) is payable for one hour (R13.4).
FIAT_EXPIRY = timedelta(seconds=3600)
PAYMENT_ID_BYTES = 32


@attrs.frozen(kw_only=True)
class PricedPayment:
    """Everything a rail needs to charge and record a payment; it knows nothing of products.

    `amount`, `tax` and `processing_fee` are in smallest units of `currency`, the charged
    currency (msat for Lightning).
    """

    subscription_id: int
    user_id: int
    method: PaymentMethod
    payment_type: SubscriptionPaymentType
    amount: int
    currency: Currency
    rate: Decimal
    tax: int
    processing_fee: int
    time_value: int | None
    metadata: Json
    memo: str
    #: the tax and fee the quote puts on a net amount: what the part of it that the account
    #: balance does not pay is charged (`credit_quote.apply_balance`); none by default
    levy: Levy = attrs.field(default=no_levy, eq=False, repr=False)
    #: the seller's config of `method` is disabled (`Charging.withdrawn`): no rail may be asked
    #: for it (`credit_quote.issue` refuses), though the balance may still pay it whole
    withdrawn: bool = attrs.field(default=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        # every payment is priced into one of these before any rail or table sees it
        check_charge(self.amount, self.tax, self.processing_fee)

    @property
    def total(self) -> int:
        """What the quote asks: amount + tax + processing fee (before a rail's rounding)."""
        return self.amount + self.tax + self.processing_fee


class PaymentRails:
    """The registry of configured rails, keyed by `PaymentMethod`, and the webhook verifiers.

    `lightning` and `fiat` wrap the older provider ports into rails; `rails` adds (or
    replaces) any `PaymentRail`. `webhooks` are verifiers known even when their rail is not
    configured here: a signed webhook then completes on its signature alone (logged).
    `lightning_off`: the operator turned Lightning off (a fiat-only shop,
    `lightning.enabled: false`), so no Lightning rail may be given and every way to pay by
    Lightning (an invoice, NWC, LNURL) is refused before anything is read or written
    (`refuse_lightning`).
    """

    def __init__(
        self,
        lightning: LightningNode | None = None,
        fiat: Mapping[PaymentMethod, FiatGateway] | None = None,
        *,
        rails: Iterable[PaymentRail] = (),
        webhooks: Iterable[WebhookVerifier] = (),
        lightning_off: bool = False,
    ) -> None:
        self.lightning_off = lightning_off
        found: list[PaymentRail] = []
        if lightning is not None:
            found.append(LightningRail(lightning))
        found += [OrderRail(method, gateway) for method, gateway in (fiat or {}).items()]
        found += rails
        self._rails: dict[PaymentMethod, PaymentRail] = {rail.method: rail for rail in found}
        if lightning_off and PaymentMethod.LIGHTNING in self._rails:
            raise ValueError("Lightning is off, yet a Lightning rail was given")
        self._webhooks: dict[PaymentMethod, WebhookVerifier] = {w.method: w for w in webhooks}
        for rail in self._rails.values():
            if rail.webhook is not None:
                self._webhooks[rail.method] = rail.webhook

    def offered(self) -> tuple[PaymentMethod, ...]:
        """The methods configured here, in enum order."""
        return tuple(method for method in PaymentMethod if method in self._rails)

    def order_methods(self) -> tuple[PaymentMethod, ...]:
        """The configured methods whose charges are orders at a card provider (`OrderRail`:
        Revolut, Stripe), which stay open there until expired or cancelled; in enum order."""
        return tuple(m for m in self.offered() if isinstance(self._rails[m], OrderRail))

    def refuse_lightning(self, method: PaymentMethod) -> None:
        """Refuse a Lightning payment (an invoice, NWC, LNURL) when Lightning is off.

        Called first by every use case that would charge by Lightning, so the refusal
        (422) comes before anything is read or written: without it a Lightning quote the
        account balance covers whole, or a Lightning invoice still pending from before the
        switch, would be handed out by a server that takes no Lightning.
        """
        if self.lightning_off and method is PaymentMethod.LIGHTNING:
            raise LightningNotOffered(
                f"Lightning payments are not taken here; {self._elsewhere(method)}"
            )

    def refuse_bitcoin_price(self, currency: str) -> None:
        """Refuse to charge a subscription priced in BTC when Lightning is off: no other rail
        charges bitcoin, so it can be neither renewed nor upgraded here (422)."""
        if self.lightning_off and currency.strip().upper() == Currency.BTC.value:
            raise BitcoinPriceNeedsLightning(
                "This service is priced in BTC, which only Lightning can pay, and Lightning"
                " payments are not taken here: please contact support"
            )

    def rail(self, method: PaymentMethod) -> PaymentRail:
        rail = self._rails.get(method)
        if rail is None:
            raise PaymentMethodNotConfigured(f"{method.display_name} not configured")
        return rail

    def webhook(self, method: PaymentMethod) -> WebhookVerifier | None:
        """How `method`'s webhooks are verified; None: it has none."""
        return self._webhooks.get(method)

    async def create(self, priced: PricedPayment, now: datetime) -> SubscriptionPayment:
        """Create the invoice or order at the provider; the caller stores the result.

        The result's total is what the rail asks the payer (`_rounding_fee`). Before anything
        is stored, a provider outage raises `PaymentProviderUnavailable` (503), its refusal
        `PaymentProviderRefused` (502), and a charge below the provider's minimum
        `ChargeBelowMinimum` (422, naming the other methods offered here).
        """
        rail = self.rail(priced.method)
        name = priced.method.display_name
        charged = rail.quote_currency(priced.currency)
        if charged is not priced.currency:
            raise PaymentMethodUnsupported(f"{name} payment must be in {charged.value}")
        total = priced.total
        bitcoin = priced.currency is Currency.BTC
        if total <= 0 and not bitcoin:
            raise NothingToCharge(f"Nothing to pay by {name}")
        expiry = LIGHTNING_EXPIRY if bitcoin else FIAT_EXPIRY
        request = ChargeRequest(
            amount=total, currency=priced.currency, memo=priced.memo, expiry=expiry, created=now
        )
        try:
            async with _provider_call(priced.method):
                charge = await rail.create_charge(request)
        except ChargeBelowMinimum as err:
            raise ChargeBelowMinimum(f"{err.message}; {self._elsewhere(priced.method)}") from err
        return _record(
            priced,
            charged=charge.amount,
            payment_id=charge.payment_id or secrets.token_bytes(PAYMENT_ID_BYTES),
            external_data=charge.external_data,
            external_id=charge.external_id,
            created=now,
            expires=now + (charge.expiry or expiry),
        )

    def _elsewhere(self, method: PaymentMethod) -> str:
        """What to tell a user whose charge `method` cannot take: the other offered ways."""
        others = [m.display_name for m in self.offered() if m is not method]
        if not others:
            return "no other payment method is offered"
        return f"please pay it by {' or '.join(others)}"

    async def cancel(self, payment: SubscriptionPayment) -> None:
        """Cancel a payment at its OWN provider (D13), whichever rail completed the other one."""
        if self.lightning_off and payment.payment_method is PaymentMethod.LIGHTNING:
            # an invoice of the node used before Lightning was turned off: no node to ask
            log.info("payment %s: Lightning is off, no invoice to cancel", payment.id.hex())
            return
        rail = self.rail(payment.payment_method)
        if payment.external_id is None and payment.payment_method is not PaymentMethod.LIGHTNING:
            # never reached the provider: nothing to cancel there
            log.warning("payment %s has no provider order id to cancel", payment.id.hex())
            return
        async with _provider_call(payment.payment_method):
            await rail.cancel(payment.id, payment.external_id)

    @property
    def asks_lightning_node(self) -> bool:
        """A Lightning node is configured here: `lightning_settlement` asks it."""
        return isinstance(self._rails.get(PaymentMethod.LIGHTNING), LightningRail)

    async def lightning_settlement(self, payment_id: bytes) -> SettledInvoice | None:
        """The Lightning node's settlement of that invoice (what it received); None when it
        has none or no node is configured here. An outage raises `PaymentProviderUnavailable`."""
        rail = self._rails.get(PaymentMethod.LIGHTNING)
        if not isinstance(rail, LightningRail):
            return None
        async with _provider_call(PaymentMethod.LIGHTNING):
            return await rail.settlement(payment_id)

    async def provider_says_paid(self, method: PaymentMethod, external_id: str) -> bool | None:
        """Ask the provider whether a charge is paid; None when its rail is not set up here
        or cannot tell (the signed webhook is then all there is). A provider outage raises
        `PaymentProviderUnavailable`, so the webhook answers 503 and the provider retries."""
        rail = self._rails.get(method)
        if rail is None:
            return None
        async with _provider_call(method):
            # webhooks name the provider's id only; no webhook rail keys on the payment id
            return await rail.is_paid(b"", external_id)


@contextlib.asynccontextmanager
async def _provider_call(method: PaymentMethod) -> AsyncIterator[None]:
    """A rail's failure as a domain error, nothing stored: a refusal for good
    `PaymentProviderRefused` (502), an outage `PaymentProviderUnavailable` (503). The
    provider's own words (its status, its error text) are logged here and never reach the
    user (D19), who is told only which provider failed and whether to try again."""
    name = method.display_name
    try:
        yield
    except RailRefused as err:
        log.warning("%s refused the request: %s", name, err)
        raise PaymentProviderRefused(
            f"{name} refused the request; please use another payment method or contact support"
        ) from err
    except (RailUnavailable, OSError, TimeoutError) as err:
        log.warning("%s is unavailable: %s", name, err)
        raise PaymentProviderUnavailable(f"{name} is unavailable; please try again later") from err


def _rounding_fee(priced: PricedPayment, charged: int) -> int:
    """What a rail asks above the quote's total: the rest of rounding a Lightning invoice up
    to a whole sat (under one sat), the one sat of an invoice for nothing, or the rest of
    rounding a card order up to its provider's unit (under ¥1 for JPY at Stripe and Revolut,
    which count whole yen where we count hundredths).

    It is booked as processing fee, in this one place, so a payment's amount + tax + fee is
    exactly what its invoice asked the payer. Not in the net amount: fee is untaxed and buys
    no time, while invoices derive the tax rate from amount and tax (adding the rest to the
    amount turned a 23 % VAT into 22.83 % on a small credit-reduced quote). A rail asking
    less than the total is a bug that would underpay the operator: refused.
    """
    rest = charged - priced.total
    if rest < 0:
        raise ValueError(f"a rail charged {charged}, less than the {priced.total} asked")
    return rest


def _record(
    priced: PricedPayment,
    *,
    charged: int,
    payment_id: bytes,
    external_data: str,
    external_id: str | None,
    created: datetime,
    expires: datetime,
) -> SubscriptionPayment:
    """The payment as charged: its fee takes what the rail asked above the quote."""
    return SubscriptionPayment(
        id=payment_id,
        subscription_id=priced.subscription_id,
        user_id=priced.user_id,
        created=created,
        expires=expires,
        amount=priced.amount,
        currency=priced.currency.value,
        payment_method=priced.method,
        payment_type=priced.payment_type,
        external_data=external_data,
        rate=priced.rate,
        tax=priced.tax,
        processing_fee=priced.processing_fee + _rounding_fee(priced, charged),
        external_id=external_id,
        time_value=priced.time_value,
        metadata=priced.metadata,
    )
