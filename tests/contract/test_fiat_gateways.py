"""The FiatGateway contract over Revolut and Stripe adapters, each against its fake server."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import attrs
import pytest
from aiohttp.test_utils import unused_port

from adapters.fiat.http import FiatProviderError
from adapters.fiat.revolut import RevolutGateway, pending_duration
from adapters.fiat.stripe import StripeGateway
from app.billing.errors import PaymentProviderRefused, PaymentProviderUnavailable
from app.billing.rails import FIAT_EXPIRY, PaymentRails, PricedPayment
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.money import Currency
from ports.fiat import (
    FiatBelowMinimum,
    FiatCurrencyNotChargeable,
    FiatGateway,
    FiatRefused,
    FiatUnavailable,
    OrderExpiry,
    OrderLookup,
)
from tests.fakes.fake_revolut import FakeRevolut
from tests.fakes.fake_stripe import FakeStripe

DESCRIPTION = "VM renewal 42 to 2026-12-25 12:00:00 — Café €"
WRONG_KEY = "sk_wrong_0123456789_secret_do_not_leak"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

Gateway = RevolutGateway | StripeGateway


@dataclass
class Harness:
    """One gateway over its fake, with provider-neutral views of the fake's state."""

    name: str
    url: str
    fake: FakeRevolut | FakeStripe
    gateway: Gateway
    method: PaymentMethod
    connect: Callable[[str, str, float], Gateway]

    def stored(self, external_id: str) -> dict[str, Any]:
        if isinstance(self.fake, FakeRevolut):
            return self.fake.orders[external_id]
        return self.fake.sessions[external_id]

    def view(self, external_id: str) -> dict[str, Any]:
        """(amount, currency, description) of the stored order, whatever the provider."""
        stored = self.stored(external_id)
        amount = stored["amount"] if isinstance(self.fake, FakeRevolut) else stored["amount_total"]
        return {
            "amount": amount,
            "currency": stored["currency"],
            "description": stored["description"],
        }

    def state(self, external_id: str) -> str:
        key = "state" if isinstance(self.fake, FakeRevolut) else "status"
        return str(self.stored(external_id)[key])

    def is_cancelled(self, external_id: str) -> bool:
        return self.state(external_id) in ("cancelled", "expired")

    def complete(self, external_id: str) -> None:
        self.fake.complete(external_id)

    def lapse(self, external_id: str) -> None:
        """The provider's own clock passes the order's expiry (if it was given one)."""
        self.fake.lapse(external_id)

    def expiry_sent(self, external_id: str) -> Any:
        """What the order was created with as its expiry (None: nothing)."""
        if isinstance(self.fake, FakeRevolut):
            return self.stored(external_id).get("expire_pending_after")
        return self.stored(external_id)["expires_at"]

    def create_request(self) -> Any:
        """The body or form of the last create call, as the fake received it."""
        creates = [
            r
            for r in self.fake.requests
            if r[0] == "POST" and not r[1].endswith(("/cancel", "/expire"))
        ]
        return creates[-1][2]

    def expected_create_request(self, amount: int, currency: str, description: str) -> Any:
        if isinstance(self.fake, FakeRevolut):
            return {"amount": amount, "currency": currency, "description": description}
        return {
            "mode": "payment",
            "success_url": "https://lnvps.net",
            "cancel_url": "https://lnvps.net",
            "line_items[0][quantity]": "1",
            "line_items[0][price_data][currency]": currency.lower(),
            "line_items[0][price_data][unit_amount]": str(amount),
            "line_items[0][price_data][product_data][name]": description,
        }


def _revolut(url: str, key: str, timeout_s: float) -> Gateway:
    return RevolutGateway(url, key, timeout_s=timeout_s)


def _stripe(url: str, key: str, timeout_s: float) -> Gateway:
    return StripeGateway(url, secret_key=key, timeout_s=timeout_s)


