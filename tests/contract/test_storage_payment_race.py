"""Exactly-once payment completion on every storage (D9): races and replays extend once."""

from __future__ import annotations

import asyncio
from typing import Any

import attrs

from adapters.memory.clock import FakeClock
from app.billing.completion import apply_payment
from domain.enums import SubscriptionPaymentType
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import World, at, new_payment, seed_world

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

RACERS = 50
#: the seed world's subscription is created on 1 March 12:00
EXPIRES = at(1, month=4)


async def _renewable(uow_factory: UnitOfWorkFactory) -> tuple[World, bytes]:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        # expiring on an edge of the grid time bought by value is measured on (a whole month
        # after its creation, `domain.value_grid`): a month's price buys a calendar month
        sub = attrs.evolve(w.subscription, is_active=True, is_setup=True, expires=EXPIRES)
        await uow.subscriptions.update(sub)
        payment = await uow.payments.add(new_payment(sub))
        await uow.commit()
    return attrs.evolve(w, subscription=sub), payment.id


async def test_fifty_concurrent_completions_extend_the_subscription_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w, payment_id = await _renewable(uow_factory)
    clock = FakeClock(at(5))
    results = await asyncio.gather(
        *(apply_payment(uow_factory, payment_id, clock) for _ in range(RACERS))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert winners[0].subscription.expires == at(1, month=5)
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get(w.subscription.id)
        payment = await uow.payments.get(payment_id)
    assert sub is not None and sub.expires == at(1, month=5)
    assert payment is not None and payment.is_paid and payment.paid_at == at(5)


async def test_replaying_a_completed_payment_changes_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w, payment_id = await _renewable(uow_factory)
    clock = FakeClock(at(5))
    assert await apply_payment(uow_factory, payment_id, clock) is not None
    before = await _snapshot(uow_factory, w)
    clock.set(at(7))
    assert await apply_payment(uow_factory, payment_id, clock) is None
    assert await _snapshot(uow_factory, w) == before


async def test_completion_revives_the_vm_and_expires_rival_upgrades(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w, payment_id = await _renewable(uow_factory)
    async with uow_factory() as uow:
        await uow.vms.delete(w.vm.id)
        rival = await uow.payments.add(
            new_payment(w.subscription, payment_type=SubscriptionPaymentType.UPGRADE)
        )
        await uow.commit()
    done = await apply_payment(uow_factory, payment_id, FakeClock(at(5)))
    assert done is not None
    assert done.revived_vms == 1 and [p.id for p in done.cancelled_upgrades] == [rival.id]
    async with uow_factory() as uow:
        vm = await uow.vms.get(w.vm.id)
        expired = await uow.payments.get(rival.id)
    assert vm is not None and not vm.deleted
    assert expired is not None and expired.expires == at(5)


async def _snapshot(uow_factory: UnitOfWorkFactory, w: World) -> tuple[Any, ...]:
    async with uow_factory() as uow:
        return (
            await uow.subscriptions.get(w.subscription.id),
            (await uow.payments.list_by_subscription(w.subscription.id, limit=100)).items,
            await uow.vms.list_active(),
        )


async def test_a_renewal_and_an_upgrade_of_one_subscription_complete_together(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Both take the subscription lock before any payment row (no deadlock), both complete,
    each renewal extends once and the upgrades change no expiry (D12). Locking the payment
    first deadlocked on MariaDB in about one round out of three."""
    w, first_renewal = await _renewable(uow_factory)
    clock = FakeClock(at(5))
    rounds = 5
    for round_no in range(rounds):
        async with uow_factory() as uow:
            renewal = (
                first_renewal
                if round_no == 0
                else (await uow.payments.add(new_payment(w.subscription))).id
            )
            upgrade = await uow.payments.add(
                new_payment(
                    w.subscription, payment_type=SubscriptionPaymentType.UPGRADE, time_value=0
                )
            )
            await uow.commit()
        results = await asyncio.gather(
            apply_payment(uow_factory, renewal, clock),
            apply_payment(uow_factory, upgrade.id, clock),
        )
        assert all(r is not None for r in results)
    async with uow_factory() as uow:
        sub = await uow.subscriptions.get(w.subscription.id)
    assert sub is not None and sub.expires == at(1, month=4 + rounds)
