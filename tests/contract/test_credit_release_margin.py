"""The account credit a lapsed quote applied comes back only `RELEASE_MARGIN` after it lapsed,
and not while the Lightning node holds a settlement of it that is not booked yet (or cannot
be asked), on memory, SQLite and MariaDB: a quote paid in its last second is booked with its
credit spent once, never released as well (EUR 1.00 of credit on a EUR 1.32 renewal, the
other 0.32 and its VAT by Lightning at 100 000 EUR/BTC)."""

from __future__ import annotations

from datetime import timedelta

from app.billing.credit_balance import adjust_credit
from app.billing.credit_release import RELEASE_MARGIN, release_expired_credit
from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditReason, InsufficientCredit
from domain.enums import PaymentMethod
from domain.intervals import add_months
from domain.model import SubscriptionPayment, Vm
from ports.jobs import CheckSubscriptions
from ports.lightning import SettledInvoice
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, PLAN_EUR_CENTS, Shop
from tests.unit.worker.world import World

database = storage_backends.database
shop = lifecycle_world.shop
world = lifecycle_world.world_with_rails("order_rails")

SECOND = timedelta(seconds=1)
#: the credit the quote applies (cents); the plan costs `PLAN_EUR_CENTS` (132)
CREDIT = 100


async def _quote_with_credit(shop: Shop) -> tuple[Vm, SubscriptionPayment]:
    """A paid VM, EUR 1.00 of credit, and a Lightning renewal that applies it (the 0.32 left
    by Lightning): the balance is 0, the credit held by the quote."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=CREDIT,
        note="gift",
    )
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    payment = await shop.renew(vm, settle=settle, method=PaymentMethod.LIGHTNING)
    assert payment.metadata["credit_applied"]["amount"] == CREDIT
    assert payment.amount == (PLAN_EUR_CENTS - CREDIT) * 10_000  # 0.32 EUR in msat
    assert await _balance(shop) == 0
    return vm, payment


def _settled_at_node(shop: Shop, payment: SubscriptionPayment) -> None:
    """The node settles the invoice in its last second; the intake has not reported it."""
    shop.clock.set(payment.expires - SECOND)
    shop.node.settled[payment.id] = SettledInvoice(
        payment_hash=payment.id,
        settle_index=1,
        amount_paid_msat=payment.total,
        settled_at=shop.clock.now(),
    )


async def _balance(shop: Shop) -> int:
    async with shop.factory() as uow:
        return (await uow.credit_ledger.balances(ALICE)).get("EUR", 0)


async def _entries(shop: Shop, payment: SubscriptionPayment) -> list[tuple[CreditReason, int]]:
    async with shop.factory() as uow:
        page = await uow.credit_ledger.list_page(ALICE, 100, 0)
    refs = {payment.id.hex(), f"late:{payment.id.hex()}"}
    return [(e.reason, e.amount) for e in reversed(page.items) if e.reference in refs]


async def _spend_elsewhere(shop: Shop, amount: int) -> bool:
    """The user spends `amount` of EUR credit on something else; False: not there to spend."""
    try:
        await adjust_credit(
            shop.factory,
            shop.clock,
            admin_id=ALICE,
            user_id=ALICE,
            currency="EUR",
            amount=-amount,
            note="spent elsewhere",
        )
    except InsufficientCredit:
        return False
    return True


async def test_a_quote_paid_in_its_last_second_is_booked_with_its_credit_never_released(
    shop: Shop,
) -> None:
    """The sweep runs a second after the quote lapsed, before the intake books the
    settlement: nothing is released (it gave the EUR 1.00 back, which the user could spend
    elsewhere, and the booking then found it gone and bought 32/132 of a month)."""
    vm, payment = await _quote_with_credit(shop)
    _settled_at_node(shop, payment)
    before = (await shop.subscription(vm)).expires
    assert before is not None

    shop.clock.set(payment.expires + SECOND)
    assert await release_expired_credit(shop.factory, shop.clock) == 0
    assert await _balance(shop) == 0
    assert not await _spend_elsewhere(shop, CREDIT)  # the credit is still the quote's

    report = await shop.complete(payment)  # the intake reports the settlement

    assert report.completed and report.problems == ()
    paid = await shop.payment(payment.id)
    assert "credit" not in paid.metadata  # calendar time as quoted: nothing unpaid
    assert (await shop.subscription(vm)).expires == add_months(before, 1)  # the whole month
    shop.clock.advance(RELEASE_MARGIN + timedelta(hours=1))
    assert await release_expired_credit(shop.factory, shop.clock) == 0
    assert await _balance(shop) == 0
    assert await _entries(shop, payment) == [(CreditReason.SPENT, -CREDIT)]


async def test_an_unpaid_quotes_credit_comes_back_once_the_margin_has_passed(
    shop: Shop,
) -> None:
    _, payment = await _quote_with_credit(shop)

    shop.clock.set(payment.expires + RELEASE_MARGIN - SECOND)
    assert await release_expired_credit(shop.factory, shop.clock) == 0
    assert await _balance(shop) == 0
    shop.clock.set(payment.expires + RELEASE_MARGIN)
    assert await release_expired_credit(shop.factory, shop.clock) == 1
    assert await release_expired_credit(shop.factory, shop.clock) == 0
    assert await _balance(shop) == CREDIT
    assert await _entries(shop, payment) == [
        (CreditReason.SPENT, -CREDIT),
        (CreditReason.RELEASED, CREDIT),
    ]


async def test_a_settlement_the_node_holds_keeps_the_credit_past_the_margin(
    shop: Shop,
) -> None:
    """The intake is down for an hour: the node is asked, holds the settlement, so the
    credit stays with the quote, and the booking takes nothing more when it comes."""
    _, payment = await _quote_with_credit(shop)
    _settled_at_node(shop, payment)
    shop.clock.set(payment.expires + RELEASE_MARGIN + timedelta(hours=1))

    assert await release_expired_credit(shop.factory, shop.clock, rails=shop.rails) == 0
    assert await _balance(shop) == 0

    report = await shop.complete(payment)
    assert report.completed and report.problems == ()
    assert await _balance(shop) == 0
    assert await _entries(shop, payment) == [(CreditReason.SPENT, -CREDIT)]


async def test_while_the_node_cannot_be_asked_lightning_credit_waits(shop: Shop) -> None:
    _, payment = await _quote_with_credit(shop)
    shop.clock.set(payment.expires + RELEASE_MARGIN + timedelta(hours=1))

    shop.node.down = True
    assert await release_expired_credit(shop.factory, shop.clock, rails=shop.rails) == 0
    assert await _balance(shop) == 0
    shop.node.down = False  # it answers: no settlement, the credit comes back
    assert await release_expired_credit(shop.factory, shop.clock, rails=shop.rails) == 1
    assert await _balance(shop) == CREDIT


async def test_the_subscription_check_asks_the_node_before_releasing(world: World) -> None:
    """The worker's sweep is given the rails (`order_rails`): the settlement the node holds
    keeps the credit; once the node says none, it comes back."""
    _, payment = await _quote_with_credit(world.shop)
    _settled_at_node(world.shop, payment)
    world.shop.clock.set(payment.expires + RELEASE_MARGIN + timedelta(hours=1))

    await world.queue.send(CheckSubscriptions())
    await world.run_jobs()
    assert await _balance(world.shop) == 0

    del world.shop.node.settled[payment.id]
    world.advance(timedelta(minutes=10))
    await world.queue.send(CheckSubscriptions())
    await world.run_jobs()
    assert await _balance(world.shop) == CREDIT
