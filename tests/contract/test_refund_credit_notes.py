"""A refund by hand issues its credit notes once, with the refund, on memory, SQLite and
MariaDB: the amount the admins pay is the notes' total (the unused value plus its VAT),
spread over the paid invoices newest first, capped by what they can take back; a lost
notice's repeat and racing refunds issue no second note, a crash leaves neither."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import attrs
import pytest

from adapters.mysql.uow import SqlUnitOfWorkFactory
from app.admin import manual_refund, refund_notes
from app.admin.invoices import every_credit_note
from app.admin.refund_record import AlreadyRefunded, NothingToRefund
from app.admin.vm_removal import refund_amount
from app.billing.credit_balance import adjust_credit
from app.billing.credit_settle import completion_settle
from app.billing.invoicing import issue_credit_note
from domain.enums import PaymentMethod, SubscriptionType, VmHistoryActionType
from domain.exchange import charge_amount
from domain.intervals import MONTHLY
from domain.invoice import CreditNote, Invoice
from domain.model import Vm, vm_event
from domain.money import Currency, Money
from ports.jobs import SendAdminNotification
from ports.storage import InvoiceWindow
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import (
    DAYS_USED,
    GROSS,
    REFUND_PATHS,
    UNUSED,
    VAT,
    RefundPath,
    by_hand,
    paid_vm,
    race,
    records,
    reference,
    refunded_once,
    to_credit,
)
from tests.contract.test_manual_refund import written_before_the_uncovered_amount
from tests.http.test_statement_budgets import counting
from tests.unit.billing.world import ALICE, BOB, PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: a month of the plan: 132 cents and its VAT (30), what one renewal's invoice charged
MONTH_TOTAL = 162
#: what the refund's note records: the net it takes back and the VAT charged on that net,
#: 113 + 25, not its gross re-split at 23 % (138 / 1.23 = 112.2 → 112 + 26, a cent more VAT)
NOTE_SPLIT = (UNUSED, VAT)


async def _all_notes(shop: Shop) -> list[CreditNote]:
    now = shop.clock.now()
    window = InvoiceWindow(now - timedelta(days=400), now + timedelta(seconds=1))
    return [note async for note, _ in every_credit_note(shop.factory, window)]


async def test_the_refund_credits_its_gross_value_and_the_notice_names_the_note(
    shop: Shop,
) -> None:
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)

    await by_hand(shop, vm)

    [note] = await shop.credit_notes(invoice)
    assert (note.amount, note.currency) == (GROSS, "EUR")
    assert (note.net, note.tax) == NOTE_SPLIT
    expires = datetime(2026, 2, 28, 12, tzinfo=UTC)
    assert note.number == "CN-2026-000001" and await reference(shop, vm, expires) in note.reason
    assert await _all_notes(shop) == [note]  # the export counts it
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification)
    assert f"{GROSS} EUR" in notice.message and note.number in notice.message
    assert f"{UNUSED} EUR" in notice.message and "includes VAT" in notice.message


async def test_the_refund_note_takes_back_the_vat_charged_on_its_net_and_no_more(
    shop: Shop,
) -> None:
    """113 net + 25 VAT are taken back as such; the invoice's rest (19 + 5 of its 132 + 30)
    is what a later note may take, and the notes add up to the invoice, VAT within it."""
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    assert (invoice.net, invoice.tax) == (132, 30)

    await by_hand(shop, vm)
    rest = invoice.total - GROSS
    await issue_credit_note(
        shop.factory, shop.clock, invoice_id=invoice.id, amount=rest, reason="the rest"
    )

    refund_note, rest_note = await shop.credit_notes(invoice)
    assert (refund_note.amount, refund_note.net, refund_note.tax) == (GROSS, UNUSED, VAT)
    assert (rest_note.amount, rest_note.net, rest_note.tax) == (rest, 19, 5)


async def test_a_refund_over_two_renewals_credits_the_newest_first(shop: Shop) -> None:
    """24 days of the first month and all of the second: 113 + 132 cents before tax. The
    newest invoice takes back all it charged (162), the older the rest (113 + 25)."""
    vm = await paid_vm(shop, months=2)
    newest, older = await shop.invoices(vm)
    assert newest.total == older.total == MONTH_TOTAL

    await by_hand(shop, vm)

    [first] = await shop.credit_notes(newest)
    [second] = await shop.credit_notes(older)
    assert (first.amount, first.net, first.tax) == (MONTH_TOTAL, newest.net, newest.tax)
    assert (second.amount, (second.net, second.tax)) == (GROSS, NOTE_SPLIT)
    [record] = await records(shop, vm)
    total = MONTH_TOTAL + GROSS
    assert record["credit_notes"] == [first.number, second.number]
    assert record["amount"] == record["credited"] == f"{total} EUR (smallest units)"
    assert record["value"] == f"{UNUSED + 132} EUR (smallest units)"
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification) and f"{total} EUR" in notice.message


@pytest.mark.parametrize("old_record", [False, True], ids=["record", "old-record-figure-only"])
async def test_value_an_earlier_note_took_back_is_not_paid_back_again(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, old_record: bool
) -> None:
    """An admin's note took 100 of the invoice's 162 back before the refund: the refund's
    value (113) is more than the invoice can still take back (62 gross); the note takes all
    of that, the rest is named and not paid (also read from a record written before the
    uncovered value was stored as a number: its figure)."""
    if old_record:
        monkeypatch.setattr(manual_refund, "refund_event", written_before_the_uncovered_amount)
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    await issue_credit_note(
        shop.factory, shop.clock, invoice_id=invoice.id, amount=100, reason="goodwill"
    )

    await by_hand(shop, vm)

    [_, note] = await shop.credit_notes(invoice)
    assert note.amount == invoice.total - 100
    [record] = await records(shop, vm)
    assert record["value"] == f"{UNUSED} EUR (smallest units)"
    assert record["amount"] == f"{invoice.total - 100} EUR (smallest units)"
    uncovered = UNUSED - (note.net or 0)
    assert uncovered > 0 and record["uncovered"] == f"{uncovered} EUR (smallest units)"
    assert record.get("uncovered_amount") == (None if old_record else uncovered)
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification)
    assert "Capped" in notice.message and f"{uncovered} EUR" in notice.message


async def test_days_added_free_are_neither_valued_nor_paid_back(shop: Shop) -> None:
    """An admin added 31 days free after the paid month: the refund's value is the month's
    unused days alone (113), which its invoice takes back whole; nothing is capped."""
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    await _set_expiry(shop, vm, timedelta(days=31))

    await by_hand(shop, vm)

    [note] = await shop.credit_notes(invoice)
    assert (note.amount, note.net, note.tax) == (GROSS, UNUSED, VAT)
    [record] = await records(shop, vm)
    assert record["value"] == f"{UNUSED} EUR (smallest units)" and record["uncovered_amount"] == 0
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification) and "Capped" not in notice.message


async def _set_expiry(shop: Shop, vm: Vm, more: timedelta) -> None:
    """The subscription's expiry moved on by `more` with no record (a raw database edit)."""
    sub_id = (await shop.subscription(vm)).id
    async with shop.factory() as uow:
        sub = await uow.subscriptions.get_for_update(sub_id)
        assert sub is not None and sub.expires is not None
        await uow.subscriptions.update(attrs.evolve(sub, expires=sub.expires + more))
        await uow.commit()


