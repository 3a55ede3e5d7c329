"""The VM history record of a refund of a VM's unused time, and the check that none repeats."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

from app.billing.refunded_credit import REFUND_RECORD_KEY
from domain.enums import VmHistoryActionType
from domain.errors import DomainError
from domain.model import VmHistory, vm_event
from domain.money import Money
from domain.paid_periods import Cut
from ports.storage import UnitOfWork

#: the history metadata key of a refund record: `{"kind", "reference", "cut_to", ...}`
REFUND_KEY = REFUND_RECORD_KEY
#: the history metadata key of the entry saying a refund's notice to the admins was queued:
#: `{"reference", "cut_to", "job_id"}`
NOTIFIED_KEY = "refund_notified"
#: a refund by hand's record: the admins are told to pay it (records of it written before
#: the kind alone said so also carry `"notice": true`, which is not read any more)
MANUAL = "manual"
CREDIT = "credit"
_PAGE = 100


class NothingToRefund(DomainError):
    """No unused paid time is left (already refunded, expired, or worth nothing)."""


class AlreadyRefunded(NothingToRefund):
    """The unused time asked for was refunded already (by hand or to credit), 409."""

    kind = "conflict"


def refund_figure(money: Money) -> str:
    """A refund record's amount in words: "<amount> <code> (smallest units)"."""
    return f"{money.amount} {money.currency.value} (smallest units)"


def refund_reference(
    subscription_id: int, payment: str | None, expires: datetime, refunded: int = 0
) -> str:
    """The key of a refund of a subscription's paid time up to `expires`, the end of the
    period bought by `payment` (the id in hex of the last payment that added time; None:
    none did), after `refunded` refunds of that period already recorded:
    the credit ledger's reference of a refund to credit, and a refund by hand's record and
    notices. A renewal paid after a refund is another period, so its refund has another key
    even if it ends on the very second the first did; a second refund of what is left of the
    same period (after one from a later date) ends elsewhere; and one after an admin set the
    expiry back to where a refund of the period had cut it from follows that refund, so it
    counts one more and is not taken for it. A replay, which sees the same period, expiry
    and refunds, has the same key (the first refund of a period keeps the key's older,
    shorter form)."""
    paid = payment[:32] if payment else "none"
    after = f":after:{refunded}" if refunded else ""  # not a suffix: no key begins another
    return f"sub:{subscription_id}:paid:{paid}{after}:until:{int(expires.timestamp())}"


