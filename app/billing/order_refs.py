"""Which of our card payments a provider's id names: its order, or a payment made under it."""

from __future__ import annotations

import logging

from app.billing.errors import PaymentMethodNotConfigured, PaymentProviderUnavailable
from app.billing.rail_kinds import OrderRail
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment
from ports.fiat import FiatUnavailable, OrderLookup
from ports.storage import UnitOfWorkFactory

log = logging.getLogger(__name__)


def _lookup(rails: PaymentRails, method: PaymentMethod) -> OrderLookup | None:
    """The gateway of `method`'s order rail when it can resolve a payment to its order."""
    try:
        rail = rails.rail(method)
    except PaymentMethodNotConfigured:
        return None
    gateway = rail.gateway if isinstance(rail, OrderRail) else None
    return gateway if isinstance(gateway, OrderLookup) else None


async def _stored(
    uow_factory: UnitOfWorkFactory, method: PaymentMethod, external_id: str
) -> tuple[bool, SubscriptionPayment | None]:
    """(whether any payment has that id, the one of `method` that has it)."""
    async with uow_factory() as uow:
        payment = await uow.payments.get_by_external_id(external_id)
    if payment is None:
        return False, None
    return True, payment if payment.payment_method is method else None


async def order_payment(
    uow_factory: UnitOfWorkFactory,
    rails: PaymentRails,
    method: PaymentMethod,
    reference: str,
) -> SubscriptionPayment | None:
    """Our payment of `method` that the provider's `reference` names; None when it names
    none of ours.

    A payment stored under `reference` (an order id, a Checkout Session, a PaymentIntent
    made before Checkout) is it, when it is of `method` (a provider speaks for its own
    orders only; another method's payment is none of its business). Otherwise the provider
    is asked which of its orders `reference` was paid under (Stripe: the Checkout Session
    of a PaymentIntent, as `payment_intent.succeeded`, disputes and refunds name it); an
    outage then raises `PaymentProviderUnavailable` (503: the provider retries).
    """
    known, payment = await _stored(uow_factory, method, reference)
    if known:
        return payment
    lookup = _lookup(rails, method)
    if lookup is None:
        return None
    try:
        order_id = await lookup.order_of(reference)
    except FiatUnavailable as err:
        # the provider's own words go to the log only, never to the caller (D19)
        name = method.display_name
        log.warning("%s is unavailable: %s", name, err)
        raise PaymentProviderUnavailable(f"{name} is unavailable; please try again later") from err
    if order_id is None or order_id == reference:
        return None
    log.info("%s payment %r belongs to order %r", method.display_name, reference, order_id)
    return (await _stored(uow_factory, method, order_id))[1]
