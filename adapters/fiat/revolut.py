"""FiatGateway over the Revolut Merchant API: orders created, re-read and cancelled (§5.4, §7.5)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final, Unpack

import attrs

from adapters.fiat.http import (
    GatewayBase,
    ProviderHttp,
    Transport,
    check_order_request,
    path_part,
)
from adapters.fiat.units import ProviderUnits, units_for
from ports.fiat import FiatOrder, FiatUnavailable, OrderExpiry

REVOLUT_API_URL: Final = "https://merchant.revolut.com"
REVOLUT_SANDBOX_URL: Final = "https://sandbox-merchant.revolut.com"
DEFAULT_API_VERSION: Final = "2024-09-01"
#: the state a webhook's order must be in before the payment is completed (§7.5).
COMPLETED: Final = "completed"
#: states after which an order can neither be paid nor cancelled any more.
FINISHED_STATES: Final = frozenset({"completed", "cancelled", "failed"})
#: answers to a cancel that may only mean "this order is past cancelling".
_STATE_CONFLICT: Final = frozenset({400, 409, 422})
#: the shortest and longest `expire_pending_after` Revolut takes (PT1M to PT720H).
PENDING_MIN: Final = timedelta(minutes=1)
PENDING_MAX: Final = timedelta(hours=720)


def revolut_units(currency: str) -> ProviderUnits:
    """How Revolut counts `currency`: its ISO 4217 minor unit (JPY: whole yen; the
    catalogue's others: cents). A currency outside the catalogue is refused."""
    return units_for("Revolut", currency)


def pending_duration(lasts: timedelta) -> str:
    """`lasts` as the ISO 8601 duration of `expire_pending_after`, in whole minutes rounded
    down (the order never outlives its quote for rounding), within Revolut's range."""
    minutes = int(min(max(lasts, PENDING_MIN), PENDING_MAX).total_seconds()) // 60
    hours, minutes = divmod(minutes, 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")


@attrs.frozen(kw_only=True)
class RevolutOrder:
    """An order as Revolut reports it now: `state` lower-cased, `data` the order JSON text."""

    external_id: str
    state: str
    data: str


def _order_id(document: dict[str, Any], what: str) -> str:
    order_id = document.get("id")
    if not isinstance(order_id, str) or not order_id:
        raise FiatUnavailable(f"Revolut {what} answered an order without an id")
    return order_id


class RevolutGateway(GatewayBase):
    """Revolut orders: `POST /api/orders` (amount in the currency's ISO minor unit,
    `revolut_units`: cents, whole yen), `GET /api/orders/{id}`, `POST /api/orders/{id}/cancel`,
    authenticated with the secret key as a Bearer token and versioned with
    `Revolut-Api-Version`. A currency it cannot count raises `FiatNotChargeable` before any
    call; a refusal for good is `FiatRefused`; every other failure `FiatUnavailable`.

    An order made with an `expiry` carries `expire_pending_after`: Revolut itself moves it
    from `pending` to `failed` (webhook ORDER_FAILED) once that long has passed unpaid.

    Cancelling an order Revolut does not know, or one already completed, cancelled or failed,
    is not an error (the port's rule): a 404 returns quietly, and a 400/409/422 re-reads the
    order and returns quietly if it is finished.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        api_version: str = DEFAULT_API_VERSION,
        **transport: Unpack[Transport],
    ) -> None:
        self._http = ProviderHttp(
            name="Revolut",
            base_url=url,
            secret=api_key,
            headers={"Revolut-Api-Version": api_version, "Accept": "application/json"},
            **transport,
        )

    async def create_order(
        self,
        amount_minor: int,
        currency: str,
        description: str,
        expiry: OrderExpiry | None = None,
    ) -> FiatOrder:
        check_order_request("Revolut", amount_minor, currency)
        units = revolut_units(currency)
        amount = units.to_provider(amount_minor)
        body: dict[str, object] = {
            "amount": amount,
            "currency": currency,
            "description": description,
        }
        if expiry is not None:
            body["expire_pending_after"] = pending_duration(expiry.lasts)
        document, text = await self._http.call_json("POST", "/api/orders", json_body=body)
        return FiatOrder(
            external_id=_order_id(document, "create order"),
            external_data=text,
            amount_minor=units.to_hundredths(amount),
        )

    async def get_order(self, external_id: str) -> RevolutOrder | None:
        """The order as Revolut has it now; None when Revolut does not know it (404)."""
        if not external_id:
            return None
        found = await self._http.get_json_or_none(f"/api/orders/{path_part(external_id)}")
        if found is None:
            return None
        document, text = found
        state = document.get("state")
        if not isinstance(state, str) or not state:
            raise FiatUnavailable("Revolut GET order answered an order without a state")
        return RevolutOrder(
            external_id=_order_id(document, "GET order"), state=state.lower(), data=text
        )

    async def get_order_state(self, external_id: str) -> str | None:
        """The order's state, lower-cased (`pending`, `authorised`, `completed`, …); None for
        an order Revolut does not know. Complete a payment only on `completed` (§7.5)."""
        order = await self.get_order(external_id)
        return None if order is None else order.state

    async def is_paid(self, external_id: str) -> bool:
        return await self.get_order_state(external_id) == "completed"

    async def cancel_order(self, external_id: str) -> None:
        if not external_id:
            return
        path = f"/api/orders/{path_part(external_id)}/cancel"
        status, raw = await self._http.call("POST", path)
        if 200 <= status < 300 or status == 404:
            return
        if status in _STATE_CONFLICT:
            order = await self.get_order(external_id)
            if order is None or order.state in FINISHED_STATES:
                return
        raise self._http.status_error("POST", path, status, raw)
