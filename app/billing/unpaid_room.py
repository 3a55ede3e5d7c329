"""What one buyer's never-paid orders hold, judged against `max-unpaid-room` before an order."""

from __future__ import annotations

from datetime import datetime

from app.billing.reserved import lapsed_orders, specs_of
from domain.model import Vm
from domain.pricing import Spec
from domain.unpaid_room import Held, UnpaidRoom, check_unpaid_budget
from ports.storage import UnitOfWork


async def held_by(uow: UnitOfWork, unpaid: list[Vm], now: datetime) -> Held:
    """What these never-paid VMs (one buyer's) hold: those whose order has not lapsed (past
    its window with no payment pending, or past `UNPAID_HOLD_LIMIT`: `lapsed_orders`, the
    rule `lapsed_unpaid_vms` and so `reserved_usage` count room by), so an order that holds no
    room costs its buyer no budget. A VM whose template row is gone counts nothing, as in
    `reserved_usage`. A fixed number of statements whatever the number of VMs."""
    if not unpaid:
        return Held()
    subs, lapsed = await lapsed_orders(uow, unpaid, now)
    holding = [
        vm
        for vm in unpaid
        if (sub := subs.get(vm.subscription_line_item_id)) is not None and sub.id not in lapsed
    ]
    specs = await specs_of(uow, holding)
    return Held(
        cpu=sum(spec.cpu for spec in specs.values()),
        memory=sum(spec.memory for spec in specs.values()),
        disk=sum(spec.disk_size for spec in specs.values()),
    )


async def check_buyer_room(
    uow: UnitOfWork, limits: UnpaidRoom, unpaid: list[Vm], spec: Spec, now: datetime
) -> None:
    """Refuse (`UnpaidRoomExceeded`, 422) an order of `spec` that would take the room the
    buyer's never-paid VMs (`unpaid`) hold past `limits`' per-user budget, before anything
    is placed or written.

    `unpaid` must be read under the buyer's row lock (`lock_order`), as the `max-unpaid-vms`
    count is: concurrent orders of one buyer are judged one after another, so two of them
    never both take the budget's last room."""
    if not limits.budgeted:
        return
    held = await held_by(uow, unpaid, now)
    check_unpaid_budget(limits, held, Held(spec.cpu, spec.memory, spec.disk_size))
