"""Renewals pay from the account balance first, on memory, SQLite and MariaDB: partly (the
invoice is for the rest), wholly (completed at once, exactly once), released when the quote
expires unpaid, spent again if it is paid after all, and never below zero under races."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any

import attrs
import pytest

from app.billing.credit_balance import adjust_credit
from app.billing.credit_overpayment import credit_unrestorable
from app.billing.credit_quote import COVERED_EXPIRY, CreditChanged, Settle
from app.billing.credit_release import RELEASE_MARGIN, release_expired_credit
from app.billing.credit_settle import completion_settle
from app.billing.errors import NoRoomToUpgrade, UpgradeQuoteOutdated
from app.billing.invoicing import issue_credit_note
from domain.account_credit import CreditReason
from domain.enums import PaymentMethod
from domain.errors import InvalidInput
from domain.exchange import fiat_to_msat, msat_to_fiat
from domain.fees import gross_up_fee
from domain.intervals import add_months
from domain.invoice import InvoiceContent
from domain.model import GIB, SubscriptionPayment, Vm
from domain.tax import tax_on
from domain.upgrade import UpgradeConfig
from ports.jobs import SendAdminNotification, SendNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.storage_backends import Database
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: 1 EUR cent at the fake's 100 000 EUR/BTC is exactly 10 000 msat
MSAT_PER_CENT = 10_000
VAT = Decimal(23)  # the shop's IE rate


def _settle(shop: Shop) -> Any:
    return completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)


async def _paid_vm(shop: Shop) -> Vm:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    return vm


async def _give(shop: Shop, amount: int, reference: str | None = None) -> None:
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=amount,
        note="test",
        reference=reference,
    )


async def _ledger(shop: Shop) -> list[tuple[CreditReason, int, str | None]]:
    async with shop.factory() as uow:
        page = await uow.credit_ledger.list_page(ALICE, 100, 0)
    return [(e.reason, e.amount, e.reference) for e in reversed(page.items)]


async def _renew(shop: Shop, vm: Vm, **kw: Any) -> SubscriptionPayment:
    return await shop.renew(vm, settle=_settle(shop), **kw)


async def test_a_partly_covered_renewal_invoices_the_rest(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 100)
    payment = await _renew(shop, vm, method=PaymentMethod.REVOLUT)
    assert (payment.amount, payment.currency, payment.is_paid) == (
        PLAN_EUR_CENTS - 100,
        "EUR",
        False,
    )
    assert payment.external_id is not None  # a real order for the rest
    assert payment.metadata["credit_applied"] == {"amount": 100, "currency": "EUR", "charged": 100}
    assert await shop.balance() == 0
    assert (await _ledger(shop))[-1] == (CreditReason.SPENT, -100, payment.id.hex())
    before = (await shop.subscription(vm)).expires
    assert before is not None
    assert (await shop.complete(payment)).completed
    assert (await shop.subscription(vm)).expires == add_months(before, 1)
    assert await shop.balance() == 0  # completion debits nothing more
    shop.clock.advance(timedelta(hours=2))
    assert await release_expired_credit(shop.factory, shop.clock) == 0  # paid: kept spent
    assert await shop.balance() == 0


async def _document(shop: Shop, payment: SubscriptionPayment) -> InvoiceContent:
    async with shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(payment.id)
    assert invoice is not None
    assert (invoice.net, invoice.tax, invoice.total) == (
        invoice.document.net,
        invoice.document.tax,
        invoice.document.total,
    )
    return invoice.document


async def test_a_taxed_card_renewal_partly_paid_from_credit_is_taxed_and_invoiced_on_the_rest(
    shop: Shop,
) -> None:
    """1.32 EUR at 23 % VAT (IE) by card (2.8 % + 0.20) with 1.00 credit: the 0.32 charged
    bears floor(0.32 × 23 %) = 0.07 VAT (D3) and the D4 fee of 0.32 with the whole base fee
    (0.22); shares of the whole quote's tax and fee were 0.08 and 0.07. The invoice shows
    the 1.32 bought at 23 %, the credit as a line, and adds up to the payment row."""
    vm = await _paid_vm(shop)
    await _give(shop, 100)
    payment = await _renew(shop, vm, method=PaymentMethod.REVOLUT)
    rest = PLAN_EUR_CENTS - 100
    assert payment.amount == rest == 32
    assert payment.tax == tax_on(rest, VAT) == 7
    assert payment.processing_fee == gross_up_fee(rest, Decimal("2.8"), 20) == 22
    assert payment.metadata["tax_rate"] == "23"
    assert (await shop.complete(payment)).completed
    doc = await _document(shop, payment)
    assert [(line.net, line.tax_rate, line.tax) for line in doc.lines] == [
        (PLAN_EUR_CENTS, VAT, tax_on(PLAN_EUR_CENTS, VAT)),
        (-100, VAT, payment.tax - tax_on(PLAN_EUR_CENTS, VAT)),
        (payment.processing_fee, Decimal(0), 0),
    ]
    assert (doc.net, doc.tax) == (payment.amount + payment.processing_fee, payment.tax)
    assert doc.total == doc.charged == payment.total


async def test_the_invoice_of_a_renewal_paid_wholly_from_credit_shows_its_vat_and_nets_to_zero(
    shop: Shop,
) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 1000)
    payment = await _renew(shop, vm)
    assert payment.is_paid and payment.total == 0
    doc = await _document(shop, payment)
    assert [(line.net, line.tax_rate, line.tax) for line in doc.lines] == [
        (PLAN_EUR_CENTS, VAT, 30),
        (-PLAN_EUR_CENTS, VAT, -30),
    ]
    assert doc.net == doc.tax == doc.total == 0 and doc.credit_applied == PLAN_EUR_CENTS


async def test_credit_notes_of_an_invoice_partly_paid_from_credit_stop_at_what_was_charged(
    shop: Shop,
) -> None:
    """The invoice's total is what the payment brought (the credit is a line of it, net
    value): credit notes refund at most that; the credit itself is the ledger's business."""
    vm = await _paid_vm(shop)
    await _give(shop, 100)
    payment = await _renew(shop, vm, method=PaymentMethod.REVOLUT)
    assert (await shop.complete(payment)).completed
    async with shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(payment.id)
    assert invoice is not None and invoice.total == payment.total
    with pytest.raises(InvalidInput):
        await issue_credit_note(
            shop.factory, shop.clock, invoice_id=invoice.id, amount=payment.total + 1, reason="x"
        )
    note = await issue_credit_note(
        shop.factory, shop.clock, invoice_id=invoice.id, amount=payment.total, reason="x"
    )
    assert note.amount == payment.total


