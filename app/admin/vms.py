"""Admin VM actions: extend paid time in one locked transaction, start/stop through the worker."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from app.admin.expiry_moved import end_quotes_of_old_expiry, ranges_back_on
from app.billing.errors import (
    IdempotencyKeyReused,
    OrderLapsed,
    SubscriptionNotFound,
    VmNotFound,
)
from app.billing.order_locks import under_space_locks
from app.billing.price_in_force import cancel_quietly
from app.billing.rails import PaymentRails
from app.billing.reserved import order_lapsed
from domain.account_credit import MAX_REFERENCE
from domain.enums import VmHistoryActionType
from domain.errors import DomainError, InvalidInput
from domain.lifecycle import subscription_changed
from domain.limits import check_expiry
from domain.model import Subscription, SubscriptionPayment, Vm, vm_event
from domain.switch_off import is_switched_off
from ports.clock import Clock
from ports.jobs import SpawnVm, StartVm, StopVm
from ports.queue import WorkQueue
from ports.storage import UnitOfWork, UnitOfWorkFactory

MAX_EXTEND_DAYS = 365
_DELETED = "Cannot extend a deleted VM"


class VmIsDeleted(DomainError):
    """An admin action on a soft-deleted VM (422: the VM exists but the rule refuses it)."""


def require_live(vm: Vm | None, refusal: str) -> Vm:
    """The VM; `VmNotFound` where there is none, `VmIsDeleted(refusal)` for a deleted one."""
    if vm is None:
        raise VmNotFound("VM not found")
    if vm.deleted:
        raise VmIsDeleted(refusal)
    return vm


async def locked_subscription_of(
    uow: UnitOfWork,
    subscription_id: int,
    vm_id: int,
    deleted: str,
    missing: str = "Subscription not found",
    spaces: frozenset[int] = frozenset(),
) -> tuple[Subscription, Vm]:
    """Lock the subscription `subscription_id` (the VM's, as read before this transaction),
    then read the VM again: `require_live(vm, deleted)` refuses it when it is gone or
    deleted meanwhile, and `SubscriptionNotFound(missing)` when the subscription is gone or
    no longer bills the VM.

    The lock must be the transaction's first statement: on MariaDB the first plain read
    fixes the snapshot, so the VM and whatever is read after see what was committed before
    the lock (a deletion, which takes this lock too, is seen, not undone). The IP spaces
    `spaces` are locked next, before any plain read (lock order: subscription, then spaces)."""
    sub = await uow.subscriptions.get_for_update(subscription_id)
    for space_id in sorted(spaces):
        await uow.ip_spaces.lock(space_id)
    vm = require_live(await uow.vms.get(vm_id), deleted)
    billing = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
    if sub is None or billing is None or billing.id != sub.id:
        raise SubscriptionNotFound(missing)
    return sub, vm


#: the history metadata key of an extend's request reference
EXTEND_REFERENCE = "extend_reference"
_PAGE = 100


@attrs.frozen(kw_only=True)
class Extension:
    """An extend done, or (`replayed`) the one an earlier request with its reference did."""

    vm_id: int
    old_expires: datetime | None
    new_expires: datetime
    job_id: str
    replayed: bool = False


def check_days(days: int) -> None:
    """1..365 calendar days (api.md §9.3)."""
    if days < 1:
        raise InvalidInput("Must extend by at least 1 day")
    if days > MAX_EXTEND_DAYS:
        raise InvalidInput(f"Cannot extend by more than {MAX_EXTEND_DAYS} days")


async def extend_vm(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    queue: WorkQueue,
    *,
    vm_id: int,
    days: int,
    admin_id: int,
    reason: str | None = None,
    rails: PaymentRails | None = None,
    reference: str | None = None,
) -> Extension:
    """`expires = (expires or now) + days` on the row-locked subscription, history Renewed
    with admin metadata, in one transaction; then SpawnVm. The pending upgrade quotes, priced
    to the old expiry, and any renewal invoice an automatic renewal claimed for the old
    period are expired in that transaction and cancelled at `rails` after it
    (`end_quotes_of_old_expiry`). The new expiry stays within
    `check_expiry`'s bound (10 years ahead, 400), as an admin's PATCH of the subscription
    does: repeated extends cannot get past it. The VM is read again under the lock: a VM
    deleted meanwhile is refused (422), its subscription left as the deletion left it.

    Unlike the reference (lifecycle.md §7.6) `is_active` is set: an order starts inactive
    here, and an inactive subscription is never stopped on expiry, so an extended never-paid
    VM would otherwise run free forever. `is_setup` is untouched (D17 spares it anyway).
    A subscription an admin switched off stays switched off (`domain.switch_off`): the
    extend moves the end of its paid time, and so its stop and deletion, and switches
    nothing on (`is_active = true` by PATCH does). A never-paid order past its payment
    window has let its host room go (D25; other orders may hold it now): it is not
    extended (422, `OrderLapsed`), since nothing would check its host's room or addresses
    again (review r16); one still in its window keeps its room and is extended.

    The subscription's IP ranges ended at its lapse come back on in the same transaction,
    under the IP spaces' locks, as a late renewal's booking brings them back; a range whose
    block someone else holds now gets a new free block of the size sold, and with none free
    the extend is refused (422, nothing changed) (`expiry_moved.ranges_back_on`).

    `reference` (an idempotency key, a ticket number) makes a repeated request add nothing:
    the extend recorded with it in the VM's history is answered (`replayed`) and its SpawnVm
    queued again (harmless, as after any extend; a first request whose queueing failed after
    its commit is so completed by its retry). A replay must repeat the request: the
    reference with other `days` or another reason is refused (409, as a credit adjustment's),
    nothing changed. It is looked for under the subscription's lock, so two requests at
    once extend once. Without one, each request extends.
    """
    check_days(days)
    if reference is not None and not 0 < len(reference) <= MAX_REFERENCE:
        raise InvalidInput(f"reference must be 1..{MAX_REFERENCE} characters")
    now = clock.now()
    async with uow_factory() as uow:  # which subscription: read before its lock is taken
        first = require_live(await uow.vms.get(vm_id), _DELETED)
        found = await uow.subscriptions.get_by_line_item(first.subscription_line_item_id)
    if found is None:
        raise SubscriptionNotFound("VM subscription not found")
    request = _Extend(vm_id, days, admin_id, reason, reference)
    # run again with the IP spaces' locks when ranges to give back need them
    done = await under_space_locks(
        frozenset(), lambda spaces: _extend_locked(uow_factory, found.id, request, now, spaces)
    )
    if isinstance(done, Extension):  # a replay: nothing changed
        job_id = await queue.send(SpawnVm(vm_id=vm_id))
        return attrs.evolve(done, job_id=job_id)
    old, new, expired = done
    await cancel_quietly(rails, expired)
    job_id = await queue.send(SpawnVm(vm_id=vm_id))
    return Extension(vm_id=vm_id, old_expires=old, new_expires=new, job_id=job_id)


@attrs.frozen
class _Extend:
    """What an extend request asks (`extend_vm`'s arguments)."""

    vm_id: int
    days: int
    admin_id: int
    reason: str | None
    reference: str | None


async def _extend_locked(
    uow_factory: UnitOfWorkFactory,
    subscription_id: int,
    request: _Extend,
    now: datetime,
    spaces: frozenset[int],
) -> Extension | tuple[datetime | None, datetime, list[SubscriptionPayment]]:
    """`extend_vm`'s transaction, holding the IP spaces `spaces`' locks after the
    subscription's (`SpacesToLock` when the IP ranges it gives back need others): the
    extend recorded earlier with the request's reference (a replay), else the old and new
    expiry and the quotes it expired."""
    vm_id, days, admin_id = request.vm_id, request.days, request.admin_id
    reason, reference = request.reason, request.reference
    async with uow_factory() as uow:
        # a deletion committed while this waited for the lock is seen: its subscription
        # is not revived
        sub, vm = await locked_subscription_of(
            uow,
            subscription_id,
            vm_id,
            _DELETED,
            missing="VM subscription not found",
            spaces=spaces,
        )
        if reference is not None:
            earlier = await _extended_with(uow, vm.id, reference, days, reason)
            if earlier is not None:
                return earlier
        if await order_lapsed(uow, sub, now):
            raise OrderLapsed(
                "This order was never paid and its payment window is over: its host room "
                "went to other orders, so it cannot be extended; the customer orders again"
            )
        new = (sub.expires or now) + timedelta(days=days)
        check_expiry(new, now)  # the bound PATCH /subscriptions keeps, however many extends
        extended = attrs.evolve(sub, expires=new, is_active=not is_switched_off(sub))
        await uow.subscriptions.update(subscription_changed(sub, extended, now))
        meta: dict[str, object] = {
            "admin_action": True,
            "admin_user_id": admin_id,
            "days_extended": days,
        }
        if reason:
            meta["reason"] = reason
        if reference is not None:
            meta[EXTEND_REFERENCE] = reference
        old = sub.expires
        await uow.vm_history.add(
            vm_event(
                vm.id,
                VmHistoryActionType.RENEWED,
                now,
                f"VM {vm.id} was extended by {days} days by an administrator",
                by=admin_id,
                before={"expires": None if old is None else old.isoformat()},
                after={"expires": new.isoformat()},
                metadata=meta,
            )
        )
        # paid time given again: its lapse-ended IP ranges back on (422 when impossible)
        await ranges_back_on(uow, sub, extended, now, spaces)
        expired = await end_quotes_of_old_expiry(uow, sub, now)
        await uow.commit()
    return old, new, expired


async def _extended_with(
    uow: UnitOfWork, vm_id: int, reference: str, days: int, reason: str | None
) -> Extension | None:
    """The extend of the VM recorded with `reference` (its history entry, every page read),
    when this request repeats it (same days and reason); `IdempotencyKeyReused` (409) when it
    does not. None without one."""
    offset = 0
    while True:
        page = await uow.vm_history.list_by_vm(vm_id, _PAGE, offset)
        for entry in page.items:
            meta = entry.metadata
            if not isinstance(meta, dict) or meta.get(EXTEND_REFERENCE) != reference:
                continue
            if (meta.get("days_extended"), meta.get("reason")) != (days, reason or None):
                raise IdempotencyKeyReused(
                    f"Reference {reference!r} was already used for an extend of this VM by "
                    f"{meta.get('days_extended')} days with another reason or length; use "
                    "another reference for another extend"
                )
            return Extension(
                vm_id=vm_id,
                old_expires=_expires_in(entry.previous_state),
                new_expires=_expires_in(entry.new_state) or entry.timestamp,
                job_id="",
                replayed=True,
            )
        offset += len(page.items)
        if not page.items or offset >= page.total:
            return None


def _expires_in(state: object) -> datetime | None:
    """The `expires` an extend's history entry recorded (ISO text), if readable."""
    value = state.get("expires") if isinstance(state, dict) else None
    return datetime.fromisoformat(value) if isinstance(value, str) else None


async def live_vm(uow_factory: UnitOfWorkFactory, vm_id: int, verb: str) -> Vm:
    """The VM, refusing a deleted one ("Cannot start a deleted VM")."""
    async with uow_factory() as uow:
        vm = await uow.vms.get(vm_id)
    return require_live(vm, f"Cannot {verb} a deleted VM")


async def power_vm(
    uow_factory: UnitOfWorkFactory,
    queue: WorkQueue,
    *,
    vm_id: int,
    start: bool,
    admin_id: int,
    reason: str | None = None,
) -> str:
    """Queue StartVm/StopVm for the worker (it does the host call and the history); job id."""
    await live_vm(uow_factory, vm_id, "start" if start else "stop")
    power = StartVm if start else StopVm
    return await queue.send(power(vm_id=vm_id, admin_user_id=admin_id, reason=reason or None))
