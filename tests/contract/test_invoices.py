"""Invoices on memory, SQLite and MariaDB: one per booked payment, numbered gaplessly in the
booking transaction (replays, crashes and 50 concurrent completions included), frozen at issue,
corrected only by credit notes in their own series."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory.clock import FakeClock
from adapters.memory.storage import MemoryUnitOfWorkFactory
from app.admin.invoices import every_credit_note, every_invoice
from app.billing.completion import apply_payment
from app.billing.invoicing import issue_credit_note
from domain.errors import DomainError, DuplicateKey, InvalidInput
from domain.invoice import CreditNote, Invoice, document_number
from domain.model import Company
from ports.storage import InvoiceWindow, UnitOfWork, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory
from tests.contract.storage_backends import (
    Database,
    World,
    at,
    engine_for,
    new_payment,
    new_subscription,
    seed_world,
)
from tests.contract.test_completion_history_atomic import Killed, _dying

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

MONTH_S = 31 * 86_400


async def _world(factory: UnitOfWorkFactory, subscriptions: int, per_sub: int) -> list[bytes]:
    return (await _seeded(factory, subscriptions, per_sub))[1]


async def _seeded(
    factory: UnitOfWorkFactory, subscriptions: int, per_sub: int
) -> tuple[World, list[bytes]]:
    """The seed world plus `subscriptions - 1` more subscriptions of its user, each with
    `per_sub` pending renewals; their payment ids in creation order."""
    ids: list[bytes] = []
    async with factory() as uow:
        w = await seed_world(uow)
        subs = [w.subscription]
        for n in range(1, subscriptions):
            sub, _ = await uow.subscriptions.add_with_line_items(
                new_subscription(w.user.id, w.company.id, name=f"VPS {n}"),
                [attrs.evolve(w.line_item, id=0, name=f"item {n}")],
            )
            subs.append(sub)
        for sub in subs:
            for _ in range(per_sub):
                ids.append((await uow.payments.add(new_payment(sub, time_value=MONTH_S))).id)
        await uow.commit()
    return w, ids


async def _book(factory: UnitOfWorkFactory, payment_id: bytes, day: int = 5) -> bool:
    return await apply_payment(factory, payment_id, FakeClock(at(day))) is not None


async def _invoices(factory: UnitOfWorkFactory) -> list[Invoice]:
    async with factory() as uow:
        page = await uow.invoices.list_page(InvoiceWindow(at(1), at(28, month=12)), 1000, 0)
    assert page.total == len(page.items)
    return page.items


def _gapless(invoices: list[Invoice]) -> None:
    assert sorted(i.seq for i in invoices) == list(range(1, len(invoices) + 1))
    assert {i.number for i in invoices} == {f"2026-{n:06d}" for n in range(1, len(invoices) + 1)}


async def test_a_booked_payment_gets_one_invoice_with_seller_buyer_and_period(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w, [pid] = await _seeded(uow_factory, 1, 1)
    async with uow_factory() as uow:
        user = await uow.users.get(w.user.id)
        assert user is not None
        await uow.users.update(
            attrs.evolve(
                user,
                billing_name="Alice GmbH",
                country_code="DE",
                billing_tax_id="DE123",
                billing_vat_validated=True,
            )
        )
        company = await uow.companies.get(w.company.id)
        assert company is not None
        await uow.companies.update(attrs.evolve(company, country_code="IE", tax_id="IE9"))
        await uow.commit()
    # booked on the day its subscription was created (1 March): the month it buys by value
    # starts on an edge of the subscription's grid (`domain.value_grid`), a calendar month
    assert await _book(uow_factory, pid, day=1)
    assert not await _book(uow_factory, pid, day=1)  # a replay books and invoices nothing
    [invoice] = await _invoices(uow_factory)
    assert invoice.number == "2026-000001" and invoice.payment_id == pid
    doc = invoice.document
    assert (doc.seller.name, doc.seller.country, doc.seller.tax_id) == ("ACME", "IRL", "IE9")
    assert (doc.buyer.name, doc.buyer.country, doc.buyer.tax_id) == ("Alice GmbH", "DEU", "DE123")
    assert doc.reverse_charge
    assert doc.supply_from == at(1) and doc.supply_to == at(1) + timedelta(seconds=MONTH_S)
    assert doc.total == invoice.total == 500 and doc.currency == "EUR"

    # later edits of the buyer and the seller do not change the issued invoice
    async with uow_factory() as uow:
        user = await uow.users.get(w.user.id)
        assert user is not None
        await uow.users.update(attrs.evolve(user, billing_name="Renamed"))
        await uow.commit()
    async with uow_factory() as uow:
        again = await uow.invoices.get_by_payment(pid)
    assert again == invoice


async def test_an_issued_invoice_cannot_be_edited_or_issued_twice(
    uow_factory: UnitOfWorkFactory,
) -> None:
    [pid] = await _world(uow_factory, 1, 1)
    assert await _book(uow_factory, pid)
    [invoice] = await _invoices(uow_factory)
    async with uow_factory() as uow:
        assert not hasattr(uow.invoices, "update") and not hasattr(uow.invoices, "remove")
        with pytest.raises(DuplicateKey):  # a second invoice for the payment is refused
            await uow.invoices.add(attrs.evolve(invoice, id=0, seq=99, number="2026-000099"))
    async with uow_factory() as uow:
        with pytest.raises(DuplicateKey):  # so is a second document with the same number
            await uow.invoices.add(attrs.evolve(invoice, id=0, payment_id=b"\x07" * 32))
    assert await _invoices(uow_factory) == [invoice]


async def test_a_completion_dying_after_numbering_gives_the_number_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    first, second = await _world(uow_factory, 2, 1)
    with pytest.raises(Killed):  # dies once the counter moved, before the commit
        await _book(_dying(uow_factory, "invoices", "add"), first)
    assert await _invoices(uow_factory) == []
    assert await _book(uow_factory, second)
    assert await _book(uow_factory, first)
    invoices = await _invoices(uow_factory)
    _gapless(invoices)
    assert [i.payment_id for i in sorted(invoices, key=lambda i: i.seq)] == [second, first]


async def test_fifty_concurrent_completions_are_numbered_1_to_50(
    uow_factory: UnitOfWorkFactory,
) -> None:
    ids = await _world(uow_factory, 25, 2)  # two payments per subscription, 25 subscriptions
    results = await asyncio.gather(*(_book(uow_factory, pid) for pid in ids + ids))
    assert sum(results) == 50
    invoices = await _invoices(uow_factory)
    _gapless(invoices)
    assert sorted(i.payment_id for i in invoices) == sorted(ids)


async def test_credit_notes_have_their_own_series_and_never_exceed_the_invoice(
    uow_factory: UnitOfWorkFactory,
) -> None:
    [pid] = await _world(uow_factory, 1, 1)
    assert await _book(uow_factory, pid)
    [invoice] = await _invoices(uow_factory)
    clock = FakeClock(at(6))
    note = await issue_credit_note(
        uow_factory, clock, invoice_id=invoice.id, amount=200, reason="partial refund"
    )
    assert note.number == "CN-2026-000001" and note.invoice_id == invoice.id
    with pytest.raises(InvalidInput):
        await issue_credit_note(
            uow_factory, clock, invoice_id=invoice.id, amount=301, reason="too much"
        )
    with pytest.raises(InvalidInput):
        await issue_credit_note(uow_factory, clock, invoice_id=invoice.id, amount=5, reason=" ")
    with pytest.raises(DomainError):
        await issue_credit_note(uow_factory, clock, invoice_id=999, amount=5, reason="x")
    second = await issue_credit_note(
        uow_factory, clock, invoice_id=invoice.id, amount=300, reason="rest"
    )
    assert second.number == "CN-2026-000002"
    async with uow_factory() as uow:
        assert await uow.invoices.credit_notes_of(invoice.id) == [note, second]
        assert await uow.invoices.get(invoice.id) == invoice  # the invoice is untouched


async def test_concurrent_credit_notes_never_exceed_the_invoice(
    uow_factory: UnitOfWorkFactory,
) -> None:
    [pid] = await _world(uow_factory, 1, 1)
    assert await _book(uow_factory, pid)
    [invoice] = await _invoices(uow_factory)  # total 500
    clock = FakeClock(at(6))

    async def note() -> bool:
        try:
            await issue_credit_note(
                uow_factory, clock, invoice_id=invoice.id, amount=200, reason="refund"
            )
        except InvalidInput:
            return False
        return True

    assert sum(await asyncio.gather(*(note() for _ in range(8)))) == 2
    async with uow_factory() as uow:
        notes = await uow.invoices.credit_notes_of(invoice.id)
    assert [n.number for n in notes] == ["CN-2026-000001", "CN-2026-000002"]


class _Meeting:
    """Issuers that read an invoice's credit notes wait there for each other, up to `wait_s`:
    without a lock between the read and the insert both read "nothing credited yet" before
    either inserts; with it the second one is still waiting for the lock, so the first goes on
    alone once the wait is over."""

    def __init__(self, parties: int, wait_s: float = 0.5) -> None:
        self.parties, self.wait_s, self.arrived = parties, wait_s, 0
        self.all_here = asyncio.Event()

    async def meet(self) -> None:
        self.arrived += 1
        if self.arrived >= self.parties:
            self.all_here.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.all_here.wait(), self.wait_s)


class _MeetingInvoices:
    def __init__(self, inner: Any, meeting: _Meeting) -> None:
        self._inner, self._meeting = inner, meeting

    async def credit_notes_of(self, invoice_id: int) -> Any:
        notes = await self._inner.credit_notes_of(invoice_id)
        await self._meeting.meet()
        return notes

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _MeetingUnitOfWork:
    def __init__(self, inner: Any, meeting: _Meeting) -> None:
        self._inner, self._meeting = inner, meeting

    async def __aenter__(self) -> _MeetingUnitOfWork:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._inner, name)
        return _MeetingInvoices(found, self._meeting) if name == "invoices" else found


def _meeting(factory: UnitOfWorkFactory, meeting: _Meeting) -> UnitOfWorkFactory:
    def make() -> UnitOfWork:
        return cast(UnitOfWork, _MeetingUnitOfWork(factory(), meeting))

    return make


@pytest.mark.parametrize(
    "times",
    [
        pytest.param((at(6), at(6)), id="same-series"),
        pytest.param(
            (datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)),
            id="new-year",
        ),
    ],
)
async def test_two_racing_credit_notes_over_the_total_let_exactly_one_through(
    uow_factory: UnitOfWorkFactory, times: tuple[datetime, datetime]
) -> None:
    """Two notes of 300 on an invoice of 500, read side by side: one is issued, the other
    refused as exceeding; across New Year (CN-2026 and CN-2027, two counter rows) too."""
    [pid] = await _world(uow_factory, 1, 1)
    assert await _book(uow_factory, pid)
    [invoice] = await _invoices(uow_factory)
    assert invoice.total == 500
    racing = _meeting(uow_factory, _Meeting(2))

    async def note(now: datetime) -> CreditNote | InvalidInput:
        try:
            return await issue_credit_note(
                racing, FakeClock(now), invoice_id=invoice.id, amount=300, reason="refund"
            )
        except InvalidInput as refused:
            return refused

    results = await asyncio.gather(*(note(now) for now in times))
    issued = [r for r in results if isinstance(r, CreditNote)]
    refused = [r for r in results if isinstance(r, InvalidInput)]
    assert len(issued) == 1 and len(refused) == 1
    assert "exceed the invoice total (300 of 500" in str(refused[0])
    async with uow_factory() as uow:
        assert await uow.invoices.credit_notes_of(invoice.id) == issued


async def test_the_export_pages_by_key_so_an_invoice_issued_meanwhile_shifts_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Batches of two; between the first and the second an invoice is issued before the
    cursor (another company's, whose payment was booked earlier in time: one series never
    dates a later number earlier) and one after it: no invoice is given twice or left out
    (an OFFSET page would give the second one again)."""
    _, ids = await _seeded(uow_factory, 5, 1)
    async with uow_factory() as uow:  # the fourth payment's subscription moves to a company
        other = await uow.companies.add(Company(id=0, created=at(1), name="Other"))
        payment = await uow.payments.get(ids[3])
        assert payment is not None
        sub = await uow.subscriptions.get(payment.subscription_id)
        assert sub is not None
        await uow.subscriptions.update(attrs.evolve(sub, company_id=other.id))
        await uow.commit()
    for pid, day in zip(ids[:3], (5, 6, 7), strict=True):
        assert await _book(uow_factory, pid, day)
    window = InvoiceWindow(at(1), at(28))
    export = every_invoice(uow_factory, window, batch=2)
    seen = [await anext(export), await anext(export)]
    assert await _book(uow_factory, ids[3], 4)  # behind the cursor
    assert await _book(uow_factory, ids[4], 9)  # ahead of it
    seen += [invoice async for invoice in export]
    payments = [i.payment_id for i in seen]
    assert payments == [*ids[:3], ids[4]]  # once each, in issue order
    assert [i.issued_at for i in seen] == [at(5), at(6), at(7), at(9)]


