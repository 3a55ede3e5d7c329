"""IP-range subscriptions: allocations end at expiry and come back on renewal (§7.3, §14)."""

from __future__ import annotations

from datetime import timedelta

from domain.lifecycle import LifecycleAction
from tests.unit.worker.world import DAY, World


async def test_ip_range_ends_at_expiry_and_is_reactivated_on_renewal(world: World) -> None:
    sub, sold = await world.ip_range_subscription()
    await world.complete(await world.renew(subscription_id=sub.id))
    async with world.shop.factory() as uow:
        paid = await uow.subscriptions.get(sub.id)
    assert paid is not None and paid.expires is not None and paid.is_active

    expired_at = paid.expires + timedelta(seconds=1)
    world.at(expired_at)
    reports = await world.lifecycle(runs=5, step=timedelta(seconds=30))

    async with world.shop.factory() as uow:
        ended = await uow.ip_range_subscriptions.get(sold.id)
        still = await uow.subscriptions.get(sub.id)
    assert ended is not None and not ended.is_active and ended.ended_at == expired_at
    assert still is not None and still.is_active  # only cancelled after the grace period
    done = [d.action for r in reports for d in r.done]
    assert done.count(LifecycleAction.DEACTIVATE_ADDONS) == 1
    [n5] = world.notifier.titled(f"[Sub #{sub.id}] Expired")
    assert f"/api/v1/subscriptions/{sub.id}/renew" in n5.message

    world.advance(DAY)
    await world.complete(await world.renew(subscription_id=sub.id))

    async with world.shop.factory() as uow:
        again = await uow.ip_range_subscriptions.get(sold.id)
    assert again is not None and again.is_active and again.ended_at is None


async def test_ip_range_subscription_is_cancelled_after_grace(world: World) -> None:
    sub, sold = await world.ip_range_subscription()
    await world.complete(await world.renew(subscription_id=sub.id))
    async with world.shop.factory() as uow:
        paid = await uow.subscriptions.get(sub.id)
    assert paid is not None and paid.expires is not None

    world.at(paid.expires + 15 * DAY)  # ~1 month old: 7 days of grace
    await world.lifecycle(runs=3, step=timedelta(seconds=30))

    async with world.shop.factory() as uow:
        cancelled = await uow.subscriptions.get(sub.id)
        ended = await uow.ip_range_subscriptions.get(sold.id)
    assert cancelled is not None and not cancelled.is_active
    assert ended is not None and not ended.is_active
    assert len(world.notifier.titled(f"[Sub #{sub.id}] Cancelled")) == 1
    assert world.notifier.to_admins() == []  # no VM deleted: no N8
