"""A refund gives back only what credit notes left of the time (found by review r24), on memory,
SQLite and MariaDB: never a card payment's processing fee (notes take back the service with its
VAT before the untaxed fee), nor a small note lost in the rounding of the refund's shares."""

from __future__ import annotations

import pytest

from app.admin.refund_record import NothingToRefund
from app.billing.lnurl import renew_by_amount
from domain.enums import PaymentMethod
from domain.model import Vm
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import by_hand, records, to_credit
from tests.unit.billing.world import Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: a card month for an IE buyer: 1.32 net, 0.30 VAT, 0.25 processing fee
NET, VAT, FEE = 132, 30, 25


async def _card_month(shop: Shop) -> Vm:
    vm = await shop.order()
    payment = await shop.renew(vm, method=PaymentMethod.REVOLUT)
    await shop.complete(payment)
    assert (payment.amount, payment.tax, payment.processing_fee) == (NET, VAT, FEE)
    return vm


async def test_a_small_note_then_a_refund_to_credit_gives_back_the_month_once(
    shop: Shop,
) -> None:
    """A note of 0.03 (net 0.02, VAT 0.01) then the unused month to credit: 1.30, not 1.32
    (1.34 back for 1.32 paid, the fee's 0.02 given back as time)."""
    vm = await _card_month(shop)
    [invoice] = await shop.invoices(vm)
    note = await shop.credit_note(invoice, 3)
    assert (note.net, note.tax) == (2, 1)
    assert (await to_credit(shop, vm)).entry.amount == NET - 2
    assert await shop.balance() == NET - 2


@pytest.mark.parametrize("refund", ["to-credit", "by-hand"])
async def test_a_note_of_the_whole_service_leaves_no_refund_of_the_fee(
    shop: Shop, refund: str
) -> None:
    """A note of 1.62 (the service: 1.32 + 0.30) took the month back: a refund of it is
    refused and gives nothing (it gave 0.25 of credit, or a note of 0.25 to pay by hand:
    1.87 back, the processor's fee included)."""
    vm = await _card_month(shop)
    [invoice] = await shop.invoices(vm)
    note = await shop.credit_note(invoice, NET + VAT)
    assert (note.net, note.tax) == (NET, VAT)
    with pytest.raises(NothingToRefund):
        await (to_credit(shop, vm) if refund == "to-credit" else by_hand(shop, vm))
    assert await shop.balance() == 0
    assert [(n.amount, n.net, n.tax) for n in await shop.credit_notes(invoice)] == [
        (NET + VAT, NET, VAT)
    ]


async def test_a_refund_by_hand_after_a_small_note_takes_back_the_service_left(
    shop: Shop,
) -> None:
    """After a note of 0.03 (0.02 + 0.01) a refund by hand of the unused month takes back
    the 1.30 + 0.29 of the service left, not the fee: its notes end on the service's 1.32 +
    0.30, 0.25 still on the invoice."""
    vm = await _card_month(shop)
    [invoice] = await shop.invoices(vm)
    await shop.credit_note(invoice, 3)
    await by_hand(shop, vm)
    notes = await shop.credit_notes(invoice)
    assert sorted((n.amount, n.net, n.tax) for n in notes) == [(3, 2, 1), (159, 130, 29)]


async def test_a_small_note_is_not_lost_in_the_rounding_of_the_refund_s_shares(
    shop: Shop,
) -> None:
    """r24 F2: a Lightning month (1.32 net) with a note of 0.01 (net 0.01) on it, then an
    LNURL payment of 1 000 sat (0.813008 net), refunded to credit at once: 213.3008 paid
    net for the time, less the 0.01 noted, is 212.30: 2.12 booked, not 2.13 (the month's
    share, 131.81 exact, was compared with its 131 left after rounding to 131)."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    [invoice] = await shop.invoices(vm)
    note = await shop.credit_note(invoice, 1)
    assert note.net == 1
    lnurl = await renew_by_amount(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        vm_id=vm.id,
        amount_msat=1_000_000,
    )
    await shop.complete(lnurl)
    assert (await to_credit(shop, vm)).entry.amount == 212
    [record] = await records(shop, vm)
    refunded = record["refunded_invoices"]
    assert isinstance(refunded, list) and sum(part for _, part in refunded) == 212
