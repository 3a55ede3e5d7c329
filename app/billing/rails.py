"""Payment rails: turn a priced payment into an invoice or order and a stored payment record."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

import attrs

from app.billing.errors import (
    NothingToCharge,
    PaymentMethodNotConfigured,
    PaymentProviderUnavailable,
)
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.errors import PaymentMethodUnsupported
from domain.model import Json, SubscriptionPayment
from domain.money import MSAT_PER_SAT, Currency, round_msat_up_to_sat
from ports.fiat import FiatGateway, FiatUnavailable
from ports.lightning import LightningNode, LightningUnavailable

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


class PaymentRails:
    """The configured rails: an optional Lightning node and fiat gateways by method."""

    def __init__(
        self,
        lightning: LightningNode | None = None,
        fiat: Mapping[PaymentMethod, FiatGateway] | None = None,
    ) -> None:
        self._lightning = lightning
        self._fiat = dict(fiat or {})

    async def create(self, priced: PricedPayment, now: datetime) -> SubscriptionPayment:
        """Create the invoice or order at the provider; the caller stores the result.

        A provider failure raises `PaymentProviderUnavailable` before anything is stored.
        """
        if priced.method is PaymentMethod.LIGHTNING:
            return await self._invoice(priced, now)
        return await self._order(priced, now)

    async def cancel(self, payment: SubscriptionPayment) -> None:
        """Cancel a payment at its OWN provider (D13), whichever rail completed the other one."""
        if payment.payment_method is PaymentMethod.LIGHTNING:
            node = self._node()
            try:
                await node.cancel_invoice(payment.id)
            except (LightningUnavailable, OSError, TimeoutError) as err:
                raise PaymentProviderUnavailable(f"Lightning node unavailable: {err}") from err
            return
        gateway = self._gateway(payment.payment_method)
        if payment.external_id is None:  # never reached the provider: nothing to cancel there
            log.warning("payment %s has no provider order id to cancel", payment.id.hex())
            return
        try:
            await gateway.cancel_order(payment.external_id)
        except (FiatUnavailable, OSError, TimeoutError) as err:
            name = payment.payment_method.display_name
            raise PaymentProviderUnavailable(f"{name} unavailable: {err}") from err

    def _node(self) -> LightningNode:
        if self._lightning is None:
            raise PaymentMethodNotConfigured("Lightning not configured")
        return self._lightning

    async def provider_says_paid(self, method: PaymentMethod, external_id: str) -> bool | None:
        """Ask the card provider whether an order is paid; None when its rail is not set up
        here (the signed webhook is then all there is). A provider outage raises
        `PaymentProviderUnavailable`, so the webhook answers 503 and the provider retries."""
        gateway = self._fiat.get(method)
        if gateway is None:
            return None
        try:
            return await gateway.is_paid(external_id)
        except (FiatUnavailable, OSError, TimeoutError) as err:
            name = method.display_name
            raise PaymentProviderUnavailable(f"{name} unavailable: {err}") from err

    def _gateway(self, method: PaymentMethod) -> FiatGateway:
        gateway = self._fiat.get(method)
        if gateway is None:
            raise PaymentMethodNotConfigured(f"{method.display_name} not configured")
        return gateway

    async def _invoice(self, priced: PricedPayment, now: datetime) -> SubscriptionPayment:
        node = self._node()
        if priced.currency is not Currency.BTC:
            raise PaymentMethodUnsupported("Lightning payment must be in BTC")
        # the fee is 0 on Lightning; amount + tax rounds up so the operator is never underpaid,
        # and to at least one sat: an invoice cannot be for nothing (a free upgrade, D7's 0)
        total = priced.amount + priced.tax + priced.processing_fee
        msat = max(MSAT_PER_SAT, round_msat_up_to_sat(total))
        try:
            invoice = await node.create_invoice(msat, priced.memo, LIGHTNING_EXPIRY_SECONDS)
        except (LightningUnavailable, OSError, TimeoutError) as err:
            raise PaymentProviderUnavailable(f"Lightning node unavailable: {err}") from err
        return _record(
            priced,
            payment_id=invoice.payment_hash,
            external_data=invoice.bolt11,
            external_id=invoice.external_id,
            created=now,
            expires=now + LIGHTNING_EXPIRY,
        )

    async def _order(self, priced: PricedPayment, now: datetime) -> SubscriptionPayment:
        gateway = self._gateway(priced.method)
        if priced.currency is Currency.BTC:
            name = priced.method.display_name
            raise PaymentMethodUnsupported(f"Cannot create {name} orders for BTC currency")
        total = priced.amount + priced.tax + priced.processing_fee
        if total <= 0:
            raise NothingToCharge(f"Nothing to pay by {priced.method.display_name}")
        try:
            order = await gateway.create_order(total, priced.currency.value, priced.memo)
        except (FiatUnavailable, OSError, TimeoutError) as err:
            name = priced.method.display_name
            raise PaymentProviderUnavailable(f"{name} unavailable: {err}") from err
        return _record(
            priced,
            payment_id=secrets.token_bytes(PAYMENT_ID_BYTES),
            external_data=order.external_data,
            external_id=order.external_id,
            created=now,
            expires=now + FIAT_EXPIRY,
        )


def _record(
    priced: PricedPayment,
    *,
    payment_id: bytes,
    external_data: str,
    external_id: str | None,
    created: datetime,
    expires: datetime,
) -> SubscriptionPayment:
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
        processing_fee=priced.processing_fee,
        external_id=external_id,
        time_value=priced.time_value,
        metadata=priced.metadata,
    )
