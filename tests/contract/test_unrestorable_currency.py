"""A card payment for a service that cannot be delivered, charged in a re-priced plan's
currency, becomes credit in its subscription's currency, on memory, SQLite and MariaDB:
converted at the quote's own rates, rounded down, once (before, it became no credit at all).
A Lightning one is rounded down too: the payer is never credited more than arrived. Credit
it applied in another currency than its subscription's comes back in its own, once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

import attrs
import pytest

from app.admin.subscriptions import SubscriptionPatch, update_subscription
from app.billing.credit_balance import adjust_credit
from app.billing.credit_overpayment import credit_unrestorable
from app.billing.credit_release import RELEASE_MARGIN, release_expired_credit
from app.billing.credit_settle import completion_settle
from domain.account_credit import CreditReason
from domain.enums import PaymentMethod
from domain.price_basis import RATES_KEY
from ports.jobs import SendAdminNotification, SendNotification
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, BOB, PLAN_EUR_CENTS, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: GBP at 70 000 per BTC, EUR at 100 000: GBP 1.32 is worth EUR 1.8857… → 1.88
GBP_PER_BTC = Decimal(70_000)
WORTH_EUR = 188


async def _card_renewal_of_a_gbp_plan(shop: Shop) -> Any:
    """A paid EUR subscription whose plan the operator moved to GBP (same figure, 1.32), and
    a card renewal of it, charged in GBP, marked paid."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    await lifecycle_world.plan_moved_to_gbp(shop)
    payment = await shop.renew(vm, method=PaymentMethod.REVOLUT)
    assert (payment.currency, payment.amount) == ("GBP", PLAN_EUR_CENTS)
    return attrs.evolve(payment, is_paid=True, paid_at=shop.clock.now())


async def _book(shop: Shop, paid: Any) -> int:
    async with shop.factory() as uow:
        booked = (await credit_unrestorable(uow, paid, "EUR", "host removed")).booked
        await uow.commit()
    return booked


async def test_a_gbp_card_payment_is_credited_in_eur_at_its_quotes_rates_once(
    shop: Shop,
) -> None:
    shop = lifecycle_world.with_gbp(shop, GBP_PER_BTC)
    paid = await _card_renewal_of_a_gbp_plan(shop)

    assert await _book(shop, paid) == WORTH_EUR
    assert await _book(shop, paid) == 0  # a replay books nothing more

    async with shop.factory() as uow:
        page = await uow.credit_ledger.list_page(ALICE, 10, 0)
        assert await uow.credit_ledger.balances(ALICE) == {"EUR": WORTH_EUR}
    [entry] = page.items
    assert (entry.reason, entry.currency, entry.amount) == (
        CreditReason.OVERPAYMENT,
        "EUR",
        WORTH_EUR,
    )
    assert entry.note == (
        "host removed; GBP 1.32 as EUR 1.88 at BTC/EUR 100000, BTC/GBP 70000 (exact, rounded down)"
    )


async def test_without_the_quotes_rates_nothing_is_booked(shop: Shop) -> None:
    """A payment quoted before rates were stored cannot be valued: 0, the admins are told."""
    shop = lifecycle_world.with_gbp(shop, GBP_PER_BTC)
    paid = await _card_renewal_of_a_gbp_plan(shop)
    meta = {k: v for k, v in paid.metadata.items() if k != RATES_KEY}

    assert await _book(shop, attrs.evolve(paid, metadata=meta)) == 0

    async with shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == {}


