"""Account credit on memory, SQLite and MariaDB: booking once, never below zero, balance = sum,
also under concurrent bookings (hypothesis)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any, cast

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.memory.clock import FakeClock
from app.billing.credit_balance import adjust_credit, book_in, ledger_page
from app.billing.errors import IdempotencyKeyReused
from domain.account_credit import CreditReason, InsufficientCredit, checked_entry
from domain.model import User
from ports.storage import CreditKey, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory
from tests.contract.storage_backends import Database, at, engine_for

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


async def _users(factory: UnitOfWorkFactory, count: int = 2) -> list[int]:
    async with factory() as uow:
        ids = [
            (await uow.users.add(User(id=0, pubkey=bytes([n + 1]) * 32, created=at(1)))).id
            for n in range(count)
        ]
        await uow.commit()
    return ids


def _entry(user: int, amount: int, reason: CreditReason, ref: str | None = None) -> Any:
    return checked_entry(
        user_id=user,
        currency="EUR",
        amount=amount,
        reason=reason,
        reference=ref,
        note="n",
        created=at(2),
    )


async def test_booking_moves_the_balance_and_a_replay_books_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alice, bob = await _users(uow_factory)
    async with uow_factory() as uow:
        first = await book_in(uow, _entry(alice, 500, CreditReason.OVERPAYMENT, "pay:aa"))
        again = await book_in(uow, _entry(alice, 500, CreditReason.OVERPAYMENT, "pay:aa"))
        spent = await book_in(uow, _entry(alice, -200, CreditReason.SPENT, "pay:bb"))
        await book_in(uow, _entry(bob, 70, CreditReason.REFUND_TO_CREDIT, "vm:1"))
        await uow.commit()
    assert not first.replayed and first.balance == 500
    assert again.replayed and again.entry == first.entry and again.balance == 500
    assert spent.balance == 300 and spent.entry.amount == -200
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balances(alice) == {"EUR": 300}
        page = await uow.credit_ledger.list_page(alice, 1, 0)
        assert page.total == 2 and page.items == [spent.entry]
        assert await uow.credit_ledger.list_page(alice, 10, 0, currency="USD") == type(page)([], 0)
        assert [e.user_id for e in await uow.credit_ledger.list_by_reference("vm:1")] == [bob]
        found = await uow.credit_ledger.find(CreditKey(alice, "EUR", CreditReason.SPENT, "pay:bb"))
        assert found == spent.entry


async def test_a_booking_below_zero_is_refused_and_writes_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    (alice,) = await _users(uow_factory, 1)
    async with uow_factory() as uow:
        await book_in(uow, _entry(alice, 100, CreditReason.ADMIN_ADJUSTMENT))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(InsufficientCredit):
            await book_in(uow, _entry(alice, -101, CreditReason.SPENT, "pay:cc"))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balances(alice) == {"EUR": 100}
        assert (await uow.credit_ledger.list_page(alice, 10, 0)).total == 1
        assert (
            await uow.credit_ledger.find(CreditKey(alice, "EUR", CreditReason.SPENT, "pay:cc"))
            is None
        )


async def test_an_uncommitted_booking_is_rolled_back(uow_factory: UnitOfWorkFactory) -> None:
    (alice,) = await _users(uow_factory, 1)
    async with uow_factory() as uow:
        await book_in(uow, _entry(alice, 100, CreditReason.ADMIN_ADJUSTMENT))
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balances(alice) == {}
        assert (await uow.credit_ledger.list_page(alice, 10, 0)).total == 0


async def test_an_adjustment_reusing_a_reference_for_another_amount_is_refused(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The same reference with the same amount is a replay; with another amount or sign it
    is a key reused with another body: 409 (`IdempotencyKeyReused`), nothing booked."""
    admin, alice = await _users(uow_factory)

    async def adjust(amount: int, currency: str = "EUR") -> Any:
        return await adjust_credit(
            uow_factory,
            FakeClock(at(3)),
            admin_id=admin,
            user_id=alice,
            currency=currency,
            amount=amount,
            note="ticket 42",
            reference="ticket-42",
        )

    first = await adjust(500)
    for amount in (-200, 499, -500):
        with pytest.raises(IdempotencyKeyReused) as refused:
            await adjust(amount)
        assert refused.value.kind == "conflict"
    again = await adjust(500)
    assert again.replayed and again.entry == first.entry and again.balance == 500
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balances(alice) == {"EUR": 500}
        assert (await uow.credit_ledger.list_page(alice, 10, 0)).total == 1


