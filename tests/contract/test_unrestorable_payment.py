"""Issue 13 on memory, SQLite and MariaDB: a payment for a deleted VM that cannot be restored
(host or template disabled, its room taken) buys no time, revives nothing and becomes account
credit, once; so does a never-paid order paid after its window when its room is gone (D25)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import attrs
import pytest

from app.billing.errors import OrderLapsed
from domain.account_credit import CreditReason
from domain.credit import payment_meta
from domain.enums import PaymentMethod, VmHistoryActionType
from domain.exchange import msat_to_fiat
from domain.lifecycle import UNPAID_CLEANUP_AFTER
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY, RATES_KEY
from domain.unpaid_room import NO_UNPAID_ROOM_LIMITS
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import BOB, add_host
from tests.unit.worker.world import DAY, World

database = storage_backends.database
SECOND = timedelta(seconds=1)
NOTICE = "Payment for a VM that cannot be restored"


world = lifecycle_world.world_with_rails("payment_canceller")


async def _deleted_with_late_renewal(world: World) -> tuple[Vm, SubscriptionPayment]:
    """A paid VM left to expire and be deleted, a renewal asked for in its grace period."""
    [(vm, renewal)] = await _deleted_with_late_renewals(world, 1)
    return vm, renewal


async def _deleted_with_late_renewals(
    world: World, count: int
) -> list[tuple[Vm, SubscriptionPayment]]:
    """`count` paid VMs of one host left to expire and be deleted, each with a renewal asked
    for in its grace period."""
    vms = [await world.paid_vm() for _ in range(count)]
    sub = await world.sub(vms[-1])
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    world.at(sub.expires + 7 * DAY - timedelta(minutes=5))
    renewals = [await world.renew(vm) for vm in vms]
    world.at(sub.expires + 7 * DAY + SECOND)
    await world.lifecycle()
    for vm in vms:
        assert (await world.shop.vm(vm.id)).deleted
    world.advance(timedelta(minutes=2))
    return list(zip(vms, renewals, strict=True))


async def _room_for_one(world: World, vm: Vm) -> None:
    """The VM's host shrunk to the CPUs of one VM of its template (2): room for one more,
    which a new unpaid order may take whole (no D25 host share: not what is tested here)."""
    world.shop.unpaid_room = NO_UNPAID_ROOM_LIMITS
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(vm.host_id)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, cpu=2))
        await uow.commit()


async def _disable_host(world: World, vm: Vm) -> None:
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(vm.host_id)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, enabled=False))
        await uow.commit()


async def _disable_template(world: World, vm: Vm) -> None:
    assert vm.template_id is not None
    async with world.shop.factory() as uow:
        template = await uow.templates.get(vm.template_id)
        assert template is not None
        await uow.templates.update(attrs.evolve(template, enabled=False))
        await uow.commit()


async def _credit(world: World, sub: Subscription, payment: SubscriptionPayment) -> list[int]:
    async with world.shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(payment.id.hex())
        return [
            e.amount
            for e in entries
            if e.reason is CreditReason.OVERPAYMENT and e.currency == sub.currency
        ]


async def _assert_credited_once(
    world: World,
    vm: Vm,
    sub_before: Subscription,
    renewal: SubscriptionPayment,
    *,
    deleted: bool = True,
) -> None:
    """VM and subscription untouched, the payment paid without time, credit once, invoiced."""
    assert (await world.shop.vm(vm.id)).deleted is deleted
    assert world.host_state(vm.id) is None
    assert await world.sub(vm) == sub_before
    paid = await world.shop.payment(renewal.id)
    assert paid.is_paid and paid.time_value == 0
    credit = payment_meta(paid)[CREDIT_KEY]
    assert credit["mode"] == "unrestorable" and credit["seconds"] == 0
    assert any(f"VM {vm.id}" in why for why in credit["changes"])
    # a Lightning payment: its value in the list currency at its own rate, tax excluded
    assert paid.currency == "BTC" and sub_before.currency == "EUR"
    value = msat_to_fiat(paid.amount, paid.rate)
    assert value > 0
    assert await _credit(world, sub_before, paid) == [value]
    assert await world.balance(sub_before) == value
    async with world.shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(paid.id)
    assert invoice is not None and invoice.currency == sub_before.currency
    assert invoice.total > 0 and invoice.content["btc_msat"] == paid.total


async def test_host_disabled_the_payment_becomes_credit_not_a_revived_vm(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_host(world, vm)
    sub_before = await world.sub(vm)

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed
    await _assert_credited_once(world, vm, sub_before, renewal)
    [notice] = [n for n in world.notifier.to_admins() if NOTICE in n.title]
    assert f"host {vm.host_id} of VM {vm.id} is disabled" in notice.message
    assert not world.notifier.titled(f"[VM{vm.id}] Re-created after deletion")
    [told] = world.notifier.titled(
        f"[Subscription {sub_before.id}] Payment added to your account credit"
    )
    assert told.user_id == sub_before.user_id
    assert "account credit" in told.message and "host" not in told.message

    again = await world.complete(renewal)  # a replayed settlement
    assert not again.completed
    await _assert_credited_once(world, vm, sub_before, renewal)


async def test_a_payment_that_cannot_be_valued_tells_its_payer_no_credit_was_added(
    world: World,
) -> None:
    """Its quote stored no BTC rate of the subscription's currency (only USD's): its value
    cannot be known, so nothing is credited, and its payer is told so (it was told "the
    payment's net value was added to your account credit"); the admins are told why."""
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_host(world, vm)
    sub_before = await world.sub(vm)
    async with world.shop.factory() as uow:
        stored = await uow.payments.get(renewal.id)
        assert stored is not None and sub_before.currency == "EUR"
        meta = {**payment_meta(stored), RATES_KEY: {"USD": "100000"}}
        await uow.payments.update(attrs.evolve(stored, metadata=meta))
        await uow.commit()

    assert (await world.complete(renewal)).completed
    await world.run_jobs()

    paid = await world.shop.payment(renewal.id)
    assert paid.is_paid and paid.time_value == 0
    assert await world.balance(sub_before) == 0
    title = f"[Subscription {sub_before.id}] "
    assert world.notifier.titled(title + "Payment added to your account credit") == []
    [told] = world.notifier.titled(title + "Payment received but not credited")
    assert told.user_id == sub_before.user_id and "host" not in told.message
    assert "No account credit was added for it" in told.message
    assert "Our admins have been told" in told.message
    [notice] = [n for n in world.notifier.to_admins() if NOTICE in n.title]
    assert "was NOT booked as account credit, and bought nothing" in notice.message
    assert "its value could not be booked as credit" in notice.message


async def test_a_lightning_payment_credited_is_invoiced_as_credited_to_the_cent(
    world: World,
) -> None:
    """Its amount made to end in half a cent (a cent is 10 000 msat at 100 000 EUR/BTC):
    the credit is rounded down, and its invoice's prepayment line says that same figure
    (it converted the whole row half up: a cent more than was credited)."""
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_host(world, vm)
    sub_before = await world.sub(vm)
    assert renewal.rate == Decimal(100_000) and renewal.amount % 10_000 == 0
    odd = renewal.amount + 5_000  # whole sats, and half a cent more
    async with world.shop.factory() as uow:
        stored = await uow.payments.get(renewal.id)
        assert stored is not None
        await uow.payments.update(attrs.evolve(stored, amount=odd))
        await uow.commit()
    floored, half_up = odd // 10_000, odd // 10_000 + 1
    assert msat_to_fiat(odd, renewal.rate) == half_up

    assert (await world.complete(renewal)).completed

    assert await world.balance(sub_before) == floored
    assert await _credit(world, sub_before, renewal) == [floored]
    async with world.shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(renewal.id)
    assert invoice is not None and invoice.currency == "EUR"
    [line] = invoice.document.lines
    assert (line.description, line.net) == ("Prepayment to account credit", floored)
    assert line.tax == msat_to_fiat(renewal.tax, renewal.rate)  # the VAT charged, as shown
    assert invoice.net == floored and invoice.total == floored + line.tax


async def test_template_disabled_the_payment_becomes_credit(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_template(world, vm)
    sub_before = await world.sub(vm)

    report = await world.complete(renewal)

    assert report.completed  # the admins' notice and the user's, no SpawnVm
    assert [type(job).__name__ for job in report.jobs] == [
        "SendAdminNotification",
        "SendNotification",
    ]
    await _assert_credited_once(world, vm, sub_before, renewal)


async def test_two_concurrent_completions_credit_once(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_host(world, vm)
    sub_before = await world.sub(vm)

    reports = await asyncio.gather(world.complete(renewal), world.complete(renewal))

    assert sorted(r.completed for r in reports) == [False, True]
    await _assert_credited_once(world, vm, sub_before, renewal)


async def test_host_present_the_vm_is_revived_as_d24_says(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    sub_before = await world.sub(vm)

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed and not (await world.shop.vm(vm.id)).deleted
    assert world.host_state(vm.id) == "running"
    after = await world.sub(vm)
    assert after.expires is not None and after.expires > world.now
    assert after != sub_before
    assert await _credit(world, sub_before, renewal) == []
    assert await world.balance(sub_before) == 0


def _admin_notice(world: World) -> str:
    [notice] = [n for n in world.notifier.to_admins() if NOTICE in n.title]
    return notice.message


async def test_an_order_took_its_room_the_payment_becomes_credit(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _room_for_one(world, vm)
    await world.shop.order(BOB)  # placed where the deleted VM was: its last room
    sub_before = await world.sub(vm)

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed
    await _assert_credited_once(world, vm, sub_before, renewal)
    assert f"host {vm.host_id} has no room left for VM {vm.id}" in _admin_notice(world)
    assert not world.notifier.titled(f"[VM{vm.id}] Re-created after deletion")


async def test_its_room_still_free_the_vm_is_revived_in_it_exactly(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _room_for_one(world, vm)  # the VM fits exactly: capacity 2, its 2 CPUs

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed and not (await world.shop.vm(vm.id)).deleted
    assert world.host_state(vm.id) == "running"
    assert await world.balance(await world.sub(vm)) == 0


async def test_two_late_payments_for_one_free_place_revive_one(world: World) -> None:
    """The region lock: two bookings judging one host's last room at once never both win."""
    [(first, r1), (second, r2)] = await _deleted_with_late_renewals(world, 2)
    await _room_for_one(world, first)

    reports = await asyncio.gather(world.complete(r1), world.complete(r2))
    await world.run_jobs()

    assert all(r.completed for r in reports)
    revived = [vm for vm in (first, second) if not (await world.shop.vm(vm.id)).deleted]
    assert len(revived) == 1
    [credited] = [vm for vm in (first, second) if vm not in revived]
    assert world.host_state(revived[0].id) == "running"
    assert world.host_state(credited.id) is None
    assert f"has no room left for VM {credited.id}" in _admin_notice(world)


async def _lapsed_order(world: World) -> tuple[Vm, SubscriptionPayment]:
    """A never-paid order whose Purchase invoice expired unpaid, an hour and more ago."""
    vm = await world.shop.order()
    invoice = await world.renew(vm)
    sub = await world.sub(vm)
    world.at(max(invoice.expires, sub.created + UNPAID_CLEANUP_AFTER) + SECOND)
    return vm, invoice


async def test_a_never_paid_order_paid_after_its_room_was_taken_becomes_credit(
    world: World,
) -> None:
    vm, invoice = await _lapsed_order(world)
    await _room_for_one(world, vm)
    await world.shop.order(BOB)  # its order window is over: this one gets the room
    sub_before = await world.sub(vm)

    report = await world.complete(invoice)  # paid anyway (a late settlement)
    await world.run_jobs()

    assert report.completed
    await _assert_credited_once(world, vm, sub_before, invoice, deleted=False)
    assert not (await world.sub(vm)).is_setup
    notice = _admin_notice(world)
    assert f"host {vm.host_id} has no room left for VM {vm.id}" in notice
    assert notice.endswith("The subscription was never paid for: it has no expiry.")
    assert [type(job).__name__ for job in report.jobs] == [
        "SendAdminNotification",
        "SendNotification",
    ]
    assert await world.history(vm, VmHistoryActionType.PAYMENT_RECEIVED) == []


async def test_a_lapsed_order_gets_no_new_invoice(world: World) -> None:
    """A new invoice would make it hold room again without the check an order gets."""
    vm, invoice = await _lapsed_order(world)
    await _room_for_one(world, vm)
    await world.shop.order(BOB)  # the room it let go is taken

    node = world.shop.node
    made, cancelled = len(node.invoices), len(node.cancelled)

    with pytest.raises(OrderLapsed):
        await world.renew(vm)

    assert [p.id for p in await world.shop.payments(vm)] == [invoice.id]
    # refused before the rail was asked: no Lightning invoice made, none to cancel
    assert (len(node.invoices), len(node.cancelled)) == (made, cancelled)


async def test_past_its_window_an_order_gets_no_new_invoice_though_one_is_pending(
    world: World,
) -> None:
    """An invoice of the window holds the room until its own expiry, but no further one is
    issued after the window (D17, D25): chained invoices would hold the room for ever."""
    vm = await world.shop.order()
    sub = await world.sub(vm)
    world.at(sub.created + UNPAID_CLEANUP_AFTER - timedelta(minutes=1))
    card = await world.shop.renew(vm, method=PaymentMethod.REVOLUT, user_id=None)
    world.at(sub.created + UNPAID_CLEANUP_AFTER + timedelta(minutes=1))
    assert card.expires > world.now  # it holds the order's room
    node = world.shop.node
    made, cancelled = len(node.invoices), len(node.cancelled)

    with pytest.raises(OrderLapsed):
        await world.renew(vm)  # another method: a new invoice
    with pytest.raises(OrderLapsed):
        await world.shop.renew(vm, method=PaymentMethod.REVOLUT, user_id=None, intervals=2)

    # refused before the rail was asked: no Lightning invoice made, none to cancel
    assert (len(node.invoices), len(node.cancelled)) == (made, cancelled)
    # the window's own invoice is still handed out (D10)
    again = await world.shop.renew(vm, method=PaymentMethod.REVOLUT, user_id=None)
    assert again.id == card.id
    assert [p.id for p in await world.shop.payments(vm)] == [card.id]
    assert (await world.vm_check()).deleted == []  # held until the card order's own expiry
    world.at(card.expires + SECOND)
    assert (await world.vm_check()).deleted == [vm.id]


async def _cleaned_up_with_window_invoice(world: World) -> tuple[Vm, SubscriptionPayment]:
    """A never-paid order deleted by the cleanup after the invoice it was given in the last
    minute of its window expired unpaid."""
    vm = await world.shop.order()
    sub = await world.sub(vm)
    world.at(sub.created + UNPAID_CLEANUP_AFTER - timedelta(minutes=1))
    invoice = await world.renew(vm)
    world.at(invoice.expires + SECOND)
    assert (await world.vm_check()).deleted == [vm.id]
    return vm, invoice


async def test_a_window_invoice_paid_after_the_cleanup_brings_the_vm_back(world: World) -> None:
    """A late settlement of an invoice issued in the window is not lost (D24, D25)."""
    vm, invoice = await _cleaned_up_with_window_invoice(world)

    report = await world.complete(invoice)
    await world.run_jobs()

    assert report.completed
    assert not (await world.shop.vm(vm.id)).deleted
    assert (await world.sub(vm)).is_setup
    assert world.host_state(vm.id) == "running"
    assert await world.balance(await world.sub(vm)) == 0


async def test_a_window_invoice_paid_after_the_cleanup_without_room_becomes_credit(
    world: World,
) -> None:
    vm, invoice = await _cleaned_up_with_window_invoice(world)
    await _room_for_one(world, vm)
    await world.shop.order(BOB)  # the room the cleanup freed is taken
    sub_before = await world.sub(vm)

    report = await world.complete(invoice)
    await world.run_jobs()

    assert report.completed
    await _assert_credited_once(world, vm, sub_before, invoice)
    assert f"host {vm.host_id} has no room left for VM {vm.id}" in _admin_notice(world)


async def test_an_order_paid_while_its_invoice_held_its_room_is_set_up(world: World) -> None:
    """Past the hour, but its invoice was pending until paid: the room was held all along, and
    is not judged again, even on a host an admin has shrunk below it since."""
    vm = await world.shop.order()
    sub = await world.sub(vm)
    world.at(sub.created + UNPAID_CLEANUP_AFTER - timedelta(minutes=1))
    invoice = await world.renew(vm)
    world.at(sub.created + UNPAID_CLEANUP_AFTER + timedelta(minutes=1))
    assert invoice.expires > world.now
    async with world.shop.factory() as uow:
        host = await uow.hosts.get(vm.host_id)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, cpu=1))
        await uow.commit()
    # a second invoice asked for now is no lapsed order's: one is pending
    assert (await world.renew(vm)).id == invoice.id

    report = await world.complete(invoice)
    await world.run_jobs()

    assert report.completed and (await world.sub(vm)).is_setup
    assert world.host_state(vm.id) == "running"
    assert await world.balance(await world.sub(vm)) == 0


async def test_a_never_paid_order_paid_late_with_its_room_free_is_set_up(world: World) -> None:
    vm, invoice = await _lapsed_order(world)
    await _room_for_one(world, vm)

    report = await world.complete(invoice)
    await world.run_jobs()

    assert report.completed
    assert (await world.sub(vm)).is_setup
    assert world.host_state(vm.id) == "running"
    assert await world.balance(await world.sub(vm)) == 0


async def _second_host(world: World, *, cpu: int = 16) -> int:
    """Another enabled host of the VMs' region (the world's hosts are all one dummy)."""
    async with world.shop.factory() as uow:
        host = await add_host(uow, region_id=1, name="h2", ip="10.0.0.2")
        await uow.hosts.update(attrs.evolve(host, cpu=cpu))
        await uow.commit()
    return host.id


async def _assert_moved(world: World, vm: Vm, to_host: int) -> None:
    """Brought back on `to_host`, running, its subscription paid, no credit, the move told."""
    moved = await world.shop.vm(vm.id)
    assert not moved.deleted and moved.host_id == to_host and moved.host_id != vm.host_id
    async with world.shop.factory() as uow:
        [disk] = await uow.host_disks.list_by_host(to_host)
    assert moved.disk_id == disk.id
    assert world.host_state(vm.id) == "running"
    sub = await world.sub(vm)
    assert sub.is_setup and sub.expires is not None and sub.expires > world.now
    assert await world.balance(sub) == 0
    [entry] = await world.history(vm, VmHistoryActionType.CONFIGURATION_CHANGED)
    assert entry.previous_state is not None and entry.new_state is not None
    assert (entry.previous_state["host_id"], entry.new_state["host_id"]) == (vm.host_id, to_host)
    assert not [n for n in world.notifier.to_admins() if NOTICE in n.title]


async def test_its_host_disabled_a_deleted_vm_comes_back_on_another_host(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_host(world, vm)
    other = await _second_host(world)

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed
    await _assert_moved(world, vm, other)
    assert world.notifier.titled(f"[VM{vm.id}] Re-created after deletion")


async def test_its_room_taken_a_late_order_is_set_up_on_another_host(world: World) -> None:
    vm, invoice = await _lapsed_order(world)
    await _room_for_one(world, vm)
    await world.shop.order(BOB)  # its order window is over: this one gets its room
    other = await _second_host(world)

    report = await world.complete(invoice)
    await world.run_jobs()

    assert report.completed
    await _assert_moved(world, vm, other)


async def test_no_host_of_its_region_has_room_the_payment_becomes_credit(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_host(world, vm)
    await _second_host(world, cpu=1)  # too small for the VM's 2 CPUs
    sub_before = await world.sub(vm)

    report = await world.complete(renewal)
    await world.run_jobs()

    assert report.completed
    await _assert_credited_once(world, vm, sub_before, renewal)
    assert (
        f"host {vm.host_id} of VM {vm.id} is disabled; no other host of region 1 has room"
        in _admin_notice(world)
    )


async def test_a_withdrawn_offer_is_not_placed_anew_on_another_host(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_template(world, vm)
    await _second_host(world)
    sub_before = await world.sub(vm)

    await world.complete(renewal)

    await _assert_credited_once(world, vm, sub_before, renewal)


async def test_two_late_payments_for_one_place_elsewhere_bring_back_one(world: World) -> None:
    """The region lock again: the other host's one free place goes to one of them."""
    [(first, r1), (second, r2)] = await _deleted_with_late_renewals(world, 2)
    await _disable_host(world, first)
    other = await _second_host(world, cpu=2)  # one VM's worth

    reports = await asyncio.gather(world.complete(r1), world.complete(r2))
    await world.run_jobs()

    assert all(r.completed for r in reports)
    back = [vm for vm in (first, second) if not (await world.shop.vm(vm.id)).deleted]
    assert [(await world.shop.vm(vm.id)).host_id for vm in back] == [other]
    [credited] = [vm for vm in (first, second) if vm not in back]
    assert world.host_state(credited.id) is None
    assert "no other host of region 1 has room for it" in _admin_notice(world)
