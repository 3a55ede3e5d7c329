"""FiatGateway over Stripe Checkout Sessions (api.md §5.4): created form-encoded, read, expired."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final, Unpack

from adapters.fiat.http import (
    FiatProviderError,
    GatewayBase,
    ProviderHttp,
    Transport,
    check_order_request,
    path_part,
)
from adapters.fiat.stripe_amounts import stripe_amount
from ports.fiat import FiatOrder, FiatUnavailable, OrderExpiry

STRIPE_API_URL: Final = "https://api.stripe.com"
#: Stripe's error code for cancelling an intent that already succeeded or was cancelled.
UNEXPECTED_STATE: Final = "payment_intent_unexpected_state"


#: the prefix of a Checkout Session id; other ids are PaymentIntents made before Checkout.
SESSION_PREFIX: Final = "cs_"
#: Stripe takes a session's `expires_at` 30 minutes to 24 hours after its own now; a minute
#: of margin each side keeps a clock a little apart from Stripe's inside that range.
SESSION_MIN: Final = timedelta(minutes=31)
SESSION_MAX: Final = timedelta(hours=24) - timedelta(minutes=1)


def session_expires_at(expiry: OrderExpiry) -> int:
    """The session's `expires_at` (unix seconds): when the quote lapses, within Stripe's
    range (a shorter quote's session is expired by the lapsed-order sweep instead)."""
    lasts = min(max(expiry.lasts, SESSION_MIN), SESSION_MAX)
    return int((expiry.starts + lasts).timestamp())


class StripeGateway(GatewayBase):
    """Stripe Checkout: `POST /v1/checkout/sessions` (mode `payment`, one line item of the
    amount in Stripe's unit for the currency (`stripe_amount`: cents, whole yen), lower-case
    currency, the description as its name), `GET` it and
    `POST /v1/checkout/sessions/{id}/expire` to cancel, with the secret key as a Bearer
    token. A charge Stripe cannot take (below its minimum, a currency it counts specially)
    raises `FiatNotChargeable` before any call; a refusal for good is `FiatRefused`; every
    other failure `FiatUnavailable`. `external_data` is the session JSON: the
    client opens its `url`, or redirects to Checkout with its `id` (api.md's `session_id`).

    A session made with an `expiry` carries `expires_at`, so Stripe closes it by itself when
    the quote lapses. Expiring an unknown session (404) or one no longer open (a 400,
    re-read: complete or expired) is not an error. Ids that are not sessions are
    PaymentIntents of payments made before Checkout; they are still read and cancelled as
    intents.
    """

    def __init__(
        self,
        url: str = STRIPE_API_URL,
        *,
        secret_key: str,
        success_url: str = "https://lnvps.net",
        cancel_url: str | None = None,
        **transport: Unpack[Transport],
    ) -> None:
        self._http = ProviderHttp(
            name="Stripe",
            base_url=url,
            secret=secret_key,
            headers={"Accept": "application/json"},
            **transport,
        )
        self._success_url = success_url
        self._cancel_url = cancel_url or success_url

    async def create_order(
        self,
        amount_minor: int,
        currency: str,
        description: str,
        expiry: OrderExpiry | None = None,
    ) -> FiatOrder:
        check_order_request("Stripe", amount_minor, currency)
        units, unit_amount = stripe_amount(amount_minor, currency)
        form = {
            "mode": "payment",
            "success_url": self._success_url,
            "cancel_url": self._cancel_url,
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": currency.lower(),
            "line_items[0][price_data][unit_amount]": str(unit_amount),
            "line_items[0][price_data][product_data][name]": description,
        }
        if expiry is not None:
            form["expires_at"] = str(session_expires_at(expiry))
        document, text = await self._http.call_json("POST", "/v1/checkout/sessions", form=form)
        session_id = document.get("id")
        if not isinstance(session_id, str) or not session_id:
            raise FiatUnavailable("Stripe create checkout session answered no id")
        return FiatOrder(
            external_id=session_id,
            external_data=text,
            amount_minor=units.to_hundredths(unit_amount),
        )

    async def get_session(self, session_id: str) -> dict[str, Any] | None:
        """The Checkout Session as Stripe has it now; None for one Stripe does not know."""
        if not session_id:
            return None
        found = await self._http.get_json_or_none(f"/v1/checkout/sessions/{path_part(session_id)}")
        return None if found is None else found[0]

    async def get_payment_intent_status(self, external_id: str) -> str | None:
        """The intent's status (`requires_payment_method`, `succeeded`, `canceled`, …); None
        for an intent Stripe does not know."""
        if not external_id:
            return None
        found = await self._http.get_json_or_none(f"/v1/payment_intents/{path_part(external_id)}")
        if found is None:
            return None
        status = found[0].get("status")
        if not isinstance(status, str) or not status:
            raise FiatUnavailable("Stripe GET payment intent answered no status")
        return status

    async def order_of(self, reference: str) -> str | None:
        """The Checkout Session that made PaymentIntent `reference` (Stripe's sessions listed
        by `payment_intent`); None for another id, or an intent no session made."""
        if not reference.startswith("pi_"):
            return None
        path = f"/v1/checkout/sessions?payment_intent={path_part(reference)}&limit=1"
        found = await self._http.get_json_or_none(path)
        sessions = None if found is None else found[0].get("data")
        if found is not None and not isinstance(sessions, list):
            raise FiatUnavailable("Stripe list checkout sessions answered no data")
        session_id = sessions[0].get("id") if sessions and isinstance(sessions[0], dict) else None
        return session_id if isinstance(session_id, str) and session_id else None

    async def is_paid(self, external_id: str) -> bool:
        """A session is paid when its `payment_status` is `paid`; an intent on `succeeded`."""
        if not external_id.startswith(SESSION_PREFIX):
            return await self.get_payment_intent_status(external_id) == "succeeded"
        session = await self.get_session(external_id)
        return session is not None and session.get("payment_status") == "paid"

    async def cancel_order(self, external_id: str) -> None:
        """Expire the session (or cancel a pre-Checkout PaymentIntent)."""
        if not external_id:
            return
        if not external_id.startswith(SESSION_PREFIX):
            await self._cancel_intent(external_id)
            return
        path = f"/v1/checkout/sessions/{path_part(external_id)}/expire"
        status, raw = await self._http.call("POST", path)
        if 200 <= status < 300 or status == 404:
            return
        if status == 400:
            session = await self.get_session(external_id)
            if session is None or session.get("status") in ("complete", "expired"):
                return
        raise self._http.status_error("POST", path, status, raw)

    async def _cancel_intent(self, external_id: str) -> None:
        path = f"/v1/payment_intents/{path_part(external_id)}/cancel"
        try:
            await self._http.call_json("POST", path, form={})
        except FiatProviderError as exc:
            if exc.status == 404 or (exc.status == 400 and exc.code == UNEXPECTED_STATE):
                return
            raise