async def test_a_lightning_quote_converts_the_credit_at_its_own_rate(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 100)
    payment = await _renew(shop, vm)
    assert payment.amount == (PLAN_EUR_CENTS - 100) * MSAT_PER_CENT
    assert payment.metadata["credit_applied"] == {
        "amount": 100,
        "currency": "EUR",
        "charged": 100 * MSAT_PER_CENT,
    }


async def test_a_fully_covered_renewal_completes_at_once_and_exactly_once(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 1000)
    before = (await shop.subscription(vm)).expires
    assert before is not None
    payment = await _renew(shop, vm, intervals=2)
    assert payment.is_paid and payment.amount == 0 and payment.external_id is None
    assert payment.payment_method is PaymentMethod.LIGHTNING  # the requested method is kept
    assert payment.metadata["credit_applied"]["amount"] == 2 * PLAN_EUR_CENTS
    assert (await shop.subscription(vm)).expires == add_months(before, 2)
    assert await shop.balance() == 1000 - 2 * PLAN_EUR_CENTS
    again = await shop.complete(payment)  # a replay books nothing
    assert not again.completed
    assert (await shop.subscription(vm)).expires == add_months(before, 2)
    assert await shop.balance() == 1000 - 2 * PLAN_EUR_CENTS
    assert [r for r, _, _ in await _ledger(shop)] == [
        CreditReason.ADMIN_ADJUSTMENT,
        CreditReason.SPENT,
    ]


