"""Payment rails: what each rail charges and stores, and cancelling at a payment's own provider."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from adapters.memory.clock import FakeClock
from app.billing.errors import (
    NothingToCharge,
    PaymentMethodNotConfigured,
    PaymentProviderUnavailable,
)
from app.billing.rails import PaymentRails, PricedPayment
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.errors import PaymentMethodUnsupported
from domain.money import Currency
from tests.unit.billing.fakes import FakeGateway, FakeNode
from tests.unit.billing.world import START


def _priced(method: PaymentMethod, currency: Currency, amount: int = 1_500) -> PricedPayment:
    return PricedPayment(
        subscription_id=7,
        user_id=3,
        method=method,
        payment_type=SubscriptionPaymentType.RENEWAL,
        amount=amount,
        currency=currency,
        rate=Decimal(1),
        tax=10,
        processing_fee=5,
        time_value=60,
        metadata={"intervals": 1},
        memo="Subscription renewal: x",
    )


async def test_lightning_rounds_amount_and_tax_up_to_a_whole_sat() -> None:
    node = FakeNode(FakeClock(START))
    payment = await PaymentRails(node).create(_priced(PaymentMethod.LIGHTNING, Currency.BTC), START)
    assert node.invoices[payment.id].amount_msat == 2_000
    assert (payment.amount, payment.tax, payment.time_value) == (1_500, 10, 60)
    assert payment.expires == START + timedelta(seconds=600) and payment.created == START


async def test_a_free_lightning_payment_is_invoiced_for_one_sat() -> None:
    node = FakeNode(FakeClock(START))
    priced = attrs.evolve(
        _priced(PaymentMethod.LIGHTNING, Currency.BTC, 0), tax=0, processing_fee=0
    )
    payment = await PaymentRails(node).create(priced, START)
    assert node.invoices[payment.id].amount_msat == 1_000 and payment.amount == 0


async def test_a_free_card_payment_is_refused() -> None:
    rails = PaymentRails(None, {PaymentMethod.REVOLUT: FakeGateway()})
    priced = attrs.evolve(_priced(PaymentMethod.REVOLUT, Currency.EUR, 0), tax=0, processing_fee=0)
    with pytest.raises(NothingToCharge):
        await rails.create(priced, START)


async def test_lightning_refuses_anything_but_bitcoin() -> None:
    rails = PaymentRails(FakeNode(FakeClock(START)))
    with pytest.raises(PaymentMethodUnsupported):
        await rails.create(_priced(PaymentMethod.LIGHTNING, Currency.EUR), START)


async def test_a_card_order_is_for_amount_tax_and_fee_with_a_random_id() -> None:
    gateway = FakeGateway()
    rails = PaymentRails(None, {PaymentMethod.REVOLUT: gateway})
    a = await rails.create(_priced(PaymentMethod.REVOLUT, Currency.EUR), START)
    b = await rails.create(_priced(PaymentMethod.REVOLUT, Currency.EUR), START)
    assert a.id != b.id and len(a.id) == 32
    assert gateway.orders[a.external_id or ""] == (1_515, "EUR", "Subscription renewal: x")
    assert a.expires == START + timedelta(hours=1)
    with pytest.raises(PaymentMethodUnsupported):
        await rails.create(_priced(PaymentMethod.REVOLUT, Currency.BTC), START)


async def test_unconfigured_rails_are_named_errors() -> None:
    rails = PaymentRails()
    for method, currency in (
        (PaymentMethod.LIGHTNING, Currency.BTC),
        (PaymentMethod.STRIPE, Currency.EUR),
    ):
        with pytest.raises(PaymentMethodNotConfigured):
            await rails.create(_priced(method, currency), START)


async def test_cancel_goes_to_the_payments_own_provider() -> None:
    node, gateway = FakeNode(FakeClock(START)), FakeGateway()
    rails = PaymentRails(node, {PaymentMethod.REVOLUT: gateway})
    ln = await rails.create(_priced(PaymentMethod.LIGHTNING, Currency.BTC), START)
    card = await rails.create(_priced(PaymentMethod.REVOLUT, Currency.EUR), START)
    await rails.cancel(card)
    await rails.cancel(ln)
    assert node.cancelled == [ln.id] and gateway.cancelled == [card.external_id]
    gateway.down = True
    with pytest.raises(PaymentProviderUnavailable):
        await rails.cancel(card)
