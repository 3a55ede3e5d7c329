"""FiatGateway over Stripe PaymentIntents: created form-encoded, re-read and cancelled (§7.5)."""

from __future__ import annotations

from typing import Final

from adapters.fiat.http import (
    DEFAULT_CONNECT_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    FiatProviderError,
    GatewayBase,
    ProviderHttp,
    SessionFactory,
    check_order_request,
    path_part,
)
from ports.fiat import FiatOrder, FiatUnavailable

STRIPE_API_URL: Final = "https://api.stripe.com"
#: Stripe's error code for cancelling an intent that already succeeded or was cancelled.
UNEXPECTED_STATE: Final = "payment_intent_unexpected_state"


class StripeGateway(GatewayBase):
    """Stripe PaymentIntents: `POST /v1/payment_intents` (form-encoded amount in minor units,
    lower-case currency, description, automatic payment methods), `GET` and
    `POST /v1/payment_intents/{id}/cancel`, with the secret key as a Bearer token. Every
    failure is `FiatUnavailable`; `external_data` is the PaymentIntent JSON (its
    `client_secret` is what Stripe.js confirms the payment with).

    The intent is not confirmed at creation (the reference sent `confirm=true`, which Stripe
    refuses without a payment method). Cancelling an unknown intent (404) or one that already
    succeeded or was cancelled (400 `payment_intent_unexpected_state`) is not an error.
    """

    def __init__(
        self,
        url: str = STRIPE_API_URL,
        *,
        secret_key: str,
        session_factory: SessionFactory | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        self._http = ProviderHttp(
            name="Stripe",
            base_url=url,
            secret=secret_key,
            headers={"Accept": "application/json"},
            session_factory=session_factory,
            timeout_s=timeout_s,
            connect_timeout_s=connect_timeout_s,
        )

    def __repr__(self) -> str:
        return f"StripeGateway({self._http!r})"

    async def create_order(self, amount_minor: int, currency: str, description: str) -> FiatOrder:
        check_order_request("Stripe", amount_minor, currency)
        form = {
            "amount": str(amount_minor),
            "currency": currency.lower(),
            "description": description,
            "automatic_payment_methods[enabled]": "true",
        }
        document, text = await self._http.call_json("POST", "/v1/payment_intents", form=form)
        intent_id = document.get("id")
        if not isinstance(intent_id, str) or not intent_id:
            raise FiatUnavailable("Stripe create payment intent answered no id")
        return FiatOrder(external_id=intent_id, external_data=text)

    async def get_payment_intent_status(self, external_id: str) -> str | None:
        """The intent's status (`requires_payment_method`, `succeeded`, `canceled`, …); None
        for an intent Stripe does not know."""
        if not external_id:
            return None
        path = f"/v1/payment_intents/{path_part(external_id)}"
        try:
            document, _ = await self._http.call_json("GET", path)
        except FiatProviderError as exc:
            if exc.status == 404:
                return None
            raise
        status = document.get("status")
        if not isinstance(status, str) or not status:
            raise FiatUnavailable("Stripe GET payment intent answered no status")
        return status

    async def is_paid(self, external_id: str) -> bool:
        return await self.get_payment_intent_status(external_id) == "succeeded"

    async def cancel_order(self, external_id: str) -> None:
        """Cancel the PaymentIntent (the reference's `cancel_payment_intent`)."""
        if not external_id:
            return
        path = f"/v1/payment_intents/{path_part(external_id)}/cancel"
        try:
            await self._http.call_json("POST", path, form={})
        except FiatProviderError as exc:
            if exc.status == 404 or (exc.status == 400 and exc.code == UNEXPECTED_STATE):
                return
            raise
