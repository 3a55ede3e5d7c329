"""What the NWC auto-renewal says and books when its payment bought no time, on memory, SQLite
and MariaDB. A wallet that answers with an error though its payment was booked (as account
credit, or as the renewal) is no "renewal failed": the user hears of the credit once, or that
it renewed, and the credit is booked once. Account credit that covers the interval, its
period renewed otherwise or its VM deleted (not restorable) between the storing of its
payment and its booking, buys nothing and is given back exactly once: no "Auto-Renewed", no
second period bought from credit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import attrs
import pytest

from app.admin.subscriptions import SubscriptionPatch, update_subscription
from app.autorenew import NwcAutoRenewer
from app.billing.credit_balance import adjust_credit
from app.billing.credit_settle import completion_settle
from app.worker.context import AutoRenewal, AutoRenewer, RenewalOutcome
from app.worker.jobs import build_handlers
from domain.account_credit import CreditReason, credit_applied
from domain.credit import CreditMode, payment_meta
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY
from ports.lightning import SettledInvoice
from ports.nwc import NwcError
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import RecordingWallet, with_renewer
from tests.contract.test_auto_renewal_double_charge import (
    SettlingWallet,
    _extended_by_manual_only,
    _opted_in,
    _race,
    _renewals,
)
from tests.contract.test_unrestorable_payment import _disable_host
from tests.unit.billing.world import BOB, PLAN_EUR_CENTS
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world
RUN = timedelta(seconds=30)
CREDITED = "Payment added to your account credit"
GIFT = 1_000_000


@attrs.define
class Outcomes:
    """The worker's renewer, recording how each attempt ended."""

    inner: AutoRenewer
    seen: list[RenewalOutcome] = attrs.field(factory=list)

    async def can_attempt(self, subscription: Subscription) -> bool:
        return await self.inner.can_attempt(subscription)

    async def attempt(self, subscription: Subscription, period: datetime) -> AutoRenewal:
        done = await self.inner.attempt(subscription, period)
        self.seen.append(done.outcome)
        return done


def _recorded(world: World) -> Outcomes:
    recorded = Outcomes(world.deps.auto_renewer)
    world.deps = attrs.evolve(world.deps, auto_renewer=recorded)
    world.handlers = build_handlers(world.deps)
    return recorded


class PaysThenErrs(SettlingWallet):
    """Pays (its payment is booked, or the cancel refuses it), then answers with an error."""

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        await super().pay_invoice(connection_string, bolt11)
        raise NwcError("The wallet reported a failure")


