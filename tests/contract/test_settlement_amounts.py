"""The amount a Lightning node reports received: an excess becomes account credit once, a
shortfall completes nothing and is kept for the operator; on every storage backend, against
the wire-level fake LND."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pytest

from adapters.http.invoice_text import payment_notes
from adapters.lightning.lnd import LndRestNode
from adapters.memory.storage import MemoryUnitOfWorkFactory
from app import settlement
from app.admin import payments as admin_payments
from app.admin.payments import complete_as_admin
from app.billing.completion import complete_payment
from app.billing.credit_overpayment import EXCESS_SUFFIX, SETTLED_AFTER_ADMIN_SUFFIX
from app.billing.paid_after_admin import settled_after_admin
from app.billing.rails import PaymentRails
from app.settlement import SETTLE_CURSOR, listen_once, reconcile
from app.settlement_problems import recent_problems
from app.settlement_retries import Strikes, passing
from domain.account_credit import CreditReason
from domain.admin_completion import (
    ADMIN_COMPLETION_KEY,
    RACE_MARGIN,
    NodeSettlement,
    admin_completion_of,
)
from domain.credit import payment_meta
from domain.enums import VmHistoryActionType
from domain.errors import DomainError, PaymentAlreadyCompleted
from domain.exchange import msat_to_fiat
from domain.invoice import InvoiceLine
from domain.overpayment import overpaid_of
from domain.prepayment import PREPAYMENT_LINE
from domain.shortfall import SHORTFALL_LINE
from ports.jobs import SendAdminNotification
from ports.storage import CreditKey
from tests.contract import storage_backends
from tests.contract.lifecycle_world import empty_tables, sql_factory, world_over
from tests.contract.storage_backends import Database, engine_for
from tests.fakes.fake_lnd import FakeLnd, running_fake_lnd
from tests.unit.billing.world import BOB, Shop

# pytest fixture: one migrated database per backend for the module, emptied per test
database = storage_backends.database

#: a generous bound so a regression fails instead of hanging; no test asserts a duration
GUARD_S = 30
RATE = Decimal(100_000)  # the fake rates' EUR per BTC
MSAT_PER_CENT = 10_000
#: the fake rates price one BTC at EUR 100 000: 1 000 msat are worth 0.1 cent
EXCESS_MSAT = 1_239_000  # 123.9 cents: worth 123 (rounded down, never up)
#: a prepayment bears VAT (23 % IE): 123 cents are 100 net, credited, and 23 VAT, invoiced
CREDITED, PREPAID_VAT = 100, 23


@pytest.fixture
async def shop(database: Database) -> AsyncIterator[Shop]:
    if database.url is None:
        yield (await world_over(MemoryUnitOfWorkFactory())).shop
        return
    async with engine_for(database) as engine:
        await empty_tables(engine, database.kind)
        yield (await world_over(sql_factory(engine))).shop


@pytest.fixture
async def lnd(tmp_path: Path) -> AsyncIterator[FakeLnd]:
    async with running_fake_lnd(tmp_path, tls=False) as fake:
        yield fake


def _node(fake: FakeLnd) -> LndRestNode:
    return LndRestNode(fake.url, macaroon_hex=fake.macaroon_hex, reconnect_delay=0.01)


async def _cursor(shop: Shop) -> int:
    async with shop.factory() as uow:
        return await uow.worker_cursors.get(SETTLE_CURSOR) or 0


async def _listen_until_cursor(shop: Shop, node: LndRestNode, cursor: int, listeners: int) -> None:
    """`listeners` listeners at once (two workers) until the stored cursor reaches `cursor`."""

    def listener() -> asyncio.Task[int]:
        return asyncio.create_task(
            listen_once(node, shop.factory, shop.clock, shop.rails, shop.queue)
        )

    tasks = [listener() for _ in range(listeners)]

    async def done() -> None:
        while await _cursor(shop) < cursor:
            for i, task in enumerate(tasks):
                if not task.done():
                    continue
                err = task.exception()
                if err is None or not passing(err):
                    task.result()  # raises what stopped it
                # the worker's loop listens again after an outage (two listeners booking
                # one settlement can deadlock on MariaDB: StorageBusy); so does this one
                tasks[i] = listener()
            await asyncio.sleep(0.01)

    try:
        await asyncio.wait_for(done(), GUARD_S)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _warm(shop: Shop, node: LndRestNode, lnd: FakeLnd) -> None:
    """A listener heard one settlement before: the cursor is at 1."""
    earlier = await shop.renew(await shop.order(BOB))
    lnd.settle(earlier.id)
    await _listen_until_cursor(shop, node, 1, listeners=1)


async def test_an_overpaid_invoice_credits_the_excess_once_even_replayed_by_two_workers(
    shop: Shop, lnd: FakeLnd
) -> None:
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        assert payment.currency == "BTC" and (await shop.subscription(vm)).currency == "EUR"
        lnd.settle(payment.id, amount_paid_msat=payment.total + EXCESS_MSAT)

        await _listen_until_cursor(shop, node, 2, listeners=2)
        # replayed: a restart from an older cursor, and a first-start reconciliation
        await _listen_until_cursor(shop, node, 2, listeners=1)
        args = (node, shop.factory, shop.clock, shop.rails, shop.queue)
        assert await reconcile(*args) == 0

        paid = await shop.payment(payment.id)
        assert paid.is_paid
        assert await shop.balances(vm.user_id) == {"EUR": CREDITED}
        recorded = overpaid_of(payment_meta(paid))
        assert recorded is not None
        assert (recorded.msat, recorded.credited, recorded.currency) == (
            EXCESS_MSAT,
            CREDITED,
            "EUR",
        )
        assert (recorded.tax, recorded.tax_rate) == (PREPAID_VAT, Decimal(23))
        async with shop.factory() as uow:
            key = CreditKey(vm.user_id, "EUR", CreditReason.OVERPAYMENT, payment.id.hex())
            entry = await uow.credit_ledger.find(
                CreditKey(key.user_id, key.currency, key.reason, key.reference + EXCESS_SUFFIX)
            )
            invoice = await uow.invoices.get_by_payment(payment.id)
        assert entry is not None and entry.amount == CREDITED and entry.payment_id == payment.id
        # the invoice declares the excess as a prepayment (net credited + its VAT), says
        # what arrived and where it went, and its lines add up to all the money received
        assert invoice is not None and invoice.document.overpaid == recorded
        doc = invoice.document
        assert doc.lines[-1] == InvoiceLine(
            description=PREPAYMENT_LINE, net=CREDITED, tax_rate=Decimal(23), tax=PREPAID_VAT
        )
        assert doc.btc_msat == payment.total + EXCESS_MSAT
        assert invoice.total == doc.total == msat_to_fiat(payment.total, RATE) + 123
        assert invoice.tax == msat_to_fiat(payment.tax, RATE) + PREPAID_VAT
        history = [h.description or "" for h in await shop.history(vm)]
        assert any(f"{EXCESS_MSAT} msat more" in text for text in history)


async def test_an_exactly_paid_invoice_books_no_credit(shop: Shop, lnd: FakeLnd) -> None:
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        lnd.settle(payment.id)
        await _listen_until_cursor(shop, node, 2, listeners=1)
        paid = await shop.payment(payment.id)
        assert paid.is_paid and overpaid_of(payment_meta(paid)) is None
        assert await shop.balances(vm.user_id) == {}


async def test_a_payment_stored_under_its_whole_sat_invoice_paid_exactly_is_no_overpayment(
    shop: Shop, lnd: FakeLnd
) -> None:
    """Payments stored before their total was the invoice's whole-sat amount are up to 999
    msat under what their invoice asks: paying that invoice exactly credits nothing and
    puts no overpayment on the invoice."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        old_style = attrs.evolve(payment, amount=payment.amount - 600)  # 600 msat under
        async with shop.factory() as uow:
            await uow.payments.update(old_style)
            await uow.commit()
        lnd.settle(payment.id)  # the invoice's own amount
        await _listen_until_cursor(shop, node, 2, listeners=1)
        paid = await shop.payment(payment.id)
        assert paid.is_paid and overpaid_of(payment_meta(paid)) is None
        assert await shop.balances(vm.user_id) == {}


