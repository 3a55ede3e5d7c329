"""A refund to credit and the admins' credit notes never give the same paid time back twice, on
memory, SQLite and MariaDB (found by review r3): a refund to credit takes off what the
invoices' notes took back already, and a later note can take back only what the refund left
of its invoice (the time used, and its VAT)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, cast

import attrs
import pytest

from app.admin import credit_refund
from app.admin.refund_record import NothingToRefund
from app.billing import credit_balance
from app.billing.invoicing import add_credit_note, lock_for_notes
from domain.enums import SubscriptionType
from domain.errors import InvalidInput
from domain.model import Vm
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lock_waits import until
from tests.contract.refunds import (
    DAYS_USED,
    GROSS,
    UNUSED,
    by_hand,
    paid_vm,
    records,
    to_credit,
)
from tests.unit.billing.world import Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: a month of the plan: 132 cents and its VAT (30), what one renewal's invoice charged
MONTH_TOTAL = 162
#: an admin's note of 100 on it: 81 net and 19 VAT (100 split at 23 %)
NOTE, NOTE_NET = 100, 81
#: what is left of the month's 132 net after that note: 51, less than the 113 unused
LEFT_NET = 132 - NOTE_NET


async def test_a_credit_note_after_a_refund_to_credit_takes_back_only_the_used_time(
    shop: Shop,
) -> None:
    """The refund gave back 113 (and the 25 VAT on it) as credit: the invoice's notes can
    then take back its 24 left (the 4 days used), not its 162."""
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    assert (await to_credit(shop, vm)).entry.amount == UNUSED
    [record] = await records(shop, vm)
    assert record["refunded_invoices"] == [[invoice.id, UNUSED]]

    with pytest.raises(InvalidInput, match="a refund to credit gave back 138 of its 162"):
        await shop.credit_note(invoice, MONTH_TOTAL)
    note = await shop.credit_note(invoice, MONTH_TOTAL - GROSS)
    assert (note.amount, note.net, note.tax) == (24, 132 - UNUSED, 30 - 25)
    with pytest.raises(InvalidInput):
        await shop.credit_note(invoice, 1)
    assert await shop.balance() == UNUSED


async def test_a_refund_to_credit_after_a_full_credit_note_is_refused_and_changes_nothing(
    shop: Shop,
) -> None:
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    await shop.credit_note(invoice, invoice.total)
    before = await shop.subscription(vm)

    with pytest.raises(NothingToRefund, match="Credit notes took back"):
        await to_credit(shop, vm)

    assert await shop.balance() == 0 and await records(shop, vm) == []
    assert await shop.subscription(vm) == before


@pytest.mark.parametrize("refund", ["to-credit", "by-hand"])
async def test_after_a_partial_note_both_refunds_give_back_the_same_rest(
    shop: Shop, refund: str
) -> None:
    """An admin's note took 100 (81 net) of the invoice back: of the 113 unused, a refund to
    credit books the 51 net the invoice has left, as a refund by hand takes back (51 and
    its VAT, the invoice's rest)."""
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    note = await shop.credit_note(invoice, NOTE)
    assert note.net == NOTE_NET

    if refund == "to-credit":
        booked = await to_credit(shop, vm)
        assert booked.entry.amount == LEFT_NET
        assert "less 62 its invoices' credit notes took back" in str(booked.entry.note)
    else:
        await by_hand(shop, vm)
        [_, taken] = await shop.credit_notes(invoice)
        assert (taken.amount, taken.net) == (MONTH_TOTAL - NOTE, LEFT_NET)


@storage_backends.only("mysql")
async def test_a_note_committed_while_the_refund_waits_for_its_invoice_is_seen(
    shop: Shop,
) -> None:
    """MariaDB: the refund took the subscription's lock and read its snapshot while an
    admin's note held the invoice; the note voids it and commits: under the invoice's lock
    the refund sees it and books nothing."""
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    async with shop.factory() as uow:
        target = await lock_for_notes(uow, invoice.id)
        assert target is not None
        await add_credit_note(
            uow, target, amount=invoice.total, reason="void", now=shop.clock.now()
        )
        refund = asyncio.create_task(to_credit(shop, vm))
        await until("the refund waits for the invoice", lambda n: n >= 1, shop.factory)
        await uow.commit()

    with pytest.raises(NothingToRefund, match="Credit notes took back"):
        await refund
    assert await shop.balance() == 0


@storage_backends.only("mysql")
async def test_a_note_that_waited_for_the_refunds_invoice_lock_sees_the_refund(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MariaDB: an admin's note on the invoice waits while a refund to credit holds it; once
    the refund commits, the note can take back only what the refund left."""
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    held, release = asyncio.Event(), asyncio.Event()
    real_book_in = credit_balance.book_in

    async def book_in_slowly(uow: Any, entry: Any) -> Any:  # the invoice is locked by then
        held.set()
        await release.wait()
        return await real_book_in(uow, entry)

    monkeypatch.setattr(credit_refund, "book_in", book_in_slowly)
    refund = asyncio.create_task(to_credit(shop, vm))
    await held.wait()
    note = asyncio.create_task(shop.credit_note(invoice, invoice.total))
    await until("the note waits for the invoice", lambda n: n >= 1, shop.factory)
    release.set()
    assert (await refund).entry.amount == UNUSED

    with pytest.raises(InvalidInput, match="a refund to credit gave back"):
        await note
    assert await shop.credit_notes(invoice) == []


#: a one-off setup fee billed with the purchase (an extra item with no monthly price)
SETUP_FEE = 500


async def _purchased_with_a_setup_fee(shop: Shop) -> Vm:
    """A VM whose purchase also charged a setup fee of 500 (its invoice: 632 net + VAT);
    `DAYS_USED` days used."""
    vm = await shop.order()
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        [item] = await uow.line_items.list_by_subscription(sub.id)
        setup = attrs.evolve(
            item,
            id=0,
            subscription_type=SubscriptionType.IP_RANGE,
            name="setup",
            amount=0,
            setup_amount=SETUP_FEE,
        )
        # the port adds line items only with their subscription; both stores' repos can
        await cast(Any, uow.line_items).add(setup)
        await uow.commit()
    await shop.complete(await shop.renew(vm))
    shop.clock.advance(timedelta(days=DAYS_USED))
    return vm


@pytest.mark.parametrize("refund", ["to-credit", "by-hand"])
async def test_a_note_that_took_back_the_setup_fee_leaves_the_time_to_refund(
    shop: Shop, refund: str
) -> None:
    """An admin's note took back the purchase's setup fee (500 and its VAT): the month's
    time is still the invoice's to give back, 113 to credit as by hand (with its VAT)."""
    vm = await _purchased_with_a_setup_fee(shop)
    [invoice] = await shop.invoices(vm)
    assert invoice.net == 132 + SETUP_FEE
    note = await shop.credit_note(invoice, SETUP_FEE + 115)
    assert note.net == SETUP_FEE

    if refund == "to-credit":
        assert (await to_credit(shop, vm)).entry.amount == UNUSED
    else:
        await by_hand(shop, vm)
        [_, taken] = await shop.credit_notes(invoice)
        assert (taken.amount, taken.net) == (GROSS, UNUSED)