async def test_an_adjustment_reusing_a_reference_in_another_currency_is_refused(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Review r3: the reference names one adjustment whatever its currency; the ledger's
    unique key has the currency in it, so the same reference, amount and note in USD
    booked a second adjustment. It is a key reused with another body: 409, nothing booked;
    another user's reference is not this one's."""
    admin, alice = await _users(uow_factory)

    async def adjust(currency: str, user: int = alice) -> Any:
        return await adjust_credit(
            uow_factory,
            FakeClock(at(3)),
            admin_id=admin,
            user_id=user,
            currency=currency,
            amount=500,
            note="ticket 42",
            reference="ticket-42",
        )

    await adjust("EUR")
    with pytest.raises(IdempotencyKeyReused, match=r"EUR 5\.00") as refused:
        await adjust("USD")
    assert refused.value.kind == "conflict"
    assert (await adjust("EUR")).replayed
    assert not (await adjust("USD", admin)).replayed  # the admin's own ledger: not Alice's
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balances(alice) == {"EUR": 500}
        assert (await uow.credit_ledger.list_page(alice, 10, 0)).total == 1


async def test_two_racing_adjustments_with_one_reference_and_two_currencies_book_one(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Two requests with one reference in EUR and USD at once (two balance rows, so the
    balance lock does not order them): the user's lock does; one is booked, the other 409."""
    admin, alice = await _users(uow_factory)

    async def adjust(currency: str) -> bool:
        try:
            await adjust_credit(
                uow_factory,
                FakeClock(at(3)),
                admin_id=admin,
                user_id=alice,
                currency=currency,
                amount=700,
                note="ticket 45",
                reference="ticket-45",
            )
        except IdempotencyKeyReused:
            return False
        return True

    results = await asyncio.gather(adjust("EUR"), adjust("USD"))
    assert sorted(results) == [False, True]
    async with uow_factory() as uow:
        balances = await uow.credit_ledger.balances(alice)
    assert balances == ({"EUR": 700} if results[0] else {"USD": 700})


async def test_an_adjustment_reusing_a_reference_with_another_note_is_refused(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """A replay repeats the request exactly: the same reference and amount with another
    note is a key reused with another body (409), nothing booked and the first entry's
    note kept; the same note (spaces around it aside) is still a replay."""
    admin, alice = await _users(uow_factory)

    async def adjust(note: str) -> Any:
        return await adjust_credit(
            uow_factory,
            FakeClock(at(3)),
            admin_id=admin,
            user_id=alice,
            currency="EUR",
            amount=500,
            note=note,
            reference="ticket-43",
        )

    first = await adjust("ticket 43: outage")
    for other in ("ticket 43: goodwill", "Ticket 43: outage", "ticket 43"):
        with pytest.raises(IdempotencyKeyReused, match="with another note") as refused:
            await adjust(other)
        assert refused.value.kind == "conflict"
    again = await adjust("  ticket 43: outage ")
    assert again.replayed and again.entry == first.entry and again.balance == 500
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balances(alice) == {"EUR": 500}
        page = await uow.credit_ledger.list_page(alice, 10, 0)
    assert [(e.amount, e.note) for e in page.items] == [(500, "ticket 43: outage")]


async def test_two_racing_adjustments_with_one_reference_and_two_notes_book_one(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Two admins send the same reference and amount with other notes at once: one is
    booked, the other refused (409), whichever wins the balance lock."""
    admin, alice = await _users(uow_factory)

    async def adjust(note: str) -> bool:
        try:
            await adjust_credit(
                uow_factory,
                FakeClock(at(3)),
                admin_id=admin,
                user_id=alice,
                currency="EUR",
                amount=700,
                note=note,
                reference="ticket-44",
            )
        except IdempotencyKeyReused:
            return False
        return True

    results = await asyncio.gather(adjust("first admin"), adjust("second admin"))
    assert sorted(results) == [False, True]
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balances(alice) == {"EUR": 700}
        page = await uow.credit_ledger.list_page(alice, 10, 0)
    [entry] = page.items
    assert entry.note == ("first admin" if results[0] else "second admin")


@attrs.frozen
class Adjust:
    user: int  # index into the users
    amount: int
    ref: int | None  # a small set: repeated references are replays


BATCHES = st.lists(
    st.lists(
        st.builds(
            Adjust,
            st.integers(0, 1),
            st.integers(-300, 300).filter(lambda n: n != 0),
            st.one_of(st.none(), st.integers(0, 3)),
        ),
        min_size=1,
        max_size=4,
    ),
    min_size=1,
    max_size=5,
)


async def _adjust(factory: UnitOfWorkFactory, users: list[int], op: Adjust) -> bool | None:
    """True: booked; False: a replay; None: refused (not enough credit)."""
    try:
        booked = await adjust_credit(
            factory,
            FakeClock(at(3)),
            admin_id=users[0],
            user_id=users[op.user],
            currency="EUR",
            amount=op.amount,
            note="property",
            reference=None if op.ref is None else f"r{op.ref}:{op.amount}",
        )
    except InsufficientCredit:
        return None
    return not booked.replayed


async def _run(factory: UnitOfWorkFactory, batches: list[list[Adjust]]) -> None:
    users = await _users(factory)
    booked = 0
    for batch in batches:  # each batch races: every booking in it runs at once
        results = await asyncio.gather(*(_adjust(factory, users, op) for op in batch))
        booked += sum(1 for r in results if r)
    total = 0
    for user in users:
        page = await ledger_page(factory, user, limit=100, offset=0)
        sums: dict[str, int] = defaultdict(int)
        for e in page.items:
            sums[e.currency] += e.amount
        refs = [e.reference for e in page.items if e.reference is not None]
        assert len(refs) == len(set(refs))  # each reference booked once
        async with factory() as uow:
            balances = await uow.credit_ledger.balances(user)
        assert {c: b for c, b in balances.items() if b or c in sums} == dict(sums)
        assert all(b >= 0 for b in balances.values())
        # every prefix in booking order stays at or above zero (never negative in between)
        running = 0
        for e in reversed(page.items):
            running += e.amount
            assert running >= 0
        total += page.total
    assert total == booked


async def _on_backend(database: Database, batches: list[list[Adjust]]) -> None:
    if database.url is None:
        from adapters.memory.storage import MemoryUnitOfWorkFactory

        await _run(MemoryUnitOfWorkFactory(), batches)
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        await _run(cast(Any, sql_factory(engine)), batches)


def test_balance_never_negative_and_equal_to_the_ledger_sum_under_races(
    database: Database,
) -> None:
    @settings(
        max_examples=40 if database.url is None else 12,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(batches=BATCHES)
    def check(batches: list[list[Adjust]]) -> None:
        asyncio.run(_on_backend(database, batches))

    check()


@storage_backends.only("mysql")
async def test_a_duplicate_committed_after_this_transactions_snapshot_is_found(
    backend: Any, uow_factory: UnitOfWorkFactory
) -> None:
    """The race the hypothesis property found on MariaDB: a transaction that read something
    (its REPEATABLE READ snapshot is fixed) before a concurrent identical booking committed
    must still answer "already booked" with that entry, not fail. MariaDB only: the memory
    store runs one unit of work at a time and SQLite one writer, so neither interleaves so."""
    [alice] = await _users(uow_factory, 1)
    entry = _entry(alice, 300, CreditReason.ADMIN_ADJUSTMENT, "ticket:7")
    async with uow_factory() as late:
        assert await late.users.get(alice) is not None  # the snapshot is taken here
        async with uow_factory() as first:
            won = await book_in(first, entry)
            await first.commit()
        again = await book_in(late, entry)
        await late.commit()
    assert again.replayed and again.entry.id == won.entry.id
    assert again.balance == 300
    async with uow_factory() as uow:
        assert (await uow.credit_ledger.balances(alice)) == {"EUR": 300}


@storage_backends.only("mysql")
async def test_a_debit_replayed_after_this_transactions_snapshot_is_a_replay_not_a_refusal(
    backend: Any, uow_factory: UnitOfWorkFactory
) -> None:
    """The same race for a debit that takes the balance to zero: the late transaction's
    snapshot still shows no such debit, but the balance it locks already holds it, so
    the repeat must be found as the replay it is, not refused as "Not enough credit"."""
    [alice] = await _users(uow_factory, 1)
    async with uow_factory() as uow:
        await book_in(uow, _entry(alice, 300, CreditReason.ADMIN_ADJUSTMENT, "gift:1"))
        await uow.commit()
    debit = _entry(alice, -300, CreditReason.ADMIN_ADJUSTMENT, "ticket:8")
    async with uow_factory() as late:
        assert await late.users.get(alice) is not None  # the snapshot is taken here
        async with uow_factory() as first:
            won = await book_in(first, debit)
            await first.commit()
        again = await book_in(late, debit)
        await late.commit()
    assert again.replayed and again.entry.id == won.entry.id
    assert again.balance == 0
    async with uow_factory() as uow:
        assert (await uow.credit_ledger.balances(alice)) == {"EUR": 0}
        assert (await uow.credit_ledger.list_page(alice, 10, 0)).total == 2