async def test_an_underpaid_settlement_completes_nothing_and_the_intake_goes_on(
    shop: Shop, lnd: FakeLnd
) -> None:
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm, other = await shop.order(), await shop.order(BOB)
        short, later = await shop.renew(vm), await shop.renew(other)
        lnd.settle(short.id, amount_paid_msat=short.total - 1_000)
        lnd.settle(later.id)

        await _listen_until_cursor(shop, node, 3, listeners=1)

        assert not (await shop.payment(short.id)).is_paid
        assert (await shop.subscription(vm)).expires is None
        assert (await shop.payment(later.id)).is_paid
        [(problem, paid)] = await recent_problems(shop.factory)
        assert (problem.payment_id, problem.settle_index, paid) == (short.id, 2, False)
        assert problem.amount_paid_msat == short.total - 1_000
        assert problem.error == "ShortSettlement" and str(short.total) in problem.message
        notices = [j for j in shop.queue.sent if isinstance(j, SendAdminNotification)]
        assert len(notices) == 1 and short.id.hex() in notices[0].message


class _Withdrawn(DomainError):
    """A rule that refuses the intake's completion for good (the offer was withdrawn)."""


def _refused_by_intake(payment_id: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The intake's completion of `payment_id` is refused for good (then recorded)."""
    real = complete_payment

    async def complete(*args: Any, payment_id: bytes, **kw: Any) -> Any:
        if payment_id == refused:
            raise _Withdrawn("the offer was withdrawn")
        return await real(*args, payment_id=payment_id, **kw)

    refused = payment_id
    monkeypatch.setattr(settlement, "complete_payment", complete)


async def _admin_completes(shop: Shop, rails: PaymentRails, payment_id: bytes) -> None:
    await complete_as_admin(
        shop.factory, shop.clock, rails, shop.queue, payment_id=payment_id, admin_id=BOB
    )


async def test_an_admin_completing_a_recorded_overpaid_settlement_credits_its_excess_once(
    shop: Shop, lnd: FakeLnd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The settlement problem keeps what arrived: the admin's completion books the excess
    as the intake would have, even on a server with no Lightning node to ask."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        received = payment.total + EXCESS_MSAT
        _refused_by_intake(payment.id, monkeypatch)
        lnd.settle(payment.id, amount_paid_msat=received)
        await _listen_until_cursor(shop, node, 2, listeners=1)
        [(problem, _)] = await recent_problems(shop.factory)
        assert (problem.payment_id, problem.amount_paid_msat) == (payment.id, received)
        monkeypatch.undo()  # the operator removed the cause

        await _admin_completes(shop, PaymentRails(None, {}), payment.id)  # no node here

        paid = await shop.payment(payment.id)
        assert paid.is_paid and await shop.balances(vm.user_id) == {"EUR": CREDITED}
        recorded = overpaid_of(payment_meta(paid))
        assert recorded is not None
        assert (recorded.msat, recorded.credited) == (EXCESS_MSAT, CREDITED)
        # a second admin completion, an intake replay and a reconciliation credit nothing more
        with pytest.raises(PaymentAlreadyCompleted):
            await _admin_completes(shop, shop.rails, payment.id)
        replay = await complete_payment(
            shop.factory,
            shop.clock,
            shop.rails,
            shop.queue,
            payment_id=payment.id,
            received_msat=received,
        )
        assert not replay.completed
        assert await reconcile(node, shop.factory, shop.clock, shop.rails, shop.queue) == 0
        assert await shop.balances(vm.user_id) == {"EUR": CREDITED}


async def test_an_admin_completing_an_overpaid_invoice_asks_the_node_what_arrived(
    shop: Shop, lnd: FakeLnd
) -> None:
    """No settlement problem (the intake has not reached it yet): the node's settlement of
    the invoice says what arrived; the intake meeting it later books nothing more."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        lnd.settle(payment.id, amount_paid_msat=payment.total + EXCESS_MSAT)

        await _admin_completes(shop, shop.rails, payment.id)
        assert await shop.balances(vm.user_id) == {"EUR": CREDITED}

        await _listen_until_cursor(shop, node, 2, listeners=1)  # the intake replays it
        assert await shop.balances(vm.user_id) == {"EUR": CREDITED}
        assert await recent_problems(shop.factory) == []


async def test_an_admin_completes_a_lightning_payment_while_the_node_is_down(
    shop: Shop, lnd: FakeLnd, tmp_path: Path
) -> None:
    """Completing by hand is what an admin does when the node cannot help: a node that
    cannot be reached does not refuse it (the excess, if any, is not known: none credited,
    logged for the operator)."""
    async with running_fake_lnd(tmp_path / "gone", tls=False) as gone:
        url, macaroon = gone.url, gone.macaroon_hex
    async with LndRestNode(url, macaroon_hex=macaroon, reconnect_delay=0.01) as down:
        vm = await shop.order()
        payment = await shop.renew(vm)

        await _admin_completes(shop, PaymentRails(down, {}), payment.id)

        paid = await shop.payment(payment.id)
        assert paid.is_paid and overpaid_of(payment_meta(paid)) is None
        assert await shop.balances(vm.user_id) == {}


async def test_an_admin_completing_a_short_settlement_counts_it_as_paid(
    shop: Shop, lnd: FakeLnd
) -> None:
    """Less than the total was recorded: the admin decided it is paid; nothing is credited
    and the shortfall does not refuse the admin's completion."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        short = await shop.renew(vm)
        lnd.settle(short.id, amount_paid_msat=short.total - 1_000)
        await _listen_until_cursor(shop, node, 2, listeners=1)
        assert len(await recent_problems(shop.factory)) == 1

        await _admin_completes(shop, shop.rails, short.id)

        paid = await shop.payment(short.id)
        assert paid.is_paid and overpaid_of(payment_meta(paid)) is None
        assert await shop.balances(vm.user_id) == {}


async def test_an_admin_completing_a_short_settlement_invoices_what_arrived(
    shop: Shop, lnd: FakeLnd
) -> None:
    """The node received EUR 1.00 (1 000 000 msat) of a new order's Purchase of EUR 1.62
    (132 net + 30 VAT at 23 %, 1 624 000 msat): the admin's completion records what
    arrived, and the invoice bills it, not the total: the purchase line, then a shortfall
    line taking off
    51 net and 11 VAT, so the lines add up to 100 (81 net + 19 VAT, the VAT in EUR 1.00
    at 23 %), and it says it was paid 1 000 000 msat, 624 000 short."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        short = await shop.renew(vm)
        assert (short.amount, short.tax, short.total) == (1_320_000, 303_600, 1_624_000)
        lnd.settle(short.id, amount_paid_msat=1_000_000)
        await _listen_until_cursor(shop, node, 2, listeners=1)

        await _admin_completes(shop, shop.rails, short.id)

        paid = await shop.payment(short.id)
        admin = admin_completion_of(payment_meta(paid))
        assert admin is not None and admin.short_received_msat == 1_000_000
        async with shop.factory() as uow:
            invoice = await uow.invoices.get_by_payment(short.id)
        assert invoice is not None
        doc = invoice.document
        assert [(x.description, x.net, x.tax_rate, x.tax) for x in doc.lines] == [
            ("Purchase: VM2 - Tiny", 132, Decimal(23), 30),
            (SHORTFALL_LINE, -51, Decimal(23), -11),
        ]
        assert (invoice.net, invoice.tax, invoice.total) == (81, 19, 100)
        assert (doc.btc_msat, doc.short_msat) == (1_000_000, 624_000)
        notes = payment_notes(doc)
        assert "Paid over Lightning: BTC 0.00001000, at 1 BTC = EUR 100000.00." in notes
        assert any("624000 msat less than the amount due" in n for n in notes)
        assert await shop.balances(vm.user_id) == {}


def _notices_of(shop: Shop, payment_id: bytes) -> list[SendAdminNotification]:
    return [
        j
        for j in shop.queue.sent
        if isinstance(j, SendAdminNotification) and payment_id.hex() in j.message
    ]


async def _settled_after_admin_entries(shop: Shop, user_id: int, payment_id: bytes) -> int:
    async with shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(
            payment_id.hex() + SETTLED_AFTER_ADMIN_SUFFIX
        )
    return sum(e.user_id == user_id for e in entries)


async def _booked_at(shop: Shop, payment_id: bytes) -> datetime:
    """When the admin's completion of the payment was booked, as it records it."""
    completion = admin_completion_of(payment_meta(await shop.payment(payment_id)))
    assert completion is not None and completion.booked_at is not None
    return completion.booked_at


async def test_an_invoice_paid_after_an_admin_completed_it_is_credited_once_however_met(
    shop: Shop, lnd: FakeLnd, caplog: pytest.LogCaptureFixture
) -> None:
    """The admin completed the payment while its invoice was open at the node; the customer
    pays that invoice afterwards. The money bought nothing: all of it becomes account credit,
    once, however often and however concurrently the settlement is met (two streams, a
    replay, reconciliations that found it unpaid), and the admins are told once."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        await _admin_completes(shop, shop.rails, payment.id)  # the node has no settlement
        expires = (await shop.subscription(vm)).expires
        received = payment.total + 3_000  # the invoice is whole sats, at least the total
        # the node stamps it a second past the race window (its clock, whole seconds)
        after = await _booked_at(shop, payment.id) + RACE_MARGIN + timedelta(seconds=1)
        lnd.settle(payment.id, amount_paid_msat=received, settled_at=after)

        settled = await node.lookup_settlement(payment.id)
        assert settled is not None

        async def met_again() -> bool:  # a reconciliation's or a replay's meeting of it
            while True:  # as the intake does, it tries again after a passing failure
                try:
                    return await settlement._complete(
                        shop.factory,
                        shop.clock,
                        shop.rails,
                        shop.queue,
                        settled,
                        "reconciliation",
                        Strikes(),
                    )
                except Exception as err:
                    if not passing(err):
                        raise

        with caplog.at_level(logging.WARNING, "lnvps.settlement"):
            await asyncio.gather(
                _listen_until_cursor(shop, node, 2, listeners=2), *(met_again() for _ in range(3))
            )
            assert not any(await asyncio.gather(*(met_again() for _ in range(2))))

        # worth 162 cents (rounded down): a prepayment, 131 net credited and 31 VAT that
        # no invoice declares (the payment's was issued at the admin's completion)
        assert received // MSAT_PER_CENT == 162
        assert await shop.balances(vm.user_id) == {"EUR": 131}
        assert await _settled_after_admin_entries(shop, vm.user_id, payment.id) == 1
        # it bought no time, and the completion was not booked again
        assert (await shop.subscription(vm)).expires == expires
        renewed = await shop.history(vm, VmHistoryActionType.RENEWED)
        assert [h.metadata["payment_id"] for h in renewed] == [payment.id.hex()]
        [notice] = _notices_of(shop, payment.id)
        assert f"{received} msat" in notice.message and "account credit" in notice.message
        assert "VAT, EUR 0.31 at 23%, is on no invoice, so invoice it" in notice.message
        warned = [r for r in caplog.records if r.getMessage().startswith("OPERATOR:")]
        assert len(warned) == 1 and payment.id.hex() in warned[0].getMessage()
        assert f"user {vm.user_id}" in warned[0].getMessage()
        assert await recent_problems(shop.factory) == []


async def test_a_settlement_after_an_admin_who_could_not_ask_the_node_is_reported_not_credited(
    shop: Shop, lnd: FakeLnd
) -> None:
    """The admin's server could not ask the node: nobody knows whether the admin counted
    this money, so nothing is credited and the admins are asked to check."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        await _admin_completes(shop, PaymentRails(None, {}), payment.id)  # no node there
        lnd.settle(payment.id)

        await _listen_until_cursor(shop, node, 2, listeners=1)

        assert await shop.balances(vm.user_id) == {}
        [notice] = _notices_of(shop, payment.id)
        assert "not known whether the admin counted" in notice.message


async def _met_again(shop: Shop, node: LndRestNode, payment_id: bytes) -> bool:
    """The settlement met once more (a replay, a reconciliation)."""
    settled = await node.lookup_settlement(payment_id)
    assert settled is not None
    return await settled_after_admin(shop.factory, shop.clock, shop.queue, settled)


async def test_an_invoice_settled_while_an_admin_completed_it_is_reported_not_credited(
    shop: Shop, lnd: FakeLnd, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: the node had no settlement when the admin's completion asked it, and the
    customer's payment settled before the completion was booked. That money is likely what
    the admin gave the service for, and nobody can tell: nothing is credited however often
    it is met, and the admins are told it came within the race window."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        real = complete_payment  # as `app.admin.payments` imports it

        async def settled_meanwhile(*args: Any, **kw: Any) -> Any:
            lnd.settle(payment.id, settled_at=shop.clock.now())  # after the node's answer
            shop.clock.advance(timedelta(seconds=1))
            return await real(*args, **kw)

        monkeypatch.setattr(admin_payments, "complete_payment", settled_meanwhile)
        await _admin_completes(shop, shop.rails, payment.id)
        monkeypatch.undo()
        completion = admin_completion_of(payment_meta(await shop.payment(payment.id)))
        assert completion is not None and completion.settlement is NodeSettlement.NONE
        assert completion.booked_at == shop.clock.now()
        expires = (await shop.subscription(vm)).expires

        await _listen_until_cursor(shop, node, 2, listeners=1)
        assert not await _met_again(shop, node, payment.id)

        assert await shop.balances(vm.user_id) == {}
        assert await _settled_after_admin_entries(shop, vm.user_id, payment.id) == 0
        assert (await shop.subscription(vm)).expires == expires
        notices = _notices_of(shop, payment.id)
        assert len(notices) == 2  # each meeting reports it
        for notice in notices:
            assert "within the race window" in notice.message
            assert "nothing was credited" in notice.message


async def test_a_settlement_just_inside_the_margin_is_reported_not_credited(
    shop: Shop, lnd: FakeLnd
) -> None:
    """Stamped by the node a whole margin after the booking, not more: the clocks may be
    that far apart, so it is not surely after the completion."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        await _admin_completes(shop, shop.rails, payment.id)
        lnd.settle(payment.id, settled_at=await _booked_at(shop, payment.id) + RACE_MARGIN)

        await _listen_until_cursor(shop, node, 2, listeners=1)

        assert await shop.balances(vm.user_id) == {}
        [notice] = _notices_of(shop, payment.id)
        assert "within the race window" in notice.message


async def test_a_settlement_after_a_completion_recorded_without_its_time_is_reported(
    shop: Shop, lnd: FakeLnd
) -> None:
    """A completion booked before its time was kept (`none`, no `booked_at`): whether a
    settlement met later raced it is not known, so however late it is, it is reported and
    not credited."""
    async with _node(lnd) as node:
        shop.rails = PaymentRails(node, {})
        await _warm(shop, node, lnd)
        vm = await shop.order()
        payment = await shop.renew(vm)
        await _admin_completes(shop, shop.rails, payment.id)
        paid = await shop.payment(payment.id)
        meta = payment_meta(paid)
        old = {k: v for k, v in meta[ADMIN_COMPLETION_KEY].items() if k != "booked_at"}
        async with shop.factory() as uow:
            await uow.payments.update(
                attrs.evolve(paid, metadata={**meta, ADMIN_COMPLETION_KEY: old})
            )
            await uow.commit()
        lnd.settle(payment.id, settled_at=shop.clock.now() + timedelta(days=1))

        await _listen_until_cursor(shop, node, 2, listeners=1)

        assert await shop.balances(vm.user_id) == {}
        assert await _settled_after_admin_entries(shop, vm.user_id, payment.id) == 0
        [notice] = _notices_of(shop, payment.id)
        assert "recorded without its time" in notice.message
