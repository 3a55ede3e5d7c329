"""A Purchase or Renewal paid for a VM that cannot be provided (deleted and not restorable, a
lapsed order whose room is gone) bought nothing: its value is account credit, a prepayment,
so its invoice bills a "Prepayment to account credit" (the row's net and VAT, the credit
being that net), not the service; credit notes never take that money back (it stays
spendable); a late payment that restores its VM is invoiced as before; on memory, SQLite
and MariaDB."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal

import pytest

from domain.credit_note import credit_room
from domain.enums import PaymentMethod
from domain.errors import InvalidInput
from domain.exchange import msat_to_fiat
from domain.invoice import Invoice, InvoiceLine
from domain.invoice_content import credit_applied
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.prepayment import PREPAYMENT_LINE
from tests.contract import lifecycle_world, storage_backends
from tests.contract.test_credit_renewal import _give, _settle
from tests.contract.test_unrestorable_payment import (
    _deleted_with_late_renewal,
    _disable_host,
    _lapsed_order,
    _room_for_one,
)
from tests.unit.billing.world import BOB
from tests.unit.worker.world import DAY, World

database = storage_backends.database
world = lifecycle_world.world_with_rails("payment_canceller")

VAT = Decimal(23)  # the VMs' owner's country (IE): what her renewals charge
SECOND = timedelta(seconds=1)
FEE_LINE = "Payment processing fee"


async def _unnoted_invoice(world: World, payment: SubscriptionPayment) -> Invoice:
    """The payment's invoice, no credit note on it yet."""
    invoice = await world.shop.invoice(payment)
    assert await world.shop.credit_notes(invoice) == []
    return invoice


def _row(invoice: Invoice, paid: SubscriptionPayment) -> tuple[int, int, int, int]:
    """(net, tax, fee, total) of the payment row in the invoice's currency, as the invoice
    converts it (a Lightning row at the quote's rate, the net the rest)."""
    rate = invoice.document.btc_rate
    if paid.currency == "BTC":
        assert rate is not None
        total, tax = msat_to_fiat(paid.total, rate), msat_to_fiat(paid.tax, rate)
        fee = msat_to_fiat(paid.processing_fee, rate)
    else:
        total, tax, fee = paid.total, paid.tax, paid.processing_fee
    return total - tax - fee, tax, fee, total


async def _assert_prepayment_only(
    world: World, sub: Subscription, payment: SubscriptionPayment
) -> Invoice:
    """The payment paid without time, invoiced as one prepayment line (the row's net and
    VAT at the quote's rate; a processing fee keeps its own line), adding up to the row;
    the balance is the line's net, and notes may take back the fee at most."""
    paid = await world.shop.payment(payment.id)
    assert paid.is_paid and paid.time_value == 0 and paid.tax > 0
    invoice = await _unnoted_invoice(world, paid)
    net, tax, fee, total = _row(invoice, paid)
    assert invoice.currency == sub.currency
    # only the prepayment: no "Renewal: …"/"Purchase: …" line, as nothing was supplied
    prepaid = InvoiceLine(description=PREPAYMENT_LINE, net=net, tax_rate=VAT, tax=tax)
    fee_line = InvoiceLine(description=FEE_LINE, net=fee, tax_rate=Decimal(0), tax=0)
    assert invoice.document.lines == ((prepaid, fee_line) if fee else (prepaid,))
    assert (invoice.net, invoice.tax, invoice.total) == (net + fee, tax, total)
    assert credit_room(invoice, []) == fee
    assert invoice.document.supply_to is None and not invoice.document.credit_line
    # the credit is the line's net: its VAT is the invoice's
    assert await world.balance(sub) == net
    return invoice


async def _late_renewal_not_restored(world: World) -> tuple[Subscription, SubscriptionPayment]:
    vm, renewal = await _deleted_with_late_renewal(world)
    await _disable_host(world, vm)
    sub = await world.sub(vm)
    assert (await world.complete(renewal)).completed
    return sub, renewal


async def test_a_late_renewal_not_restored_is_invoiced_as_a_prepayment(world: World) -> None:
    sub, renewal = await _late_renewal_not_restored(world)
    await world.run_jobs()

    await _assert_prepayment_only(world, sub, renewal)
    # the payer paid the VAT on top: what became credit is the net
    [told] = world.notifier.titled(f"[Subscription {sub.id}] Payment added to your account credit")
    assert "the payment's net value was added to your account credit" in told.message


