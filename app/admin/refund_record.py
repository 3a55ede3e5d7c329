"""The VM history record of a refund of a VM's unused time, and the check that none repeats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from domain.enums import VmHistoryActionType
from domain.errors import DomainError
from domain.model import VmHistory, vm_event
from ports.storage import UnitOfWork

#: the history metadata key of a refund record: `{"kind", "reference", "cut_to", ...}`
REFUND_KEY = "refund"
MANUAL = "manual"
CREDIT = "credit"
_PAGE = 100


class NothingToRefund(DomainError):
    """No unused paid time is left (already refunded, expired, or worth nothing)."""


class AlreadyRefunded(NothingToRefund):
    """The unused time asked for was refunded already (by hand or to credit), 409."""

    kind = "conflict"


def refund_reference(vm_id: int, expires: datetime) -> str:
    """The key of a refund of the VM's time up to `expires`: the credit ledger's reference of
    a refund to credit, and the manual refund's record of the same time."""
    return f"vm:{vm_id}:until:{int(expires.timestamp())}"


def refund_event(
    *,
    vm_id: int,
    kind: str,
    admin_id: int,
    expires: datetime,
    cut_to: datetime,
    figure: str,
    now: datetime,
    reason: str | None,
    extra: dict[str, Any] | None = None,
) -> VmHistory:
    """The history entry of a refund: the paid time from `cut_to` to `expires` refunded
    (`figure` says how much, how), the expiry cut to `cut_to`."""
    record: dict[str, Any] = {
        "kind": kind,
        "reference": refund_reference(vm_id, expires),
        "cut_to": int(cut_to.timestamp()),
        "amount": figure,
        **(extra or {}),
    }
    meta: dict[str, Any] = {"admin_action": True, "admin_user_id": admin_id, REFUND_KEY: record}
    if reason:
        meta["reason"] = reason
    how = "to the owner's credit" if kind == CREDIT else "by hand"
    return vm_event(
        vm_id,
        VmHistoryActionType.STATE_CHANGED,
        now,
        f"VM {vm_id}'s paid time from {cut_to.isoformat()} was refunded {how} ({figure}) "
        "by an administrator",
        by=admin_id,
        before={"expires": expires.isoformat()},
        after={"expires": cut_to.isoformat()},
        metadata=meta,
    )


def _refund_of(entry: VmHistory) -> dict[str, Any] | None:
    meta = entry.metadata
    record = meta.get(REFUND_KEY) if isinstance(meta, dict) else None
    return record if isinstance(record, dict) else None


async def refuse_if_refunded(uow: UnitOfWork, vm_id: int, expires: datetime) -> None:
    """`AlreadyRefunded` when the subscription still expires where a recorded refund of this
    VM (by hand or to credit) cut it: nothing was paid or added since, so the time asked for
    is that refund's. Called under the subscription's lock once nothing is left to refund
    from the start asked for; every page of the VM's history is read then."""
    cut = int(expires.timestamp())
    offset = 0
    while True:
        page = await uow.vm_history.list_by_vm(vm_id, _PAGE, offset)
        for entry in page.items:
            record = _refund_of(entry)
            if record is not None and record.get("cut_to") == cut:
                raise AlreadyRefunded(
                    f"This unused time was already refunded ({record.get('kind')} refund "
                    f"recorded {entry.timestamp.isoformat()})"
                )
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return
