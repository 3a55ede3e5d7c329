"""A fake Stripe PaymentIntents API (form-encoded create, read, cancel) on a local server."""

from __future__ import annotations

import asyncio
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


class FakeStripe:
    """PaymentIntents in memory; checks the Bearer secret key like the real API.

    A refused key is echoed back in full in the error text (Stripe masks it; this fake is
    harsher), so tests see that the adapter scrubs it. `fail_status` makes every call answer
    that status; `delay_s` delays every answer.
    """

    def __init__(self, secret_key: str = "sk_test_stripe_fake_key") -> None:
        self.secret_key = secret_key
        self.intents: dict[str, dict[str, Any]] = {}
        #: (method, path, form fields) of every authorised request, in order
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.fail_status: int | None = None
        self.delay_s = 0.0

    # -- test helpers -----------------------------------------------------------------------

    def complete(self, intent_id: str) -> None:
        """The customer paid: the intent `succeeded`."""
        intent = self.intents[intent_id]
        intent["status"] = "succeeded"
        intent["amount_received"] = intent["amount"]

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

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 at a free port; yields the base URL (no trailing slash)."""
        app = web.Application()
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
