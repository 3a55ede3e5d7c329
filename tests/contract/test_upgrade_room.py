"""A paid upgrade takes no room its host no longer has, on memory, SQLite and MariaDB.

An unpaid upgrade invoice holds no room, so two upgrades quoted at once for two VMs of one
host may each fit alone and not both. The booking judges the growth again under the host's
region lock: the one paid second (or losing the race) is booked, not applied, and its value
becomes account credit, once; its payer and the admins are told.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import attrs

from app.billing.errors import NoHostAvailable
from app.billing.upgrades import create_upgrade_payment
from domain.account_credit import CreditReason
from domain.credit import payment_meta
from domain.enums import VmHistoryActionType as H
from domain.exchange import msat_to_fiat
from domain.model import SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY
from domain.upgrade import UpgradeConfig
from ports.jobs import ProcessVmUpgrade
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import World

# pytest fixtures: one migrated database per backend for the module, emptied per test
database = storage_backends.database
world = lifecycle_world.world

#: the world's template VM has 2 CPUs; each upgrade below grows one VM by 2
BIGGER = UpgradeConfig(new_cpu=4)
NOT_APPLIED = "Upgrade paid but not applied"


async def _two_vms_with_room_for_one_upgrade(world: World, held: int = 0) -> tuple[Vm, Vm]:
    """Two running VMs (2 CPUs each) beside `held` CPUs already taken on their host, which is
    sized to leave 2 CPUs free: one upgrade's worth."""
    async with world.shop.factory() as uow:
        [host] = await uow.hosts.list_all()
        await uow.hosts.update(attrs.evolve(host, cpu=held + 6))
        await uow.commit()
    first, second = await world.paid_vm(), await world.paid_vm()
    assert first.host_id == second.host_id == host.id
    return first, second


async def _upgrade(world: World, vm: Vm) -> SubscriptionPayment:
    shop = world.shop
    return await create_upgrade_payment(
        shop.factory, shop.clock, shop.rails, shop.rates, user_id=ALICE, vm_id=vm.id, cfg=BIGGER
    )


async def _cpu(world: World, vm: Vm) -> int:
    async with world.shop.factory() as uow:
        found = await uow.vms.get(vm.id)
        assert found is not None
        if found.custom_template_id is not None:
            custom = await uow.custom_templates.get(found.custom_template_id)
            assert custom is not None
            return custom.cpu
        assert found.template_id is not None
        template = await uow.templates.get(found.template_id)
        assert template is not None
        return template.cpu


async def _credit_of(world: World, payment: SubscriptionPayment) -> list[int]:
    async with world.shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment.id.hex())
    return [e.amount for e in entries if e.reason is CreditReason.OVERPAYMENT]


async def _assert_applied(world: World, vm: Vm, upgrade: SubscriptionPayment) -> None:
    assert await _cpu(world, vm) == 4
    assert len(await world.history(vm, H.CONFIGURATION_CHANGED)) == 1
    assert (await world.shop.payment(upgrade.id)).is_paid
    assert await _credit_of(world, upgrade) == []


async def _assert_credited(
    world: World, vm: Vm, upgrade: SubscriptionPayment, why: str | None = None
) -> None:
    """Paid and invoiced; the VM as it was; the payment's whole value as credit, once."""
    before = await world.sub(vm)
    assert await _cpu(world, vm) == 2
    found = await world.shop.vm(vm.id)
    assert found.template_id == vm.template_id and found.resize_requested is None
    assert await world.history(vm, H.CONFIGURATION_CHANGED) == []
    paid = await world.shop.payment(upgrade.id)
    assert paid.is_paid
    credit = payment_meta(paid)[CREDIT_KEY]
    assert credit["mode"] == "unrestorable" and credit["seconds"] == 0
    why = why or f"host {vm.host_id} has no room left for the upgrade of VM {vm.id}"
    assert credit["changes"] == [why]
    assert paid.currency == "BTC" and before.currency == "EUR"
    value = msat_to_fiat(paid.amount, paid.rate)
    assert value > 0
    assert await _credit_of(world, paid) == [value]
    async with world.shop.factory() as uow:
        assert (await uow.credit_ledger.balances(before.user_id)).get("EUR") == value
        assert await uow.invoices.get_by_payment(paid.id) is not None