async def test_with_nothing_left_to_take_back_the_refund_is_refused_and_changes_nothing(
    shop: Shop,
) -> None:
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    await issue_credit_note(
        shop.factory, shop.clock, invoice_id=invoice.id, amount=invoice.total, reason="void"
    )
    before = await shop.subscription(vm)

    with pytest.raises(NothingToRefund, match="credited in full already"):
        await by_hand(shop, vm)

    assert await shop.subscription(vm) == before and await records(shop, vm) == []
    assert len(await shop.credit_notes(invoice)) == 1 and shop.queue.sent == []


async def _adopted(shop: Shop, *, recorded: bool) -> Vm:
    """A VM of an adopted LNVPS database: set up with a month left and no invoice; with
    `recorded`, the reference's Renewed entry of the payment that bought them (its row not
    kept), else nothing on record explains the time."""
    vm = await shop.order()
    sub_id = (await shop.subscription(vm)).id
    now = shop.clock.now()
    expires = MONTHLY.add_to(now)
    async with shop.factory() as uow:
        sub = await uow.subscriptions.get_for_update(sub_id)
        assert sub is not None
        await uow.subscriptions.update(attrs.evolve(sub, expires=expires, is_setup=True))
        if recorded:
            seconds = int((expires - now).total_seconds())
            await uow.vm_history.add(
                vm_event(
                    vm.id,
                    VmHistoryActionType.RENEWED,
                    now,
                    f"VM {vm.id} was renewed",
                    before={"expires": now.isoformat()},
                    after={"expires": expires.isoformat()},
                    metadata={"time_added_seconds": seconds, "payment_id": "ab" * 16},
                )
            )
        await uow.commit()
    shop.queue.sent.clear()
    return vm


