"""A legacy never-paid order as the backfill adopts it (`domain.legacy.plan_vm`) meets the
worker like an order placed here (review r2): cleaned up after an hour (D17), no notices."""

from __future__ import annotations

from datetime import timedelta

import attrs

from domain.legacy import LegacyVm, plan_vm
from tests.unit.worker.world import World

HOUR = timedelta(hours=1)


async def test_legacy_never_paid_order_is_cleaned_up_without_expiry_notices(world: World) -> None:
    vm = await world.shop.order()  # an order, as LNVPS made it just before the cutover
    sub = await world.sub(vm)
    # LNVPS marks it `vm.expires == vm.created`; no payment of it is paid
    legacy = LegacyVm(
        id=vm.id, user_id=sub.user_id, deleted=False, auto_renewal_enabled=False,
        expires=sub.created, created=sub.created, company_id=1, company_base_currency="EUR",
        template_id=None, custom_template_id=1,
    )  # fmt: skip
    planned = plan_vm(legacy, world.now).subscription
    adopted = attrs.evolve(
        sub, expires=planned.expires, is_active=planned.is_active, is_setup=planned.is_setup
    )
    async with world.shop.factory() as uow:
        await uow.subscriptions.update(adopted)
        await uow.commit()

    world.advance(2 * HOUR)  # D17: a never-paid order goes one hour after it was placed
    report = await world.vm_check()
    assert report.deleted == [vm.id]
    await world.lifecycle()
    world.advance(2 * 24 * HOUR)
    await world.vm_check()
    await world.lifecycle()

    titles = [n.title for n in world.notifier.to_user(sub.user_id)]
    assert titles == [], f"never-paid order told: {titles}"
