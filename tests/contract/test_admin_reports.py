"""Revenue report figures on memory, SQLite and MariaDB: every paid payment of the company in
the window, each figure exactly as stored, base-currency values in exact integers; the
window's credit notes; deleted VMs kept."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import attrs

from adapters.memory.clock import FakeClock
from app.admin.reports import NoteLine, credit_notes, referral_usage, revenue, window
from app.billing.completion import apply_payment
from app.billing.invoicing import issue_credit_note
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import Company, SubscriptionPayment
from ports.storage import InvoiceWindow, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import (
    World,
    at,
    new_payment,
    new_subscription,
    seed_world,
)

database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory

START, END = date(2026, 3, 1), date(2026, 3, 15)


def _base(msat: int, rate: Decimal) -> int:
    """msat → cents at `rate` EUR/BTC, half up, computed here on its own."""
    exact = Fraction(msat) * Fraction(rate) * 100 / 100_000_000_000
    return int(exact + Fraction(1, 2))


async def test_report_lines_equal_the_paid_payments(uow_factory: UnitOfWorkFactory) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        other_co = await uow.companies.add(Company(id=0, created=at(1), name="Other"))
        other_sub, _ = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, other_co.id), []
        )
        plain, _ = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, w.company.id, currency="USD"), []
        )
        ln = new_payment(
            w.subscription,
            created=at(3),
            amount=12_345_000,
            tax=2_839_000,
            currency="BTC",
            rate=Decimal("95000.1"),
            is_paid=True,
            time_value=2_592_000,
            external_id="hash-1",
        )
        eur = new_payment(
            w.subscription,
            created=at(4, 9),
            amount=500,
            tax=115,
            payment_method=PaymentMethod.REVOLUT,
            is_paid=True,
            payment_type=SubscriptionPaymentType.PURCHASE,
        )
        usd = new_payment(
            plain,
            created=at(5),
            amount=999,
            tax=0,
            currency="USD",
            payment_method=PaymentMethod.STRIPE,
            is_paid=True,
        )
        excluded = [
            new_payment(w.subscription, created=at(3, 13)),  # unpaid
            new_payment(w.subscription, created=at(20), is_paid=True),  # after the window
            new_payment(w.subscription, created=at(28, month=2), is_paid=True),  # before
            new_payment(other_sub, created=at(3), is_paid=True),  # another company's
        ]
        for p in (ln, eur, usd, *excluded):
            await uow.payments.add(p)
        await uow.commit()
    lines = await revenue(uow_factory, start=START, end=END, company_id=w.company.id, currency=None)
    async with uow_factory() as uow:
        stored: list[SubscriptionPayment] = []
        for p in (ln, eur, usd):
            got = await uow.payments.get(p.id)
            assert got is not None
            stored.append(got)
    assert [line.payment for line in lines] == stored
    assert stored[0].rate == Decimal("95000.1") and stored[0].amount == 12_345_000
    assert [(line.base_amount, line.base_tax) for line in lines] == [
        (_base(12_345_000, Decimal("95000.1")), _base(2_839_000, Decimal("95000.1"))),
        (500, 115),
        (None, None),  # USD with no stored rate to EUR: unknown, not guessed
    ]
    assert _base(12_345_000, Decimal("95000.1")) == 1173  # 0.00012345 BTC × 95 000.1 EUR
    first = lines[0]
    assert first.vm is not None and first.vm.id == w.vm.id
    assert (first.host_name, first.region_id, first.region_name) == ("h1", w.region.id, "eu")
    assert (lines[2].vm, lines[2].host_name, lines[2].region_id) == (None, "", 0)
    assert {line.company.id for line in lines} == {w.company.id}
    only_eur = await revenue(
        uow_factory, start=START, end=END, company_id=w.company.id, currency="EUR"
    )
    assert [line.payment.id for line in only_eur] == [eur.id]
    assert await revenue(uow_factory, start=START, end=END, company_id=999, currency=None) == []


async def test_referral_usage_is_each_vms_first_paid_payment(
    uow_factory: UnitOfWorkFactory,
) -> None:
    async with uow_factory() as uow:
        w = await seed_world(uow)
        await uow.vms.update(attrs.evolve(w.vm, ref_code="FRIEND"))
        first = new_payment(
            w.subscription, created=at(3), amount=700, is_paid=True, rate=Decimal("1")
        )
        for p in (
            first,
            new_payment(w.subscription, created=at(4), is_paid=True),
            new_payment(w.subscription, created=at(2)),
        ):  # unpaid, earlier
            await uow.payments.add(p)
        await uow.commit()
    [line] = await referral_usage(
        uow_factory, start=START, end=END, company_id=w.company.id, ref_code=None
    )
    assert (line.vm_id, line.ref_code, line.payment.id, line.payment.amount) == (
        w.vm.id,
        "FRIEND",
        first.id,
        700,
    )
    assert (
        await referral_usage(
            uow_factory, start=START, end=END, company_id=w.company.id, ref_code="OTHER"
        )
        == []
    )
    assert (
        await referral_usage(
            uow_factory, start=date(2026, 3, 4), end=END, company_id=w.company.id, ref_code=None
        )
        == []
    )


MONTH_S = 31 * 86_400


async def _booked(factory: UnitOfWorkFactory, w: World, created: datetime, paid: datetime) -> bytes:
    """A renewal of the seed world's VM created at `created` and booked (paid, invoiced) at
    `paid`."""
    pending = new_payment(w.subscription, created=created, expires=paid + timedelta(hours=1))
    async with factory() as uow:
        await uow.payments.add(attrs.evolve(pending, time_value=MONTH_S))
        await uow.commit()
    assert await apply_payment(factory, pending.id, FakeClock(paid)) is not None
    return pending.id


async def _paid_ids(factory: UnitOfWorkFactory, w: World, start: date, end: date) -> list[bytes]:
    lines = await revenue(factory, start=start, end=end, company_id=w.company.id, currency=None)
    return [line.payment.id for line in lines]


async def test_a_period_counts_its_end_day_whole_and_a_payment_when_it_was_paid(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Review r20: a payment paid in the last second of 15 March is in the report ending that
    day (the reference's window ended at 23:59:59, exclusive, so in no report); one created
    on the 15th but paid on the 16th is in the report its invoice was issued in, the later
    one; a one-day report (start = end) is the whole day."""
    async with uow_factory() as uow:
        w = await seed_world(uow)
        await uow.commit()
    last = datetime(2026, 3, 15, 23, 59, 59, tzinfo=UTC)
    in_last_second = await _booked(uow_factory, w, at(15), last)
    paid_next_day = await _booked(uow_factory, w, at(15, 23), at(16, 0))
    later = date(2026, 3, 16), date(2026, 3, 31)
    assert await _paid_ids(uow_factory, w, START, END) == [in_last_second]
    assert await _paid_ids(uow_factory, w, *later) == [paid_next_day]
    assert await _paid_ids(uow_factory, w, END, END) == [in_last_second]
    async with uow_factory() as uow:
        issued = await uow.invoices.list_page(InvoiceWindow(*window(START, END)), 10, 0)
    assert [i.payment_id for i in issued.items] == [in_last_second]


