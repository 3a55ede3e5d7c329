"""What the NWC auto-renewal says when its wallet answers with an error though the payment was
booked, on memory, SQLite and MariaDB: no "renewal failed". Booked as account credit (the
period renewed otherwise meanwhile), the user hears of the credit once and it is booked once;
booked as the renewal (or settled at the node), the user is told it renewed."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs
import pytest

from app.worker.context import AutoRenewal, AutoRenewer, RenewalOutcome
from app.worker.jobs import build_handlers
from domain.credit import CreditMode, payment_meta
from domain.model import Subscription
from domain.price_basis import CREDIT_KEY
from ports.lightning import SettledInvoice
from ports.nwc import NwcError
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import RecordingWallet, with_renewer
from tests.contract.test_auto_renewal_double_charge import (
    SettlingWallet,
    _extended_by_manual_only,
    _race,
)
from tests.unit.billing.world import PLAN_EUR_CENTS
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world
RUN = timedelta(seconds=30)
CREDITED = "Payment added to your account credit"


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
