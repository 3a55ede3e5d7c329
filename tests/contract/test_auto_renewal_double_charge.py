"""The wallet's auto-renewal and a renewal the user pays by hand, racing for one period, on
memory, SQLite and MariaDB: one period is bought once. The wallet is not asked once the
period is renewed; a renewal completing while the wallet pays ends the wallet's invoice at
the node; and a wallet payment that lands anyway buys no second period: its value becomes
the user's account credit."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import attrs
import pytest

import app.autorenew
from app.billing.renewal import renew
from domain.credit import CreditMode, payment_meta
from domain.enums import SubscriptionPaymentType
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.price_basis import CREDIT_KEY
from domain.wallet_claim import CLAIM_KEY, claim_text
from ports.nwc import NwcError
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import RecordingWallet, with_renewer
from tests.contract.test_unrestorable_payment import _disable_host
from tests.unit.billing.world import PLAN_EUR_CENTS
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world
WALLET = "nostr+walletconnect://wallet"
RUN = timedelta(seconds=30)


async def _opted_in(world: World, vm: Vm) -> Subscription:
    sub = await world.sub(vm)
    async with world.shop.factory() as uow:
        await uow.subscriptions.update(attrs.evolve(sub, auto_renewal_enabled=True))
        user = await uow.users.get(sub.user_id)
        assert user is not None
        await uow.users.update(attrs.evolve(user, nwc_connection_string=WALLET))
        await uow.commit()
    return await world.sub(vm)


async def _renewals(world: World, vm: Vm) -> list[SubscriptionPayment]:
    return [
        p
        for p in await world.shop.payments(vm)
        if p.payment_type is SubscriptionPaymentType.RENEWAL
    ]


@attrs.define
class Race:
    """A paid VM opted in to auto-renewal, a day before its expiry (`period`), with two
    pending renewals the user asked for: `reused`, one interval (what the auto-renewal
    reuses, D10), and `manual`, two intervals (the one the user pays by hand)."""

    vm: Vm
    sub: Subscription
    period: Any
    reused: SubscriptionPayment
    manual: SubscriptionPayment


async def _race(world: World) -> Race:
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))
    reused = await world.shop.renew(vm)
    manual = await world.shop.renew(vm, intervals=2)
    assert reused.id != manual.id
    return Race(vm, sub, sub.expires, reused, manual)


class SettlingWallet(RecordingWallet):
    """Pays what it is asked: the node settles the invoice and the settlement completes its
    payment, unless the node cancelled the invoice first (`honours_cancel`: refused then, as a
    real node refuses to settle a cancelled invoice). `meanwhile` runs once the request is
    in, before the payment reaches the node: the user's own renewal landing then."""

    def __init__(
        self, world: World, meanwhile: Callable[[], Awaitable[Any]], honours_cancel: bool
    ) -> None:
        super().__init__()
        self.world = world
        self.meanwhile = meanwhile
        self.honours_cancel = honours_cancel

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        self.asked.append(bolt11)
        await self.meanwhile()
        paying = await self._payment(bolt11)
        if self.honours_cancel and paying.id in self.world.shop.node.cancelled:
            raise NwcError("The invoice was cancelled")
        await self.world.complete(paying)
        return "cd" * 32

    async def _payment(self, bolt11: str) -> SubscriptionPayment:
        async with self.world.shop.factory() as uow:
            payment_hash = next(
                h for h, i in self.world.shop.node.invoices.items() if i.bolt11 == bolt11
            )
            found = await uow.payments.get(payment_hash)
        assert found is not None
        return found


def _extended_by_manual_only(race: Race, after: Subscription) -> None:
    """The manual two-interval renewal moved the expiry, and nothing else did."""
    assert after.expires is not None
    assert race.period + timedelta(days=58) <= after.expires <= race.period + timedelta(days=62)


