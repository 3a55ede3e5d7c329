"""A VM's history and payments (api.md §6.5–6.6), its ownership checked in the same unit of work."""

from __future__ import annotations

import attrs

from app.billing.catalogue import owned_vm
from app.billing.errors import PaymentNotFound
from app.queries.payments import owned_payment
from domain.admin_completion import ADMIN_COMPLETION_KEY
from domain.model import Json, SubscriptionPayment, VmHistory
from ports.storage import UnitOfWork


@attrs.frozen
class VmHistoryView:
    owner_id: int
    entries: list[VmHistory]


async def vm_history_in(
    uow: UnitOfWork, user_id: int, vm_id: int, limit: int | None = None, offset: int = 0
) -> VmHistoryView:
    """The caller's VM's history (soft-deleted VMs too), newest first, as its owner sees it
    (`_as_owner_sees`); all of it unless `limit` is given. Another user's or a missing VM is
    `VmNotFound`."""
    vm = await owned_vm(uow, vm_id, user_id, allow_deleted=True)
    if limit is None:
        entries = await uow.vm_history.list_all_by_vm(vm.id)
    else:
        entries = (await uow.vm_history.list_by_vm(vm.id, limit, offset)).items
    return VmHistoryView(vm.user_id, [_as_owner_sees(e) for e in entries])


def _as_owner_sees(entry: VmHistory) -> VmHistory:
    """The entry as its owner sees it: without the admin who completed a payment by hand (kept
    for the operators' audit; the admin API shows it)."""
    metadata = _owner_metadata(entry.metadata)
    return entry if metadata is entry.metadata else attrs.evolve(entry, metadata=metadata)


def _owner_metadata(metadata: Json) -> Json:
    if isinstance(metadata, dict) and ADMIN_COMPLETION_KEY in metadata:
        return {k: v for k, v in metadata.items() if k != ADMIN_COMPLETION_KEY}
    return metadata


async def vm_payments_in(
    uow: UnitOfWork, user_id: int, vm_id: int, limit: int, offset: int
) -> list[SubscriptionPayment]:
    """Every payment of the caller's VM's subscription, newest first (deleted VMs too)."""
    vm = await owned_vm(uow, vm_id, user_id, allow_deleted=True)
    return (await uow.payments.list_by_vm(vm.id, limit, offset)).items


async def owned_vm_payment(
    uow: UnitOfWork, user_id: int, payment_id: bytes
) -> tuple[SubscriptionPayment, int]:
    """The caller's VM payment and its VM id; unknown, another's or not a VM's:
    `PaymentNotFound`."""
    payment, vm = await owned_payment(uow, user_id, payment_id)
    if vm is None:
        raise PaymentNotFound("Payment not found")
    return payment, vm.id
