"""Completing a payment: exactly once (D9), product follow-ups, and what never undoes it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from app.billing.completion import complete_payment
from app.billing.errors import PaymentNotFound
from domain.enums import PaymentMethod, SubscriptionType, VmHistoryActionType
from domain.model import IpRangeSubscription, LineItem, Subscription
from ports.jobs import SpawnVm
from ports.queue import Job
from tests.unit.billing.world import ALICE, START, Shop

RECEIVED, RENEWED = VmHistoryActionType.PAYMENT_RECEIVED, VmHistoryActionType.RENEWED


async def test_order_renew_complete_activates_for_one_calendar_month(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm)
    report = await shop.complete(payment)
    assert report.completed and report.problems == ()
    sub = await shop.subscription(vm)
    assert (sub.is_active, sub.is_setup) == (True, True)
    assert sub.expires == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    assert shop.queue.sent == [SpawnVm(vm_id=vm.id)] == list(report.jobs)
    paid = await shop.payment(payment.id)
    assert paid.is_paid and paid.paid_at == START


async def test_history_records_the_payment_and_the_real_old_and_new_expiry(shop: Shop) -> None:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    shop.clock.advance(timedelta(days=3))
    renewal = await shop.renew(vm)
    await shop.complete(renewal)
    newest_renewed = (await shop.history(vm, RENEWED))[0]
    assert newest_renewed.previous_state == {"expires": "2026-02-28T12:00:00+00:00"}
    assert newest_renewed.new_state == {"expires": "2026-03-28T12:00:00+00:00"}
    assert newest_renewed.description == f"VM {vm.id} was renewed until 2026-03-28 12:00 UTC"
    received = (await shop.history(vm, RECEIVED))[0]
    assert received.metadata["payment_id"] == renewal.id.hex()
    assert received.metadata["payment_amount"] == renewal.total
    assert received.description == (
        f"VM {vm.id} received payment of BTC 0.00001624 (2419200 seconds added)"
    )


async def test_completing_twice_changes_nothing_the_second_time(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm)
    await shop.complete(payment)
    shop.clock.advance(timedelta(minutes=1))
    again = await shop.complete(payment)
    assert not again.completed and again.jobs == ()
    assert (await shop.subscription(vm)).expires == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert len(shop.queue.sent) == 1
    assert len(await shop.history(vm, RECEIVED)) == 1


async def test_twenty_concurrent_completions_extend_once(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm)
    reports = await asyncio.gather(*(shop.complete(payment) for _ in range(20)))
    assert sum(r.completed for r in reports) == 1
    assert (await shop.subscription(vm)).expires == datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert shop.queue.sent == [SpawnVm(vm_id=vm.id)]
    assert len(await shop.history(vm, RECEIVED)) == 1
    assert len(await shop.history(vm, RENEWED)) == 1


async def test_an_unknown_payment_is_not_found(shop: Shop) -> None:
    with pytest.raises(PaymentNotFound):
        await shop.complete(attrs.evolve(await shop.renew(await shop.order()), id=b"x" * 32))


async def test_a_card_payment_completes_like_any_other(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm, method=PaymentMethod.REVOLUT)
    report = await shop.complete(payment)
    assert report.completed and report.payment_id == payment.id
    assert (await shop.subscription(vm)).expires == datetime(2026, 2, 28, 12, tzinfo=UTC)


async def test_a_late_payment_brings_back_a_cleaned_up_vm(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm)
    async with shop.factory() as uow:
        await uow.vms.delete(vm.id)
        await uow.commit()
    shop.clock.advance(timedelta(hours=2))  # the invoice expired; settlement still counts
    report = await shop.complete(payment)
    assert report.completed and report.jobs == (SpawnVm(vm_id=vm.id),)
    assert not (await shop.vm(vm.id)).deleted


async def test_a_queue_failure_is_reported_and_never_undoes_the_payment(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm)

    async def broken(job: Job) -> str:
        raise ConnectionError("redis down")

    shop.queue.send = broken  # type: ignore[method-assign]
    report = await shop.complete(payment)
    assert report.completed and report.jobs == ()
    assert len(report.problems) == 1 and "redis down" in report.problems[0]
    assert (await shop.payment(payment.id)).is_paid
    assert (await shop.subscription(vm)).is_active


async def test_paying_an_ip_range_reactivates_its_allocations(shop: Shop) -> None:
    async with shop.factory() as uow:
        sub, [item] = await uow.subscriptions.add_with_line_items(
            Subscription(
                id=0,
                user_id=ALICE,
                company_id=1,
                name="range",
                created=START,
                currency="EUR",
                is_active=True,
                is_setup=True,
                expires=START - timedelta(days=2),
            ),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.IP_RANGE,
                    name="/29",
                    amount=500,
                )
            ],
        )
        sold = await uow.ip_range_subscriptions.add(
            IpRangeSubscription(
                id=0,
                subscription_line_item_id=item.id,
                available_ip_space_id=1,
                created=START,
                cidr="10.1.0.0/29",
                is_active=False,
                ended_at=START,
            )
        )
        await uow.commit()
    from app.billing.renewal import renew

    payment = await renew(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=ALICE,
        subscription_id=sub.id,
    )
    assert payment.time_value is None and payment.amount == 5_000_000
    report = await complete_payment(
        shop.factory, shop.clock, shop.rails, shop.queue, payment_id=payment.id
    )
    assert report.completed and report.problems == ()
    async with shop.factory() as uow:
        again = await uow.ip_range_subscriptions.get(sold.id)
        renewed = await uow.subscriptions.get(sub.id)
    assert again is not None and again.is_active and again.ended_at is None
    assert renewed is not None and renewed.expires == datetime(2026, 2, 28, 12, tzinfo=UTC)