async def _stored_note(factory: UnitOfWorkFactory, like: CreditNote, when: datetime) -> CreditNote:
    """A note as `like`, numbered next in its series and dated `when`, written by the store."""
    async with factory() as uow:
        seq = await uow.invoices.next_seq(like.company_id, like.series)
        number = document_number(like.series, seq)
        note = attrs.evolve(like, id=0, seq=seq, number=number, issued_at=when)
        stored = await uow.invoices.add_credit_note(note)
        await uow.commit()
    return stored


async def test_the_export_gives_the_windows_credit_notes_with_their_invoices(
    uow_factory: UnitOfWorkFactory,
) -> None:
    ids = await _world(uow_factory, 2, 1)
    for pid in ids:
        assert await _book(uow_factory, pid)
    invoices = await _invoices(uow_factory)
    notes = [
        await issue_credit_note(
            uow_factory, FakeClock(at(day)), invoice_id=invoice.id, amount=100, reason="r"
        )
        for day, invoice in (
            (6, invoices[0]),
            (7, invoices[1]),
            (8, invoices[0]),
            (20, invoices[1]),
        )
    ]
    export = every_credit_note(uow_factory, InvoiceWindow(at(6, hour=0), at(20)), batch=1)
    first = await anext(export)
    # stored behind the cursor while the export runs (notes are dated after the series'
    # previous one, `add_credit_note`: written by the store, as an older tree could date it)
    late = await _stored_note(uow_factory, notes[1], at(6, hour=6))
    rest = [found async for found in export]
    assert [first, *rest] == [
        (notes[0], invoices[0]),
        (notes[1], invoices[1]),
        (notes[2], invoices[0]),
    ]  # by issue time; the note of day 20 is outside the window
    other = InvoiceWindow(at(1), at(28), company_id=invoices[0].company_id + 1)
    assert [found async for found in every_credit_note(uow_factory, other)] == []
    assert late.invoice_id == invoices[1].id


