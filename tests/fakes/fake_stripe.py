"""A fake Stripe API (Checkout Sessions, PaymentIntents; form-encoded) and signed webhook events
(payments, disputes, refunds)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

#: statuses from which Stripe lets an intent be cancelled.
CANCELLABLE = frozenset(
    {
        "requires_payment_method",
        "requires_capture",
        "requires_confirmation",
        "requires_action",
        "processing",
    }
)


#: Stripe's smallest charge per currency, in its units (¥50 is 50); below it a Checkout
#: Session is refused with `amount_too_small`, as the real API does.
MINIMUM_CHARGE = {"usd": 50, "eur": 50, "gbp": 30, "cad": 50, "chf": 50, "aud": 50, "jpy": 50}


class FakeStripe:
    """PaymentIntents in memory; checks the Bearer secret key like the real API.

    A refused key is echoed back in full in the error text (Stripe masks it; this fake is
    harsher), so tests see that the adapter scrubs it. `fail_status` makes every call answer
    that status; `delay_s` delays every answer.
    """

    def __init__(self, secret_key: str = "sk_test_stripe_fake_key") -> None:
        self.secret_key = secret_key
        self.intents: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        #: disputes and charges made by `dispute` / `refund`, by id (for `event`)
        self.objects: dict[str, dict[str, Any]] = {}
        #: (method, path, form fields) of every authorised request, in order
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.fail_status: int | None = None
        self.delay_s = 0.0
        #: Stripe's clock in unix seconds (None: the real time); `expires_at` is judged by it
        self.now: float | None = None

    def _time(self) -> int:
        return int(time.time() if self.now is None else self.now)

    # -- test helpers -----------------------------------------------------------------------

    def lapse(self, session_id: str) -> None:
        """Stripe's clock reached the session's `expires_at`: an open session expires."""
        session = self.sessions[session_id]
        if session["status"] == "open":
            session["status"] = "expired"

    def complete(self, object_id: str) -> None:
        """The customer paid: a session becomes `complete`/`paid` (with a succeeded intent),
        an intent `succeeded`."""
        session = self.sessions.get(object_id)
        if session is not None:
            intent_id = self._new_intent(session["amount_total"], session["currency"], None)
            self.complete(intent_id)
            session.update(status="complete", payment_status="paid", payment_intent=intent_id)
            return
        intent = self.intents[object_id]
        intent["status"] = "succeeded"
        intent["amount_received"] = intent["amount"]

    def dispute(self, session_id: str, reason: str = "fraudulent") -> str:
        """The cardholder disputes the paid session's charge; the Dispute's id."""
        session = self.sessions[session_id]
        dispute_id = "dp_" + secrets.token_hex(12)
        self.objects[dispute_id] = {
            "id": dispute_id,
            "object": "dispute",
            "amount": session["amount_total"],
            "currency": session["currency"],
            "charge": "ch_" + secrets.token_hex(12),
            "payment_intent": session["payment_intent"],
            "reason": reason,
            "status": "needs_response",
        }
        return dispute_id

    def refund(self, session_id: str, amount: int) -> str:
        """`amount` more of the paid session's charge is refunded; the Charge's id."""
        session = self.sessions[session_id]
        charge_id = f"ch_of_{session['payment_intent']}"
        charge = self.objects.setdefault(
            charge_id,
            {
                "id": charge_id,
                "object": "charge",
                "amount": session["amount_total"],
                "amount_refunded": 0,
                "currency": session["currency"],
                "payment_intent": session["payment_intent"],
            },
        )
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return charge_id

    def event(self, kind: str, object_id: str) -> bytes:
        """An event body as Stripe posts it: `{id, object: event, type, data: {object}}`."""
        obj = (
            self.sessions.get(object_id)
            or self.intents.get(object_id)
            or self.objects.get(object_id)
            or {"id": object_id}
        )
        return json.dumps(
            {
                "id": "evt_" + secrets.token_hex(12),
                "object": "event",
                "type": kind,
                "created": int(time.time()),
                "data": {"object": obj},
            }
        ).encode()

    @staticmethod
    def signature(body: bytes, secret: str, at: int) -> dict[str, str]:
        """Headers of a delivery signed as Stripe signs: `t=<at>,v1=<HMAC-SHA256 hex>`."""
        digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
        return {"Stripe-Signature": f"t={at},v1={digest}", "Content-Type": "application/json"}

    def _new_intent(self, amount: int, currency: str, description: str | None) -> str:
        intent_id = "pi_" + secrets.token_hex(12)
        self.intents[intent_id] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_received": 0,
            "currency": currency,
            "description": description,
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "created": int(time.time()),
            "livemode": False,
        }
        return intent_id

    # -- the API ----------------------------------------------------------------------------

    async def _gate(self, request: web.Request) -> web.Response | None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.secret_key}":
            key = auth.removeprefix("Bearer ")
            return _error(401, "", f"Invalid API Key provided: {key}", kind="invalid_request_error")
        if self.fail_status is not None:
            return _error(self.fail_status, "", "An unknown error occurred", kind="api_error")
        return None

    async def _form(self, request: web.Request) -> dict[str, str]:
        data = await request.post()
        return {key: str(value) for key, value in data.items()}

    async def _create(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        form = await self._form(request)
        self.requests.append(("POST", request.path, form))
        amount = form.get("amount", "")
        currency = form.get("currency", "")
        if not amount.isdigit() or int(amount) <= 0:
            return _error(400, "parameter_invalid_integer", "Invalid integer: amount")
        if len(currency) != 3 or currency != currency.lower():
            return _error(400, "invalid_currency", f"Invalid currency: {currency}")
        intent_id = "pi_" + secrets.token_hex(12)
        intent: dict[str, Any] = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(amount),
            "amount_received": 0,
            "currency": currency,
            "description": form.get("description"),
            "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_{secrets.token_hex(12)}",
            "created": int(time.time()),
            "livemode": False,
            "automatic_payment_methods": {
                "enabled": form.get("automatic_payment_methods[enabled]") == "true"
            },
        }
        self.intents[intent_id] = intent
        return web.json_response(intent)

    async def _get(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        intent_id = request.match_info["intent_id"]
        self.requests.append(("GET", request.path, {}))
        intent = self.intents.get(intent_id)
        if intent is None:
            return _missing(intent_id)
        return web.json_response(intent)

    async def _cancel(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        intent_id = request.match_info["intent_id"]
        self.requests.append(("POST", request.path, await self._form(request)))
        intent = self.intents.get(intent_id)
        if intent is None:
            return _missing(intent_id)
        if intent["status"] not in CANCELLABLE:
            return _error(
                400,
                "payment_intent_unexpected_state",
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent['status']}.",
            )
        intent["status"] = "canceled"
        intent["canceled_at"] = int(time.time())
        return web.json_response(intent)

    async def _create_session(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        form = await self._form(request)
        self.requests.append(("POST", request.path, form))
        item = "line_items[0][price_data]"
        amount = form.get(f"{item}[unit_amount]", "")
        currency = form.get(f"{item}[currency]", "")
        if form.get("mode") != "payment" or not form.get("success_url"):
            return _error(400, "parameter_missing", "Missing required param: mode/success_url")
        if not amount.isdigit() or int(amount) <= 0:
            return _error(400, "parameter_invalid_integer", "Invalid integer: unit_amount")
        if len(currency) != 3 or currency != currency.lower():
            return _error(400, "invalid_currency", f"Invalid currency: {currency}")
        quantity = int(form.get("line_items[0][quantity]", "1"))
        if int(amount) * quantity < MINIMUM_CHARGE.get(currency, 1):
            return _error(
                400,
                "amount_too_small",
                f"The Checkout Session's total amount due must add up to at least "
                f"{MINIMUM_CHARGE[currency]} {currency}",
            )
        now = self._time()
        expires_at = form.get("expires_at", str(now + 86_400))
        # Stripe: expires_at must be 30 minutes to 24 hours after the session is created
        if not expires_at.isdigit() or not 1_800 <= int(expires_at) - now <= 86_400:
            return _error(400, "parameter_invalid_integer", "Invalid expires_at")
        session_id = "cs_test_" + secrets.token_hex(16)
        session: dict[str, Any] = {
            "id": session_id,
            "object": "checkout.session",
            "mode": "payment",
            "amount_total": int(amount) * quantity,
            "currency": currency,
            "status": "open",
            "payment_status": "unpaid",
            "payment_intent": None,
            "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            "success_url": form["success_url"],
            "cancel_url": form.get("cancel_url"),
            "expires_at": int(expires_at),
            "created": now,
            "livemode": False,
            # not in Stripe's object (it is in the line items); kept for the tests
            "description": form.get(f"{item}[product_data][name]"),
        }
        self.sessions[session_id] = session
        return web.json_response(session)

    async def _get_session(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        session_id = request.match_info["session_id"]
        self.requests.append(("GET", request.path, {}))
        session = self.sessions.get(session_id)
        if session is None:
            return _error(404, "resource_missing", f"No such checkout.session: '{session_id}'")
        return web.json_response(session)

    async def _list_sessions(self, request: web.Request) -> web.Response:
        """Sessions, filtered by `payment_intent` (the only filter this fake knows)."""
        refused = await self._gate(request)
        if refused is not None:
            return refused
        self.requests.append(("GET", request.path_qs, {}))
        intent = request.query.get("payment_intent")
        found = [
            s for s in self.sessions.values() if intent is None or s["payment_intent"] == intent
        ]
        limit = int(request.query.get("limit", "10"))
        return web.json_response(
            {"object": "list", "data": found[:limit], "has_more": len(found) > limit}
        )

    async def _expire_session(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        session_id = request.match_info["session_id"]
        self.requests.append(("POST", request.path, await self._form(request)))
        session = self.sessions.get(session_id)
        if session is None:
            return _error(404, "resource_missing", f"No such checkout.session: '{session_id}'")
        if session["status"] != "open":
            return _error(
                400,
                "",
                f"Only Checkout Sessions with a status of open can be "
                f"expired; this one is {session['status']}.",
            )
        session["status"] = "expired"
        return web.json_response(session)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 at a free port; yields the base URL (no trailing slash)."""
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._create_session)
        app.router.add_get("/v1/checkout/sessions", self._list_sessions)
        app.router.add_get("/v1/checkout/sessions/{session_id}", self._get_session)
        app.router.add_post("/v1/checkout/sessions/{session_id}/expire", self._expire_session)
        app.router.add_post("/v1/payment_intents", self._create)
        app.router.add_get("/v1/payment_intents/{intent_id}", self._get)
        app.router.add_post("/v1/payment_intents/{intent_id}/cancel", self._cancel)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()


def _missing(intent_id: str) -> web.Response:
    return _error(404, "resource_missing", f"No such payment_intent: '{intent_id}'")


def _error(
    status: int, code: str, message: str, *, kind: str = "invalid_request_error"
) -> web.Response:
    error: dict[str, str] = {"message": message, "type": kind}
    if code:
        error["code"] = code
    return web.json_response({"error": error}, status=status)