async def test_two_upgrades_quoted_at_once_the_second_paid_becomes_credit(world: World) -> None:
    first, second = await _two_vms_with_room_for_one_upgrade(world)
    up1, up2 = await _upgrade(world, first), await _upgrade(world, second)  # each fits alone
    sub_before = await world.sub(second)

    one = await world.complete(up1)
    two = await world.complete(up2)
    await world.run_jobs()

    assert one.completed and two.completed
    await _assert_applied(world, first, up1)
    await _assert_credited(world, second, up2)
    assert await world.sub(second) == sub_before  # an upgrade buys no time (D12)
    resized = [j.vm_id for j in (*one.jobs, *two.jobs) if isinstance(j, ProcessVmUpgrade)]
    assert resized == [first.id]
    [admins] = world.notifier.titled(f"[Subscription {sub_before.id}] {NOT_APPLIED}")
    assert f"has no room left for the upgrade of VM {second.id}" in admins.message
    assert sub_before.expires is not None
    assert admins.message.endswith(f"now expires {sub_before.expires.isoformat()}.")
    [told] = world.notifier.titled(
        f"[Subscription {sub_before.id}] Payment added to your account credit"
    )
    assert told.user_id == sub_before.user_id
    assert "upgrade was not applied" in told.message
    assert f"host {second.host_id}" not in told.message  # the operator's reasons stay theirs

    again = await world.complete(up2)  # a replayed settlement
    assert not again.completed
    await _assert_credited(world, second, up2)


async def test_two_upgrades_paid_at_once_for_one_last_room_apply_exactly_one(
    world: World,
) -> None:
    """The region lock: two bookings judging one host's last room at once never both win."""
    first, second = await _two_vms_with_room_for_one_upgrade(world)
    up1, up2 = await _upgrade(world, first), await _upgrade(world, second)

    reports = await asyncio.gather(world.complete(up1), world.complete(up2))

    assert all(r.completed for r in reports)
    assert sorted([await _cpu(world, first), await _cpu(world, second)]) == [2, 4]
    first_won = await _cpu(world, first) == 4
    winner, loser = ((first, up1), (second, up2)) if first_won else ((second, up2), (first, up1))
    await _assert_applied(world, *winner)
    await _assert_credited(world, *loser)


async def test_an_upgrade_that_fits_the_last_room_exactly_is_applied(world: World) -> None:
    """Exactly the room left: the growth fits and is applied as before, nobody is told."""
    first, second = await _two_vms_with_room_for_one_upgrade(world)
    upgrade = await _upgrade(world, first)

    report = await world.complete(upgrade)

    assert report.completed
    await _assert_applied(world, first, upgrade)
    assert not world.notifier.titled(f"[Subscription {(await world.sub(first)).id}] {NOT_APPLIED}")
    assert await _cpu(world, second) == 2


async def _price_custom_in(world: World, currency: str) -> None:
    """The region's custom pricing (what a standard VM is upgraded to) priced in `currency`."""
    async with world.shop.factory() as uow:
        [pricing] = await uow.custom_pricing.list_by_region(1)
        await uow.custom_pricing.update(attrs.evolve(pricing, currency=currency))
        await uow.commit()


async def test_an_upgrade_priced_in_another_currency_is_credited_in_the_subscriptions(
    world: World,
) -> None:
    """The plan is in EUR, the custom pricing in USD: the Lightning upgrade's value is EUR
    credit, at its quote's EUR rate (USD credit was a balance its EUR renewals never spend;
    `test_unapplied_upgrade_currency` has USD at another rate than EUR)."""
    first, second = await _two_vms_with_room_for_one_upgrade(world)
    await _price_custom_in(world, "USD")
    up1, up2 = await _upgrade(world, first), await _upgrade(world, second)

    await world.complete(up1)
    await world.complete(up2)

    paid = await world.shop.payment(up2.id)
    async with world.shop.factory() as uow:
        [entry] = await uow.credit_ledger.list_by_reference(paid.id.hex())
        balances = await uow.credit_ledger.balances(paid.user_id)
    assert (entry.currency, entry.amount) == ("EUR", msat_to_fiat(paid.amount, paid.rate))
    assert balances == {"EUR": entry.amount}
    assert (await world.sub(second)).currency == "EUR"  # nothing of the VM changed