# --- property: over any order of completions, replays, crashes and races -------------------

STEPS = st.lists(
    st.tuples(st.sampled_from(["book", "replay", "crash", "race"]), st.integers(0, 5)),
    min_size=1,
    max_size=14,
)


async def _steps(factory: UnitOfWorkFactory, steps: list[tuple[str, int]]) -> None:
    ids = await _world(factory, 3, 2)
    booked: set[bytes] = set()
    for what, pick in steps:
        pid = ids[pick % len(ids)]
        if what == "crash":
            with contextlib.suppress(Killed):  # an already booked payment does not get there
                await _book(_dying(factory, "invoices", "add"), pid)
        elif what == "race":
            await asyncio.gather(_book(factory, pid), _book(factory, pid))
        else:
            await _book(factory, pid)
        if what != "crash":
            booked.add(pid)
    invoices = await _invoices(factory)
    _gapless(invoices)
    assert sorted(i.payment_id for i in invoices) == sorted(booked)
    async with factory() as uow:
        for pid in ids:
            payment = await uow.payments.get(pid)
            assert payment is not None and payment.is_paid == (pid in booked)


async def _on(database: Database, steps: list[tuple[str, int]]) -> None:
    if database.url is None:
        await _steps(MemoryUnitOfWorkFactory(), steps)
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        await _steps(cast(Any, sql_factory(engine)), steps)


def test_invoices_are_gapless_and_one_per_booked_payment(database: Database) -> None:
    @settings(
        max_examples=40 if database.url is None else 8,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(steps=STEPS)
    def check(steps: list[tuple[str, int]]) -> None:
        asyncio.run(_on(database, steps))

    check()