async def test_time_no_invoice_covers_is_paid_back_at_its_value_with_no_note(shop: Shop) -> None:
    """Time paid before invoices were issued (an adopted LNVPS database's VM: an expiry, the
    reference's Renewed entry of its payment, no invoice) is refunded as before invoices
    existed: its value, no credit note."""
    vm = await _adopted(shop, recorded=True)

    await by_hand(shop, vm)

    assert await _all_notes(shop) == []
    [record] = await records(shop, vm)
    assert record["credit_notes"] == [] and record["amount"] == record["value"]
    assert record["value"] == "132 EUR (smallest units)"  # the month bought, whole
    assert record["uncovered"] == "0 EUR (smallest units)" and record["uncovered_amount"] == 0
    assert (await shop.subscription(vm)).expires == shop.clock.now()
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification)
    assert "No invoice covers this time" in notice.message
    assert str(record["value"]).split()[0] + " EUR" in notice.message


async def test_time_nothing_on_record_bought_is_not_paid_back(shop: Shop) -> None:
    """An expiry no payment on record explains (no Renewed entry, no invoice) is taken for
    time given: refused (422), nothing changed; a credit adjustment pays what is owed."""
    vm = await _adopted(shop, recorded=False)
    before = await shop.subscription(vm)

    with pytest.raises(NothingToRefund, match="only time a payment bought is refunded"):
        await by_hand(shop, vm)

    assert await shop.subscription(vm) == before and await records(shop, vm) == []
    assert await _all_notes(shop) == [] and shop.queue.sent == []


async def test_time_added_free_after_the_invoiced_time_is_not_paid_back(shop: Shop) -> None:
    """A subscription with invoices: time an admin added free after its invoiced period is
    worth nothing: a refund of it alone is refused (422), nothing changed."""
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    await _set_expiry(shop, vm, timedelta(days=60))
    before = await shop.subscription(vm)
    assert invoice.document.supply_to is not None
    start = invoice.document.supply_to + timedelta(days=10)

    with pytest.raises(NothingToRefund, match="not days added free"):
        await by_hand(shop, vm, start)

    assert await shop.subscription(vm) == before and await records(shop, vm) == []
    assert await _all_notes(shop) == [] and shop.queue.sent == []


async def test_a_lightning_refund_pays_the_notes_total_converted(shop: Shop) -> None:
    vm = await paid_vm(shop)

    await by_hand(shop, vm, method=PaymentMethod.LIGHTNING)

    paid = charge_amount(
        Money(Currency.EUR, GROSS),
        PaymentMethod.LIGHTNING,
        await shop.rates.table(),
        shop.clock.now(),
    )
    [record] = await records(shop, vm)
    assert record["amount"] == f"{paid.money.amount} BTC (smallest units)"
    assert record["credited"] == f"{GROSS} EUR (smallest units)"
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification)
    assert f"converted at {paid.rate} per BTC" in notice.message


