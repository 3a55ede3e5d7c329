"""An admin who moves a subscription's expiry ends the invoices priced to the old one, on memory,
SQLite and MariaDB: its pending upgrade quotes (charged per second up to the expiry, D7) and a
renewal invoice an automatic renewal claimed for the old period are expired in the same
transaction and cancelled at their rail after it, whether the expiry moves by a PATCH of the
subscription, an extend or a refund's cut. Plain renewal quotes stay payable: a renewal buys
its intervals from the expiry it finds when it completes. One paid anyway before the cancel is
still credited at completion, not applied."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import attrs
import pytest

from app.admin.credit_refund import refund_to_credit
from app.admin.manual_refund import refund_by_hand
from app.admin.subscriptions import SubscriptionPatch, update_subscription
from app.admin.vms import extend_vm
from app.billing.wallet_claims import claim_for_wallet
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.intervals import MONTHLY
from domain.model import Subscription, Vm
from domain.price_basis import CREDIT_KEY
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.upgrade_quotes import upgrade_payment
from tests.unit.billing.world import ALICE, BOB, Shop

database = storage_backends.database  # module fixture: memory, SQLite, MariaDB
shop = lifecycle_world.shop

DAY = timedelta(days=1)


@attrs.frozen
class Pending:
    """A paid standard VM (auto-renewal on, a day used) with a pending upgrade quote, a plain
    1-month renewal quote and a 2-month renewal invoice its automatic renewal claimed."""

    vm: Vm
    expires: datetime
    upgrade: bytes
    renewal: bytes
    claimed: bytes


async def _patch(shop: Shop, sub: Subscription, **fields: object) -> Subscription:
    return await update_subscription(
        shop.factory,
        sub.id,
        SubscriptionPatch(**fields),  # type: ignore[arg-type]
        clock=shop.clock,
        rails=shop.rails,
        admin_id=BOB,  # not the owner (ALICE)
    )


async def _pending(shop: Shop) -> Pending:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    sub = await _patch(shop, await shop.subscription(vm), auto_renewal_enabled=True)
    assert sub.expires is not None
    shop.clock.advance(DAY)
    upgrade = await upgrade_payment(shop, vm)
    renewal = await shop.renew(vm)
    wallet = await shop.renew(vm, intervals=2)
    assert len({upgrade.id, renewal.id, wallet.id}) == 3
    await claim_for_wallet(shop.factory, wallet, sub.expires, shop.clock.now())
    return Pending(vm, sub.expires, upgrade.id, renewal.id, wallet.id)


async def _pending_ids(shop: Shop, vm: Vm) -> set[bytes]:
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        rows = await uow.payments.list_pending_for_subscription(sub.id, shop.clock.now())
    return {p.id for p in rows}


Move = Callable[[Shop, Pending], Awaitable[object]]


async def _patch_later(shop: Shop, p: Pending) -> object:
    return await _patch(shop, await shop.subscription(p.vm), expires=p.expires + 10 * DAY)


async def _patch_earlier(shop: Shop, p: Pending) -> object:
    return await _patch(shop, await shop.subscription(p.vm), expires=p.expires - 10 * DAY)


async def _extend(shop: Shop, p: Pending) -> object:
    return await extend_vm(
        shop.factory,
        shop.clock,
        shop.queue,
        vm_id=p.vm.id,
        days=3,
        admin_id=ALICE,
        rails=shop.rails,
    )


async def _refund_to_credit(shop: Shop, p: Pending) -> object:
    return await refund_to_credit(
        shop.factory,
        shop.clock,
        shop.rates,
        vm_id=p.vm.id,
        admin_id=ALICE,
        reason=None,
        rails=shop.rails,
    )


async def _refund_by_hand(shop: Shop, p: Pending) -> object:
    return await refund_by_hand(
        shop.factory,
        shop.rates,
        shop.clock,
        shop.queue,
        vm_id=p.vm.id,
        method=PaymentMethod.REVOLUT,
        from_date=None,
        lightning_invoice=None,
        admin_id=ALICE,
        reason=None,
        rails=shop.rails,
    )


MOVES = pytest.mark.parametrize(
    "move",
    [_patch_later, _patch_earlier, _extend, _refund_to_credit, _refund_by_hand],
    ids=["patch-later", "patch-earlier", "extend", "refund-to-credit", "refund-by-hand"],
)


@MOVES
async def test_moving_the_expiry_ends_the_upgrade_and_the_claimed_renewal(
    shop: Shop, move: Move
) -> None:
    p = await _pending(shop)
    shop.clock.advance(timedelta(minutes=1))

    await move(shop, p)

    assert (await shop.subscription(p.vm)).expires != p.expires
    assert await _pending_ids(shop, p.vm) == {p.renewal}
    for ended in (p.upgrade, p.claimed):
        assert (await shop.payment(ended)).expires == shop.clock.now()
    assert sorted(shop.node.cancelled) == sorted([p.upgrade, p.claimed])


async def test_a_patch_that_keeps_the_expiry_ends_nothing(shop: Shop) -> None:
    """The admin UI sends every field: the same `expires` (to the second) is no move."""
    p = await _pending(shop)
    sub = await shop.subscription(p.vm)

    await _patch(shop, sub, expires=p.expires + timedelta(microseconds=1), name="renamed")
    await _patch(shop, sub, expires=p.expires)

    assert await _pending_ids(shop, p.vm) == {p.upgrade, p.renewal, p.claimed}
    assert shop.node.cancelled == []


async def test_a_renewal_quoted_before_the_move_buys_its_month_from_the_new_expiry(
    shop: Shop,
) -> None:
    """Why plain renewal quotes are kept: the month is counted from the expiry the renewal
    finds when it completes, at the same price."""
    p = await _pending(shop)
    moved = p.expires + 10 * DAY
    await _patch(shop, await shop.subscription(p.vm), expires=moved)

    report = await shop.complete(await shop.payment(p.renewal))

    assert report.completed
    assert (await shop.subscription(p.vm)).expires == MONTHLY.add_to(moved, 1)


async def test_an_upgrade_paid_before_its_cancel_is_still_credited(shop: Shop) -> None:
    """The completion's safety net stays: paid after the move (its settlement raced the
    cancel), the upgrade priced to the old expiry is not applied but credited."""
    p = await _pending(shop)
    await _patch_later(shop, p)
    sub = await shop.subscription(p.vm)

    report = await shop.complete(await shop.payment(p.upgrade))

    assert report.completed
    paid = await shop.payment(p.upgrade)
    [why] = payment_meta(paid)[CREDIT_KEY]["changes"]
    assert "was priced to the expiry" in why
    assert await shop.subscription(p.vm) == sub
    assert (await shop.vm(p.vm.id)).template_id == p.vm.template_id  # not upgraded
    assert await shop.balance() > 0