@pytest.fixture(params=["revolut", "stripe"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    fake: FakeRevolut | FakeStripe
    if request.param == "revolut":
        fake, connect, method = FakeRevolut(), _revolut, PaymentMethod.REVOLUT
        key = fake.api_key
    else:
        fake, connect, method = FakeStripe(), _stripe, PaymentMethod.STRIPE
        fake.now = NOW.timestamp()  # Stripe's clock reads the test's
        key = fake.secret_key
    async with fake.running() as url:
        gateway = connect(url, key, 5.0)
        try:
            yield Harness(request.param, url, fake, gateway, method, connect)
        finally:
            await gateway.aclose()


@pytest.fixture
async def revolut() -> AsyncIterator[tuple[FakeRevolut, RevolutGateway]]:
    fake = FakeRevolut()
    async with fake.running() as url, RevolutGateway(url, fake.api_key) as gateway:
        yield fake, gateway


@pytest.fixture
async def stripe() -> AsyncIterator[tuple[FakeStripe, StripeGateway]]:
    fake = FakeStripe()
    async with fake.running() as url, StripeGateway(url, secret_key=fake.secret_key) as gateway:
        yield fake, gateway


def _assert_no_key(exc: BaseException, key: str) -> None:
    for text in (str(exc), repr(exc), *(str(arg) for arg in exc.args)):
        assert key not in text
    if isinstance(exc, FiatProviderError):
        assert key not in exc.detail and key not in exc.code


def test_both_gateways_satisfy_the_port() -> None:
    gateways: list[FiatGateway] = [
        RevolutGateway("http://127.0.0.1:1", "k"),
        StripeGateway("http://127.0.0.1:1", secret_key="k"),
    ]
    assert len(gateways) == 2


@pytest.mark.parametrize("factory", [_revolut, _stripe])
def test_an_empty_key_is_refused(factory: Callable[[str, str, float], Gateway]) -> None:
    with pytest.raises(ValueError, match="API key"):
        factory("http://127.0.0.1:1", "", 1.0)


@pytest.mark.parametrize("factory", [_revolut, _stripe])
def test_repr_hides_the_key(factory: Callable[[str, str, float], Gateway]) -> None:
    assert "sk_secret" not in repr(factory("http://127.0.0.1:1", "sk_secret", 1.0))


# -- create -------------------------------------------------------------------------------


async def test_create_order_sends_amount_currency_description_exactly(harness: Harness) -> None:
    order = await harness.gateway.create_order(12_345, "EUR", DESCRIPTION)
    assert harness.create_request() == harness.expected_create_request(12_345, "EUR", DESCRIPTION)
    stored = harness.view(order.external_id)
    assert stored["amount"] == 12_345
    assert stored["currency"].upper() == "EUR"
    assert stored["description"] == DESCRIPTION
    assert json.loads(order.external_data) == harness.stored(order.external_id)
    assert order.amount_minor == 12_345  # cents go as cents: charged as asked


async def test_each_order_is_new(harness: Harness) -> None:
    first = await harness.gateway.create_order(100, "USD", "a")
    second = await harness.gateway.create_order(100, "USD", "a")
    assert first.external_id != second.external_id


async def test_external_data_carries_what_the_client_pays_with(harness: Harness) -> None:
    order = await harness.gateway.create_order(500, "EUR", "x")
    data = json.loads(order.external_data)
    assert data["id"] == order.external_id
    if harness.name == "revolut":
        assert data["token"] and data["state"] == "pending"  # api.md: data.revolut.token
    else:
        # api.md §5.4: data.stripe.session_id; the Checkout page is the session's url
        assert data["object"] == "checkout.session" and data["url"].startswith("https://")


@pytest.mark.parametrize("amount", [0, -1])
async def test_create_refuses_nonpositive_amounts(harness: Harness, amount: int) -> None:
    with pytest.raises(ValueError, match="positive"):
        await harness.gateway.create_order(amount, "EUR", "x")
    assert harness.fake.requests == []


# -- amounts in the provider's unit -------------------------------------------------------


async def test_a_yen_order_asks_whole_yen(harness: Harness) -> None:
    """Amounts here are hundredths, JPY too (JPY 1 500.00 is 150 000, as EUR 1 500.00);
    Stripe and Revolut count yen whole, so the order asks for 1 500, not 150 000."""
    order = await harness.gateway.create_order(150_000, "JPY", "VM renewal")
    assert harness.view(order.external_id)["amount"] == 1_500
    assert harness.view(order.external_id)["currency"].upper() == "JPY"
    assert order.amount_minor == 150_000


@pytest.mark.parametrize(
    ("asked", "sent", "charged"),
    [
        (168_333, 1_684, 168_400),  # JPY 1 683.33 (tax and fee made it): ¥1 684, 0.67 more
        (168_301, 1_684, 168_400),  # the smallest part of a yen still rounds up
        (168_399, 1_684, 168_400),
        (168_300, 1_683, 168_300),  # a whole yen goes as it is
        (5_001, 51, 5_100),
    ],
)
async def test_a_part_of_a_yen_is_charged_as_the_next_whole_yen(
    harness: Harness, asked: int, sent: int, charged: int
) -> None:
    """Never less than asked, and less than one yen more; the order says what it asks."""
    order = await harness.gateway.create_order(asked, "JPY", "x")
    assert harness.view(order.external_id)["amount"] == sent
    assert order.amount_minor == charged
    assert 0 <= order.amount_minor - asked < 100


@pytest.mark.parametrize("currency", ["KWD", "HUF", "ISK", "XYZ", "BTC"])
async def test_a_currency_the_gateway_cannot_count_is_refused_before_any_call(
    harness: Harness, currency: str
) -> None:
    """Outside the catalogue (or counted specially by the provider: thousandths, whole
    units written as hundredths): refused with a clear error, its unit never guessed."""
    with pytest.raises(FiatCurrencyNotChargeable, match=f"cannot charge {currency}"):
        await harness.gateway.create_order(10_000, currency, "x")
    assert harness.fake.requests == []


# -- cancel -------------------------------------------------------------------------------


async def test_cancel_a_pending_order(harness: Harness) -> None:
    order = await harness.gateway.create_order(100, "EUR", "x")
    await harness.gateway.cancel_order(order.external_id)
    assert harness.is_cancelled(order.external_id)


async def test_cancel_twice_is_quiet(harness: Harness) -> None:
    order = await harness.gateway.create_order(100, "EUR", "x")
    await harness.gateway.cancel_order(order.external_id)
    await harness.gateway.cancel_order(order.external_id)
    assert harness.is_cancelled(order.external_id)


async def test_cancel_unknown_order_is_not_an_error(harness: Harness) -> None:
    """Chosen (and the port's rule): the order may be gone or never reached the provider."""
    await harness.gateway.cancel_order("no-such-order")
    await harness.gateway.cancel_order("")
    await harness.gateway.cancel_order("../../v1/x?y=1")


async def test_cancel_a_paid_order_is_quiet_and_leaves_it_paid(harness: Harness) -> None:
    order = await harness.gateway.create_order(100, "EUR", "x")
    harness.complete(order.external_id)
    await harness.gateway.cancel_order(order.external_id)
    assert harness.state(order.external_id) in ("completed", "complete")


async def test_is_paid_follows_the_provider(harness: Harness) -> None:
    """What a webhook re-checks before completing: only a paid order reads as paid."""
    order = await harness.gateway.create_order(100, "EUR", "x")
    assert await harness.gateway.is_paid(order.external_id) is False
    harness.complete(order.external_id)
    assert await harness.gateway.is_paid(order.external_id) is True
    assert await harness.gateway.is_paid("no-such-order") is False


# -- failures -----------------------------------------------------------------------------


async def test_provider_down(harness: Harness) -> None:
    gateway = harness.connect(f"http://127.0.0.1:{unused_port()}", "sk_down_key", 2.0)
    try:
        with pytest.raises(FiatUnavailable) as create_exc:
            await gateway.create_order(100, "EUR", "x")
        with pytest.raises(FiatUnavailable) as cancel_exc:
            await gateway.cancel_order("abc")
    finally:
        await gateway.aclose()
    _assert_no_key(create_exc.value, "sk_down_key")
    _assert_no_key(cancel_exc.value, "sk_down_key")


@pytest.mark.parametrize("status", [500, 503])
async def test_provider_error_status(harness: Harness, status: int) -> None:
    harness.fake.fail_status = status
    with pytest.raises(FiatUnavailable, match=f"HTTP {status}"):
        await harness.gateway.create_order(100, "EUR", "x")
    with pytest.raises(FiatUnavailable, match=f"HTTP {status}"):
        await harness.gateway.cancel_order("abc")


@pytest.mark.parametrize(
    ("status", "for_good"),
    [
        *[(status, True) for status in (400, 401, 403, 404, 422)],
        *[(status, False) for status in (408, 409, 429, 500, 502)],
    ],
)
async def test_a_client_error_is_a_refusal_for_good_others_may_pass(
    harness: Harness, status: int, for_good: bool
) -> None:
    """A 4xx says the provider will not do it, whenever asked; a timeout, a conflict with a
    concurrent request, rate limiting or a server error may pass."""
    harness.fake.fail_status = status
    with pytest.raises(FiatUnavailable, match=f"HTTP {status}") as exc:
        await harness.gateway.create_order(100, "EUR", "x")
    assert isinstance(exc.value, FiatRefused) is for_good


async def test_provider_timeout(harness: Harness) -> None:
    harness.fake.delay_s = 0.3
    gateway = harness.connect(harness.url, "irrelevant", 0.05)
    started = time.monotonic()
    try:
        with pytest.raises(FiatUnavailable, match="timed out"):
            await gateway.create_order(100, "EUR", "x")
    finally:
        await gateway.aclose()
    assert time.monotonic() - started < 0.3


async def test_wrong_key_is_unavailable_and_never_shown(harness: Harness) -> None:
    """The fakes echo a refused key back in full; the adapter must not pass it on."""
    gateway = harness.connect(harness.url, WRONG_KEY, 5.0)
    try:
        with pytest.raises(FiatUnavailable, match="HTTP 401") as create_exc:
            await gateway.create_order(100, "EUR", "x")
        with pytest.raises(FiatUnavailable, match="HTTP 401") as cancel_exc:
            await gateway.cancel_order("abc")  # a refused key is not "nothing to cancel"
    finally:
        await gateway.aclose()
    for exc in (create_exc.value, cancel_exc.value):
        _assert_no_key(exc, WRONG_KEY)
        assert "<redacted>" in str(exc)
    assert not harness.fake.requests


async def test_malformed_answer_is_unavailable(harness: Harness) -> None:
    """A 2xx without a usable order (here: a non-object) is not an order."""

    async def not_an_order(*_: object, **__: object) -> tuple[int, bytes]:
        return 200, b"[1, 2]"

    harness.gateway._http.call = not_an_order  # type: ignore[method-assign]
    with pytest.raises(FiatUnavailable, match="non-object"):
        await harness.gateway.create_order(100, "EUR", "x")


# -- through the rails --------------------------------------------------------------------


def _priced(method: PaymentMethod) -> PricedPayment:
    return PricedPayment(
        subscription_id=7,
        user_id=3,
        method=method,
        payment_type=SubscriptionPaymentType.RENEWAL,
        amount=1_000,
        currency=Currency.EUR,
        rate=Decimal("1"),
        tax=210,
        processing_fee=33,
        time_value=2_592_000,
        metadata=None,
        memo="VM renewal 42 to 2026-12-25 12:00:00",
    )


async def test_rails_charge_the_total_and_cancel_at_the_provider(harness: Harness) -> None:
    rails = PaymentRails(fiat={harness.method: harness.gateway})
    payment = await rails.create(_priced(harness.method), NOW)
    assert payment.external_id is not None
    assert payment.expires == NOW + FIAT_EXPIRY
    assert harness.view(payment.external_id)["amount"] == 1_000 + 210 + 33
    assert isinstance(payment.external_data, str)
    assert json.loads(payment.external_data)["id"] == payment.external_id
    await rails.cancel(payment)
    assert harness.is_cancelled(payment.external_id)


async def test_a_card_order_asks_its_provider_to_end_it_with_its_quote(
    harness: Harness,
) -> None:
    """The provider is told when the order stops being payable; once it has lapsed there
    (the fake provider then fails or expires it), the gateway reads it as unpaid and a
    cancel of it is quiet."""
    rails = PaymentRails(fiat={harness.method: harness.gateway})
    payment = await rails.create(_priced(harness.method), NOW)
    assert payment.external_id is not None
    expected = "PT1H" if harness.name == "revolut" else int((NOW + FIAT_EXPIRY).timestamp())
    assert harness.expiry_sent(payment.external_id) == expected
    harness.lapse(payment.external_id)  # the provider's clock passes the quote's end
    assert not await harness.gateway.is_paid(payment.external_id)
    await rails.cancel(payment)  # cancelling a lapsed order is quiet


async def test_rails_report_a_down_gateway_as_unavailable(harness: Harness) -> None:
    harness.fake.fail_status = 503
    rails = PaymentRails(fiat={harness.method: harness.gateway})
    with pytest.raises(PaymentProviderUnavailable):
        await rails.create(_priced(harness.method), NOW)


async def test_rails_record_a_yen_order_as_the_provider_charges_it(harness: Harness) -> None:
    """JPY 1 500 + 10 % tax + a 33.33 fee is JPY 1 683.33. The provider asks ¥1 684 and the
    payment's total is JPY 1 684.00: the 0.67 of rounding is booked as processing fee
    (untaxed, buys no time), so completion and invoices count what the payer is asked."""
    priced = attrs.evolve(
        _priced(harness.method),
        currency=Currency.JPY,
        amount=150_000,
        tax=15_000,
        processing_fee=3_333,
    )
    rails = PaymentRails(fiat={harness.method: harness.gateway})
    payment = await rails.create(priced, NOW)
    assert payment.external_id is not None
    assert harness.view(payment.external_id)["amount"] == 1_684
    assert (payment.amount, payment.tax, payment.processing_fee) == (150_000, 15_000, 3_400)
    assert payment.currency == "JPY"


@pytest.mark.parametrize(
    ("status", "error", "says"),
    [
        (400, PaymentProviderRefused, "refused the request; please use another payment method"),
        (401, PaymentProviderRefused, "refused the request; please use another payment method"),
        (429, PaymentProviderUnavailable, "is unavailable; please try again later"),
        (503, PaymentProviderUnavailable, "is unavailable; please try again later"),
    ],
)
async def test_rails_name_the_failed_provider_never_its_words(
    harness: Harness,
    caplog: pytest.LogCaptureFixture,
    status: int,
    error: type[Exception],
    says: str,
) -> None:
    """D19: the user is told which provider failed and whether to try again; its status,
    the call and its error text go to the log only."""
    harness.fake.fail_status = status
    rails = PaymentRails(fiat={harness.method: harness.gateway})
    with caplog.at_level("WARNING"), pytest.raises(error) as exc:
        await rails.create(_priced(harness.method), NOW)
    message = str(exc.value)
    assert message.startswith(f"{harness.method.display_name} {says}")
    for detail in ("HTTP", "/", "error occurred", "went wrong"):
        assert detail not in message
    assert f"HTTP {status}" in caplog.text


# -- Revolut specifics --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lasts", "sent"),
    [
        (timedelta(hours=1), "PT1H"),
        (timedelta(minutes=90), "PT1H30M"),
        (timedelta(minutes=45, seconds=59), "PT45M"),  # never longer than the quote
        (timedelta(seconds=10), "PT1M"),  # Revolut's shortest
        (timedelta(days=60), "PT720H"),  # and longest
    ],
)
def test_revolut_pending_expiry_is_an_iso_duration_in_range(lasts: timedelta, sent: str) -> None:
    assert pending_duration(lasts) == sent


async def test_a_revolut_order_without_an_expiry_sends_none(
    revolut: tuple[FakeRevolut, RevolutGateway],
) -> None:
    fake, gateway = revolut
    order = await gateway.create_order(100, "EUR", "x")
    assert "expire_pending_after" not in fake.orders[order.external_id]


async def test_revolut_order_state_for_webhook_recheck(
    revolut: tuple[FakeRevolut, RevolutGateway],
) -> None:
    fake, gateway = revolut
    order = await gateway.create_order(100, "GBP", "x")
    assert await gateway.get_order_state(order.external_id) == "pending"
    fake.complete(order.external_id)
    assert await gateway.get_order_state(order.external_id) == "completed"
    fetched = await gateway.get_order(order.external_id)
    assert fetched is not None and json.loads(fetched.data)["outstanding_amount"] == 0
    assert await gateway.get_order_state("unknown") is None
    fake.set_state(order.external_id, "COMPLETED")  # the legacy API's upper-case states
    assert await gateway.get_order_state(order.external_id) == "completed"


async def test_revolut_sends_the_api_version() -> None:
    fake = FakeRevolut(api_version="2024-09-01")
    async with fake.running() as url:
        async with RevolutGateway(url, fake.api_key, api_version="2023-09-01") as old:
            with pytest.raises(FiatUnavailable, match="HTTP 400"):
                await old.create_order(100, "EUR", "x")
        async with RevolutGateway(url, fake.api_key) as current:
            await current.create_order(100, "EUR", "x")


@pytest.mark.parametrize("refusal", [400, 409, 422])
async def test_revolut_cancel_refused_for_a_finished_order_is_quiet(
    revolut: tuple[FakeRevolut, RevolutGateway], refusal: int
) -> None:
    fake, gateway = revolut
    fake.cancel_refused_status = refusal
    order = await gateway.create_order(100, "EUR", "x")
    fake.set_state(order.external_id, "failed")
    await gateway.cancel_order(order.external_id)


async def test_revolut_cancel_refused_while_processing_raises(
    revolut: tuple[FakeRevolut, RevolutGateway],
) -> None:
    """An order that may still be paid and could not be cancelled is a real failure."""
    fake, gateway = revolut
    order = await gateway.create_order(100, "EUR", "x")
    fake.set_state(order.external_id, "processing")
    with pytest.raises(FiatUnavailable, match="HTTP 400"):
        await gateway.cancel_order(order.external_id)


# -- Stripe specifics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lasts", "after"),
    [
        (timedelta(hours=1), timedelta(hours=1)),
        (timedelta(minutes=10), timedelta(minutes=31)),  # Stripe's shortest, with a margin
        (timedelta(days=3), timedelta(hours=23, minutes=59)),  # and longest
    ],
)
async def test_stripe_session_expires_within_stripes_range(
    stripe: tuple[FakeStripe, StripeGateway], lasts: timedelta, after: timedelta
) -> None:
    fake, gateway = stripe
    fake.now = NOW.timestamp()
    order = await gateway.create_order(100, "EUR", "x", OrderExpiry(starts=NOW, lasts=lasts))
    assert fake.sessions[order.external_id]["expires_at"] == int((NOW + after).timestamp())


