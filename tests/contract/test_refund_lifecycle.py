"""A refunded subscription is not renewed back, on memory, SQLite and MariaDB: after an admin
refund (by hand from a later date, or to credit now) the worker neither auto-renews the cut
period from the user's wallet or credit nor asks the user to renew it; the VM is still
stopped at the cut expiry and deleted after the grace."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from app.admin.credit_refund import refund_to_credit
from app.admin.manual_refund import refund_by_hand
from app.billing.credit_balance import adjust_credit
from app.worker.lifecycle import LifecycleReport
from domain.enums import PaymentMethod
from domain.lifecycle import LifecycleAction, deletion_due_at
from domain.model import Subscription, Vm
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import notice_titles, with_renewer
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")
WALLET = "nostr+walletconnect://wallet"
SECOND = timedelta(seconds=1)
CREDIT = 1_000_000
_A = LifecycleAction


async def _opted_in(world: World, vm: Vm) -> Subscription:
    """Auto-renewal on, an NWC wallet and account credit: everything a renewal could use."""
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, auto_renewal_enabled=True))
        user = await uow.users.get(sub.user_id)
        assert user is not None
        await uow.users.update(attrs.evolve(user, nwc_connection_string=WALLET))
        await uow.commit()
    await adjust_credit(
        world.shop.factory,
        world.clock,
        admin_id=sub.user_id,
        user_id=sub.user_id,
        currency=sub.currency,
        amount=CREDIT,
        note="test",
    )
    return await world.sub(vm)


def _done(reports: list[LifecycleReport]) -> list[LifecycleAction]:
    return [a.action for r in reports for a in r.done]


async def _by_hand(world: World, vm: Vm, start: datetime) -> None:
    shop = world.shop
    await refund_by_hand(
        shop.factory,
        shop.rates,
        shop.clock,
        world.queue,
        vm_id=vm.id,
        method=PaymentMethod.REVOLUT,
        from_date=start,
        lightning_invoice=None,
        admin_id=ALICE,
        reason="leaving",
    )


async def test_a_refund_from_a_later_date_ends_the_service_then_without_renewal(
    world: World,
) -> None:
    """Refunded from 3 days on: inside the cut period's expiring-soon window the worker
    charges neither the wallet nor the credit and sends no "Expiring Soon"; at the cut
    expiry it stops the VM, after the grace it deletes it."""
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    paid_before = await world.shop.payments(vm)
    start = world.now + timedelta(days=3)
    await _by_hand(world, vm, start)
    await world.run_jobs()
    assert (await world.sub(vm)).expires == start
    titles_before, _ = notice_titles(world, sub.user_id)

    world.at(start - timedelta(hours=12))
    reports = await world.lifecycle(runs=3, step=timedelta(seconds=30))
    await world.run_jobs()

    assert _done(reports) == []
    assert wallet.asked == [] and await world.balance(sub) == CREDIT
    assert await world.shop.payments(vm) == paid_before
    assert (await world.sub(vm)).expires == start
    assert notice_titles(world, sub.user_id)[0] == titles_before

    world.at(start + SECOND)
    assert _done(await world.lifecycle()) == [_A.STOP_ON_EXPIRY, _A.DEACTIVATE_ADDONS]
    await world.run_jobs()
    assert world.host_state(vm.id) == "stopped"
    due = deletion_due_at(await world.sub(vm), world.deps.delete_after_days)
    assert due is not None
    world.at(due + SECOND)
    assert _done(await world.lifecycle()) == [_A.DELETE_AFTER_GRACE]
    assert (await world.shop.vm(vm.id)).deleted
    assert wallet.asked == [] and await world.balance(sub) == CREDIT


async def test_a_refund_to_credit_is_not_renewed_by_a_run_that_read_its_clock_before(
    world: World,
) -> None:
    """The refund cuts the expiry to now; a worker run whose clock was read a moment
    earlier sees the cut period still expiring soon: it must not auto-renew it."""
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    world.advance(timedelta(days=4))
    await refund_to_credit(
        world.shop.factory, world.clock, world.shop.rates, vm_id=vm.id, admin_id=ALICE, reason=None
    )
    cut = world.now
    refunded = await world.balance(sub)
    assert (await world.sub(vm)).expires == cut and refunded > CREDIT
    paid_before = await world.shop.payments(vm)

    world.at(cut - SECOND)  # the run's clock, read just before the refund committed
    reports = await world.lifecycle()
    await world.run_jobs()

    assert _done(reports) == []
    assert wallet.asked == [] and await world.balance(sub) == refunded
    assert await world.shop.payments(vm) == paid_before
    assert (await world.sub(vm)).expires == cut
    world.at(cut + SECOND)
    assert _done(await world.lifecycle()) == [_A.STOP_ON_EXPIRY, _A.DEACTIVATE_ADDONS]