async def test_a_deleted_vm_stays_in_past_reports(uow_factory: UnitOfWorkFactory) -> None:
    """Review r20: a referred VM paid in the window, then deleted, keeps its revenue line's
    VM, host and region, and its referral."""
    async with uow_factory() as uow:
        w = await seed_world(uow)
        await uow.vms.update(attrs.evolve(w.vm, ref_code="FRIEND"))
        await uow.commit()
    paid = await _booked(uow_factory, w, at(3), at(4))
    async with uow_factory() as uow:
        await uow.vms.delete(w.vm.id)
        await uow.commit()
    [line] = await revenue(
        uow_factory, start=START, end=END, company_id=w.company.id, currency=None
    )
    assert line.vm is not None and (line.vm.id, line.host_name, line.region_id) == (
        w.vm.id,
        "h1",
        w.region.id,
    )
    [referral] = await referral_usage(
        uow_factory, start=START, end=END, company_id=w.company.id, ref_code=None
    )
    assert (referral.vm_id, referral.payment.id) == (w.vm.id, paid)


async def test_the_credit_notes_issued_in_the_window_are_reported(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Review r20: a note issued in the window is listed with its figures and the invoice it
    corrects, filtered by company and by the currency the invoice's payment was paid in."""
    async with uow_factory() as uow:
        w = await seed_world(uow)
        await uow.commit()
    paid = await _booked(uow_factory, w, at(3), at(4))
    async with uow_factory() as uow:
        invoice = await uow.invoices.get_by_payment(paid)
    assert invoice is not None
    note = await issue_credit_note(
        uow_factory, FakeClock(at(5)), invoice_id=invoice.id, amount=invoice.total, reason="r"
    )

    async def notes(company: int, currency: str | None) -> list[NoteLine]:
        return await credit_notes(
            uow_factory, start=START, end=END, company_id=company, currency=currency
        )

    [line] = await notes(w.company.id, None)
    assert (line.note, line.invoice.id, line.parts) == (
        note,
        invoice.id,
        (invoice.net, invoice.tax),
    )
    assert await notes(w.company.id, "EUR") == [line]
    assert await notes(w.company.id, "BTC") == []
    assert await notes(w.company.id + 1, None) == []
    assert (
        await credit_notes(uow_factory, start=END, end=END, company_id=w.company.id, currency=None)
        == []
    )
