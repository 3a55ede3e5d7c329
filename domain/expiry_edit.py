"""An admin's raw edit of a subscription's expiry (PATCH /subscriptions/{id}): what is refused,
and the VM history entry that records it in the edit's own transaction."""

from __future__ import annotations

from datetime import datetime

from domain.admin_edit import admin_edit_event, admin_named
from domain.errors import DomainError
from domain.model import Subscription, VmHistory

#: the history metadata key of an expiry edit: `{"from", "to"}` (ISO times, None: no expiry)
EXPIRY_EDIT_KEY = "expiry_edit"


class ExpiryEditRefused(DomainError):
    """An expiry edit that would end or free paid time without any of its rules (422)."""


def check_expiry_edit(before: Subscription, expires: datetime | None, now: datetime) -> None:
    """Refuse (`ExpiryEditRefused`, 422) a new `expires` earlier than `now`, and clearing it on
    a subscription that is set up (paid): the first makes the VM's deletion due at the next
    worker pass (no stop, no grace, no refund), the second means its VM is never stopped.
    An unchanged value passes (the admin UI sends every field, a lapsed one's past expiry
    too); a shortening to a time after `now` is the operator's edit, recorded
    (`expiry_edit_event`)."""
    if expires == before.expires:
        return
    if expires is None:
        if before.is_setup:
            raise ExpiryEditRefused(
                "expires cannot be cleared on a subscription that is set up (paid): its VM "
                "would never be stopped. To end it, switch it off (is_active false) or "
                "delete the VM"
            )
        return
    if expires < now:
        raise ExpiryEditRefused(
            f"expires must not be earlier than now ({now.isoformat()}): the VM would be "
            "deleted at once, with no stop and no grace period. To cut paid time with the "
            "money back, refund it (POST /vms/{id}/refund or /vms/{id}/refund/credit); to "
            "end the service, switch the subscription off (is_active false)"
        )


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def expiry_edit_event(
    vm_id: int,
    old: datetime | None,
    new: datetime | None,
    now: datetime,
    admin_id: int | None,
) -> VmHistory:
    """The history entry of VM `vm_id` saying admin `admin_id` (None: not known) moved its
    subscription's paid time from `old` to `new` (cut or extended; None: no expiry)."""
    span = f"from {_iso(old) or 'none'} to {_iso(new) or 'none'} by {admin_named(admin_id)}"
    if old is not None and new is not None:
        text = f"VM {vm_id}'s paid time was {'cut' if new < old else 'extended'} {span}"
    else:
        text = f"VM {vm_id}'s expiry was set {span}"
    return admin_edit_event(
        vm_id,
        now,
        text,
        admin_id,
        key=EXPIRY_EDIT_KEY,
        record={"from": _iso(old), "to": _iso(new)},
        before={"expires": _iso(old)},
        after={"expires": _iso(new)},
    )
