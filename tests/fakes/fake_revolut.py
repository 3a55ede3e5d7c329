"""A fake Revolut Merchant API (orders: create, read, cancel) served by a local aiohttp server."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

CANCELLABLE = frozenset({"pending", "authorised"})
#: `expire_pending_after` as Revolut documents it: an ISO 8601 duration, PT1M to PT720H
_DURATION = re.compile(r"PT(?:(\d+)H)?(?:(\d+)M)?")


class FakeRevolut:
    """Orders in memory; checks the Bearer key and `Revolut-Api-Version` like the real API.

    A refused key is echoed back in the error text (the worst a provider could do), so tests
    see that the adapter scrubs it. `fail_status` makes every call answer that status;
    `delay_s` delays every answer; `cancel_refused_status` is what cancelling a finished
    order answers.
    """

    def __init__(self, api_key: str = "sk_revolut_test_key", api_version: str = "2024-09-01"):
        self.api_key = api_key
        self.api_version = api_version
        self.orders: dict[str, dict[str, Any]] = {}
        #: (method, path, JSON body or None) of every authorised request, in order
        self.requests: list[tuple[str, str, Any]] = []
        self.fail_status: int | None = None
        self.delay_s = 0.0
        self.cancel_refused_status = 400
        self.base_url = ""

    # -- test helpers -----------------------------------------------------------------------

    def complete(self, order_id: str) -> None:
        """The customer paid: the order is `completed`."""
        self._set_state(order_id, "completed")
        self.orders[order_id]["outstanding_amount"] = 0

    def set_state(self, order_id: str, state: str) -> None:
        self._set_state(order_id, state)

    def lapse(self, order_id: str) -> None:
        """Its `expire_pending_after` has passed: a pending order with one becomes `failed`
        (ORDER_FAILED), as Revolut does; an order without one stays payable forever."""
        order = self.orders[order_id]
        if order["state"] == "pending" and "expire_pending_after" in order:
            self._set_state(order_id, "failed")

    def _set_state(self, order_id: str, state: str) -> None:
        order = self.orders[order_id]
        order["state"] = state
        order["updated_at"] = _now()

    # -- the API ----------------------------------------------------------------------------

    async def _gate(self, request: web.Request) -> web.Response | None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        auth = request.headers.get("Authorization", "")
        if auth != f"Bearer {self.api_key}":
            return web.json_response(
                {"code": "unauthenticated", "message": f"Authentication failed: {auth}"},
                status=401,
            )
        if request.headers.get("Revolut-Api-Version") != self.api_version:
            return web.json_response(
                {"code": "bad_request", "message": "Revolut-Api-Version header is required"},
                status=400,
            )
        if self.fail_status is not None:
            return web.json_response(
                {"code": "internal_error", "message": "Something went wrong"},
                status=self.fail_status,
            )
        return None

    async def _create(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        body = await request.json()
        self.requests.append(("POST", request.path, body))
        amount = body.get("amount")
        currency = body.get("currency")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            return _error(422, "validation", "amount must be a positive integer")
        if not isinstance(currency, str) or len(currency) != 3:
            return _error(422, "validation", "currency is invalid")
        expire = body.get("expire_pending_after")
        if expire is not None and not _pending_duration_ok(expire):
            return _error(422, "validation", "expire_pending_after must be PT1M to PT720H")
        order_id, token = str(uuid.uuid4()), str(uuid.uuid4())
        now = _now()
        order: dict[str, Any] = {
            "id": order_id,
            "token": token,
            "type": "payment",
            "state": "pending",
            "created_at": now,
            "updated_at": now,
            "amount": amount,
            "currency": currency,
            "outstanding_amount": amount,
            "capture_mode": "automatic",
            "checkout_url": f"{self.base_url}/payment-link/{token}",
        }
        if "description" in body:
            order["description"] = body["description"]
        if expire is not None:
            order["expire_pending_after"] = expire
        self.orders[order_id] = order
        return web.json_response(order, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        order_id = request.match_info["order_id"]
        self.requests.append(("GET", request.path, None))
        order = self.orders.get(order_id)
        if order is None:
            return _error(404, "not_found", f"Order {order_id} not found")
        return web.json_response(order)

    async def _cancel(self, request: web.Request) -> web.Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        order_id = request.match_info["order_id"]
        self.requests.append(("POST", request.path, None))
        order = self.orders.get(order_id)
        if order is None:
            return _error(404, "not_found", f"Order {order_id} not found")
        if order["state"] not in CANCELLABLE:
            return _error(
                self.cancel_refused_status,
                "invalid_state",
                f"Order in state {order['state']} cannot be cancelled",
            )
        self._set_state(order_id, "cancelled")
        return web.json_response(order)

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 at a free port; yields the base URL (no trailing slash)."""
        app = web.Application()
        app.router.add_post("/api/orders", self._create)
        app.router.add_get("/api/orders/{order_id}", self._get)
        app.router.add_post("/api/orders/{order_id}/cancel", self._cancel)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        self.base_url = str(server.make_url("")).rstrip("/")
        try:
            yield self.base_url
        finally:
            await server.close()


def _pending_duration_ok(value: object) -> bool:
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None or value == "PT":
        return False
    minutes = int(match.group(1) or 0) * 60 + int(match.group(2) or 0)
    return 1 <= minutes <= 720 * 60


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"code": code, "message": message}, status=status)