async def test_a_covered_quote_whose_booking_failed_is_booked_when_asked_again(
    shop: Shop,
) -> None:
    """Handing the stored quote out again would show an invoice of nothing (no BOLT11) that
    no one can pay, for as long as the quote lives; it is completed instead, once."""
    vm = await _paid_vm(shop)
    await _give(shop, 1000)
    before = (await shop.subscription(vm)).expires
    assert before is not None

    async def outage(payment_id: bytes) -> object:
        raise OSError("database went away")

    with pytest.raises(OSError):
        await shop.renew(vm, settle=outage, intervals=2)
    again = await _renew(shop, vm, intervals=2)
    assert again.is_paid and again.amount == 0 and again.external_data == ""
    assert (await shop.subscription(vm)).expires == add_months(before, 2)
    assert await shop.balance() == 1000 - 2 * PLAN_EUR_CENTS  # spent once, by that quote
    third = await _renew(shop, vm, intervals=2)  # the next one is a new quote
    assert third.id != again.id and third.is_paid
    assert (await shop.subscription(vm)).expires == add_months(before, 4)
    assert await shop.balance() == 1000 - 4 * PLAN_EUR_CENTS


async def test_without_settle_no_credit_is_used(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 1000)
    payment = await shop.renew(vm)
    assert payment.amount == PLAN_EUR_CENTS * MSAT_PER_CENT and await shop.balance() == 1000


async def test_an_expired_quote_releases_its_credit_once_and_a_late_payment_spends_it_again(
    shop: Shop,
) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 100)
    payment = await _renew(shop, vm, method=PaymentMethod.REVOLUT)
    assert await release_expired_credit(shop.factory, shop.clock) == 0  # still payable
    shop.clock.advance(timedelta(hours=2))
    assert await release_expired_credit(shop.factory, shop.clock) == 1
    assert await release_expired_credit(shop.factory, shop.clock) == 0
    assert await shop.balance() == 100
    report = await shop.complete(payment)  # the order is paid after all
    assert report.completed and report.problems == ()
    assert await shop.balance() == 0
    assert (await _ledger(shop))[-1] == (CreditReason.SPENT, -100, "late:" + payment.id.hex())


class _BookedAfterFirstLook:
    """The shop's units of work; right after the first payment read of them all, `booking`
    runs (a webhook booking the payment on another connection)."""

    def __init__(self, shop: Shop, booking: Callable[[], Awaitable[object]]) -> None:
        self.inner, self.booking, self.looked = shop.factory, booking, False

    def __call__(self) -> Any:
        outer = self
        opened = self.inner()

        class Hooked:
            async def __aenter__(self) -> Any:
                uow = await opened.__aenter__()
                plain = uow.payments.get

                async def get(payment_id: bytes) -> Any:
                    found = await plain(payment_id)
                    if not outer.looked:
                        outer.looked = True
                        await outer.booking()
                    return found

                uow.payments.get = get  # type: ignore[method-assign]
                return uow

            async def __aexit__(self, *exc: Any) -> Any:
                return await opened.__aexit__(*exc)

        return Hooked()


async def test_a_release_racing_the_late_booking_of_its_quote_gives_nothing_back(
    shop: Shop, database: Database
) -> None:
    """The sweep looks at the payment, then locks its subscription and looks again. If the
    payment is booked in between, the second look must see it: on MariaDB a plain read
    before the lock fixed the snapshot, so the credit was released AND the payment paid."""
    if database.url is None:
        pytest.skip("the memory store has no snapshots and one writer")
    vm = await _paid_vm(shop)
    await _give(shop, 100)
    payment = await _renew(shop, vm, method=PaymentMethod.REVOLUT)
    shop.clock.advance(timedelta(hours=2))

    async def booking() -> object:
        return await shop.complete(payment)

    released = await release_expired_credit(_BookedAfterFirstLook(shop, booking), shop.clock)

    assert released == 0
    assert (await shop.payment(payment.id)).is_paid
    assert await shop.balance() == 0
    assert [r for r, _, ref in await _ledger(shop) if ref == payment.id.hex()] == [
        CreditReason.SPENT
    ]