async def _lightning_renewal_paid(shop: Shop, msat: int) -> Any:
    """A Lightning renewal (EUR at 100 000 per BTC: a cent is 10 000 msat) of which `msat`
    arrived (an upgrade's small pro-rated charge, say), marked paid."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    payment = await shop.renew(vm)
    assert payment.currency == "BTC" and payment.rate == Decimal(100_000)
    return attrs.evolve(payment, amount=msat, tax=0, is_paid=True, paid_at=shop.clock.now())


@pytest.mark.parametrize(
    ("msat", "cents"),
    [(5_000, 0), (9_999, 0), (10_000, 1), (15_000, 1), (19_999, 1), (20_000, 2)],
)
async def test_a_lightning_payment_is_credited_rounded_down(
    shop: Shop, msat: int, cents: int
) -> None:
    """Half a cent and more is not a cent (it was rounded half up: 5 sat became 1 cent)."""
    paid = await _lightning_renewal_paid(shop, msat)

    assert await _book(shop, paid) == cents
    assert await _book(shop, paid) == 0  # a replay books nothing more

    async with shop.factory() as uow:
        balances = await uow.credit_ledger.balances(ALICE)
    assert balances == ({"EUR": cents} if cents else {})


async def _ledger(shop: Shop) -> list[tuple[str, CreditReason, int, str | None]]:
    async with shop.factory() as uow:
        page = await uow.credit_ledger.list_page(ALICE, 100, 0)
    return [(e.currency, e.reason, e.amount, e.reference) for e in reversed(page.items)]


async def _give_eur(shop: Shop, amount: int) -> None:
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=ALICE,
        user_id=ALICE,
        currency="EUR",
        amount=amount,
        note="gift",
    )


async def _eur_credit_renewal_moved_to_usd(shop: Shop) -> Any:
    """A renewal that applied EUR 1.00 of credit (the rest by Lightning), then the operator
    moved its subscription to USD (which expires the quote, D23; the worker gives its
    credit back) and deleted its VM on a host since disabled: a late payment of it cannot
    be delivered."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    await _give_eur(shop, 100)
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    payment = await shop.renew(vm, settle=settle, method=PaymentMethod.LIGHTNING)
    assert payment.metadata["credit_applied"]["amount"] == 100
    sub = await shop.subscription(vm)
    await update_subscription(
        shop.factory,
        sub.id,
        SubscriptionPatch(currency="USD"),
        clock=shop.clock,
        rails=None,
        admin_id=BOB,  # not the owner (ALICE)
    )
    async with shop.factory() as uow:
        found = await uow.vms.get(vm.id)
        assert found is not None
        await uow.vms.delete(found.id)
        host = await uow.hosts.get(found.host_id)
        assert host is not None
        await uow.hosts.update(attrs.evolve(host, enabled=False))
        await uow.commit()
    shop.clock.advance(RELEASE_MARGIN + timedelta(minutes=1))
    assert await release_expired_credit(shop.factory, shop.clock) == 1
    return payment


async def test_credit_applied_in_another_currency_comes_back_in_its_own_once(
    shop: Shop,
) -> None:
    """The payment's value is credited in the subscription's currency (USD now), and the EUR
    credit it applied comes back in EUR as an entry of its own (it was dropped: the user
    lost it). Both notices say so. A replay of the booking books nothing more."""
    payment = await _eur_credit_renewal_moved_to_usd(shop)
    shop.queue.sent.clear()

    report = await shop.complete(payment)  # the wallet paid just before the cancel

    assert report.completed
    ref = payment.id.hex()
    *_, respent, back, value = await _ledger(shop)
    assert respent == ("EUR", CreditReason.SPENT, -100, f"late:{ref}")
    assert back == ("EUR", CreditReason.RELEASED, 100, f"{ref}/applied")
    assert value[:2] == ("USD", CreditReason.OVERPAYMENT) and value[3] == ref
    async with shop.factory() as uow:
        balances = await uow.credit_ledger.balances(ALICE)
        paid = await uow.payments.get(payment.id)
    assert balances == {"EUR": 100, "USD": value[2]}
    told = {type(job).__name__: job for job in shop.queue.sent}
    user = cast(SendNotification, told["SendNotification"]).message
    assert "The account credit it used, EUR 1.00, was given back" in user
    admins = cast(SendAdminNotification, told["SendAdminNotification"]).message
    assert "The account credit it had applied, EUR 1.00, was given back" in admins

    assert paid is not None
    async with shop.factory() as uow:  # a replay (the booking's is_paid gate aside)
        assert (await credit_unrestorable(uow, paid, "USD", "host removed")).booked == 0
        await uow.commit()
    assert (await _ledger(shop))[-2:] == [back, value]
    async with shop.factory() as uow:
        assert await uow.credit_ledger.balances(ALICE) == balances


async def test_only_the_paid_part_of_the_applied_credit_comes_back(shop: Shop) -> None:
    """Credit released and spent elsewhere before the payment came (`unpaid_credit`) was
    never paid: only the rest of what it applied comes back, in its own currency."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    await _give_eur(shop, 100)
    settle = completion_settle(shop.factory, shop.clock, shop.rails, shop.queue)
    payment = await shop.renew(vm, settle=settle, method=PaymentMethod.LIGHTNING)
    assert payment.metadata["credit_applied"]["amount"] == 100
    paid = attrs.evolve(payment, is_paid=True, paid_at=shop.clock.now())

    for _ in range(2):
        async with shop.factory() as uow:
            await credit_unrestorable(uow, paid, "USD", "host removed", unpaid_credit=40)
            await uow.commit()

    back = [e for e in await _ledger(shop) if e[3] == f"{payment.id.hex()}/applied"]
    assert back == [("EUR", CreditReason.RELEASED, 60, f"{payment.id.hex()}/applied")]
