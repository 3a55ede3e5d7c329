"""Rails over the provider ports: Lightning on a `LightningNode`, card orders on a `FiatGateway`."""

from __future__ import annotations

from app.billing.errors import ChargeBelowMinimum
from domain.enums import PaymentMethod
from domain.errors import PaymentMethodUnsupported
from domain.money import Currency, Money, lightning_invoice_msat
from ports.fiat import (
    FiatBelowMinimum,
    FiatCurrencyNotChargeable,
    FiatGateway,
    FiatRefused,
    FiatUnavailable,
    OrderExpiry,
)
from ports.lightning import LightningNode, LightningUnavailable, SettledInvoice
from ports.payment_rail import (
    Charge,
    ChargeRequest,
    RailRefused,
    RailUnavailable,
    WebhookVerifier,
)


class LightningRail:
    """The Lightning rail on any node (LND, the dev rail): BOLT11 invoices, hash as payment id.

    An invoice is for a whole number of sats, rounded up (the operator is never underpaid),
    and at least one sat: an invoice cannot be for nothing (a free upgrade, D7's 0). The
    `Charge` says what the invoice asks, so the payment records that total, not the
    request's (the rounding becomes processing fee in `app.billing.rails`).
    """

    method = PaymentMethod.LIGHTNING
    webhook: WebhookVerifier | None = None

    def __init__(self, node: LightningNode) -> None:
        self.node = node

    def quote_currency(self, list_currency: Currency) -> Currency:
        return Currency.BTC

    async def create_charge(self, request: ChargeRequest) -> Charge:
        if request.currency is not Currency.BTC:
            raise PaymentMethodUnsupported("Lightning payment must be in BTC")
        msat = lightning_invoice_msat(request.amount)
        seconds = int(request.expiry.total_seconds())
        try:
            invoice = await self.node.create_invoice(msat, request.memo, seconds)
        except LightningUnavailable as err:
            raise RailUnavailable(f"Lightning node unavailable: {err}") from err
        return Charge(
            payment_id=invoice.payment_hash,
            external_id=invoice.external_id,
            external_data=invoice.bolt11,
            amount=msat,
        )

    async def is_paid(self, payment_id: bytes, external_id: str | None) -> bool | None:
        return await self.settlement(payment_id) is not None

    async def settlement(self, payment_id: bytes) -> SettledInvoice | None:
        """The node's settlement of that invoice (what arrived for it), None if unsettled."""
        try:
            return await self.node.lookup_settlement(payment_id)
        except LightningUnavailable as err:
            raise RailUnavailable(f"Lightning node unavailable: {err}") from err

    async def cancel(self, payment_id: bytes, external_id: str | None) -> None:
        try:
            await self.node.cancel_invoice(payment_id)
        except LightningUnavailable as err:
            raise RailUnavailable(f"Lightning node unavailable: {err}") from err


class OrderRail:
    """A card rail on a `FiatGateway` (Revolut orders, Stripe Checkout Sessions): it charges
    the list currency as is and cannot charge bitcoin; its webhook says when it is paid.

    The charge records what the order really asks (`FiatOrder.amount_minor`: the gateway
    rounds up to its provider's unit, whole yen at Stripe), so the payment's total is it. A
    charge the gateway refuses before calling its provider is a 422 (below the provider's
    minimum: `ChargeBelowMinimum`; a currency it cannot count: `PaymentMethodUnsupported`);
    a provider's refusal for good is `RailRefused`, any other failure `RailUnavailable`.
    """

    def __init__(
        self,
        method: PaymentMethod,
        gateway: FiatGateway,
        webhook: WebhookVerifier | None = None,
    ) -> None:
        self.method = method
        self.gateway = gateway
        self.webhook = webhook

    def quote_currency(self, list_currency: Currency) -> Currency:
        if list_currency is Currency.BTC:
            name = self.method.display_name
            raise PaymentMethodUnsupported(f"Cannot create {name} orders for BTC currency")
        return list_currency

    async def create_charge(self, request: ChargeRequest) -> Charge:
        self.quote_currency(request.currency)
        # the order stops being payable at the provider when its quote lapses here
        expiry = OrderExpiry(starts=request.created, lasts=request.expiry)
        try:
            order = await self.gateway.create_order(
                request.amount, request.currency.value, request.memo, expiry
            )
        except FiatBelowMinimum as err:
            smallest = Money(request.currency, err.minimum_minor)
            asked = Money(request.currency, err.amount_minor)
            raise ChargeBelowMinimum(
                f"{self.method.display_name} cannot take a payment below {smallest} "
                f"(this one is {asked})"
            ) from err
        except FiatCurrencyNotChargeable as err:
            raise PaymentMethodUnsupported(str(err)) from err
        except FiatUnavailable as err:
            raise self._failure(err) from err
        return Charge(
            payment_id=None,
            external_id=order.external_id,
            external_data=order.external_data,
            amount=order.amount_minor,
        )

    async def is_paid(self, payment_id: bytes, external_id: str | None) -> bool | None:
        if not external_id:
            return False
        try:
            return await self.gateway.is_paid(external_id)
        except FiatUnavailable as err:
            raise self._failure(err) from err

    async def cancel(self, payment_id: bytes, external_id: str | None) -> None:
        if not external_id:
            return
        try:
            await self.gateway.cancel_order(external_id)
        except FiatUnavailable as err:
            raise self._failure(err) from err

    def _failure(self, err: FiatUnavailable) -> RailUnavailable:
        """The gateway's failure as the rail's: a refusal for good stays one."""
        name = self.method.display_name
        if isinstance(err, FiatRefused):
            return RailRefused(f"{name} refused: {err}")
        return RailUnavailable(f"{name} unavailable: {err}")
