"""A Purchase or Renewal that completed while its VM was being deleted, and became account
credit afterwards because no room was left to bring the VM back, keeps the invoice it was
issued with ("Renewal: …", a supply period); credit notes never take that credited value
back (a card's fee, not credited, stays creditable), a refund by hand puts no note on it,
and a note issued on it, or a refund to credit that valued it, before it was credited keeps
it from being credited at all; a renewal that brought its VM back is invoiced and
creditable as before; on memory, SQLite and MariaDB."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from app.admin.credit_refund import refund_to_credit
from app.admin.refund_notes import credit_refund
from app.worker.lifecycle import LifecycleReport, check_subscriptions
from domain.account_credit import CreditReason
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.errors import InvalidInput
from domain.invoice import Invoice
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.money import Currency, Money
from domain.price_basis import CREDIT_KEY
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_overtaken_placement import GUARD_S, _host_full
from tests.contract.test_unrestorable_payment import NOTICE, _second_host
from tests.unit.billing.world import ALICE
from tests.unit.worker.world import DAY, World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")

SECOND = timedelta(seconds=1)
FEE_LINE = "Payment processing fee"
#: the titles of the payer's notice: its value credited, or not
CREDITED = "Payment added to your account credit"
NOT_CREDITED = "Payment received but not credited"

Hook = Callable[[Vm, SubscriptionPayment], Awaitable[None]]


async def _nothing(vm: Vm, late: SubscriptionPayment) -> None:
    return None


async def _overtaken(
    world: World,
    *,
    card: bool = False,
    no_room: bool = True,
    while_deleting: Hook = _nothing,
) -> tuple[Subscription, SubscriptionPayment, Invoice]:
    """A paid VM past its grace period, a renewal (Lightning, or `card`) asked for in its
    last minutes and completed while the host deletes the VM; its region then has no room
    for it (`no_room`) and `while_deleting` runs after that payment's booking, before the
    deletion is recorded. The subscription as the payment left it, the payment and its
    invoice (as issued at its booking) are returned."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + 7 * DAY - timedelta(minutes=5))
    if card:
        late: SubscriptionPayment = await world.shop.renew(
            vm, method=PaymentMethod.REVOLUT, user_id=None
        )
    else:
        late = await world.renew(vm)
    world.at(sub.expires + 7 * DAY + SECOND)
    world.host.hold("delete_vm")
    run: asyncio.Task[LifecycleReport] = asyncio.create_task(check_subscriptions(world.deps))
    await asyncio.wait_for(world.host.entered("delete_vm").wait(), GUARD_S)
    if no_room:
        await _host_full(world, vm)
        await _second_host(world, cpu=1)  # too small for the VM's 2 CPUs
    assert (await asyncio.wait_for(world.complete(late), GUARD_S)).completed
    paid_sub = await world.sub(vm)
    await while_deleting(vm, late)
    world.host.let_go("delete_vm")
    await run
    await world.run_jobs()
    async with world.shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(late.id)
    assert invoice is not None
    return paid_sub, late, invoice


async def _credited_after_its_invoice(
    world: World, sub: Subscription, late: SubscriptionPayment, invoice: Invoice
) -> int:
    """The payment bought no time and is credit (its net), though its invoice bills the
    renewal with a supply period (issued before it was credited); the balance."""
    paid = await world.shop.payment(late.id)
    assert paid.time_value == 0 and payment_meta(paid)[CREDIT_KEY]["mode"] == "unrestorable"
    assert invoice.document.lines[0].description.startswith("Renewal: ")
    assert invoice.document.supply_to is not None and invoice.tax > 0
    balance = await world.balance(sub)
    assert balance > 0
    return balance


async def test_no_credit_note_takes_back_a_renewal_credited_after_its_invoice(
    world: World,
) -> None:
    sub, late, invoice = await _overtaken(world)
    balance = await _credited_after_its_invoice(world, sub, late, invoice)

    with pytest.raises(InvalidInput, match="booked as account credit"):
        await world.shop.credit_note(invoice, invoice.total)
    with pytest.raises(InvalidInput, match="booked as account credit"):
        await world.shop.credit_note(invoice, 1)
    assert await world.shop.credit_notes(invoice) == []
    assert await world.balance(sub) == balance


async def test_a_card_renewal_credited_after_its_invoice_keeps_its_fee_creditable(
    world: World,
) -> None:
    sub, late, invoice = await _overtaken(world, card=True)
    await _credited_after_its_invoice(world, sub, late, invoice)
    fee = late.processing_fee
    assert fee > 0 and invoice.document.lines[-1].description == FEE_LINE

    with pytest.raises(InvalidInput, match="booked as account credit"):
        await world.shop.credit_note(invoice, fee + 1)
    await world.shop.credit_note(invoice, fee)
    assert [(n.amount, n.net, n.tax) for n in await world.shop.credit_notes(invoice)] == [
        (fee, fee, 0)
    ]  # the fee bears no VAT
    with pytest.raises(InvalidInput, match="booked as account credit"):
        await world.shop.credit_note(invoice, 1)


