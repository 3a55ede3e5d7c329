"""Completion runs two transactions (lookup, booking), card webhooks too; `on_booked` effects
are written in the booking transaction: with the payment, or not at all."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.billing import completion
from app.billing.completion import CompletedPayment, complete_card_payment, complete_payment
from domain.enums import PaymentMethod, VmHistoryActionType
from domain.model import SubscriptionPayment
from ports.storage import UnitOfWork
from tests.unit.billing.world import Shop


class CountingFactory:
    """The shop's memory storage, counting the units of work opened."""

    def __init__(self, inner: MemoryUnitOfWorkFactory) -> None:
        self.inner = inner
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return self.inner()


async def _card_invoice(shop: Shop) -> SubscriptionPayment:
    vm = await shop.order()
    return await shop.renew(vm, method=PaymentMethod.REVOLUT)


async def test_a_completion_opens_a_lookup_and_one_booking_transaction(shop: Shop) -> None:
    payment = await shop.renew(await shop.order())
    counting = CountingFactory(shop.factory)
    report = await complete_payment(
        counting, shop.clock, shop.rails, shop.queue, payment_id=payment.id
    )
    assert report.completed and len(report.jobs) == 1
    assert counting.opened == 2


async def test_a_card_webhook_opens_a_lookup_and_one_booking_transaction(shop: Shop) -> None:
    payment = await _card_invoice(shop)
    assert payment.external_id is not None
    counting = CountingFactory(shop.factory)
    report = await complete_card_payment(
        counting,
        shop.clock,
        shop.rails,
        shop.queue,
        method=PaymentMethod.REVOLUT,
        external_id=payment.external_id,
    )
    assert report is not None and report.completed
    assert counting.opened == 2
    assert (await shop.payment(payment.id)).is_paid


async def test_an_on_booked_effect_commits_with_the_payment(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm)
    seen: list[CompletedPayment] = []

    async def issue(uow: UnitOfWork, done: CompletedPayment) -> None:
        # what the effect sees is already booked in this transaction
        stored = await uow.payments.get(done.payment.id)
        assert stored is not None and stored.is_paid
        seen.append(done)

    report = await complete_payment(
        shop.factory, shop.clock, shop.rails, shop.queue, payment_id=payment.id, on_booked=[issue]
    )
    assert report.completed and [d.payment.id for d in seen] == [payment.id]
    again = await complete_payment(
        shop.factory, shop.clock, shop.rails, shop.queue, payment_id=payment.id, on_booked=[issue]
    )
    assert not again.completed and len(seen) == 1  # exactly once (D9)


async def test_an_on_booked_effect_that_fails_books_nothing(shop: Shop) -> None:
    vm = await shop.order()
    payment = await shop.renew(vm)

    async def broken(uow: UnitOfWork, done: CompletedPayment) -> None:
        raise RuntimeError("invoice numbering down")

    with pytest.raises(RuntimeError):
        await complete_payment(
            shop.factory,
            shop.clock,
            shop.rails,
            shop.queue,
            payment_id=payment.id,
            on_booked=[broken],
        )
    assert not (await shop.payment(payment.id)).is_paid
    assert await shop.history(vm, VmHistoryActionType.PAYMENT_RECEIVED) == []
    assert shop.queue.sent == []
    assert not (await shop.subscription(vm)).is_setup
    retried = await complete_payment(
        shop.factory, shop.clock, shop.rails, shop.queue, payment_id=payment.id
    )
    assert retried.completed and (await shop.subscription(vm)).is_setup


async def test_the_default_effects_run_in_every_completion(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DEFAULT_ON_BOOKED` is where every completion's in-transaction effects are listed."""
    seen: list[bytes] = []

    async def issue(uow: UnitOfWork, done: CompletedPayment) -> None:
        seen.append(done.payment.id)

    monkeypatch.setattr(completion, "DEFAULT_ON_BOOKED", (issue,))
    payment = await shop.renew(await shop.order())
    assert (await shop.complete(payment)).completed and seen == [payment.id]
