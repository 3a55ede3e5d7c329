"""NWC auto-renewal outcomes on memory, SQLite and MariaDB: a wallet that never answers is not
reported as a renewal but warned of once (D15) and the VM still stops unpaid; a renewal the user
pays after the attempt was claimed (before its invoice, or while it is made) is not paid a second
time by the wallet; an error reading whether the wallet can be asked leaves the period undecided
for that run instead of sending "renew manually" and then charging the wallet, while a wallet
string that can never be read (sealed with a lost key) gets the normal "renew manually" notice
once, as with auto-renewal off."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import attrs
import pytest

from app.worker import messages
from app.worker.context import AutoRenewal, AutoRenewer
from domain.enums import SubscriptionPaymentType
from domain.model import Subscription, SubscriptionPayment, Vm
from ports.lightning import Invoice
from ports.nwc import NwcAnswerLost
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lifecycle_world import (
    RecordingWallet,
    seal_wallet_with_a_lost_key,
    with_renewer,
)
from tests.contract.storage_backends import Database
from tests.unit.worker.world import World

database = storage_backends.database
world = lifecycle_world.world
WALLET = "nostr+walletconnect://wallet"
SECOND = timedelta(seconds=1)
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


class SilentWallet(RecordingWallet):
    """Takes the request, then its answer never comes (relay gone); `node_down` makes the
    Lightning node unreachable as well, so the invoice's settlement cannot be asked."""

    def __init__(self, world: World, node_down: bool) -> None:
        super().__init__()
        self.world = world
        self.node_down = node_down

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        self.asked.append(bolt11)
        self.world.shop.node.down = self.node_down
        raise NwcAnswerLost("The wallet did not answer in time")


@pytest.mark.parametrize("node_down", [False, True], ids=["node-unpaid", "node-down"])
async def test_a_wallet_that_never_answers_is_warned_of_once_and_the_vm_stops_unpaid(
    world: World, node_down: bool
) -> None:
    """Nothing confirms a payment: no "Auto-Renewed"; the one notice of the period is the
    expiring-soon warning saying the payment is not confirmed and until when the invoice can
    be paid; the period's invoice lapses unpaid and the VM is stopped at expiry."""
    wallet = SilentWallet(world, node_down)
    with_renewer(world, wallet)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=5, step=RUN)
    world.shop.node.down = False
    world.at(sub.expires + SECOND)
    await world.lifecycle(runs=2, step=RUN)
    await world.run_jobs()

    [renewal] = await _renewals(world, vm)
    assert wallet.asked == [renewal.external_data] and not renewal.is_paid
    assert world.notifier.titled(f"[VM{vm.id}] Auto-Renewed") == []
    [warned] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
    assert "not confirmed" in warned.message and messages.when(renewal.expires) in warned.message
    assert "renew it manually" in warned.message
    assert (await world.sub(vm)).expires == sub.expires
    assert world.host_state(vm.id) == "stopped"
    assert len(world.notifier.titled(f"[VM{vm.id}] Expired")) == 1


@attrs.define
class PaidBeforeTheWallet:
    """The user's own renewal is completed after the claim, just before the wallet is asked."""

    inner: AutoRenewer
    world: World
    manual: SubscriptionPayment

    async def can_attempt(self, subscription: Subscription) -> bool:
        return await self.inner.can_attempt(subscription)

    async def attempt(self, subscription: Subscription, period: datetime) -> AutoRenewal:
        await self.world.complete(self.manual)
        return await self.inner.attempt(subscription, period)


async def test_a_renewal_paid_after_the_claim_is_not_paid_again_by_the_wallet(
    world: World,
) -> None:
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    assert sub.expires is not None
    period = sub.expires
    world.at(period - timedelta(hours=12))
    manual = await world.renew(vm)  # the user's own invoice, Lightning, one interval
    racing = PaidBeforeTheWallet(world.deps.auto_renewer, world, manual)
    world.deps = attrs.evolve(world.deps, auto_renewer=racing)

    await world.lifecycle(runs=5, step=RUN)

    assert wallet.asked == []
    [paid] = await _renewals(world, vm)
    assert paid.id == manual.id and paid.is_paid
    after = await world.sub(vm)
    assert after.expires is not None and period < after.expires <= period + timedelta(days=31)
    assert world.notifier.titled(f"[VM{vm.id}] Auto-Renewed") == []
    assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == []


