"""What the payer and the admins are told of a payment kept as account credit follows what
was really booked, on memory, SQLite and MariaDB: one paid with account credit alone in
another currency than its subscription's has no money to credit (its credit comes back
whole) and is not called "not credited"; a replay of the booking says what the first
said."""

from __future__ import annotations

from typing import cast

import attrs

from app.billing.credit_overpayment import credit_unrestorable
from app.billing.unrestorable import unrestorable
from domain.account_credit import CreditReason
from ports.jobs import SendAdminNotification, SendNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_unrestorable_currency import _eur_credit_renewal_moved_to_usd, _ledger
from tests.unit.billing.world import ALICE, Shop

database = storage_backends.database
shop = lifecycle_world.shop


async def test_a_payment_of_credit_alone_given_back_is_not_called_uncredited(shop: Shop) -> None:
    """A renewal whose EUR 1.00 of credit paid it all (no money part), its subscription since
    moved to USD and its VM unrestorable: the EUR credit comes back as its own entry, and
    nothing else was due. Neither notice says it was not credited."""
    payment = await _eur_credit_renewal_moved_to_usd(shop)
    async with shop.factory() as uow:  # paid with credit alone: nothing left to pay
        await uow.payments.update(attrs.evolve(payment, amount=0, tax=0, processing_fee=0))
        await uow.commit()
    shop.queue.sent.clear()

    report = await shop.complete(payment)

    assert report.completed
    ref = payment.id.hex()
    assert (await _ledger(shop))[-1] == ("EUR", CreditReason.RELEASED, 100, f"{ref}/applied")
    async with shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == {"EUR": 100}
    told = {type(job).__name__: job for job in shop.queue.sent}
    user = cast(SendNotification, told["SendNotification"])
    assert user.title is not None
    assert "not credited" not in user.title and "No account credit was added" not in user.message
    assert user.title.endswith("Account credit given back")
    assert "The account credit it used, EUR 1.00, was given back" in user.message
    admins = cast(SendAdminNotification, told["SendAdminNotification"]).message
    assert "NOT booked" not in admins and "could not be booked" not in admins
    assert "The account credit it had applied, EUR 1.00, was given back" in admins


async def test_a_replayed_booking_says_what_the_first_said(shop: Shop) -> None:
    """Booked once, replayed: nothing more is booked, and the value is still said to be on
    the balance (it was called "not credited"); the same for a payment of credit alone."""
    payment = await _eur_credit_renewal_moved_to_usd(shop)
    paid = attrs.evolve(payment, is_paid=True, paid_at=shop.clock.now())
    alone = attrs.evolve(paid, amount=0, tax=0, processing_fee=0)
    for kept in (paid, alone):
        said = []
        for _ in range(2):
            async with shop.factory() as uow:
                done = await credit_unrestorable(uow, kept, "USD", "host removed")
                await uow.commit()
            credit = unrestorable(shop.clock.now(), "host removed", done.on_balance)
            said.append((done.on_balance, credit.value_credited, credit.changes, done.given_back))
        assert said[0] == said[1] == (True, True, ("host removed",), "EUR 1.00")
