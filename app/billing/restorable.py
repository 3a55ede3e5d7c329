"""Whether a payment may bring a VM (back) onto its host (D24, D25), and if not, why."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import attrs

from app.billing.placement import disk_of, has_room_to_grow
from domain.enums import DiskType
from domain.model import Vm
from domain.pricing import Spec
from ports.storage import UnitOfWork


class _Switchable(Protocol):
    @property
    def enabled(self) -> bool: ...


@attrs.frozen
class _Nothing:
    """The size of a VM that holds no room on its host (deleted, or an order past its window)."""

    disk_type: DiskType
    cpu: int = 0
    memory: int = 0
    disk_size: int = 0


def _unusable(row: _Switchable | None, what: str) -> str | None:
    """Why `what` cannot be used again: its row gone or disabled; None when it can."""
    if row is None:
        return f"{what} is gone"
    if not row.enabled:
        return f"{what} is disabled"
    return None


async def _sold_as(uow: UnitOfWork, vm: Vm) -> tuple[Spec | None, str | None]:
    """What the VM was sold as (its template, or its custom template), when that row is still
    there; and why it cannot be sold again (that row, or the custom pricing, gone or
    disabled), None when it can."""
    if vm.template_id is not None:
        template = await uow.templates.get(vm.template_id)
        return template, _unusable(template, f"template {vm.template_id} of VM {vm.id}")
    if vm.custom_template_id is None:
        return None, f"VM {vm.id} has no template"
    custom = await uow.custom_templates.get(vm.custom_template_id)
    if custom is None:
        return None, f"custom template {vm.custom_template_id} of VM {vm.id} is gone"
    pricing = await uow.custom_pricing.get(custom.pricing_id)
    return custom, _unusable(pricing, f"custom pricing {custom.pricing_id} of VM {vm.id}")


async def why_no_room(uow: UnitOfWork, vm: Vm, spec: Spec, now: datetime) -> str | None:
    """None when the VM's host and disk can take it again beside what their VMs hold now
    (size × load factor, as an order is placed); else why not. For a VM that holds no room
    today: a deleted one, or a never-paid order past its payment window (D25), whose place
    another order may have taken meanwhile. The caller holds the host's region lock, as an
    order does, so two of them never both take a host's last room."""
    if await has_room_to_grow(uow, vm, _Nothing(spec.disk_type), spec, now):
        return None
    return f"host {vm.host_id} has no room left for VM {vm.id}"


async def why_unrestorable(uow: UnitOfWork, vm: Vm, now: datetime) -> str | None:
    """None when the deleted VM can be re-created where it was, with what it was sold as;
    else the reason it cannot: its host row or disk gone or disabled, its template (or custom
    template, or that template's pricing) gone or disabled, or no room left on its host."""
    host = await uow.hosts.get(vm.host_id)
    if reason := _unusable(host, f"host {vm.host_id} of VM {vm.id}"):
        return reason
    if reason := _unusable(await disk_of(uow, vm), f"disk {vm.disk_id} of VM {vm.id}"):
        return reason
    spec, why = await _sold_as(uow, vm)
    if why is not None or spec is None:
        return why
    return await why_no_room(uow, vm, spec, now)


async def why_unplaceable(uow: UnitOfWork, vm: Vm, now: datetime) -> str | None:
    """`why_no_room` for a never-paid order paid after its window: only its room is judged
    (its offer disabled since does not stop it; a VM whose template row is gone has no size
    to judge and is set up as before)."""
    spec, _ = await _sold_as(uow, vm)
    return None if spec is None else await why_no_room(uow, vm, spec, now)