async def test_stripe_session_status(stripe: tuple[FakeStripe, StripeGateway]) -> None:
    fake, gateway = stripe
    order = await gateway.create_order(100, "EUR", "x")
    session = await gateway.get_session(order.external_id)
    assert session is not None
    assert (session["status"], session["payment_status"]) == ("open", "unpaid")
    fake.complete(order.external_id)
    session = await gateway.get_session(order.external_id)
    assert session is not None
    assert (session["status"], session["payment_status"]) == ("complete", "paid")
    assert await gateway.get_session("cs_unknown") is None


async def test_stripe_intents_made_before_checkout_are_still_read_and_cancelled(
    stripe: tuple[FakeStripe, StripeGateway],
) -> None:
    fake, gateway = stripe
    paid, open_ = fake._new_intent(100, "eur", "x"), fake._new_intent(100, "eur", "y")
    fake.complete(paid)
    assert await gateway.is_paid(paid) is True
    assert await gateway.is_paid(open_) is False
    await gateway.cancel_order(open_)
    await gateway.cancel_order(paid)  # succeeded: quiet
    assert fake.intents[open_]["status"] == "canceled"
    assert fake.intents[paid]["status"] == "succeeded"


async def test_stripe_cancel_other_400s_are_failures(
    stripe: tuple[FakeStripe, StripeGateway],
) -> None:
    fake, gateway = stripe
    order = await gateway.create_order(100, "EUR", "x")
    fake.fail_status = 400  # a 400 while the session is still open
    with pytest.raises(FiatUnavailable, match="HTTP 400"):
        await gateway.cancel_order(order.external_id)


