"""The automatic renewal's period on memory, SQLite and MariaDB: a pending invoice is handed
back for the wallet only under the subscription's lock, so a renewal completing at that
moment is seen and the wallet is not asked to pay a period already renewed; the invoice is
claimed for the wallet under that lock too, and a claimed invoice is handed out again for
its own period only."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import attrs
import pytest

from app.billing.errors import RenewalNoLongerDue, WalletInvoiceEnded
from app.billing.renewal import renew
from app.billing.wallet_claims import claim_for_wallet
from domain.credit import payment_meta
from domain.model import Subscription, SubscriptionPayment, Vm
from domain.wallet_claim import CLAIM_KEY, claim_overtaken
from tests.contract import lifecycle_world, storage_backends
from tests.contract.lock_waits import until
from tests.unit.billing.world import Shop

database = storage_backends.database
shop = lifecycle_world.shop


async def _paid_with_pending_renewal(shop: Shop) -> tuple[Vm, Subscription, SubscriptionPayment]:
    """A paid VM, its subscription and a pending one-interval renewal (what D10 reuses)."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    sub = await shop.subscription(vm)
    pending = await shop.renew(vm)
    assert not pending.is_paid and sub.expires is not None
    return vm, sub, pending


async def _auto_renew(shop: Shop, sub: Subscription) -> SubscriptionPayment:
    """What `NwcAutoRenewer.attempt` asks for: one interval of the period ending now."""
    return await renew(
        shop.factory,
        shop.clock,
        shop.rails,
        shop.rates,
        shop.tax_rates,
        user_id=None,
        subscription_id=sub.id,
        period=sub.expires,
    )


async def test_an_automatic_renewal_reuses_the_pending_invoice_of_its_period(shop: Shop) -> None:
    _, sub, pending = await _paid_with_pending_renewal(shop)
    assert (await _auto_renew(shop, sub)).id == pending.id


async def test_a_renewal_completing_meanwhile_stops_the_reuse_of_a_pending_invoice(
    shop: Shop,
) -> None:
    """A completion (as `complete_payment`: the subscription's lock first) has moved the
    expiry and not committed yet when the automatic renewal looks for its invoice. Read
    without the lock, the expiry looked unchanged and the pending invoice was handed to the
    wallet: a second interval paid for a period already renewed."""
    vm, sub, pending = await _paid_with_pending_renewal(shop)
    assert sub.expires is not None
    holding, release = asyncio.Event(), asyncio.Event()

    async def completion() -> None:
        async with shop.factory() as uow:
            locked = await uow.subscriptions.get_for_update(sub.id)
            assert locked is not None and locked.expires is not None
            moved = attrs.evolve(locked, expires=locked.expires + timedelta(days=30))
            await uow.subscriptions.update(moved)
            holding.set()
            await release.wait()
            await uow.commit()

    completing = asyncio.create_task(completion())
    await holding.wait()
    attempt = asyncio.create_task(_auto_renew(shop, sub))
    await until(
        "the automatic renewal waits for the completion's lock (or ended without it)",
        lambda waits: waits >= 1 or attempt.done(),
        shop.factory,
    )
    release.set()
    await completing

    with pytest.raises(RenewalNoLongerDue):
        await attempt
    assert not (await shop.payment(pending.id)).is_paid
    assert [p.id for p in await shop.payments(vm) if not p.is_paid] == [pending.id]


async def _move_expiry(shop: Shop, sub: Subscription, by: timedelta) -> Subscription:
    """The expiry moved without a payment (as an admin's extension moves it)."""
    assert sub.expires is not None
    async with shop.factory() as uow:
        moved = attrs.evolve(sub, expires=sub.expires + by)
        await uow.subscriptions.update(moved)
        await uow.commit()
    return moved


async def _owner_key(shop: Shop, vm: Vm) -> dict[str, Any]:
    """How the HTTP route renews: by the owner's key, the reuse lookup read with the VM."""
    async with shop.factory() as uow:
        user = await uow.users.get(vm.user_id)
    assert user is not None
    return {"user_id": None, "owner_key": user.pubkey}


@pytest.mark.parametrize("by_key", [False, True], ids=["user-id", "owner-key"])
async def test_an_invoice_claimed_for_the_wallet_is_reused_for_its_own_period_only(
    shop: Shop, by_key: bool
) -> None:
    """Claimed for the wallet, the pending invoice is still the period's one to hand out (the
    user and the wallet then race for one invoice, which can be paid once). Once the expiry
    is another, it would buy no time if paid (`claim_overtaken`): a renewal request gets a
    new invoice instead."""
    vm, sub, pending = await _paid_with_pending_renewal(shop)
    assert sub.expires is not None
    how = await _owner_key(shop, vm) if by_key else {}
    claim = await claim_for_wallet(shop.factory, pending, sub.expires, shop.clock.now())
    assert claim_overtaken(claim, sub) is None
    assert (await shop.renew(vm, **how)).id == pending.id

    moved = await _move_expiry(shop, sub, timedelta(days=3))

    assert claim_overtaken(await shop.payment(pending.id), moved) == sub.expires
    fresh = await shop.renew(vm, **how)
    assert fresh.id != pending.id and not fresh.is_paid
    assert (await shop.renew(vm, **how)).id == fresh.id


async def test_no_claim_for_the_wallet_once_the_period_is_renewed_or_the_invoice_ended(
    shop: Shop,
) -> None:
    """The decision to ask the wallet, under the subscription's lock: a period renewed since
    `renew` handed the invoice out, or an invoice no longer payable, is refused and the
    invoice is left unclaimed."""
    _, sub, pending = await _paid_with_pending_renewal(shop)
    assert sub.expires is not None
    moved = await _move_expiry(shop, sub, timedelta(days=30))
    assert moved.expires is not None
    with pytest.raises(RenewalNoLongerDue):
        await claim_for_wallet(shop.factory, pending, sub.expires, shop.clock.now())

    with pytest.raises(WalletInvoiceEnded):  # asked when the invoice has lapsed
        await claim_for_wallet(shop.factory, pending, moved.expires, pending.expires)
    assert CLAIM_KEY not in payment_meta(await shop.payment(pending.id))


async def test_a_renewal_completing_meanwhile_stops_the_claim_for_the_wallet(shop: Shop) -> None:
    """The last check before the wallet call: a completion holds the subscription's lock and
    has moved the expiry, not committed yet, when the auto-renewal claims the invoice it was
    handed. The claim waits for that lock and then sees the renewal: the wallet is not asked
    and the invoice is left unclaimed (read without the lock, the old expiry looked current)."""
    _, sub, pending = await _paid_with_pending_renewal(shop)
    assert sub.expires is not None
    period = sub.expires
    holding, release = asyncio.Event(), asyncio.Event()

    async def completion() -> None:
        async with shop.factory() as uow:
            locked = await uow.subscriptions.get_for_update(sub.id)
            assert locked is not None and locked.expires is not None
            moved = attrs.evolve(locked, expires=locked.expires + timedelta(days=30))
            await uow.subscriptions.update(moved)
            holding.set()
            await release.wait()
            await uow.commit()

    completing = asyncio.create_task(completion())
    await holding.wait()
    claiming = asyncio.create_task(
        claim_for_wallet(shop.factory, pending, period, shop.clock.now())
    )
    await until(
        "the claim waits for the completion's lock (or ended without it)",
        lambda waits: waits >= 1 or claiming.done(),
        shop.factory,
    )
    release.set()
    await completing

    with pytest.raises(RenewalNoLongerDue):
        await claiming
    assert CLAIM_KEY not in payment_meta(await shop.payment(pending.id))
