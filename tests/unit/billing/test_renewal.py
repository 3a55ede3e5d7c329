"""Renewals: N calendar intervals (D6), reuse of pending payments (D10), idempotency keys (D11)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from app.billing.catalogue import vm_price
from app.billing.errors import (
    IdempotencyKeyReused,
    PaymentMethodNotConfigured,
    PaymentProviderUnavailable,
    SubscriptionNotFound,
    VmNotFound,
)
from app.billing.renewal import renew, renew_idempotent
from domain.enums import DiskInterface, DiskType, PaymentMethod, SubscriptionPaymentType
from domain.errors import IntervalCountOutOfRange
from domain.model import CustomPricingDisk, SubscriptionPayment, Vm
from domain.pricing import NoDiskPrice
from domain.subscription import renewal_metadata
from tests.unit.billing.world import ALICE, BOB, PRICING, START, Shop

LIGHTNING, REVOLUT = PaymentMethod.LIGHTNING, PaymentMethod.REVOLUT


async def _idem(shop: Shop, vm: Vm, key: str, body: bytes, **kw: object) -> SubscriptionPayment:
    return await renew_idempotent(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=vm.user_id,
        idempotency_key=key,
        request_body_hash=body,
        vm_id=vm.id,
        **kw,  # type: ignore[arg-type]
    )


async def test_first_payment_is_a_purchase_priced_exactly_in_whole_sats(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm)
    assert payment.payment_type is SubscriptionPaymentType.PURCHASE
    # EUR 1.32 at 100 000 EUR/BTC is exactly 1 320 000 msat (D2); IE tax 23 % floored (D3)
    assert (payment.amount, payment.currency, payment.tax) == (1_320_000, "BTC", 303_600)
    # the invoice is whole sats: its 400 msat over amount + tax are booked as fee (untaxed)
    assert (payment.processing_fee, payment.rate) == (400, Decimal(100_000))
    assert payment.time_value == 28 * 86_400  # 31 Jan → 28 Feb
    # the count (D10), what the quote was made against: price, tax country, rates (D23), and
    # the tax rate it charged (the invoice prints it, whatever credit paid) and whether it
    # was reverse charged (the invoice states it as quoted)
    assert payment.metadata == {
        **renewal_metadata(1),
        "tax_rate": "23",
        "reverse_charge": False,
        "price": {"interval": [1, 1], "recurring": {"EUR": 132}, "setup": {}, "country": "IRL"},
        "rates": {"EUR": "100000", "USD": "100000"},
    }
    assert payment.expires == START + timedelta(seconds=600)
    invoice = shop.node.invoices[payment.id]  # amount + tax = 1 623 600, up to a whole sat
    assert invoice.amount_msat == 1_624_000 == payment.total
    assert payment.external_data == invoice.bolt11
    assert shop.node.memos[payment.id] == f"Subscription purchase: VM{vm.id} subscription"
    assert await shop.payments(vm) == [payment]


async def test_three_months_from_31_january_end_on_30_april_to_the_second(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm, intervals=3)
    assert payment.amount == 3 * 1_320_000 and payment.tax == 910_800
    report = await shop.complete(payment)
    assert report.completed
    sub = await shop.subscription(vm)
    assert sub.expires == datetime(2026, 4, 30, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("first", "then", "end"),
    [
        (1, 2, datetime(2026, 4, 28, 12, tzinfo=UTC)),  # 31 Jan → 28 Feb → 28 Apr
        (2, 1, datetime(2026, 4, 30, 12, tzinfo=UTC)),  # 31 Jan → 31 Mar → 30 Apr
    ],
)
async def test_invoices_stacked_from_a_month_end_count_from_the_expiry_each_finds(
    shop: Shop, first: int, then: int, end: datetime
) -> None:
    """D23: each N-interval invoice extends by N calendar intervals from the expiry at its
    completion, in whatever order they are paid, so each clamps to a month's end on its own
    (D6) and the order of a 1- and a 2-month invoice from 31 Jan shows in the end."""
    shop.clock.set(datetime(2025, 12, 31, 12, tzinfo=UTC))
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    assert (await shop.subscription(vm)).expires == datetime(2026, 1, 31, 12, tzinfo=UTC)
    invoices = {n: await shop.renew(vm, intervals=n) for n in (1, 2)}
    assert (await shop.complete(invoices[first])).completed
    assert (await shop.complete(invoices[then])).completed
    assert (await shop.subscription(vm)).expires == end


@pytest.mark.parametrize("count", [0, -1, 121])
async def test_an_interval_count_outside_1_to_120_is_bad_input(shop: Shop, count: int) -> None:
    vm = await shop.order()
    with pytest.raises(IntervalCountOutOfRange) as err:
        await shop.renew(vm, intervals=count)
    assert err.value.kind == "bad_input"


async def test_same_method_type_and_count_reuse_the_pending_payment(shop: Shop) -> None:
    vm = await shop.order()
    first = await shop.renew(vm)
    shop.clock.advance(timedelta(seconds=30))
    assert await shop.renew(vm) == first
    two = await shop.renew(vm, intervals=2)
    assert two.id != first.id and two.metadata["intervals"] == 2
    assert await shop.renew(vm, intervals=2) == two
    card = await shop.renew(vm, method=REVOLUT)
    assert card.id not in (first.id, two.id)
    assert len(shop.node.invoices) == 2 and len(shop.revolut.orders) == 1


async def test_an_expired_or_paid_payment_is_not_reused(shop: Shop) -> None:
    vm = await shop.order()
    first = await shop.renew(vm)
    shop.clock.advance(timedelta(seconds=601))
    second = await shop.renew(vm)
    assert second.id != first.id
    await shop.complete(second)
    third = await shop.renew(vm)
    assert third.id != second.id and third.payment_type is SubscriptionPaymentType.RENEWAL


async def test_a_renewal_extends_from_the_current_expiry(shop: Shop) -> None:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    renewal = await shop.renew(vm)
    assert renewal.time_value == 28 * 86_400  # 28 Feb → 28 Mar
    await shop.complete(renewal)
    assert (await shop.subscription(vm)).expires == datetime(2026, 3, 28, 12, tzinfo=UTC)


async def test_a_card_renewal_charges_list_currency_tax_and_fee(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm, method=REVOLUT)
    # 2.8 % + EUR 0.20 grossed up (D4): ceil(132·r/(1−r)) + ceil(20/(1−r)) = 4 + 21
    assert (payment.amount, payment.currency, payment.tax, payment.processing_fee) == (
        132,
        "EUR",
        30,
        25,
    )
    assert len(payment.id) == 32 and payment.expires == START + timedelta(hours=1)
    [(order_id, order)] = shop.revolut.orders.items()
    assert order[:2] == (187, "EUR") and payment.external_id == order_id


async def test_a_rail_that_is_not_configured_is_refused(shop: Shop) -> None:
    vm = await shop.order()
    with pytest.raises(PaymentMethodNotConfigured) as err:
        await shop.renew(vm, method=PaymentMethod.STRIPE)
    assert err.value.kind == "unprocessable"
    assert await shop.payments(vm) == []


async def test_lightning_node_down_is_unavailable_and_stores_nothing(shop: Shop) -> None:
    vm = await shop.order()
    shop.node.down = True
    with pytest.raises(PaymentProviderUnavailable) as err:
        await shop.renew(vm)
    assert err.value.kind == "unavailable"
    shop.revolut.down = True
    with pytest.raises(PaymentProviderUnavailable):
        await shop.renew(vm, method=REVOLUT)
    assert await shop.payments(vm) == []


async def test_another_users_vm_or_subscription_is_not_found(shop: Shop) -> None:
    vm = await shop.order()
    with pytest.raises(VmNotFound):
        await shop.renew(vm, user_id=BOB)
    with pytest.raises(SubscriptionNotFound):
        await renew(
            shop.factory,
            shop.clock,
            shop.rails,
            shop.rates,
            shop.tax_rates,
            user_id=BOB,
            subscription_id=1,
        )
    own = await renew(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=ALICE,
        subscription_id=1,
    )
    assert own.subscription_id == 1


async def test_same_idempotency_key_and_body_return_the_same_payment(shop: Shop) -> None:
    vm = await shop.order()
    first = await _idem(shop, vm, "k1", b"body")
    shop.clock.advance(timedelta(hours=2))  # even after it expired
    assert await _idem(shop, vm, "k1", b"body") == first
    assert len(shop.node.invoices) == 1


async def test_same_idempotency_key_with_another_body_or_target_is_a_conflict(
    shop: Shop,
) -> None:
    vm = await shop.order()
    other_vm = await shop.order()
    await _idem(shop, vm, "k1", b"body")
    with pytest.raises(IdempotencyKeyReused) as err:
        await _idem(shop, vm, "k1", b"other body")
    assert err.value.kind == "conflict"
    with pytest.raises(IdempotencyKeyReused):
        await _idem(shop, other_vm, "k1", b"body")
    assert len(shop.node.invoices) == 1


async def test_a_new_idempotency_key_still_reuses_a_pending_payment(shop: Shop) -> None:
    vm = await shop.order()
    plain = await shop.renew(vm)
    keyed = await _idem(shop, vm, "k2", b"body")
    assert keyed == plain
    assert await _idem(shop, vm, "k2", b"body") == plain


async def test_concurrent_requests_get_one_payment_and_the_extra_invoices_are_cancelled(
    shop: Shop,
) -> None:
    vm = await shop.order()
    keyed = await asyncio.gather(*(_idem(shop, vm, "k3", b"body") for _ in range(5)))
    assert len({p.id for p in keyed}) == 1
    plain = await asyncio.gather(*(shop.renew(vm, intervals=2) for _ in range(5)))
    assert len({p.id for p in plain}) == 1
    assert len(await shop.payments(vm)) == 2
    assert len(shop.node.invoices) > 2  # the requests did race
    assert len(shop.node.cancelled) == len(shop.node.invoices) - 2


async def _replace_disk_rows(shop: Shop, *rows: tuple[DiskType, DiskInterface, int]) -> None:
    async with shop.factory() as uow:
        await uow.custom_pricing.remove_disks(PRICING)
        for kind, interface, cost in rows:
            row = CustomPricingDisk(
                id=0, pricing_id=PRICING, kind=kind, interface=interface, cost=cost
            )
            await uow.custom_pricing.add_disk(row)
        await uow.commit()


async def test_a_custom_vm_whose_interface_lost_its_row_renews_at_its_types_first_row(
    shop: Shop, caplog: pytest.LogCaptureFixture
) -> None:
    vm = await shop.order_custom()  # SSD on PCIe, 80 GiB
    await _replace_disk_rows(
        shop, (DiskType.HDD, DiskInterface.PCIE, 1), (DiskType.SSD, DiskInterface.SATA, 70)
    )
    with caplog.at_level(logging.WARNING, logger="app.billing.catalogue"):
        async with shop.factory() as uow:
            price = await vm_price(uow, vm)
        payment = await shop.renew(vm)
    assert price.list_price.amount == 2 * 200 + 4 * 100 + 80 * 70
    assert payment.amount > 0 and not payment.is_paid
    assert f"VM {vm.id}: custom pricing {PRICING} has no SSD disk row with interface" in (
        caplog.text
    )


async def test_a_custom_vm_whose_disk_type_lost_every_row_cannot_be_priced(shop: Shop) -> None:
    vm = await shop.order_custom()
    await _replace_disk_rows(shop, (DiskType.HDD, DiskInterface.PCIE, 1))
    with pytest.raises(NoDiskPrice, match=r"^No disk price found$"):
        await shop.renew(vm)
