"""Revenue report figures on memory, SQLite and MariaDB: every paid payment of the company in
the window, each figure exactly as stored, base-currency values in exact integers."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import attrs

from app.admin.reports import referral_usage, revenue
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import Company, SubscriptionPayment
from ports.storage import UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import at, new_payment, new_subscription, seed_world

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