@pytest.mark.parametrize(
    ("asked", "currency", "minimum"),
    [(49, "EUR", 50), (1, "USD", 50), (29, "GBP", 30), (4_900, "JPY", 5_000)],
)
async def test_stripe_refuses_a_charge_below_its_minimum_before_asking(
    stripe: tuple[FakeStripe, StripeGateway], asked: int, currency: str, minimum: int
) -> None:
    """Stripe refuses a charge below its minimum (EUR 0.50, GBP 0.30, ¥50 …) every time it
    is asked: the gateway says so first, naming the minimum, and asks nothing."""
    fake, gateway = stripe
    with pytest.raises(FiatBelowMinimum, match="Stripe cannot charge less than") as exc:
        await gateway.create_order(asked, currency, "x")
    assert (exc.value.amount_minor, exc.value.minimum_minor) == (asked, minimum)
    assert fake.requests == []
    order = await gateway.create_order(minimum, currency, "x")  # the minimum itself is taken
    assert order.amount_minor == minimum


async def test_stripe_takes_a_part_of_a_yen_that_rounds_up_to_its_minimum(
    stripe: tuple[FakeStripe, StripeGateway],
) -> None:
    fake, gateway = stripe
    order = await gateway.create_order(4_901, "JPY", "x")  # JPY 49.01 is charged as ¥50
    assert fake.sessions[order.external_id]["amount_total"] == 50
    assert order.amount_minor == 5_000


async def test_stripe_names_the_checkout_session_a_payment_intent_was_made_by(
    stripe: tuple[FakeStripe, StripeGateway],
) -> None:
    """Disputes, refunds and `payment_intent.succeeded` name the PaymentIntent; payments are
    stored under their session: Stripe's session list filtered by the intent says which."""
    fake, gateway = stripe
    assert isinstance(gateway, OrderLookup)
    mine, other = [await gateway.create_order(n, "EUR", "x") for n in (100, 200)]
    for session in (mine, other):
        fake.complete(session.external_id)
    intent = fake.sessions[mine.external_id]["payment_intent"]
    assert await gateway.order_of(intent) == mine.external_id
    assert fake.requests[-1] == (
        "GET",
        f"/v1/checkout/sessions?payment_intent={intent}&limit=1",
        {},
    )
    assert await gateway.order_of("pi_made_by_no_session") is None
    asked = len(fake.requests)
    assert await gateway.order_of(mine.external_id) is None  # not an intent: Stripe not asked
    assert len(fake.requests) == asked
    fake.fail_status = 500
    with pytest.raises(FiatUnavailable):
        await gateway.order_of(intent)
