"""A paid Purchase expires the subscription's other pending Purchase invoices in its booking
transaction and cancels them at their provider, on every storage: an order (and its setup
fee) is paid once, whichever method's invoice the buyer paid first."""

from __future__ import annotations

from adapters.memory.clock import FakeClock
from app.billing.completion import complete_payment
from app.billing.rails import PaymentRails
from domain.enums import PaymentMethod, SubscriptionPaymentType
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import at, new_payment, seed_world
from tests.unit.billing.fakes import FakeNode, RecordingQueue

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

PURCHASE = SubscriptionPaymentType.PURCHASE


async def _two_invoices(uow_factory: UnitOfWorkFactory) -> tuple[int, bytes, bytes, bytes]:
    """A new order with a Lightning and a Revolut Purchase invoice, and a pending
    Renewal that must be left alone (ids: subscription, lightning, revolut, renewal)."""
    async with uow_factory() as uow:
        w = await seed_world(uow)
        ln = await uow.payments.add(new_payment(w.subscription, payment_type=PURCHASE))
        card = await uow.payments.add(
            new_payment(
                w.subscription,
                payment_type=PURCHASE,
                payment_method=PaymentMethod.REVOLUT,
                external_id="order-1",
            )
        )
        renewal = await uow.payments.add(new_payment(w.subscription))
        await uow.commit()
    return w.subscription.id, ln.id, card.id, renewal.id


async def test_paying_one_purchase_expires_and_cancels_the_other(
    uow_factory: UnitOfWorkFactory,
) -> None:
    sub_id, ln_id, card_id, renewal_id = await _two_invoices(uow_factory)
    clock = FakeClock(at(5))
    node = FakeNode(clock)
    report = await complete_payment(
        uow_factory, clock, PaymentRails(node, {}), RecordingQueue(), payment_id=card_id
    )
    assert report.completed
    async with uow_factory() as uow:
        pending = await uow.payments.list_pending_for_subscription(sub_id, at(5))
        rival = await uow.payments.get(ln_id)
    assert rival is not None and not rival.is_paid and rival.expires == at(5)
    assert [p.id for p in pending] == [renewal_id]  # only Purchases are rivals
    assert node.cancelled == [ln_id]
    assert ln_id in report.cancelled
