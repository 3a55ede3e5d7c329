"""The PaymentRail contract over every rail: Lightning (dev node), Revolut, Stripe, bank."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from adapters.fiat.bank_transfer import BankTransferRail
from adapters.fiat.revolut import RevolutGateway
from adapters.fiat.stripe import StripeGateway
from adapters.lightning.dev import DevLightningNode
from adapters.memory.clock import FakeClock
from app.billing.rail_kinds import LightningRail, OrderRail
from domain.enums import PaymentMethod
from domain.errors import PaymentMethodUnsupported
from domain.money import Currency
from ports.payment_rail import Charge, ChargeRequest, PaymentRail
from tests.fakes.fake_revolut import FakeRevolut
from tests.fakes.fake_stripe import FakeStripe

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class RailUnderTest:
    rail: PaymentRail
    currency: Currency
    #: the customer pays the charge (None: only an operator can see it paid)
    pay: Callable[[Charge], Awaitable[None]] | None


@pytest.fixture(params=["lightning", "revolut", "stripe", "bank_transfer"])
async def subject(request: pytest.FixtureRequest) -> AsyncIterator[RailUnderTest]:
    async with AsyncExitStack() as stack:
        if request.param == "lightning":
            node = DevLightningNode(clock=FakeClock(NOW))

            async def settle(charge: Charge) -> None:
                assert charge.payment_id is not None
                await node.settle(charge.payment_id)

            yield RailUnderTest(LightningRail(node), Currency.BTC, settle)
        elif request.param == "revolut":
            revolut = FakeRevolut()
            url = await stack.enter_async_context(revolut.running())
            gateway = await stack.enter_async_context(RevolutGateway(url, revolut.api_key))

            async def pay_order(charge: Charge) -> None:
                assert charge.external_id is not None
                revolut.complete(charge.external_id)

            yield RailUnderTest(OrderRail(PaymentMethod.REVOLUT, gateway), Currency.EUR, pay_order)
        elif request.param == "stripe":
            stripe = FakeStripe()
            stripe.now = NOW.timestamp()  # Stripe's clock reads the test's
            url = await stack.enter_async_context(stripe.running())
            checkout = await stack.enter_async_context(
                StripeGateway(url, secret_key=stripe.secret_key)
            )

            async def pay_session(charge: Charge) -> None:
                assert charge.external_id is not None
                stripe.complete(charge.external_id)

            yield RailUnderTest(
                OrderRail(PaymentMethod.STRIPE, checkout), Currency.EUR, pay_session
            )
        else:
            bank = BankTransferRail({"account_name": "LNVPS", "iban": "IE29AIBK93115212345678"})
            yield RailUnderTest(bank, Currency.EUR, None)


def _request(subject: RailUnderTest) -> ChargeRequest:
    amount = 1_234_000 if subject.currency is Currency.BTC else 1_234
    return ChargeRequest(
        amount=amount,
        currency=subject.currency,
        memo="VM renewal 1",
        expiry=timedelta(minutes=10),
        created=NOW,
    )


async def test_the_rail_charges_the_currency_it_quotes(subject: RailUnderTest) -> None:
    assert subject.rail.quote_currency(Currency.EUR) is subject.currency
    if subject.currency is not Currency.BTC:
        with pytest.raises(PaymentMethodUnsupported):
            subject.rail.quote_currency(Currency.BTC)


async def test_each_charge_is_new_and_shows_what_to_pay_with(subject: RailUnderTest) -> None:
    first = await subject.rail.create_charge(_request(subject))
    second = await subject.rail.create_charge(_request(subject))
    assert first.external_data and second.external_data
    assert (first.payment_id, first.external_id) != (second.payment_id, second.external_id)
    assert first.payment_id is not None or first.external_id


async def test_paid_only_once_the_customer_paid(subject: RailUnderTest) -> None:
    charge = await subject.rail.create_charge(_request(subject))
    pid = charge.payment_id or b"\x00" * 32
    if subject.pay is None:
        assert await subject.rail.is_paid(pid, charge.external_id) is None
        return
    assert await subject.rail.is_paid(pid, charge.external_id) is False
    await subject.pay(charge)
    assert await subject.rail.is_paid(pid, charge.external_id) is True
    await subject.rail.cancel(pid, charge.external_id)  # a paid charge: quiet, still paid
    assert await subject.rail.is_paid(pid, charge.external_id) is True


async def test_cancel_is_quiet_twice_and_for_unknown_charges(subject: RailUnderTest) -> None:
    charge = await subject.rail.create_charge(_request(subject))
    pid = charge.payment_id or b"\x00" * 32
    await subject.rail.cancel(pid, charge.external_id)
    await subject.rail.cancel(pid, charge.external_id)
    await subject.rail.cancel(b"\x01" * 32, "no-such-charge")
    if subject.pay is not None:
        assert await subject.rail.is_paid(pid, charge.external_id) is False