async def test_a_renewal_paid_while_the_wallet_invoice_is_made_is_not_paid_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The user's payment completes between the auto-renewal's check of the period and the
    storing of its invoice: the check under the subscription's lock refuses it, the invoice
    is cancelled at the node and the wallet is not asked."""
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    assert sub.expires is not None
    period = sub.expires
    world.at(period - timedelta(hours=12))
    manual = await world.shop.renew(vm, intervals=2)  # not one the auto-renewal reuses (D10)
    node = world.shop.node
    create = node.create_invoice

    async def paid_meanwhile(amount_msat: int, memo: str, expiry_seconds: int) -> Invoice:
        invoice = await create(amount_msat, memo, expiry_seconds)
        await world.complete(manual)
        return invoice

    monkeypatch.setattr(node, "create_invoice", paid_meanwhile)

    await world.lifecycle(runs=5, step=RUN)

    assert wallet.asked == []
    [paid] = await _renewals(world, vm)
    assert paid.id == manual.id and paid.is_paid
    assert len(node.cancelled) == 1  # the auto-renewal's invoice, never stored
    after = await world.sub(vm)
    assert after.expires is not None and period + timedelta(days=58) <= after.expires
    assert after.expires <= period + timedelta(days=62)
    assert world.notifier.titled(f"[VM{vm.id}] Auto-Renewed") == []
    assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == []


@attrs.define
class FlakyLookup:
    """`can_attempt` fails `fails` times (the user's row unreadable for a moment)."""

    inner: AutoRenewer
    fails: int = 1

    async def can_attempt(self, subscription: Subscription) -> bool:
        if self.fails:
            self.fails -= 1
            raise ConnectionResetError("lost the database connection")
        return await self.inner.can_attempt(subscription)

    async def attempt(self, subscription: Subscription, period: datetime) -> AutoRenewal:
        return await self.inner.attempt(subscription, period)


async def test_an_error_reading_the_wallet_leaves_the_period_to_the_next_run(
    world: World,
) -> None:
    """Not "renew manually" on the failing run and then the wallet charged on the next: the
    failing run decides nothing for the subscription, the next auto-renews it once."""
    wallet = with_renewer(world)
    world.deps = attrs.evolve(world.deps, auto_renewer=FlakyLookup(world.deps.auto_renewer))
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    [first] = await world.lifecycle(runs=1, step=RUN)
    assert first.undecided == [sub.id] and first.done == []
    assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == [] and wallet.asked == []

    await world.lifecycle(runs=5, step=RUN)

    [renewal] = await _renewals(world, vm)
    assert wallet.asked == [renewal.external_data]
    assert len(world.notifier.titled(f"[VM{vm.id}] Auto-Renewed")) == 1
    assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == []


async def test_a_wallet_string_that_cannot_be_read_gets_the_manual_notice_once(
    world: World, database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Not decryptable, it never will be: the user is told to renew by hand, once for the
    period, as with auto-renewal off (it got no notice at all: the subscription was left
    undecided on every run), and the operator is told in the log on every run; the VM is
    stopped at expiry as any unpaid one."""
    if database.url is None:
        pytest.skip("the memory store keeps no ciphertext")
    wallet = with_renewer(world)
    vm = await world.paid_vm()
    sub = await _opted_in(world, vm)
    assert sub.expires is not None
    await seal_wallet_with_a_lost_key(world, sub.user_id, WALLET)
    world.at(sub.expires - timedelta(hours=12))

    with caplog.at_level(logging.ERROR, logger="lnvps.autorenew"):
        reports = await world.lifecycle(runs=3, step=RUN)

    assert [r.undecided for r in reports] == [[], [], []]
    [notice] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
    assert notice.user_id == sub.user_id
    assert "renew it manually" in notice.message  # N1: no failure, nothing unconfirmed
    assert "automatic renewal" not in notice.message
    told = [r for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(told) == 3 and all(str(sub.id) in r.getMessage() for r in told)
    assert WALLET not in caplog.text
    assert wallet.asked == [] and await _renewals(world, vm) == []

    world.at(sub.expires + SECOND)
    await world.lifecycle(runs=2, step=RUN)
    await world.run_jobs()
    assert world.host_state(vm.id) == "stopped"
    assert len(world.notifier.titled(f"[VM{vm.id}] Expired")) == 1
    assert len(world.notifier.titled(f"[VM{vm.id}] Expiring Soon")) == 1