async def test_a_repeat_after_a_lost_notice_issues_no_second_note(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    vm = await paid_vm(shop)
    real_send = shop.queue.send

    async def down(job: object) -> str:
        raise ConnectionError("queue down")

    monkeypatch.setattr(shop.queue, "send", down)
    with pytest.raises(ConnectionError):
        await by_hand(shop, vm)
    monkeypatch.setattr(shop.queue, "send", real_send)
    [note] = await _all_notes(shop)

    await by_hand(shop, vm)

    assert await _all_notes(shop) == [note]
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification)
    assert "sent again" in notice.message and note.number in notice.message
    with pytest.raises(AlreadyRefunded):
        await by_hand(shop, vm)
    assert await _all_notes(shop) == [note]


async def test_racing_refunds_issue_one_set_of_notes(shop: Shop) -> None:
    vm = await paid_vm(shop, months=2)

    results = await race(
        shop,
        lambda s: by_hand(s, vm),
        lambda s: by_hand(s, vm, method=PaymentMethod.LIGHTNING),
        lambda s: to_credit(s, vm),
    )

    record = await refunded_once(shop, vm, results)
    notes = await _all_notes(shop)
    if record["kind"] == "manual":
        assert [n.number for n in notes] == record["credit_notes"] and len(notes) == 2
    else:  # the refund to credit won: credit is net value, no note (see refund_to_credit)
        assert notes == []


async def test_a_refund_to_credit_issues_no_credit_note(shop: Shop) -> None:
    vm = await paid_vm(shop)

    await to_credit(shop, vm)

    assert await _all_notes(shop) == []


