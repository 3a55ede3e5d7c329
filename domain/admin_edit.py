"""The VM history entry of an admin's raw edit (expiry, price): who, and the edit's record."""

from __future__ import annotations

from datetime import datetime

from domain.enums import VmHistoryActionType
from domain.model import Json, VmHistory, vm_event


def admin_named(admin_id: int | None) -> str:
    """How an entry's text names the admin (None: not known)."""
    return "an administrator" if admin_id is None else f"admin #{admin_id}"


def admin_edit_event(
    vm_id: int,
    now: datetime,
    text: str,
    admin_id: int | None,
    *,
    key: str,
    record: Json,
    before: Json,
    after: Json,
) -> VmHistory:
    """A STATE_CHANGED entry of VM `vm_id` (the reference has no kind for an admin's edit):
    who in `initiated_by_user` and the metadata, the edit's `record` under `key`."""
    return vm_event(
        vm_id,
        VmHistoryActionType.STATE_CHANGED,
        now,
        text,
        by=admin_id,
        before=before,
        after=after,
        metadata={"admin_action": True, "admin_user_id": admin_id, key: record},
    )
