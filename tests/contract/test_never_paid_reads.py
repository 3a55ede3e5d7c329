"""Which subscriptions every storage read counts as never-paid orders, on memory, SQLite, MariaDB.

One rule (`Subscription.in_service`'s negation: never set up, no expiry) behind the VM reads
(D25's per-user count and host share) and the IP-range reads (the held blocks, the per-user
count, the hourly cancel): a subscription an operator gave time without a payment, or one set
up, is in none of them.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from domain.enums import SubscriptionType
from domain.model import LineItem
from ports.storage import NeverPaidWindow, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import at, new_subscription, stored_world

# pytest fixtures: one migrated database per backend for the module, emptied per test
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


@pytest.mark.parametrize(
    "state",
    [{}, {"expires": at(20)}, {"is_setup": True}, {"is_setup": True, "expires": at(20)}],
    ids=["never-paid", "given-time", "set-up", "paid"],
)
async def test_only_an_order_never_set_up_nor_given_time_is_read_as_never_paid(
    uow_factory: UnitOfWorkFactory, state: dict[str, Any]
) -> None:
    world = await stored_world(uow_factory)
    async with uow_factory() as uow:
        await uow.subscriptions.update(attrs.evolve(world.subscription, **state))
        ip_order, _ = await uow.subscriptions.add_with_line_items(
            new_subscription(world.user.id, world.company.id, name="IP range", **state),
            [
                LineItem(
                    id=0,
                    subscription_id=0,
                    subscription_type=SubscriptionType.IP_RANGE,
                    name="203.0.113.0/29",
                    amount=1000,
                )
            ],
        )
        await uow.commit()

    async with uow_factory() as uow:
        vms = await uow.vms.list_never_paid(user_id=world.user.id)
        held = await uow.vms.spec_totals([world.host.id], never_paid=True)
        orders = await uow.ip_range_subscriptions.never_paid_orders(at(1))
        counted = await uow.subscriptions.count_never_paid_ip_ranges(world.user.id, at(1))
        window = NeverPaidWindow(since=at(1), before=at(2), now=at(2))
        listed = await uow.subscriptions.list_never_paid_ip_ranges(window, 10)

    never_paid = not state
    assert [vm.id for vm in vms] == ([world.vm.id] if never_paid else [])
    assert [(t.host_id, t.cpu) for t in held] == ([(world.host.id, 2)] if never_paid else [])
    assert [(sub.id, [i.name for i in items]) for sub, items in orders] == (
        [(ip_order.id, ["203.0.113.0/29"])] if never_paid else []
    )
    assert counted == (1 if never_paid else 0)
    assert [sub.id for sub in listed] == ([ip_order.id] if never_paid else [])