class SettlesAtNodeThenErrs(RecordingWallet):
    """The node settles the invoice (its booking not heard yet), then the wallet answers
    with an error."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        self.asked.append(bolt11)
        node = self.world.shop.node
        paid = next(i for i in node.invoices.values() if i.bolt11 == bolt11)
        node.settled[paid.payment_hash] = SettledInvoice(
            payment_hash=paid.payment_hash,
            settle_index=1,
            amount_paid_msat=paid.amount_msat,
            settled_at=self.world.now,
        )
        raise NwcError("The wallet reported a failure")


async def _nothing() -> None:
    return None


async def test_a_wallet_error_after_its_payment_became_credit_tells_of_the_credit_only(
    world: World,
) -> None:
    """The user's own renewal completed while the wallet paid, and the wallet's payment
    landed anyway (booked as credit), then the wallet answered with an error: CREDITED. The
    user is told of the credit once, neither that the renewal failed nor that it renewed;
    the credit is booked once."""
    race = await _race(world)
    wallet = PaysThenErrs(world, lambda: world.complete(race.manual), honours_cancel=False)
    with_renewer(world, wallet)
    recorded = _recorded(world)
    before = await world.balance(race.sub)

    await world.lifecycle(runs=5, step=RUN)
    await world.run_jobs()

    assert recorded.seen == [RenewalOutcome.CREDITED]
    assert wallet.asked == [race.reused.external_data]
    _extended_by_manual_only(race, await world.sub(race.vm))
    reused = await world.shop.payment(race.reused.id)
    assert reused.is_paid and reused.time_value == 0
    assert payment_meta(reused)[CREDIT_KEY]["mode"] == CreditMode.UNRESTORABLE.value
    async with world.shop.factory() as uow:
        [entry] = await uow.credit_ledger.list_by_reference(race.reused.id.hex())
    assert PLAN_EUR_CENTS - 2 <= entry.amount <= PLAN_EUR_CENTS
    assert await world.balance(race.sub) - before == entry.amount
    assert world.notifier.titled(f"[VM{race.vm.id}] Expiring Soon") == []  # no "failed"
    assert world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed") == []
    [told] = world.notifier.titled(f"[Subscription {race.sub.id}] {CREDITED}")
    assert told.user_id == race.sub.user_id


@pytest.mark.parametrize("where", ["booked", "settled-at-node"])
async def test_a_wallet_error_though_its_payment_renewed_is_no_failure(
    world: World, where: str
) -> None:
    """The wallet paid (booked, or settled at the node and booked later) but answered with an
    error: the subscription is renewed once and the user is told so, not that the renewal
    failed and that they should renew by hand."""
    race = await _race(world)
    if where == "booked":
        wallet: RecordingWallet = PaysThenErrs(world, _nothing, honours_cancel=True)
    else:
        wallet = SettlesAtNodeThenErrs(world)
    with_renewer(world, wallet)
    recorded = _recorded(world)

    await world.lifecycle(runs=5, step=RUN)
    if where == "settled-at-node":
        await world.complete(race.reused)  # the settlement, heard after the answer
    await world.run_jobs()

    assert recorded.seen == [RenewalOutcome.PAID]
    assert wallet.asked == [race.reused.external_data]
    after = await world.sub(race.vm)
    assert after.expires is not None
    assert race.period + timedelta(days=28) <= after.expires <= race.period + timedelta(days=31)
    assert world.notifier.titled(f"[VM{race.vm.id}] Expiring Soon") == []
    assert len(world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed")) == 1


@attrs.define
class Covered:
    """A paid VM opted in to auto-renewal, a day before its expiry (`period`), its user
    holding credit that covers the interval, and a two-interval renewal the user may pay by
    hand (`manual`, Lightning, no credit)."""

    vm: Vm
    sub: Subscription
    period: datetime
    manual: SubscriptionPayment


Meanwhile = Callable[[Covered], Awaitable[Any]]


async def _covered_race(world: World, meanwhile: Meanwhile) -> tuple[Covered, Outcomes, int]:
    """The auto-renewal pays from credit alone, and `meanwhile` runs after its payment is
    stored, before it is booked. The setting, the recorded outcomes and the balance before
    the run."""
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))
    manual = await world.shop.renew(vm, intervals=2)
    await adjust_credit(
        world.shop.factory,
        world.shop.clock,
        admin_id=sub.user_id,
        user_id=sub.user_id,
        currency=sub.currency,
        amount=GIFT,
        note="gift",
    )
    race = Covered(vm, sub, sub.expires, manual)
    shop = world.shop
    booking = completion_settle(shop.factory, shop.clock, shop.rails, world.queue)

    async def settle(payment_id: bytes) -> object:
        await meanwhile(race)
        return await booking(payment_id)

    wallet = RecordingWallet()
    renewer = NwcAutoRenewer(
        shop.factory, shop.clock, shop.rails, shop.rates, shop.tax_rates, wallet, settle
    )
    world.deps = attrs.evolve(world.deps, auto_renewer=renewer)
    recorded = _recorded(world)
    return race, recorded, await world.balance(sub)


def _expires_within(after: Subscription, start: datetime, days: tuple[int, int]) -> None:
    assert after.expires is not None
    assert start + timedelta(days=days[0]) <= after.expires <= start + timedelta(days=days[1])


async def _credit_alone(world: World, race: Covered) -> SubscriptionPayment:
    [covered] = [p for p in await _renewals(world, race.vm) if credit_applied(payment_meta(p))]
    return covered


async def _given_back_once(world: World, race: Covered, balance: int) -> None:
    """The credit-alone payment bought nothing: unpaid, its credit spent and given back once
    (also after the release sweep has run), the balance as before; neither "Auto-Renewed"
    nor a credit notice."""
    world.advance(timedelta(minutes=30))  # past the covered quote's expiry and the margin
    await world.lifecycle(runs=2, step=RUN)
    await world.run_jobs()
    covered = await _credit_alone(world, race)
    assert not covered.is_paid
    applied = credit_applied(payment_meta(covered))
    assert applied is not None
    async with world.shop.factory() as uow:
        entries = await uow.credit_ledger.list_by_reference(covered.id.hex())
    assert sorted((e.reason.value, e.amount) for e in entries) == sorted(
        [(CreditReason.SPENT.value, -applied[0]), (CreditReason.RELEASED.value, applied[0])]
    )
    assert await world.balance(race.sub) == balance
    assert world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed") == []
    assert world.notifier.titled(f"[Subscription {race.sub.id}] {CREDITED}") == []


async def test_credit_covering_a_period_renewed_meanwhile_buys_no_second_one(
    world: World,
) -> None:
    """The user's own two-interval renewal completes after the credit-alone payment of the
    auto-renewal was stored: the auto-renewal's period is renewed, so its credit buys no
    third interval (it did, and said "Auto-Renewed"); the credit is given back once."""

    async def paid_by_hand(race: Covered) -> None:
        await world.complete(race.manual)

    race, recorded, balance = await _covered_race(world, paid_by_hand)

    await world.lifecycle(runs=1)

    assert recorded.seen == [RenewalOutcome.NOT_DUE]
    _expires_within(await world.sub(race.vm), race.period, (58, 62))  # the manual two only
    await _given_back_once(world, race, balance)
    _expires_within(await world.sub(race.vm), race.period, (58, 62))
    assert world.notifier.titled(f"[VM{race.vm.id}] Expiring Soon") == []


async def test_credit_covering_a_vm_deleted_meanwhile_is_given_back_not_auto_renewed(
    world: World,
) -> None:
    """The VM is deleted (and cannot be restored) after the credit-alone payment was stored:
    it buys no time, so nothing is booked and the credit comes back once; the user is not
    told it auto-renewed (it was, with "your payment of BTC 0.00000000 … was added to your
    account credit" beside it)."""

    async def deleted_unrestorable(race: Covered) -> None:
        async with world.shop.factory() as uow:
            await uow.vms.delete(race.vm.id)
            await uow.commit()
        await _disable_host(world, race.vm)

    race, recorded, balance = await _covered_race(world, deleted_unrestorable)

    await world.lifecycle(runs=1)

    assert recorded.seen == [RenewalOutcome.NOT_DUE]
    assert (await world.sub(race.vm)).expires == race.period
    await _given_back_once(world, race, balance)
    assert (await world.sub(race.vm)).expires == race.period
    assert world.notifier.titled(f"[VM{race.vm.id}] Expiring Soon") == []


async def test_credit_covering_a_subscription_switched_off_meanwhile_is_given_back(
    world: World,
) -> None:
    """An admin switches the subscription off after the credit-alone payment was stored: it
    buys nothing, the credit comes back once, and the user is told the automatic renewal
    failed (not "Auto-Renewed", nor that a payment was added to their credit)."""

    async def switched_off(race: Covered) -> None:
        await update_subscription(
            world.shop.factory,
            race.sub.id,
            SubscriptionPatch(is_active=False),
            clock=world.clock,
            rails=world.shop.rails,
            admin_id=BOB,
        )

    race, recorded, balance = await _covered_race(world, switched_off)

    await world.lifecycle(runs=1)

    assert recorded.seen == []  # it failed
    await _given_back_once(world, race, balance)
    [told] = world.notifier.titled(f"[VM{race.vm.id}] Expiring Soon")
    assert "The automatic renewal failed" in told.message


async def test_credit_covering_the_interval_still_renews_once_without_a_race(
    world: World,
) -> None:
    """The claim the credit-alone payment carries changes nothing when no one else renews."""

    async def nothing(race: Covered) -> None:
        return None

    race, recorded, balance = await _covered_race(world, nothing)

    await world.lifecycle(runs=5, step=RUN)
    await world.run_jobs()

    assert recorded.seen == [RenewalOutcome.PAID]
    covered = await _credit_alone(world, race)
    applied = credit_applied(payment_meta(covered))
    assert covered.is_paid and covered.time_value and applied is not None
    assert await world.balance(race.sub) == balance - applied[0]
    _expires_within(await world.sub(race.vm), race.period, (28, 31))
    assert len(world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed")) == 1
