"""NwcAutoRenewer in the worker: N2 after a wallet payment, N3 on a refusal or no answer, N1
without a wallet (a period renewed since the claim: tests/contract/test_auto_renewal_outcomes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import attrs
import pytest

from adapters.lightning.bolt11 import payment_hash_of
from adapters.lightning.dev import DevLightningNode
from adapters.nwc.client import NwcClient
from app.autorenew import AutoRenewalFailed, NwcAutoRenewer, _passing
from app.billing.credit_balance import adjust_credit
from app.billing.credit_settle import completion_settle
from app.billing.errors import PaymentProviderUnavailable
from app.billing.rails import PaymentRails
from app.settlement import reconcile
from app.worker.jobs import build_handlers
from domain.account_credit import credit_applied
from domain.enums import SubscriptionPaymentType
from domain.errors import InvalidInput, NoExchangeRate, SubscriptionNotRenewable
from domain.model import Subscription, SubscriptionPayment, Vm
from ports.lightning import LightningUnavailable
from ports.storage import StorageBusy
from tests.fakes.fake_nwc_relay import CLIENT_SECRET, FakeRelay, FakeWallet, WalletRefusal
from tests.unit.worker.world import World, new_world

PREIMAGE = "cd" * 32


@attrs.define
class Setup:
    world: World
    node: DevLightningNode
    wallet: FakeWallet
    relay_url: str

    async def opt_in(self, vm: Vm, nwc: str | None) -> Subscription:
        sub = await self.world.sub(vm)
        async with self.world.shop.factory() as uow:
            await uow.subscriptions.update(attrs.evolve(sub, auto_renewal_enabled=True))
            user = await uow.users.get(sub.user_id)
            assert user is not None
            await uow.users.update(attrs.evolve(user, nwc_connection_string=nwc))
            await uow.commit()
        return await self.world.sub(vm)

    async def renewals(self, vm: Vm) -> list[SubscriptionPayment]:
        payments = await self.world.shop.payments(vm)
        return [p for p in payments if p.payment_type is SubscriptionPaymentType.RENEWAL]

    async def settle_and_complete(self) -> int:
        """What the settlement listener does after a restart: complete what the node settled."""
        shop = self.world.shop
        return await reconcile(self.node, shop.factory, shop.clock, shop.rails, self.world.queue)


@pytest.fixture
async def setup() -> AsyncIterator[Setup]:
    world = await new_world()
    node = DevLightningNode(clock=world.clock)
    world.shop.rails = PaymentRails(lightning=node, fiat={})

    async def pay(bolt11: str) -> str:
        await node.settle(payment_hash_of(bolt11))
        return PREIMAGE

    wallet = FakeWallet(pay)
    async with FakeRelay(wallet).running() as url:
        shop = world.shop
        settle = completion_settle(shop.factory, shop.clock, shop.rails, world.queue)
        renewer = NwcAutoRenewer(
            shop.factory,
            shop.clock,
            shop.rails,
            shop.rates,
            shop.tax_rates,
            NwcClient(timeout_s=5, allow_private_relays=True),
            settle,
        )
        world.deps = attrs.evolve(world.deps, auto_renewer=renewer)
        world.handlers = build_handlers(world.deps)
        yield Setup(world=world, node=node, wallet=wallet, relay_url=url)


async def test_expiring_soon_subscription_is_paid_from_the_wallet_and_extended_once(
    setup: Setup,
) -> None:
    world = setup.world
    vm = await world.paid_vm()
    sub = await setup.opt_in(vm, setup.wallet.connection_string(setup.relay_url))
    assert sub.expires is not None
    old_expiry = sub.expires
    world.at(old_expiry - timedelta(hours=12))

    await world.lifecycle(runs=5, step=timedelta(seconds=30))

    [renewal] = await setup.renewals(vm)
    assert setup.wallet.paid == [renewal.external_data] and setup.wallet.requests == 1
    assert await setup.node.invoice_state(renewal.id) == "SETTLED"
    assert not renewal.is_paid and (await world.sub(vm)).expires == old_expiry  # not yet heard

    assert await setup.settle_and_complete() == 1
    assert await setup.settle_and_complete() == 0  # replayed settlement: nothing more
    await world.lifecycle(runs=5, step=timedelta(seconds=30))

    after = await world.sub(vm)
    assert after.expires is not None and old_expiry < after.expires <= old_expiry + timedelta(31)
    assert (await world.shop.payment(renewal.id)).is_paid
    assert len(await setup.renewals(vm)) == 1 and setup.wallet.requests == 1
    [n2] = world.notifier.titled(f"[VM{vm.id}] Auto-Renewed")
    assert n2.user_id == sub.user_id
    assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == []


async def test_a_refusing_wallet_sends_n3_with_the_error_and_extends_nothing(
    setup: Setup,
) -> None:
    async def refuse(bolt11: str) -> str:
        raise WalletRefusal("INSUFFICIENT_BALANCE", "not enough sats")

    setup.wallet.pay = refuse
    world = setup.world
    vm = await world.paid_vm()
    sub = await setup.opt_in(vm, setup.wallet.connection_string(setup.relay_url))
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=5, step=timedelta(seconds=30))
    assert await setup.settle_and_complete() == 0

    [n3] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
    assert "not enough sats" in n3.message
    assert CLIENT_SECRET.hex() not in n3.message
    assert world.notifier.titled(f"[VM{vm.id}] Auto-Renewed") == []
    assert (await world.sub(vm)).expires == sub.expires
    assert setup.wallet.requests == 1
    [renewal] = await setup.renewals(vm)
    assert not renewal.is_paid


async def test_a_user_without_a_wallet_gets_n1_and_no_attempt(setup: Setup) -> None:
    world = setup.world
    vm = await world.paid_vm()
    sub = await setup.opt_in(vm, "")
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=5, step=timedelta(seconds=30))

    [n1] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
    assert "not enough" not in n1.message
    assert world.notifier.titled(f"[VM{vm.id}] Auto-Renewed") == []
    assert await setup.renewals(vm) == [] and setup.wallet.requests == 0


async def test_can_attempt_needs_a_non_blank_wallet_string(setup: Setup) -> None:
    world = setup.world
    vm = await world.paid_vm()
    renewer = world.deps.auto_renewer
    assert not await renewer.can_attempt(await setup.opt_in(vm, None))
    assert not await renewer.can_attempt(await setup.opt_in(vm, "   "))
    assert await renewer.can_attempt(await setup.opt_in(vm, "nostr+walletconnect://x"))


async def test_a_broken_wallet_string_fails_without_leaking_the_secret(setup: Setup) -> None:
    world = setup.world
    vm = await world.paid_vm()
    secret = CLIENT_SECRET.hex()
    sub = await setup.opt_in(vm, f"nostr+walletconnect://nothex?relay=wss://r.test&secret={secret}")
    assert sub.expires is not None
    with pytest.raises(AutoRenewalFailed) as caught:
        await world.deps.auto_renewer.attempt(sub, sub.expires)
    assert secret not in caught.value.message and "wallet public key" in caught.value.message


async def test_a_wallet_whose_answer_is_lost_after_paying_is_no_failure_and_extends_once(
    setup: Setup,
) -> None:
    setup.wallet.answer_lost = True
    world = setup.world
    renewer = world.deps.auto_renewer
    assert isinstance(renewer, NwcAutoRenewer)
    renewer._wallet = NwcClient(timeout_s=0.5, allow_private_relays=True)
    vm = await world.paid_vm()
    sub = await setup.opt_in(vm, setup.wallet.connection_string(setup.relay_url))
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=3, step=timedelta(seconds=30))

    [renewal] = await setup.renewals(vm)
    assert setup.wallet.paid == [renewal.external_data]
    assert len(world.notifier.titled(f"[VM{vm.id}] Auto-Renewed")) == 1  # not N3
    assert world.notifier.titled(f"[VM{vm.id}] Expiring Soon") == []
    assert await setup.settle_and_complete() == 1
    after = await world.sub(vm)
    assert after.expires is not None and after.expires > sub.expires


async def test_a_wallet_that_never_answers_is_no_renewal_but_a_warning_and_the_vm_stops(
    setup: Setup,
) -> None:
    """The wallet (or its relay) never answers and pays nothing: the user is not told it
    renewed but warned, once, that the payment is not confirmed; the invoice lapses unpaid
    and the VM is stopped at expiry (after that warning)."""
    setup.wallet.silent = True
    world = setup.world
    renewer = world.deps.auto_renewer
    assert isinstance(renewer, NwcAutoRenewer)
    renewer._wallet = NwcClient(timeout_s=0.5, allow_private_relays=True)
    vm = await world.paid_vm()
    sub = await setup.opt_in(vm, setup.wallet.connection_string(setup.relay_url))
    assert sub.expires is not None
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=3, step=timedelta(seconds=30))
    assert await setup.settle_and_complete() == 0
    world.at(sub.expires + timedelta(seconds=1))
    await world.lifecycle(runs=2, step=timedelta(seconds=30))

    [renewal] = await setup.renewals(vm)
    assert not renewal.is_paid and setup.wallet.requests == 1
    assert world.notifier.titled(f"[VM{vm.id}] Auto-Renewed") == []
    [warned] = world.notifier.titled(f"[VM{vm.id}] Expiring Soon")
    assert "not confirmed" in warned.message
    assert world.host_state(vm.id) == "stopped"


async def _give_credit(setup: Setup, user_id: int, currency: str, amount: int) -> None:
    shop = setup.world.shop
    await adjust_credit(
        shop.factory,
        shop.clock,
        admin_id=user_id,
        user_id=user_id,
        currency=currency,
        amount=amount,
        note="test",
    )


async def test_credit_that_covers_the_interval_pays_the_auto_renewal_without_the_wallet(
    setup: Setup,
) -> None:
    """As for a renewal the user asks for, the account balance pays first: the wallet is not
    asked and the subscription is extended once, from credit."""
    world = setup.world
    vm = await world.paid_vm()
    sub = await setup.opt_in(vm, setup.wallet.connection_string(setup.relay_url))
    assert sub.expires is not None
    await _give_credit(setup, sub.user_id, sub.currency, 1_000_000)
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=5, step=timedelta(seconds=30))

    [renewal] = await setup.renewals(vm)
    assert renewal.is_paid and renewal.amount == 0
    assert setup.wallet.requests == 0 and setup.wallet.paid == []
    applied = credit_applied(renewal.metadata or {})
    assert applied is not None and applied[1] == sub.currency and applied[0] > 0
    assert await setup.world.balance(sub) == 1_000_000 - applied[0]
    after = await world.sub(vm)
    assert after.expires is not None and sub.expires < after.expires <= sub.expires + timedelta(31)
    assert await setup.settle_and_complete() == 0
    assert len(await setup.renewals(vm)) == 1


async def test_credit_that_covers_part_leaves_the_wallet_the_rest(setup: Setup) -> None:
    world = setup.world
    vm = await world.paid_vm()
    sub = await setup.opt_in(vm, setup.wallet.connection_string(setup.relay_url))
    assert sub.expires is not None
    await _give_credit(setup, sub.user_id, sub.currency, 1)
    world.at(sub.expires - timedelta(hours=12))

    await world.lifecycle(runs=5, step=timedelta(seconds=30))

    [renewal] = await setup.renewals(vm)
    assert credit_applied(renewal.metadata or {}) == (1, sub.currency)
    assert setup.wallet.paid == [renewal.external_data] and setup.wallet.requests == 1
    assert await setup.world.balance(sub) == 0
    assert await setup.settle_and_complete() == 1
    after = await world.sub(vm)
    assert after.expires is not None and after.expires > sub.expires


@pytest.mark.parametrize(
    ("error", "passing"),
    [
        (NoExchangeRate("No exchange rate found for BTC/EUR"), True),
        (PaymentProviderUnavailable("Lightning is unavailable"), True),
        (LightningUnavailable("node down"), True),
        (StorageBusy("lock wait"), True),
        (InvalidInput("bad"), False),
        (SubscriptionNotRenewable("switched off"), False),
    ],
)
def test_only_passing_causes_may_be_tried_again(error: Exception, passing: bool) -> None:
    """r6 F1: a 503-kind failure of the renewal invoice (before the wallet is asked) is
    `AutoRenewalNotStarted`, tried again by the lifecycle; any other is told at once."""
    assert _passing(error) is passing