async def test_a_credit_note_on_a_late_renewal_not_restored_is_refused(world: World) -> None:
    sub, renewal = await _late_renewal_not_restored(world)
    invoice = await _unnoted_invoice(world, renewal)
    credited = await world.balance(sub)

    assert credit_room(invoice, []) == 0
    with pytest.raises(InvalidInput, match="less its prepayment to account credit"):
        await world.shop.credit_note(invoice, invoice.total)
    with pytest.raises(InvalidInput, match="prepayment"):
        await world.shop.credit_note(invoice, 1)
    assert len(await world.shop.credit_notes(invoice)) == 0
    assert await world.balance(sub) == credited


async def _deleted_with_late(
    world: World, ask: Callable[[Vm], Awaitable[SubscriptionPayment]]
) -> tuple[Subscription, SubscriptionPayment]:
    """A paid VM left to expire and be deleted, its host then disabled, and a renewal asked
    for in its grace period (`ask`) paid now: not restored."""
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    await world.lifecycle()
    world.at(sub.expires + 7 * DAY - timedelta(minutes=5))
    late = await ask(vm)
    world.at(sub.expires + 7 * DAY + SECOND)
    await world.lifecycle()
    assert (await world.shop.vm(vm.id)).deleted
    await _disable_host(world, vm)
    world.advance(timedelta(minutes=2))
    sub = await world.sub(vm)
    assert (await world.complete(late)).completed
    return sub, late


async def test_a_card_renewal_not_restored_credits_exactly_its_lines_net(world: World) -> None:
    """No conversion: the credit is the row's amount, the line's net to the cent."""

    async def by_card(vm: Vm) -> SubscriptionPayment:
        payment: SubscriptionPayment = await world.shop.renew(
            vm, method=PaymentMethod.REVOLUT, user_id=None
        )
        return payment

    sub, card = await _deleted_with_late(world, by_card)

    invoice = await _assert_prepayment_only(world, sub, card)
    assert card.currency == sub.currency and card.processing_fee > 0
    [prepaid, _] = invoice.document.lines
    assert prepaid.net == card.amount == await world.balance(sub)
    assert invoice.total == card.total
    # the fee was not credited: a note may take it back, nothing more
    with pytest.raises(InvalidInput, match="prepayment"):
        await world.shop.credit_note(invoice, card.processing_fee + 1)
    await world.shop.credit_note(invoice, card.processing_fee)


async def test_a_renewal_partly_paid_by_credit_not_restored_gives_it_back_unshown(
    world: World,
) -> None:
    """The credit it applied comes back whole (its VAT declared before) and is not on the
    invoice; the balance grows by the prepayment line's net."""
    given = 50

    async def with_credit(vm: Vm) -> SubscriptionPayment:
        await _give(world.shop, given)
        payment: SubscriptionPayment = await world.shop.renew(vm, settle=_settle(world.shop))
        assert credit_applied(payment, "EUR") == given
        return payment

    sub, renewal = await _deleted_with_late(world, with_credit)

    invoice = await _unnoted_invoice(world, renewal)
    [line] = invoice.document.lines
    assert line.description == PREPAYMENT_LINE and invoice.document.credit_applied == 0
    assert await world.balance(sub) == given + line.net
    assert credit_room(invoice, []) == 0


async def test_a_late_purchase_whose_room_is_gone_is_invoiced_as_a_prepayment(
    world: World,
) -> None:
    vm, purchase = await _lapsed_order(world)
    await _room_for_one(world, vm)
    await world.shop.order(BOB)  # its order window is over: this one gets the room
    sub = await world.sub(vm)

    assert (await world.complete(purchase)).completed

    invoice = await _assert_prepayment_only(world, sub, purchase)
    with pytest.raises(InvalidInput, match="prepayment"):
        await world.shop.credit_note(invoice, 1)


async def test_a_late_renewal_that_restores_its_vm_is_invoiced_as_before(world: World) -> None:
    vm, renewal = await _deleted_with_late_renewal(world)
    sub = await world.sub(vm)

    assert (await world.complete(renewal)).completed
    assert not (await world.shop.vm(vm.id)).deleted

    paid = await world.shop.payment(renewal.id)
    invoice = await _unnoted_invoice(world, paid)
    net, tax, _, total = _row(invoice, paid)
    [line] = invoice.document.lines
    assert line.description.startswith("Renewal: ")
    assert (line.net, line.tax, line.tax_rate) == (net, tax, VAT)
    assert invoice.total == total and invoice.document.supply_to is not None
    assert await world.balance(sub) == 0
    await world.shop.credit_note(invoice, invoice.total)  # a correction may take all of it back
    assert len(await world.shop.credit_notes(invoice)) == 1