async def test_a_late_payment_after_the_credit_was_used_elsewhere_is_reported(
    shop: Shop,
) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 100)
    payment = await _renew(shop, vm, method=PaymentMethod.REVOLUT)
    shop.clock.advance(timedelta(hours=2))
    await release_expired_credit(shop.factory, shop.clock)
    await _give(shop, -60, "spent-elsewhere")
    before = await shop.subscription(vm)
    report = await shop.complete(payment)
    assert report.completed and len(report.problems) == 1 and "60 EUR" in report.problems[0]
    assert await shop.balance() == 0
    # it paid 32 outside and 40 of its credit, not the 132 quoted: it buys 72/132 of a
    # month (before: the whole month, so each lapsed quote re-spent the same credit)
    paid = await shop.payment(payment.id)
    assert payment.amount == PLAN_EUR_CENTS - 100
    credit = paid.metadata["credit"]
    assert credit["mode"] == "by_value" and credit["intervals"] == str(Fraction(72, 132))
    assert credit["changes"][-1].startswith("part of the credit it applied was released")
    # the row and its invoice show the credit really taken, not the quote's 100
    assert paid.metadata["credit_applied"] == {
        "amount": 40,
        "currency": "EUR",
        "charged": 40,
    }
    assert paid.metadata["credit_unpaid"] == {"amount": 60, "currency": "EUR"}
    async with shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(payment.id)
    assert invoice is not None and invoice.document.credit_applied == 40
    assert before.expires is not None
    # by value, on the grid of months from the subscription's creation (31 Jan): the expiry
    # (28 Feb) is its first edge, and the month from it is 28 Feb → 31 Mar
    assert before.expires == add_months(before.created, 1)
    month = add_months(before.created, 2) - before.expires
    expected = before.expires + timedelta(seconds=int(month.total_seconds() * 72 // 132))
    assert (await shop.subscription(vm)).expires == expected
    [notice] = [
        j
        for j in shop.queue.sent
        if isinstance(j, SendAdminNotification) and "changed price" in (j.title or "")
    ]
    assert "released and spent" in notice.message


async def test_a_stranded_covered_upgrade_whose_credit_was_spent_is_refused_unbooked(
    shop: Shop,
) -> None:
    """A covered upgrade whose settle never ran (a crash) lapses; its credit is released and
    spent. Completed later (an admin), it has nothing behind it: 409, nothing booked."""
    vm = await _paid_vm(shop)
    await _give(shop, 10_000)

    async def crashed(payment_id: bytes) -> object:
        return None

    covered = await _upgrade(shop, vm, crashed)
    assert not covered.is_paid and covered.amount == 0
    spent = covered.metadata["credit_applied"]["amount"]
    shop.clock.advance(COVERED_EXPIRY + RELEASE_MARGIN + timedelta(minutes=1))
    assert await release_expired_credit(shop.factory, shop.clock) == 1
    await _give(shop, -10_000, "spent-elsewhere")

    with pytest.raises(CreditChanged):
        await shop.complete(covered)

    assert not (await shop.payment(covered.id)).is_paid
    assert (await shop.vm(vm.id)).template_id == vm.template_id
    assert await shop.balance() == 0 and spent > 0
    async with shop.factory() as uow:
        assert await uow.invoices.get_by_payment(covered.id) is None


async def test_a_late_upgrade_whose_credit_was_spent_elsewhere_is_not_applied(
    shop: Shop,
) -> None:
    """An upgrade quote that lapsed gave its credit back; paid after that credit was spent,
    it did not pay its whole price: not applied, what it did pay booked as credit."""
    vm = await _paid_vm(shop)
    await _give(shop, 1)
    upgrade = await _upgrade(shop, vm)
    assert not upgrade.is_paid and upgrade.metadata["credit_applied"]["amount"] == 1
    shop.clock.advance(timedelta(hours=2))
    assert await release_expired_credit(shop.factory, shop.clock) == 1
    await _give(shop, -1, "spent-elsewhere")

    report = await shop.complete(upgrade)

    assert report.completed
    paid = await shop.payment(upgrade.id)
    assert paid.metadata["credit"]["mode"] == "unrestorable"
    assert "1 of the 1 EUR of credit it applied" in paid.metadata["credit"]["changes"][0]
    assert (await shop.vm(vm.id)).template_id == vm.template_id  # not applied
    assert await shop.balance() == upgrade.amount  # what it paid outside, nothing more
    told = [j for j in shop.queue.sent if isinstance(j, SendNotification)]
    assert any("keeps its size" in j.message for j in told)


async def test_racing_quotes_never_spend_the_same_credit_twice(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, PLAN_EUR_CENTS)
    results = await asyncio.gather(
        *(
            _renew(shop, vm, intervals=1),
            _renew(shop, vm, intervals=3),
            _renew(shop, vm, method=PaymentMethod.REVOLUT),
        ),
        return_exceptions=True,
    )
    for r in results:
        assert isinstance(r, SubscriptionPayment | CreditChanged), r
    ledger = await _ledger(shop)
    spent = [a for reason, a, _ in ledger if reason is CreditReason.SPENT]
    assert -sum(spent) <= PLAN_EUR_CENTS
    assert await shop.balance() == sum(a for _, a, _ in ledger) >= 0
    stored = [r for r in results if isinstance(r, SubscriptionPayment)]
    for p in stored:  # what each stored payment says it used is what the ledger spent for it
        used = p.metadata.get("credit_applied", {}).get("amount", 0)
        assert [-a for reason, a, ref in ledger if ref == p.id.hex()] == ([used] if used else [])


async def _upgrade(shop: Shop, vm: Vm, settle: Settle | None = None) -> SubscriptionPayment:
    cfg = UpgradeConfig(new_cpu=4, new_memory=4 * GIB)
    return await upgrade_payment(
        shop, vm, cfg, method=PaymentMethod.REVOLUT, settle=settle or _settle(shop)
    )


async def test_upgrades_pay_from_the_balance_first(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 1)
    partly = await _upgrade(shop, vm)
    assert not partly.is_paid and partly.metadata["credit_applied"]["amount"] == 1
    assert partly.metadata["new_cpu"] == 4  # the config is still there for completion
    full_price = partly.amount + 1
    await _give(shop, 10 * full_price)
    covered = await _upgrade(shop, vm)
    assert covered.is_paid and covered.amount == 0 and covered.external_id is None
    assert (
        covered.metadata["credit_applied"]["amount"]
        == covered.metadata["credit_applied"]["charged"]
        > 0
    )
    assert (await shop.vm(vm.id)).template_id is None  # converted to its custom spec
    left = 10 * full_price - covered.metadata["credit_applied"]["amount"]
    assert await shop.balance() == left
    # the rival upgrade was expired by the completion (D13): its credit comes back once
    shop.clock.advance(timedelta(hours=2))
    assert await release_expired_credit(shop.factory, shop.clock) == 1
    assert await shop.balance() == left + 1


async def _assert_withdrawn(shop: Shop, payment_id: bytes) -> None:
    """The covered quote expired unpaid and its credit given back: the balance as before."""
    withdrawn = await shop.payment(payment_id)
    assert not withdrawn.is_paid and withdrawn.expires <= shop.clock.now()
    spent = withdrawn.metadata["credit_applied"]["amount"]
    assert spent > 0
    assert await shop.balance() == 10_000
    assert (await _ledger(shop))[-2:] == [
        (CreditReason.SPENT, -spent, payment_id.hex()),
        (CreditReason.RELEASED, spent, payment_id.hex()),
    ]


async def test_a_covered_upgrade_whose_room_went_since_its_quote_charges_nothing(
    shop: Shop,
) -> None:
    """An upgrade the balance pays wholly is booked right after its quote. If its host's room
    is taken in between, nothing is booked: 422, the quote expired, its credit given back
    once (the later release sweep gives nothing more), the VM and its upgrades as before."""
    vm = await _paid_vm(shop)
    await _give(shop, 10_000)
    settle = _settle(shop)
    taken: list[bytes] = []

    async def room_taken_then_settle(payment_id: bytes) -> object:
        taken.append(payment_id)
        async with shop.factory() as uow:  # another order took the host's last room
            host = await uow.hosts.get(vm.host_id)
            assert host is not None
            await uow.hosts.update(attrs.evolve(host, cpu=2))
            await uow.commit()
        return await settle(payment_id)

    with pytest.raises(NoRoomToUpgrade):
        await _upgrade(shop, vm, room_taken_then_settle)

    [payment_id] = taken
    await _assert_withdrawn(shop, payment_id)
    shop.clock.advance(timedelta(hours=1))
    assert await release_expired_credit(shop.factory, shop.clock) == 0
    assert await shop.balance() == 10_000
    found = await shop.vm(vm.id)
    assert found.template_id == vm.template_id and found.resize_requested is None
    async with shop.factory() as uow:
        assert await uow.invoices.get_by_payment(payment_id) is None


async def test_a_covered_upgrade_whose_expiry_moved_since_its_quote_charges_nothing(
    shop: Shop,
) -> None:
    """The same when a renewal is booked between the quote and its booking: the upgrade's
    price ran to the old expiry, so it is not booked (409) and its credit comes back."""
    vm = await _paid_vm(shop)
    await _give(shop, 10_000)
    settle = _settle(shop)
    taken: list[bytes] = []

    async def renewed_then_settle(payment_id: bytes) -> object:
        taken.append(payment_id)
        await shop.complete(await shop.renew(vm))
        return await settle(payment_id)

    with pytest.raises(UpgradeQuoteOutdated) as refused:
        await _upgrade(shop, vm, renewed_then_settle)

    assert refused.value.kind == "conflict"
    [payment_id] = taken
    await _assert_withdrawn(shop, payment_id)
    assert (await shop.vm(vm.id)).template_id == vm.template_id


async def test_a_payment_for_an_unrestorable_service_becomes_credit_once(shop: Shop) -> None:
    vm = await _paid_vm(shop)
    await _give(shop, 100)
    payment = await _renew(shop, vm)  # Lightning: 32 cents' worth invoiced, 100 from credit
    paid = attrs.evolve(payment, is_paid=True, paid_at=shop.clock.now())
    for _ in range(2):  # a replay books nothing more
        async with shop.factory() as uow:
            await credit_unrestorable(uow, paid, "EUR", "host removed")
            await uow.commit()
    assert await shop.balance() == PLAN_EUR_CENTS  # 32 received + the 100 applied
    assert (await _ledger(shop))[-1] == (CreditReason.OVERPAYMENT, PLAN_EUR_CENTS, payment.id.hex())


async def _plan_repriced_in_gbp(shop: Shop) -> Vm:
    """A paid VM whose plan the operator then moved from EUR to GBP (same figure, 1.32): the
    subscription stays in EUR, so its balance and its price are in two currencies. GBP is
    at 80 000 per BTC, EUR at 100 000 (`_with_gbp`)."""
    vm = await _paid_vm(shop)
    await lifecycle_world.plan_moved_to_gbp(shop)
    return vm


GBP_PER_BTC = Decimal(80_000)
EUR_PER_BTC = Decimal(100_000)


def _with_gbp(shop: Shop) -> Shop:
    return lifecycle_world.with_gbp(shop, GBP_PER_BTC)


async def test_credit_in_the_subscriptions_currency_is_worth_its_own_rate(shop: Shop) -> None:
    """EUR credit paying a GBP-priced renewal by Lightning counts at the EUR rate: 1.32 EUR
    is 1 320 000 msat, not the 1 650 000 msat of 1.32 GBP (it paid the month whole)."""
    shop = _with_gbp(shop)
    vm = await _plan_repriced_in_gbp(shop)
    await _give(shop, PLAN_EUR_CENTS)
    before = (await shop.subscription(vm)).expires

    payment = await _renew(shop, vm)

    assert payment.rate == GBP_PER_BTC  # the price's currency
    applied = payment.metadata["credit_applied"]
    assert applied["amount"] == PLAN_EUR_CENTS and applied["currency"] == "EUR"
    assert applied["charged"] == fiat_to_msat(PLAN_EUR_CENTS, EUR_PER_BTC) == 1_320_000
    assert not payment.is_paid and payment.amount > 0  # the rest is invoiced
    assert (await shop.subscription(vm)).expires == before
    assert await shop.balance() == 0


async def test_an_unrestorable_payment_is_credited_at_its_currencys_own_rate(
    shop: Shop,
) -> None:
    """A Lightning payment quoted at the GBP rate (the plan's) and booked as credit in the
    subscription's EUR is valued at the EUR rate the quote stored: 1 650 000 msat is 1.65
    EUR. At the GBP rate it was booked as 1.32 "EUR" (with the JPY rate, a hundredfold)."""
    shop = _with_gbp(shop)
    vm = await _plan_repriced_in_gbp(shop)
    payment = await shop.renew(vm)
    assert payment.rate == GBP_PER_BTC and payment.currency == "BTC"
    paid = attrs.evolve(payment, is_paid=True, paid_at=shop.clock.now())
    async with shop.factory() as uow:
        booked = (await credit_unrestorable(uow, paid, "EUR", "host removed")).booked
        await uow.commit()
    assert payment.amount == 1_650_000
    assert booked == msat_to_fiat(payment.amount, EUR_PER_BTC) == 165
    assert await shop.balance() == booked


async def test_the_invoice_of_a_gbp_priced_eur_subscription_shows_eur_at_the_eur_rate(
    shop: Shop,
) -> None:
    """The invoice is in the subscription's EUR: its msat are shown at the EUR rate the
    quote stored (1 650 000 msat: 1.65 EUR), not as 1.32 "EUR" at the GBP rate."""
    shop = _with_gbp(shop)
    vm = await _plan_repriced_in_gbp(shop)
    payment = await shop.renew(vm)
    assert payment.rate == GBP_PER_BTC
    await shop.complete(payment)
    async with shop.factory() as uow:
        invoice = await uow.invoices.get_by_payment(payment.id)
    assert invoice is not None and invoice.currency == "EUR"
    assert invoice.net == msat_to_fiat(payment.amount, EUR_PER_BTC) == 165
    assert invoice.document.btc_rate == EUR_PER_BTC


async def test_an_upgrade_priced_in_another_currency_spends_that_balance(shop: Shop) -> None:
    """The plan is in EUR, the custom pricing in USD: the upgrade is priced in USD, so USD
    credit pays it and EUR credit is left alone (never converted at the USD quote's rate)."""
    vm = await _paid_vm(shop)
    async with shop.factory() as uow:
        [pricing] = await uow.custom_pricing.list_by_region(1)
        await uow.custom_pricing.update(attrs.evolve(pricing, currency="USD"))
        await uow.commit()
    await _give(shop, 500)  # EUR
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="USD",
        amount=7,
        note="test",
    )

    partly = await _upgrade(shop, vm)

    assert partly.currency == "USD" and not partly.is_paid
    assert partly.metadata["credit_applied"] == {"amount": 7, "currency": "USD", "charged": 7}
    async with shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == {"EUR": 500, "USD": 0}
