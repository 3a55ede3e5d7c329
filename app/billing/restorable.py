"""Whether a deleted VM can still be restored by a payment (D24), and if not, why."""

from __future__ import annotations

from typing import Protocol

from domain.model import Vm
from ports.storage import UnitOfWork


class _Switchable(Protocol):
    @property
    def enabled(self) -> bool: ...


def _unusable(row: _Switchable | None, what: str) -> str | None:
    """Why `what` cannot be used again: its row gone or disabled; None when it can."""
    if row is None:
        return f"{what} is gone"
    if not row.enabled:
        return f"{what} is disabled"
    return None


async def why_unrestorable(uow: UnitOfWork, vm: Vm) -> str | None:
    """None when the VM can be re-created where it was, with what it was sold as; else the
    reason it cannot: its host row gone or disabled, its template (or custom template, or
    that template's pricing) gone or disabled."""
    host = await uow.hosts.get(vm.host_id)
    if reason := _unusable(host, f"host {vm.host_id} of VM {vm.id}"):
        return reason
    if vm.template_id is not None:
        template = await uow.templates.get(vm.template_id)
        return _unusable(template, f"template {vm.template_id} of VM {vm.id}")
    if vm.custom_template_id is None:
        return f"VM {vm.id} has no template"
    custom = await uow.custom_templates.get(vm.custom_template_id)
    if custom is None:
        return f"custom template {vm.custom_template_id} of VM {vm.id} is gone"
    pricing = await uow.custom_pricing.get(custom.pricing_id)
    return _unusable(pricing, f"custom pricing {custom.pricing_id} of VM {vm.id}")