async def test_an_upgrade_not_applied_leaves_the_vms_other_upgrade_quotes_payable(
    world: World,
) -> None:
    first, second = await _two_vms_with_room_for_one_upgrade(world)
    bigger = await _upgrade(world, second)
    smaller = await create_upgrade_payment(
        world.shop.factory,
        world.shop.clock,
        world.shop.rails,
        world.shop.rates,
        user_id=ALICE,
        vm_id=second.id,
        cfg=UpgradeConfig(new_cpu=3),
    )
    await world.complete(await _upgrade(world, first))  # takes the last room

    await world.complete(bigger)  # booked as credit: the VM is as it was

    assert await _cpu(world, second) == 2
    still = await world.shop.payment(smaller.id)
    assert not still.is_paid and still.expires > world.now


async def test_an_order_racing_a_credited_upgrade_neither_deadlocks(world: World) -> None:
    """Lock order: the booking takes subscription, user, region; an order user, region. Were
    the booking to take the region before the user (whose row its credit locks), the two
    would wait on each other (MariaDB answers one with a deadlock)."""
    for held in (0, 6):  # each round leaves 6 CPUs taken: two VMs, one grown
        first, second = await _two_vms_with_room_for_one_upgrade(world, held)
        up1, up2 = await _upgrade(world, first), await _upgrade(world, second)
        await world.complete(up1)

        booked, ordered = await asyncio.gather(
            world.complete(up2), world.shop.order(), return_exceptions=True
        )

        assert not isinstance(booked, BaseException) and booked.completed
        assert isinstance(ordered, NoHostAvailable), ordered  # the host is full: a clear 422
        paid = await world.shop.payment(up2.id)
        assert await _cpu(world, second) == 2
        assert await _credit_of(world, paid) == [msat_to_fiat(paid.amount, paid.rate)]


async def test_an_upgrade_paid_after_a_renewal_moved_the_expiry_becomes_credit(
    world: World,
) -> None:
    """An upgrade's price runs to the expiry of its quote. Paid after a renewal moved the
    expiry (D13 expired its invoice, but the node had settled it already), applying it would
    give the bigger size for the renewed month at the smaller price: it is credited instead."""
    vm = await world.paid_vm()
    quoted = await world.sub(vm)
    assert quoted.expires is not None
    upgrade = await _upgrade(world, vm)
    renewal = await world.complete(await world.shop.renew(vm))
    assert upgrade.id in {p.id for p in renewal.event.expired_payments}  # type: ignore[union-attr]
    renewed = await world.sub(vm)
    assert renewed.expires is not None and renewed.expires > quoted.expires

    late = await world.complete(upgrade)  # the node settled it before the cancel
    await world.run_jobs()

    assert late.completed and not [j for j in late.jobs if isinstance(j, ProcessVmUpgrade)]
    why = (
        f"the upgrade of VM {vm.id} was priced to the expiry {quoted.expires.isoformat()}, "
        f"and the subscription now expires {renewed.expires.isoformat()}"
    )
    await _assert_credited(world, vm, upgrade, why)
    assert await world.sub(vm) == renewed
    [told] = world.notifier.titled(
        f"[Subscription {renewed.id}] Payment added to your account credit"
    )
    assert "the subscription's expiry had changed" in told.message
    assert "ask for a new upgrade quote" in told.message
    [admins] = world.notifier.titled(f"[Subscription {renewed.id}] {NOT_APPLIED}")
    assert why in admins.message
    assert not (await world.complete(upgrade)).completed  # a replay books nothing more
    await _assert_credited(world, vm, upgrade, why)


async def test_an_upgrade_paid_before_any_renewal_is_applied_as_quoted(world: World) -> None:
    vm = await world.paid_vm()
    upgrade = await _upgrade(world, vm)
    world.shop.clock.advance(timedelta(days=3))  # time passing changes no expiry
    await world.complete(upgrade)
    await _assert_applied(world, vm, upgrade)
