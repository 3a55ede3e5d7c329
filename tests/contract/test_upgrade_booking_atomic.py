"""A paid upgrade is applied to the VM's records inside its booking transaction, on every
storage: a completion that dies while applying it books nothing, and a retry books it once and
applies it once (the effect could be lost to a crash between two transactions before)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.billing.completion import CompletionReport, complete_payment
from domain.account_credit import CreditReason
from domain.enums import VmHistoryActionType
from domain.exchange import msat_to_fiat
from domain.model import SubscriptionPayment, Vm
from domain.upgrade import UpgradeConfig
from ports.storage import UnitOfWorkFactory
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_completion_history_atomic import Killed, _dying
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import Shop

database = storage_backends.database  # module fixture: memory, SQLite, MariaDB
shop = lifecycle_world.shop

CHANGED = VmHistoryActionType.CONFIGURATION_CHANGED


async def _upgrade_due(shop: Shop) -> tuple[Vm, SubscriptionPayment, SubscriptionPayment]:
    """A paid standard VM, a pending renewal quote and a pending Upgrade to 8 CPUs."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    shop.clock.advance(timedelta(days=1))
    renewal = await shop.renew(vm)
    upgrade = await upgrade_payment(shop, vm, UpgradeConfig(new_cpu=8))
    return vm, renewal, upgrade


async def _complete(shop: Shop, factory: UnitOfWorkFactory, pid: bytes) -> CompletionReport:
    return await complete_payment(factory, shop.clock, shop.rails, shop.queue, payment_id=pid)


async def test_dying_while_applying_an_upgrade_books_nothing_and_a_retry_applies_it_once(
    shop: Shop,
) -> None:
    vm, renewal, upgrade = await _upgrade_due(shop)
    sub_before = await shop.subscription(vm)
    with pytest.raises(Killed):
        await _complete(shop, _dying(shop.factory, "custom_templates", "add"), upgrade.id)
    assert not (await shop.payment(upgrade.id)).is_paid
    assert (await shop.vm(vm.id)).template_id == vm.template_id
    assert await shop.history(vm, CHANGED) == []
    assert (await shop.payment(renewal.id)).expires > shop.clock.now()  # still pending
    assert await shop.subscription(vm) == sub_before

    report = await _complete(shop, shop.factory, upgrade.id)
    assert report.completed and not report.problems
    after = await shop.vm(vm.id)
    assert after.template_id is None and after.custom_template_id is not None
    assert len(await shop.history(vm, CHANGED)) == 1
    # D23: the renewal quoted at the old price was expired with the upgrade, and cancelled
    assert (await shop.payment(renewal.id)).expires == shop.clock.now()
    assert renewal.id in report.cancelled and renewal.id in shop.node.cancelled
    # D12: an upgrade buys no time
    assert (await shop.subscription(vm)).expires == sub_before.expires
    assert [j.kind for j in report.jobs] == ["ProcessVmUpgrade"]

    again = await _complete(shop, shop.factory, upgrade.id)
    assert not again.completed
    assert len(await shop.history(vm, CHANGED)) == 1


async def test_concurrent_completions_apply_an_upgrade_once(shop: Shop) -> None:
    """A guard (the code before passes it too): racing completions apply it once."""
    vm, _, upgrade = await _upgrade_due(shop)
    reports = await asyncio.gather(*(_complete(shop, shop.factory, upgrade.id) for _ in range(8)))
    assert sum(r.completed for r in reports) == 1
    assert len(await shop.history(vm, CHANGED)) == 1
    async with shop.factory() as uow:
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert item is not None and item.amount == 5000  # EUR 50.00 a month at 8 CPUs


async def test_a_smaller_rival_upgrade_paid_anyway_is_credited_not_applied(
    shop: Shop,
) -> None:
    """A paid upgrade its VM has outgrown (a bigger one paid first: now a downgrade) is
    booked, not applied, and its value becomes credit once: received money is never left
    unbooked, nor kept for nothing."""
    vm, _, big = await _upgrade_due(shop)
    small = await upgrade_payment(shop, vm)
    assert (await _complete(shop, shop.factory, big.id)).completed
    report = await _complete(shop, shop.factory, small.id)  # paid although expired (D13)
    assert report.completed and (await shop.payment(small.id)).is_paid
    assert len(await shop.history(vm, CHANGED)) == 1
    async with shop.factory() as uow:
        item = await uow.line_items.get(vm.subscription_line_item_id)
        credited = await uow.credit_ledger.list_by_reference(small.id.hex())
    assert item is not None and item.amount == 5000
    value = msat_to_fiat(small.amount, small.rate)
    assert value > 0
    assert [(e.reason, e.amount) for e in credited] == [(CreditReason.OVERPAYMENT, value)]
    assert not (await _complete(shop, shop.factory, small.id)).completed  # once
