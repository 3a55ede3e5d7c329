"""Credit note numbers and dates run in the same order, on memory, SQLite and MariaDB (found by
review r3): a note whose issuer read its clock before it waited for a lock, and so numbered
after a later one, is dated as that one; an admin's note reads the clock after the invoice's
lock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from app.billing.invoicing import add_credit_note, issue_credit_note, lock_for_notes
from domain.invoice import CreditNote, Invoice
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lock_waits import until
from tests.unit.billing.world import Shop

database = storage_backends.database
shop = lifecycle_world.shop


async def _two_invoices(shop: Shop) -> tuple[Invoice, Invoice]:
    vm_x, vm_y = await shop.order(), await shop.order()
    px, py = await shop.renew(vm_x), await shop.renew(vm_y)
    await shop.complete(px)
    await shop.complete(py)
    return await shop.invoice(px), await shop.invoice(py)


async def _note_dated(shop: Shop, invoice: Invoice, now: datetime) -> CreditNote:
    """A note of 10 on `invoice` whose issuer read `now` before it took the locks (as a
    refund by hand reads its clock once, before the subscription's lock)."""
    async with shop.factory() as uow:
        target = await lock_for_notes(uow, invoice.id)
        assert target is not None
        note = await add_credit_note(uow, target, amount=10, reason="refund", now=now)
        await uow.commit()
    return note


async def test_a_note_numbered_after_a_later_one_is_dated_as_that_one(shop: Shop) -> None:
    inv_x, inv_y = await _two_invoices(shop)
    read_first = shop.clock.now()
    shop.clock.advance(timedelta(hours=1))
    later = await issue_credit_note(
        shop.factory, shop.clock, invoice_id=inv_y.id, amount=10, reason="b"
    )

    numbered_after = await _note_dated(shop, inv_x, read_first)

    assert numbered_after.seq == later.seq + 1
    assert numbered_after.issued_at == later.issued_at > read_first
    assert [n.issued_at for n in await shop.credit_notes(inv_x)] == [later.issued_at]


async def test_across_a_year_boundary_a_note_keeps_its_years_series_and_date(
    shop: Shop,
) -> None:
    """A note read on 31 Dec after one of 1 Jan was numbered: another series, its own date."""
    inv_x, inv_y = await _two_invoices(shop)
    new_year = datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC)
    first = await _note_dated(shop, inv_y, new_year)
    old_year = await _note_dated(shop, inv_x, new_year - timedelta(seconds=10))

    assert (first.series, old_year.series) == ("CN-2027", "CN-2026")
    assert old_year.issued_at == new_year - timedelta(seconds=10)


@storage_backends.only("mysql")
async def test_an_admins_note_that_waited_for_its_invoice_is_not_dated_before_an_earlier_number(
    shop: Shop,
) -> None:
    """MariaDB: note A waits for invoice X (held by another issuer, say a refund by hand);
    meanwhile, an hour later, note B on invoice Y is numbered. A comes after B: it read its
    clock after the lock, so its date is not before B's."""
    inv_x, inv_y = await _two_invoices(shop)
    held, release = asyncio.Event(), asyncio.Event()

    async def hold_invoice_x() -> None:
        async with shop.factory() as uow:
            await uow.invoices.get_for_update(inv_x.id)
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold_invoice_x())
    await held.wait()
    note_a = asyncio.create_task(
        issue_credit_note(shop.factory, shop.clock, invoice_id=inv_x.id, amount=10, reason="a")
    )
    await until("A waits for X", lambda n: n >= 1, shop.factory)
    shop.clock.advance(timedelta(hours=1))
    note_b = await issue_credit_note(
        shop.factory, shop.clock, invoice_id=inv_y.id, amount=10, reason="b"
    )
    release.set()
    await holder
    a = await note_a

    assert a.seq == note_b.seq + 1 and a.issued_at >= note_b.issued_at