def refund_event(
    *,
    vm_id: int,
    kind: str,
    reference: str,
    admin_id: int,
    expires: datetime,
    cut_to: datetime,
    figure: str,
    now: datetime,
    reason: str | None,
    extra: dict[str, Any] | None = None,
) -> VmHistory:
    """The history entry of a refund (`reference`: `refund_reference`): the paid time from
    `cut_to` to `expires` refunded (`figure` says how much, how), the expiry cut to `cut_to`
    (`cuts_of` reads it back)."""
    record: dict[str, Any] = {
        "kind": kind,
        "reference": reference,
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


def _meta_of(entry: VmHistory, key: str) -> dict[str, Any] | None:
    meta = entry.metadata
    record = meta.get(key) if isinstance(meta, dict) else None
    return record if isinstance(record, dict) else None


def refund_of(entry: VmHistory) -> dict[str, Any] | None:
    """The refund record an entry carries (`refund_event`'s), if any."""
    return _meta_of(entry, REFUND_KEY)


def cuts_of(entries: Iterable[VmHistory]) -> list[Cut]:
    """The cuts the refunds recorded in `entries` made to the paid time: to `cut_to`, in the
    order of their entries. A record it cannot read is left out."""
    cuts = []
    for entry in entries:
        record = refund_of(entry)
        cut_to = None if record is None else record.get("cut_to")
        if isinstance(cut_to, int) and not isinstance(cut_to, bool):
            cuts.append(Cut(order=entry.id, to=datetime.fromtimestamp(cut_to, UTC)))
    return cuts


def notified_event(entry: VmHistory, *, job_id: str, now: datetime) -> VmHistory:
    """The entry saying the admins' notice of the refund recorded by `entry` was queued (job
    `job_id`): from then on a repeat of that refund is refused (409), not notified again."""
    record = refund_of(entry)
    assert record is not None
    mark = {"reference": record.get("reference"), "cut_to": record.get("cut_to"), "job_id": job_id}
    return vm_event(
        entry.vm_id,
        VmHistoryActionType.STATE_CHANGED,
        now,
        f"The administrators were told to pay refund {mark['reference']} by hand",
        by=entry.initiated_by_user,
        metadata={"admin_action": True, NOTIFIED_KEY: mark},
    )


async def _walk(uow: UnitOfWork, vm_id: int) -> AsyncIterator[VmHistory]:
    """The VM's history, newest first, page by page."""
    offset = 0
    while True:
        page = await uow.vm_history.list_by_vm(vm_id, _PAGE, offset)
        for entry in page.items:
            yield entry
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return


def _key(record: dict[str, Any]) -> tuple[Any, Any]:
    return record.get("reference"), record.get("cut_to")


async def _refund_cut_to(
    uow: UnitOfWork, vm_id: int, expires: datetime
) -> tuple[VmHistory, bool] | None:
    """The newest refund record of the VM that cut its expiry to `expires`, and whether an
    entry after it says its notice was queued; None without one. Every page is read."""
    cut = int(expires.timestamp())
    notified: set[tuple[Any, Any]] = set()  # (reference, cut_to) of newer notified entries
    async for entry in _walk(uow, vm_id):  # newest first: a notified entry before its record
        mark = _meta_of(entry, NOTIFIED_KEY)
        if mark is not None:
            notified.add(_key(mark))
        record = refund_of(entry)
        if record is not None and record.get("cut_to") == cut:
            return entry, _key(record) in notified
    return None


async def notified_job(uow: UnitOfWork, entry: VmHistory) -> str | None:
    """The job id of the admins' notice of the refund `entry` records, once an entry after
    it says it was queued (`notified_event`); else None."""
    record = refund_of(entry)
    assert record is not None
    async for newer in _walk(uow, entry.vm_id):
        if newer.id == entry.id:
            return None
        mark = _meta_of(newer, NOTIFIED_KEY)
        if mark is not None and _key(mark) == _key(record):
            return str(mark.get("job_id"))
    return None


def already_refunded(entry: VmHistory) -> AlreadyRefunded:
    """The 409 of a repeat of the refund `entry` records."""
    record = refund_of(entry) or {}
    return AlreadyRefunded(
        f"This unused time was already refunded ({record.get('kind')} refund "
        f"recorded {entry.timestamp.isoformat()})"
    )


async def refuse_if_refunded(uow: UnitOfWork, vm_id: int, expires: datetime) -> None:
    """`AlreadyRefunded` when the subscription still expires where a recorded refund of this
    VM (by hand or to credit) cut it: nothing was paid or added since, so the time asked for
    is that refund's. Called under the subscription's lock once nothing is left to refund
    from the start asked for; every page of the VM's history is read then."""
    found = await _refund_cut_to(uow, vm_id, expires)
    if found is not None:
        raise already_refunded(found[0])


async def unnotified_refund(uow: UnitOfWork, vm_id: int, expires: datetime) -> VmHistory | None:
    """`refuse_if_refunded` for a refund by hand, but the record of a refund by hand whose
    admins' notice was never confirmed queued (no `notified_event` after it) is returned
    instead of refused: asking for that refund again sends its notice again. A refund to
    credit (it has no notice) or a notified one is 409."""
    found = await _refund_cut_to(uow, vm_id, expires)
    if found is None:
        return None
    entry, notified = found
    record = refund_of(entry) or {}
    if record.get("kind") == MANUAL and not notified:
        return entry
    raise already_refunded(entry)