@pytest.mark.parametrize("where", ["notes", "record"])
async def test_a_crash_in_the_refund_leaves_neither_note_nor_refund(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    vm = await paid_vm(shop)
    before = await shop.subscription(vm)

    def crash(*args: object, **kw: object) -> object:
        raise RuntimeError("crash")

    if where == "notes":  # after the first statements of the notes: the invoices locked
        monkeypatch.setattr(refund_notes, "add_credit_note", crash)
    else:  # after the notes were issued
        monkeypatch.setattr(manual_refund, "refund_event", crash)
    with pytest.raises(RuntimeError, match="crash"):
        await by_hand(shop, vm)
    monkeypatch.undo()

    assert await _all_notes(shop) == [] and await records(shop, vm) == []
    assert await shop.subscription(vm) == before and shop.queue.sent == []
    await by_hand(shop, vm)  # and the refund can then be made, once
    assert len(await _all_notes(shop)) == 1


@storage_backends.only("mysql")
async def test_a_note_committed_after_the_refund_read_its_snapshot_still_caps_it(
    shop: Shop,
) -> None:
    """MariaDB: the refund's transaction fixed its read snapshot (a plain read after the
    subscription's lock) before an admin's note on the invoice committed; under the
    invoice's lock its notes are read as committed, so the refund takes back only the rest.
    (Memory and SQLite run one writing transaction at a time: no such interleaving.)"""
    vm = await paid_vm(shop)
    [invoice] = await shop.invoices(vm)
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        assert await uow.subscriptions.get_for_update(sub.id) is not None
        assert await uow.vms.get(vm.id) is not None  # the snapshot is taken here
        await issue_credit_note(
            shop.factory, shop.clock, invoice_id=invoice.id, amount=invoice.total - 10, reason="x"
        )
        got = await refund_notes.credit_refund(
            uow,
            sub.id,
            value=Money(Currency.EUR, UNUSED),
            shares={invoice.payment_id.hex(): UNUSED},
            reason="refund",
            now=shop.clock.now(),
        )
        await uow.commit()
    assert [n.amount for n in got.notes] == [10] and got.total.amount == 10
    assert sum(n.amount for n in await shop.credit_notes(invoice)) == invoice.total


#: an IP range billed on the VM's subscription, EUR 10 a month
IP_RANGE_CENTS = 1000
#: 24 of 28 days of the VM's EUR 1.32 and the range's EUR 10: 1132 × 24 / 28 = 970.29 → 970
#: cents before tax (the VM alone: 113), and its 23 % VAT, floor(970 × 0.23) = 223
WHOLE_UNUSED, WHOLE_GROSS = 970, 1193


async def _paid_vm_with_an_ip_range(shop: Shop) -> Vm:
    """A VM whose subscription also bills an IP range, renewed for a month (the invoice
    charges both)."""
    vm = await shop.order()
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        [item] = await uow.line_items.list_by_subscription(sub.id)
        ip_range = attrs.evolve(
            item,
            id=0,
            subscription_type=SubscriptionType.IP_RANGE,
            name="203.0.113.8/29",
            amount=IP_RANGE_CENTS,
            setup_amount=0,
        )
        # the port adds line items only with their subscription; both stores' repos can
        await cast(Any, uow.line_items).add(ip_range)
        await uow.commit()
    await shop.complete(await shop.renew(vm))
    return vm


async def test_every_refund_values_the_ip_range_billed_with_the_vm(shop: Shop) -> None:
    """The refund cuts the whole subscription's expiry, so the IP range's time goes back with
    the VM's: the GET figure, the refund by hand (its value, its credit note) and the refund
    to credit all count the range's share, not the VM's price only."""
    by_hand_vm, credited = [await _paid_vm_with_an_ip_range(shop) for _ in range(2)]
    shop.clock.advance(timedelta(days=DAYS_USED))
    shop.queue.sent.clear()
    [invoice] = await shop.invoices(by_hand_vm)
    assert invoice.net == 132 + IP_RANGE_CENTS

    figures = [
        await refund_amount(
            shop.factory,
            shop.rates,
            shop.clock,
            vm_id=vm.id,
            method=PaymentMethod.REVOLUT,
            from_date=None,
        )
        for vm in (by_hand_vm, credited)
    ]
    await by_hand(shop, by_hand_vm)
    booked = await to_credit(shop, credited)

    for figure in figures:
        assert figure.value == figure.amount == Money(Currency.EUR, WHOLE_UNUSED)
    [note] = await shop.credit_notes(invoice)
    assert (note.net, note.amount) == (WHOLE_UNUSED, WHOLE_GROSS)
    [record] = await records(shop, by_hand_vm)
    assert record["value"] == f"{WHOLE_UNUSED} EUR (smallest units)"
    assert record["amount"] == record["credited"] == f"{WHOLE_GROSS} EUR (smallest units)"
    assert record["uncovered"] == "0 EUR (smallest units)" and record["uncovered_amount"] == 0
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification) and f"{WHOLE_GROSS} EUR" in notice.message
    assert (booked.entry.currency, booked.entry.amount) == ("EUR", WHOLE_UNUSED)


async def _read_invoices(shop: Shop, subscription_id: int) -> tuple[list[Invoice], int]:
    """The subscription's invoices as the refund reads them, and the SQL statements the read
    ran (0 on memory)."""
    async with shop.factory() as uow:
        if not isinstance(shop.factory, SqlUnitOfWorkFactory):
            return await uow.invoices.of_subscription(subscription_id), 0
        with counting(shop.factory.engine) as counter:
            found = await uow.invoices.of_subscription(subscription_id)
        return found, counter.count


async def test_a_subscriptions_invoices_are_read_newest_first_in_one_statement(
    shop: Shop,
) -> None:
    """One invoice or three (paid at one instant: the id breaks the tie), one statement; an
    invoice of another subscription is not among them."""
    vm, other = await shop.order(), await shop.order()
    await shop.complete(await shop.renew(other))
    sub_id = (await shop.subscription(vm)).id
    await shop.complete(await shop.renew(vm))
    one, one_count = await _read_invoices(shop, sub_id)
    for _ in range(2):
        await shop.complete(await shop.renew(vm))
    three, three_count = await _read_invoices(shop, sub_id)

    assert one == (await shop.invoices(vm))[-1:]
    assert three == await shop.invoices(vm) and len(three) == 3
    assert three == sorted(three, key=lambda i: (i.issued_at, i.id), reverse=True)
    expected = 0 if not isinstance(shop.factory, SqlUnitOfWorkFactory) else 1
    assert one_count == three_count == expected