async def test_a_renewal_paid_between_the_reuse_and_the_wallet_is_not_paid_by_the_wallet(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The auto-renewal reused the pending invoice of its period; the user's own renewal
    completes before the wallet is asked. Looked at again under the subscription's lock just
    before the wallet is asked, the period is renewed: the wallet is not asked, nothing is
    said (the user renewed), and the reused invoice stays the user's to pay or let lapse."""
    race = await _race(world)
    wallet = with_renewer(world, RecordingWallet())

    async def then_paid_by_hand(*args: Any, **kwargs: Any) -> SubscriptionPayment:
        found = await renew(*args, **kwargs)
        assert found.id == race.reused.id  # the pending invoice of the period, reused
        await world.complete(race.manual)
        return found

    monkeypatch.setattr(app.autorenew, "renew", then_paid_by_hand)

    await world.lifecycle(runs=5, step=RUN)

    assert wallet.asked == []
    _extended_by_manual_only(race, await world.sub(race.vm))
    assert not (await world.shop.payment(race.reused.id)).is_paid
    assert world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed") == []
    assert world.notifier.titled(f"[VM{race.vm.id}] Expiring Soon") == []


async def test_a_renewal_paid_while_the_wallet_pays_ends_the_wallets_invoice_at_the_node(
    world: World,
) -> None:
    """The user's renewal completes after the wallet was asked, before its payment reached
    the node: that completion expires the invoice claimed for the renewed period and
    cancels it at the node, so the wallet's payment fails and no money moves; the failure
    is no "renewal failed" warning, since the period is renewed."""
    race = await _race(world)
    wallet = SettlingWallet(world, lambda: world.complete(race.manual), honours_cancel=True)
    with_renewer(world, wallet)

    await world.lifecycle(runs=5, step=RUN)

    assert wallet.asked == [race.reused.external_data]
    assert race.reused.id in world.shop.node.cancelled
    reused = await world.shop.payment(race.reused.id)
    assert not reused.is_paid and reused.expires <= world.now
    _extended_by_manual_only(race, await world.sub(race.vm))
    assert world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed") == []
    assert world.notifier.titled(f"[VM{race.vm.id}] Expiring Soon") == []


async def test_a_wallet_payment_landing_after_a_renewal_by_hand_becomes_credit(
    world: World,
) -> None:
    """The wallet's payment reaches the node before the cancel does: the money arrived twice
    for one period. The user's renewal keeps its two intervals; the wallet's payment buys no
    third one: it is booked as account credit (its value, once), says so on its row, and the
    user is told of the credit, not that the wallet renewed."""
    race = await _race(world)
    wallet = SettlingWallet(world, lambda: world.complete(race.manual), honours_cancel=False)
    with_renewer(world, wallet)
    before = await world.balance(race.sub)

    await world.lifecycle(runs=5, step=RUN)

    assert wallet.asked == [race.reused.external_data]
    _extended_by_manual_only(race, await world.sub(race.vm))
    reused = await world.shop.payment(race.reused.id)
    assert reused.is_paid and reused.time_value == 0
    assert payment_meta(reused)[CREDIT_KEY]["mode"] == CreditMode.UNRESTORABLE.value
    credited = await world.balance(race.sub) - before
    assert PLAN_EUR_CENTS - 2 <= credited <= PLAN_EUR_CENTS  # the month's net, msat floored
    async with world.shop.factory() as uow:
        [entry] = await uow.credit_ledger.list_by_reference(race.reused.id.hex())
    assert entry.amount == credited and entry.user_id == race.sub.user_id
    await world.run_jobs()
    assert world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed") == []  # it renewed nothing
    assert world.notifier.titled(f"[VM{race.vm.id}] Expiring Soon") == []
    title = f"[Subscription {race.sub.id}] Payment added to your account credit"
    [told] = world.notifier.titled(title)
    assert told.user_id == race.sub.user_id and "automatic renewal" in told.message
    [admins] = [n for n in world.notifier.to_admins() if "automatic renewal" in n.message]
    assert race.reused.id.hex() in admins.message or str(race.sub.id) in admins.message


async def test_a_wallet_payment_for_a_vm_deleted_meanwhile_is_credit_not_a_renewal(
    world: World,
) -> None:
    """The VM is deleted while the wallet pays (an admin's delete) and cannot be brought
    back (its host disabled): the wallet's payment buys no time though the expiry did not
    move. The user is told of the credit ("Payment added to your account credit"), never
    that the subscription was auto-renewed."""
    race = await _race(world)

    async def deleted_unrestorable() -> None:
        async with world.shop.factory() as uow:
            await uow.vms.delete(race.vm.id)
            await uow.commit()
        await _disable_host(world, race.vm)

    with_renewer(world, SettlingWallet(world, deleted_unrestorable, honours_cancel=True))

    await world.lifecycle(runs=1)
    await world.run_jobs()

    reused = await world.shop.payment(race.reused.id)
    assert reused.is_paid and reused.time_value == 0
    assert (await world.sub(race.vm)).expires == race.period  # the expiry did not move
    assert world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed") == []
    title = f"[Subscription {race.sub.id}] Payment added to your account credit"
    [told] = world.notifier.titled(title)
    assert told.user_id == race.sub.user_id


async def test_the_wallet_invoice_paid_in_its_own_period_still_renews(world: World) -> None:
    """No race: the wallet's payment of the period it was claimed for buys its interval as
    ever (the claim changes nothing for the payment that wins the period)."""
    race = await _race(world)

    async def nothing() -> None:
        return None

    wallet = SettlingWallet(world, nothing, honours_cancel=True)
    with_renewer(world, wallet)

    await world.lifecycle(runs=5, step=RUN)

    assert wallet.asked == [race.reused.external_data]
    reused = await world.shop.payment(race.reused.id)
    assert reused.is_paid and (reused.time_value or 0) > 0
    after = await world.sub(race.vm)
    assert after.expires is not None
    assert race.period + timedelta(days=28) <= after.expires <= race.period + timedelta(days=31)
    assert len(world.notifier.titled(f"[VM{race.vm.id}] Auto-Renewed")) == 1


class Killed(BaseException):
    """The worker process stopped mid-call (a kill, a shutdown): nothing after it runs."""


class KilledWhilePaying(RecordingWallet):
    """Pays (the node settles the invoice), then the worker dies before it hears back: the
    settlement is not completed yet and nothing of the answer is recorded."""

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        self.asked.append(bolt11)
        raise Killed


async def test_a_worker_killed_after_the_wallet_paid_never_asks_it_again(world: World) -> None:
    """The period's attempt is marked done before the wallet is asked (D15) and the claim is
    committed with it: the next runs, on a worker that restarted, ask no wallet again; the
    node's settlement, completed late, renews the period once."""
    race = await _race(world)
    killed = with_renewer(world, KilledWhilePaying())
    with pytest.raises(Killed):
        await world.lifecycle(runs=1)
    [paid_by_wallet] = killed.asked
    again = with_renewer(world, RecordingWallet())

    await world.lifecycle(runs=5, step=RUN)

    assert again.asked == []
    reused = await world.shop.payment(race.reused.id)
    assert reused.external_data == paid_by_wallet
    assert reused.metadata[CLAIM_KEY] == claim_text(race.period)
    await world.complete(reused)  # the settlement, heard after the restart
    after = await world.sub(race.vm)
    assert after.expires is not None
    assert race.period + timedelta(days=28) <= after.expires <= race.period + timedelta(days=31)
