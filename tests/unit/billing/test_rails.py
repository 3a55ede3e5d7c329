"""Payment rails: what each rail charges and stores, and cancelling at a payment's own provider."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from adapters.memory.clock import FakeClock
from app.billing.errors import (
    ChargeBelowMinimum,
    NothingToCharge,
    PaymentMethodNotConfigured,
    PaymentProviderRefused,
    PaymentProviderUnavailable,
)
from app.billing.rails import PaymentRails, PricedPayment
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.errors import PaymentMethodUnsupported
from domain.money import Currency
from ports.fiat import (
    FiatBelowMinimum,
    FiatCurrencyNotChargeable,
    FiatOrder,
    FiatRefused,
    OrderExpiry,
)
from ports.payment_rail import Charge, ChargeRequest
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


async def test_a_lightning_payment_records_what_its_invoice_asks_the_rest_as_fee() -> None:
    """1 515 msat quoted, 2 000 invoiced: the payment recorded 1 515 (485 msat under what
    the payer was asked). The rest is fee, so net and tax (and the tax rate an invoice
    derives from them) stay as quoted."""
    node = FakeNode(FakeClock(START))
    payment = await PaymentRails(node).create(_priced(PaymentMethod.LIGHTNING, Currency.BTC), START)
    assert (payment.amount, payment.tax, payment.processing_fee) == (1_500, 10, 5 + 485)
    assert payment.total == node.invoices[payment.id].amount_msat == 2_000


async def test_a_whole_sat_lightning_quote_gets_no_extra_fee() -> None:
    node = FakeNode(FakeClock(START))
    priced = attrs.evolve(
        _priced(PaymentMethod.LIGHTNING, Currency.BTC, 7_000), tax=1_610, processing_fee=390
    )
    payment = await PaymentRails(node).create(priced, START)
    assert (payment.amount, payment.tax, payment.processing_fee) == (7_000, 1_610, 390)
    assert node.invoices[payment.id].amount_msat == payment.total == 9_000


async def test_a_free_lightning_payment_is_invoiced_for_one_sat() -> None:
    node = FakeNode(FakeClock(START))
    priced = attrs.evolve(
        _priced(PaymentMethod.LIGHTNING, Currency.BTC, 0), tax=0, processing_fee=0
    )
    payment = await PaymentRails(node).create(priced, START)
    assert node.invoices[payment.id].amount_msat == 1_000 and payment.amount == 0
    # the one sat asked is recorded, as fee: it buys nothing and carries no tax
    assert (payment.tax, payment.processing_fee, payment.total) == (0, 1_000, 1_000)


async def test_a_free_card_payment_is_refused() -> None:
    rails = PaymentRails(None, {PaymentMethod.REVOLUT: FakeGateway()})
    priced = attrs.evolve(_priced(PaymentMethod.REVOLUT, Currency.EUR, 0), tax=0, processing_fee=0)
    with pytest.raises(NothingToCharge):
        await rails.create(priced, START)


async def test_a_card_order_records_its_quote_as_is() -> None:
    gateway = FakeGateway()
    rails = PaymentRails(None, {PaymentMethod.REVOLUT: gateway})
    payment = await rails.create(_priced(PaymentMethod.REVOLUT, Currency.EUR), START)
    assert (payment.amount, payment.tax, payment.processing_fee) == (1_500, 10, 5)
    assert gateway.orders[payment.external_id or ""][0] == payment.total


class _Undercharging:
    """A broken rail that asks the payer less than it was told to charge."""

    method = PaymentMethod.BANK_TRANSFER
    webhook = None

    def quote_currency(self, list_currency: Currency) -> Currency:
        return list_currency

    async def create_charge(self, request: ChargeRequest) -> Charge:
        return Charge(payment_id=None, external_id="x", external_data="", amount=request.amount - 1)

    async def is_paid(self, payment_id: bytes, external_id: str | None) -> bool | None:
        return None

    async def cancel(self, payment_id: bytes, external_id: str | None) -> None:
        return None


async def test_a_rail_charging_less_than_the_quote_is_refused() -> None:
    rails = PaymentRails(rails=[_Undercharging()])
    with pytest.raises(ValueError, match="less than"):
        await rails.create(_priced(PaymentMethod.BANK_TRANSFER, Currency.EUR), START)


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


class _Fussy(FakeGateway):
    """A card gateway whose provider takes nothing below 0.50 and cannot count JPY, and
    refuses every cancel for good."""

    async def create_order(
        self,
        amount_minor: int,
        currency: str,
        description: str,
        expiry: OrderExpiry | None = None,
    ) -> FiatOrder:
        if currency == "JPY":
            raise FiatCurrencyNotChargeable("Stripe cannot charge JPY")
        if amount_minor < 50:
            raise FiatBelowMinimum(
                "Stripe cannot charge less than EUR 0.50",
                amount_minor=amount_minor,
                minimum_minor=50,
            )
        return await super().create_order(amount_minor, currency, description, expiry)

    async def cancel_order(self, external_id: str) -> None:
        raise FiatRefused("Stripe POST /v1/checkout/sessions/x/expire answered HTTP 400: no")


async def test_a_charge_below_the_providers_minimum_names_the_other_ways_to_pay() -> None:
    """422 before anything is ordered; the answer says what the user can do instead."""
    tiny = _priced(PaymentMethod.STRIPE, Currency.EUR, 5)  # 5 + 10 tax + 5 fee: EUR 0.20
    alone = _Fussy()
    with pytest.raises(ChargeBelowMinimum) as exc:
        await PaymentRails(None, {PaymentMethod.STRIPE: alone}).create(tiny, START)
    assert exc.value.message == (
        "Stripe cannot take a payment below EUR 0.50 (this one is EUR 0.20); "
        "no other payment method is offered"
    )
    among = _Fussy()
    rails = PaymentRails(
        FakeNode(FakeClock(START)),
        {PaymentMethod.STRIPE: among, PaymentMethod.REVOLUT: FakeGateway()},
    )
    with pytest.raises(ChargeBelowMinimum) as among_exc:
        await rails.create(tiny, START)
    assert among_exc.value.message.endswith("; please pay it by Lightning or Revolut")
    assert alone.orders == {} and among.orders == {}
    await rails.create(_priced(PaymentMethod.STRIPE, Currency.EUR, 35), START)  # EUR 0.50


async def test_a_currency_the_card_gateway_cannot_count_is_unsupported() -> None:
    rails = PaymentRails(None, {PaymentMethod.STRIPE: _Fussy()})
    with pytest.raises(PaymentMethodUnsupported, match="Stripe cannot charge JPY"):
        await rails.create(_priced(PaymentMethod.STRIPE, Currency.JPY), START)


async def test_a_providers_refusal_to_cancel_is_a_refusal_not_an_outage() -> None:
    gateway = _Fussy()
    rails = PaymentRails(None, {PaymentMethod.STRIPE: gateway})
    payment = await rails.create(_priced(PaymentMethod.STRIPE, Currency.EUR), START)
    with pytest.raises(PaymentProviderRefused) as exc:
        await rails.cancel(payment)
    assert "HTTP" not in exc.value.message and "/v1/" not in exc.value.message


async def test_with_lightning_off_an_old_lightning_invoice_is_not_cancelled_anywhere() -> None:
    """An invoice of the node used before Lightning was turned off: there is no node to ask,
    and a deletion or a paid renewal must not report a failure for each one left."""
    node, gateway = FakeNode(FakeClock(START)), FakeGateway()
    old = await PaymentRails(node).create(_priced(PaymentMethod.LIGHTNING, Currency.BTC), START)
    off = PaymentRails(None, {PaymentMethod.REVOLUT: gateway}, lightning_off=True)
    await off.cancel(old)  # no error, nothing asked
    assert node.cancelled == [] and gateway.cancelled == []
    card = await off.create(_priced(PaymentMethod.REVOLUT, Currency.EUR), START)
    await off.cancel(card)
    assert gateway.cancelled == [card.external_id]


async def test_with_lightning_off_no_lightning_rail_may_be_given() -> None:
    with pytest.raises(ValueError, match="Lightning is off"):
        PaymentRails(FakeNode(FakeClock(START)), lightning_off=True)
    off = PaymentRails(None, {PaymentMethod.REVOLUT: FakeGateway()}, lightning_off=True)
    assert off.offered() == (PaymentMethod.REVOLUT,)
    with pytest.raises(PaymentMethodNotConfigured, match="please pay it by Revolut"):
        off.refuse_lightning(PaymentMethod.LIGHTNING)
    off.refuse_lightning(PaymentMethod.REVOLUT)
    PaymentRails(None, {}).refuse_lightning(PaymentMethod.LIGHTNING)  # not off: not refused