async def test_a_refund_by_hand_puts_no_note_on_a_renewal_credited_after_its_invoice(
    world: World,
) -> None:
    """Its supply period reaches past the refund's start, but that time was taken back when
    it was credited: no note, the value is uncovered (not paid back)."""
    sub, late, invoice = await _overtaken(world)
    await _credited_after_its_invoice(world, sub, late, invoice)
    assert invoice.document.supply_to is not None and invoice.document.supply_to > world.now
    value = Money(Currency.parse(sub.currency), 500)

    async with world.shop.factory() as uow:
        await uow.subscriptions.get_for_update(sub.id)
        notes = await credit_refund(
            uow,
            sub.id,
            value=value,
            shares={late.id.hex(): value.amount},
            reason="by hand",
            now=world.now,
        )
        await uow.commit()

    assert notes.notes == () and notes.uncovered == value.amount and notes.invoiced
    assert await world.shop.credit_notes(invoice) == []


async def test_a_note_issued_while_its_vm_was_deleted_keeps_the_payment_from_credit(
    world: World,
) -> None:
    """Credited whole or not at all: a note took part of its invoice back before it could be
    credited, so nothing is booked (the money is not given back twice) and the admins are
    told why."""

    async def noted(vm: Vm, late: SubscriptionPayment) -> None:
        async with world.shop.factory() as uow:
            found = await uow.invoices.get_by_payment(late.id)
        assert found is not None
        await world.shop.credit_note(found, 100)

    sub, late, invoice = await _overtaken(world, while_deleting=noted)

    paid = await world.shop.payment(late.id)
    assert paid.time_value == 0 and payment_meta(paid)[CREDIT_KEY]["mode"] == "unrestorable"
    assert await world.balance(sub) == 0
    [notice] = [n for n in world.notifier.to_admins() if NOTICE in n.title]
    assert f"took back part of its invoice {invoice.number}" in notice.message
    assert "its value could not be booked as credit" in notice.message
    assert "was NOT booked as account credit, and bought nothing" in notice.message
    assert len(await world.shop.credit_notes(invoice)) == 1


async def test_a_renewal_a_refund_to_credit_gave_back_while_its_vm_was_deleted_is_not_credited(
    world: World,
) -> None:
    """While the host deletes the VM, a renewal completes (extending it), an admin refunds
    that unused time to credit (the VM is still live to the refund; the expiry is cut to
    now) and the owner pays another renewal. No room brings the VM back, so both payments
    overtook the deletion and become credit: the second whole, the first not at all, since
    the refund gave its invoice's value back already (it was credited again, the money
    given back twice), and the admins are told why. (Without the second renewal the
    deletion is recorded as a plain one: the refund left no paid time.)"""
    later: list[SubscriptionPayment] = []

    async def refunded_then_renewed(vm: Vm, late: SubscriptionPayment) -> None:
        booked = await refund_to_credit(
            world.shop.factory,
            world.shop.clock,
            world.shop.rates,
            vm_id=vm.id,
            admin_id=ALICE,
            reason=None,
        )
        assert booked.entry.amount > 0
        later.append(await world.renew(vm))
        assert (await world.complete(later[0])).completed

    sub, late, invoice = await _overtaken(world, while_deleting=refunded_then_renewed)

    for payment in (late, later[0]):
        paid = await world.shop.payment(payment.id)
        assert paid.time_value == 0 and payment_meta(paid)[CREDIT_KEY]["mode"] == "unrestorable"
    async with world.shop.factory() as uow:
        entries = (await uow.credit_ledger.list_page(sub.user_id, 10, 0)).items
        second = await uow.invoices.get_by_payment(later[0].id)
    assert second is not None
    assert sorted((e.reason, e.payment_id) for e in entries) == sorted(
        [(CreditReason.REFUND_TO_CREDIT, None), (CreditReason.OVERPAYMENT, later[0].id)]
    )
    assert await world.balance(sub) == sum(e.amount for e in entries)
    notices = [n.message for n in world.notifier.to_admins() if NOTICE in n.title]
    [refused] = [m for m in notices if "a refund to credit gave back" in m]
    assert f"of its invoice {invoice.number} already" in refused
    assert "was NOT booked as account credit, and bought nothing" in refused
    assert not any(second.number in m and "NOT booked" in m for m in notices)


async def test_the_payer_of_a_renewal_kept_from_credit_by_a_note_is_told_no_credit_was_added(
    world: World,
) -> None:
    """Its payer is told what happened: no time and no credit (it was told "the payment's
    net value was added to your account credit" while nothing was), the admins told."""

    async def noted(vm: Vm, late: SubscriptionPayment) -> None:
        async with world.shop.factory() as uow:
            found = await uow.invoices.get_by_payment(late.id)
        assert found is not None
        await world.shop.credit_note(found, 100)

    sub, _, _ = await _overtaken(world, while_deleting=noted)

    assert await world.balance(sub) == 0
    assert world.notifier.titled(f"[Subscription {sub.id}] {CREDITED}") == []
    [told] = world.notifier.titled(f"[Subscription {sub.id}] {NOT_CREDITED}")
    assert told.user_id == sub.user_id
    assert "No time was bought" in told.message
    assert "No account credit was added for it" in told.message
    assert "Our admins have been told" in told.message
    assert "added to your account credit" not in told.message


async def test_a_renewal_that_brought_its_vm_back_stays_creditable(world: World) -> None:
    sub, late, invoice = await _overtaken(world, no_room=False)

    assert (await world.shop.payment(late.id)).time_value
    assert await world.balance(sub) == 0
    await world.shop.credit_note(invoice, invoice.total)  # a correction may take all of it back
    assert [n.amount for n in await world.shop.credit_notes(invoice)] == [invoice.total]
