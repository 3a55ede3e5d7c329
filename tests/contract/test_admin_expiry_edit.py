"""An admin's edit of a subscription's expiry on memory, SQLite and MariaDB (found by r1): into
the past, or cleared once paid, it is refused and changes nothing; any other move of the paid
time is written to the VM's history in the edit's own transaction."""

from __future__ import annotations

from datetime import timedelta

import pytest

from app.admin.subscriptions import SubscriptionPatch, update_subscription
from domain.enums import VmHistoryActionType
from domain.expiry_edit import EXPIRY_EDIT_KEY, ExpiryEditRefused
from domain.lifecycle import LifecycleAction, decide_lifecycle_actions
from domain.model import Subscription, Vm, VmHistory
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import BOB, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: the admin who edits (a user that exists: the history names them)
ADMIN = BOB


async def _paid(shop: Shop) -> tuple[Vm, Subscription]:
    """ALICE's VM, its month paid."""
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    sub = await shop.subscription(vm)
    assert sub.is_setup and sub.expires is not None
    return vm, sub


async def _edit(shop: Shop, sub: Subscription, **fields: object) -> Subscription:
    return await update_subscription(
        shop.factory,
        sub.id,
        SubscriptionPatch(**fields),  # type: ignore[arg-type]
        clock=shop.clock,
        rails=None,
        admin_id=ADMIN,
    )


async def _edits(shop: Shop, vm: Vm) -> list[VmHistory]:
    entries = await shop.history(vm, VmHistoryActionType.STATE_CHANGED)
    return [e for e in entries if isinstance(e.metadata, dict) and EXPIRY_EDIT_KEY in e.metadata]


async def test_a_past_expiry_on_a_paid_subscription_is_refused(shop: Shop) -> None:
    """An operator means "a month from now" and types last month: the VM would be deleted
    at the next worker pass, with no stop, no grace, no refund. 422, nothing changed."""
    vm, sub = await _paid(shop)
    now = shop.clock.now()

    with pytest.raises(ExpiryEditRefused, match="refund it") as refused:
        await _edit(shop, sub, expires=now - timedelta(days=30), name="typo")

    assert refused.value.kind == "unprocessable"
    after = await shop.subscription(vm)
    assert after == sub and await _edits(shop, vm) == []
    due = [d.action for d in decide_lifecycle_actions(after, now, 30, False)]
    assert LifecycleAction.DELETE_AFTER_GRACE not in due


async def test_clearing_the_expiry_of_a_paid_subscription_is_refused(shop: Shop) -> None:
    """`null` on a set-up subscription: its VM would never be stopped. 422, nothing changed;
    on one never paid it is still allowed (nothing runs on it)."""
    vm, sub = await _paid(shop)

    with pytest.raises(ExpiryEditRefused, match="cannot be cleared"):
        await _edit(shop, sub, expires=None)

    assert await shop.subscription(vm) == sub and await _edits(shop, vm) == []
    unpaid = await shop.subscription(await shop.order())
    assert (await _edit(shop, unpaid, expires=None)).expires is None


async def test_an_unchanged_past_expiry_is_accepted(shop: Shop) -> None:
    """The admin UI sends every field: renaming a lapsed subscription sends its past expiry
    back unchanged, which is no edit of it."""
    vm, sub = await _paid(shop)
    assert sub.expires is not None
    shop.clock.set(sub.expires + timedelta(days=3))

    renamed = await _edit(shop, sub, expires=sub.expires, name="renamed")

    assert (renamed.name, renamed.expires) == ("renamed", sub.expires)
    assert await _edits(shop, vm) == []


async def test_a_shortening_to_a_later_time_is_recorded_with_the_admin(shop: Shop) -> None:
    """Cutting 28 days to 10 is the operator's edit: allowed, and the VM's history says who
    cut the paid time from where to where; an extension is recorded the same way."""
    vm, sub = await _paid(shop)
    assert sub.expires is not None
    cut_to = shop.clock.now() + timedelta(days=10)

    await _edit(shop, sub, expires=cut_to)
    later = cut_to + timedelta(days=300)
    await _edit(shop, sub, expires=later)

    assert (await shop.subscription(vm)).expires == later
    extended, cut = await _edits(shop, vm)  # newest first
    assert cut.description == (
        f"VM {vm.id}'s paid time was cut from {sub.expires.isoformat()} to "
        f"{cut_to.isoformat()} by admin #{ADMIN}"
    )
    assert cut.initiated_by_user == ADMIN
    assert cut.previous_state == {"expires": sub.expires.isoformat()}
    assert cut.new_state == {"expires": cut_to.isoformat()}
    assert cut.metadata == {
        "admin_action": True,
        "admin_user_id": ADMIN,
        EXPIRY_EDIT_KEY: {"from": sub.expires.isoformat(), "to": cut_to.isoformat()},
    }
    assert "was extended from" in (extended.description or "")


async def test_an_edit_is_never_committed_without_its_history_entry(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The entry is written in the edit's transaction: when it cannot be, the expiry is not
    moved either."""
    vm, sub = await _paid(shop)
    assert sub.expires is not None

    async def broken(*_: object, **__: object) -> None:
        raise RuntimeError("history table unavailable")

    async with shop.factory() as uow:
        history_type = type(uow.vm_history)
    monkeypatch.setattr(history_type, "add", broken)

    with pytest.raises(RuntimeError, match="history table unavailable"):
        await _edit(shop, sub, expires=sub.expires + timedelta(days=300))

    monkeypatch.undo()
    assert await shop.subscription(vm) == sub and await _edits(shop, vm) == []