#: 27 of the 28 days of the cash-paid month (31 Jan → 28 Feb) used: 1 day left, 132 / 28 =
#: 4.71 → 4 cents before tax (and floor(4 × 0.23) = 0 VAT), what its invoice gives back
CASH_DAY_LEFT = 4
#: that day and the whole month paid with account credit: 132 / 28 + 132 = 136.71 → 136
WITH_CREDIT_MONTH = 136


async def _cash_month_then_a_month_paid_by_credit(shop: Shop) -> tuple[Vm, Invoice, Invoice]:
    """A VM's month paid by card, then a goodwill credit from an admin pays the next month
    in full (its invoice charges 0); 27 days of the first month used. The VM, the cash
    invoice, the credit-paid invoice."""
    vm = await shop.order()
    first = await shop.renew(vm)
    await shop.complete(first)
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=BOB,
        user_id=ALICE,
        currency="EUR",
        amount=PLAN_EUR_CENTS,
        note="goodwill",
    )
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    second = await shop.renew(vm, settle=settle)
    assert (await shop.payment(second.id)).is_paid and await shop.balance() == 0
    cash, by_credit = await shop.invoice(first), await shop.invoice(second)
    assert (cash.total, by_credit.total) == (MONTH_TOTAL, 0)
    shop.clock.advance(timedelta(days=27))
    shop.queue.sent.clear()
    return vm, cash, by_credit


async def test_time_bought_with_account_credit_is_not_paid_back_in_money(shop: Shop) -> None:
    """Review r3: the credit-paid invoice can take nothing back, and its month's value used
    to pass to the older cash invoice, which then paid back its 27 used days (162 in money:
    the goodwill credit became cash). Each invoice gives back its own time alone: the cash
    invoice its one day left (4), the credit-paid month's 132 is uncovered, not paid."""
    vm, cash, by_credit = await _cash_month_then_a_month_paid_by_credit(shop)

    await by_hand(shop, vm)

    assert [(n.amount, n.net, n.tax) for n in await shop.credit_notes(cash)] == [
        (CASH_DAY_LEFT, CASH_DAY_LEFT, 0)
    ]
    assert await shop.credit_notes(by_credit) == []
    [record] = await records(shop, vm)
    assert record["value"] == f"{WITH_CREDIT_MONTH} EUR (smallest units)"
    assert record["amount"] == f"{CASH_DAY_LEFT} EUR (smallest units)"
    assert record["uncovered_amount"] == WITH_CREDIT_MONTH - CASH_DAY_LEFT
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification) and "Capped" in notice.message
    assert "time paid with account credit" in notice.message


@REFUND_PATHS
async def test_every_refund_path_values_time_bought_with_credit_alike(
    shop: Shop, path: RefundPath
) -> None:
    """The GET figure, a refund to credit (which gives the credit back) and a refund by hand
    (which pays back in money only the cash invoice's part of it) value the same time."""
    vm, _, _ = await _cash_month_then_a_month_paid_by_credit(shop)

    assert await path(shop, vm) == WITH_CREDIT_MONTH


async def test_a_newer_invoice_credited_in_full_passes_nothing_to_an_older_one(
    shop: Shop,
) -> None:
    """Two months paid by card, the newer invoice credited in full by an admin's note: its
    month (132) is uncovered; the older invoice gives back its own 24 unused days alone
    (113 + 25), not the 162 it charged (which would pay back its 4 used days)."""
    vm = await paid_vm(shop, months=2)
    newest, older = await shop.invoices(vm)
    await issue_credit_note(
        shop.factory, shop.clock, invoice_id=newest.id, amount=newest.total, reason="void"
    )

    await by_hand(shop, vm)

    [note] = await shop.credit_notes(older)
    assert (note.amount, (note.net, note.tax)) == (GROSS, NOTE_SPLIT)
    assert len(await shop.credit_notes(newest)) == 1
    [record] = await records(shop, vm)
    assert record["amount"] == f"{GROSS} EUR (smallest units)"
    assert record["uncovered_amount"] == 132
