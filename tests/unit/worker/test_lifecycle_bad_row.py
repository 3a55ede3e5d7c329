"""A subscription row the rules refuse (an interval off the calendar) is skipped and logged by
the lifecycle; every other subscription is still handled on the same run."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from app.admin.subscriptions import SubscriptionDraft, create_subscription
from domain.enums import IntervalType
from domain.errors import InvalidInterval
from domain.model import Subscription
from tests.unit.worker.world import World

SECOND = timedelta(seconds=1)
RUN = timedelta(seconds=30)


async def _stored_bad_row(world: World, user_id: int, **kw: object) -> Subscription:
    """What a legacy database (or a row saved before the bound) can hold: 10⁶ months."""
    async with world.shop.factory() as uow:
        sub, _ = await uow.subscriptions.add_with_line_items(
            Subscription(
                id=0,
                user_id=user_id,
                company_id=1,
                name="bad",
                created=world.now,
                currency="EUR",
                is_active=True,
                is_setup=True,
                interval_amount=1_000_000,
                interval_type=IntervalType.MONTH,
                **kw,  # type: ignore[arg-type]
            ),
            [],
        )
        await uow.commit()
    return sub


async def test_an_undecidable_subscription_halts_no_other(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    vm = await world.paid_vm()
    sub = await world.sub(vm)
    assert sub.expires is not None
    world.at(sub.expires + SECOND)
    bad = await _stored_bad_row(world, vm.user_id, expires=world.now + timedelta(hours=12))

    with caplog.at_level(logging.ERROR, logger="app.worker.lifecycle"):
        reports = await world.lifecycle(runs=3, step=RUN)

    assert world.host_state(vm.id) == "stopped"  # the expired walk ran
    assert [r.undecided for r in reports] == [[bad.id]] * 3
    assert sum(len(r.done) for r in reports) >= 1 and not any(r.failed for r in reports)
    assert f"subscription {bad.id}" in caplog.text
    titles = [n.title for n in world.notifier.to_user(vm.user_id)]
    assert any("Expired" in t for t in titles), titles


async def test_admin_creation_refuses_an_interval_beyond_its_unit(world: World) -> None:
    vm = await world.paid_vm()
    draft = SubscriptionDraft(
        user_id=vm.user_id,
        company_id=1,
        name="x",
        is_active=True,
        currency="EUR",
        setup_fee=0,
        auto_renewal_enabled=False,
        expires=world.now + timedelta(hours=12),
        interval_amount=1_000_000,
        interval_type=IntervalType.MONTH,
    )
    with pytest.raises(InvalidInterval, match="from 1 to 1200 for a month"):
        # asked by an admin who is not the draft's user (0: no user)
        await create_subscription(world.shop.factory, world.clock, draft, admin_id=0)
