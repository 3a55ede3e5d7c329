"""VAT-free account credit on memory, SQLite and MariaDB: each entry's VAT-free part moves the
balance's, a debit never takes one kind of credit for the other, and an admin's debit takes
ordinary credit first."""

from __future__ import annotations

import attrs
import pytest

from adapters.memory.clock import FakeClock
from app.billing.credit_balance import adjust_credit, book_in
from domain.account_credit import (
    CreditEntry,
    CreditParts,
    CreditReason,
    InsufficientCredit,
    checked_entry,
)
from domain.model import User
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import at

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


async def _alice(factory: UnitOfWorkFactory) -> int:
    async with factory() as uow:
        alice = (await uow.users.add(User(id=0, pubkey=b"\x01" * 32, created=at(1)))).id
        await uow.commit()
    return alice


def _entry(
    user: int, amount: int, reason: CreditReason, ref: str, vat_free: int = 0
) -> CreditEntry:
    return checked_entry(
        user_id=user,
        currency="EUR",
        amount=amount,
        reason=reason,
        reference=ref,
        note="n",
        created=at(2),
        vat_free=vat_free,
    )


async def _parts(factory: UnitOfWorkFactory, user: int) -> CreditParts:
    async with factory() as uow:
        return await uow.credit_ledger.lock_parts(user, "EUR")


async def test_the_vat_free_part_of_each_entry_moves_the_balances(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alice = await _alice(uow_factory)
    async with uow_factory() as uow:
        await book_in(uow, _entry(alice, 3674, CreditReason.OVERPAYMENT, "up", 3674))
        await book_in(uow, _entry(alice, 500, CreditReason.REFUND_TO_CREDIT, "vm:1"))
        spent = await book_in(uow, _entry(alice, -1200, CreditReason.SPENT, "q", -1000))
        await uow.commit()
    assert spent.entry.vat_free == -1000 and spent.balance == 2974
    assert await _parts(uow_factory, alice) == CreditParts(2974, 2674)
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balances(alice) == {"EUR": 2974}
        assert await uow.credit_ledger.vat_free_balances(alice) == {"EUR": 2674}
        entries = (await uow.credit_ledger.list_page(alice, 10, 0)).items
    assert [e.vat_free for e in entries] == [-1000, 0, 3674]
    assert sum(e.vat_free for e in entries) == 2674  # the part, like the balance, is the sum


async def test_every_balance_is_read_with_its_vat_free_part_at_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """`balance_parts`: every currency the user has a row in, with its VAT-free part, in one
    read (what the account and admin views show)."""
    alice = await _alice(uow_factory)
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balance_parts(alice) == {}
        await book_in(uow, _entry(alice, 3674, CreditReason.OVERPAYMENT, "up", 3674))
        await book_in(uow, _entry(alice, 500, CreditReason.REFUND_TO_CREDIT, "vm:1"))
        usd = attrs.evolve(_entry(alice, 70, CreditReason.REFUND_TO_CREDIT, "vm:2"), currency="USD")
        await book_in(uow, usd)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.credit_ledger.balance_parts(alice) == {
            "EUR": CreditParts(4174, 3674),
            "USD": CreditParts(70, 0),
        }


@pytest.mark.parametrize(
    "amount, vat_free",
    [(-600, 0), (-200, -200)],  # more ordinary than there is; more VAT-free than there is
)
async def test_a_debit_never_takes_one_kind_of_credit_for_the_other(
    uow_factory: UnitOfWorkFactory, amount: int, vat_free: int
) -> None:
    alice = await _alice(uow_factory)
    async with uow_factory() as uow:
        await book_in(uow, _entry(alice, 500, CreditReason.REFUND_TO_CREDIT, "vm:1"))
        await book_in(uow, _entry(alice, 100, CreditReason.OVERPAYMENT, "up", 100))
        await uow.commit()
    async with uow_factory() as uow:
        with pytest.raises(InsufficientCredit):
            await book_in(uow, _entry(alice, amount, CreditReason.SPENT, "q", vat_free))
        await uow.commit()
    assert await _parts(uow_factory, alice) == CreditParts(600, 100)


async def test_an_admin_debit_takes_ordinary_credit_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    alice = await _alice(uow_factory)
    async with uow_factory() as uow:
        await book_in(uow, _entry(alice, 300, CreditReason.OVERPAYMENT, "up", 300))
        await uow.commit()
    clock = FakeClock(at(3))

    async def debit(amount: int, ref: str) -> int:
        booked = await adjust_credit(
            uow_factory,
            clock,
            admin_id=1,
            user_id=alice,
            currency="eur",
            amount=amount,
            note="n",
            reference=ref,
        )
        return booked.entry.vat_free

    assert await debit(200, "a") == 0  # a credit is ordinary
    assert await debit(-150, "b") == 0  # ordinary covers it
    assert await _parts(uow_factory, alice) == CreditParts(350, 300)
    assert await debit(-100, "c") == -50  # the ordinary 50, then 50 of the VAT-free
    assert await _parts(uow_factory, alice) == CreditParts(250, 250)
