"""VM status read model (api.md §5.2): the caller's VMs with everything their status shows."""

from __future__ import annotations

import attrs

from app.billing.errors import VmNotFound
from domain import model as m
from domain.errors import DomainError
from domain.pricing import count_ips, custom_price_for
from ports.storage import UnitOfWork, UnitOfWorkFactory
from ports.storage.reads import SshKeyLabel, VmFilter, VmRecords, VmStatusRecords
from ports.vm_state import VmStateCache
from ports.vmhost import VmRunningState, VmRunState


@attrs.frozen(kw_only=True)
class VmView:
    """A VM's whole rows, as the admin API shows them (missing rows stay None)."""

    vm: m.Vm
    subscription: m.Subscription | None
    image: m.OsImage | None
    ssh_key: SshKeyLabel | None
    region: m.Region | None
    template: m.VmTemplate | None = None
    plan: m.CostPlan | None = None
    custom: m.CustomTemplate | None = None
    pricing: m.CustomPricing | None = None
    ips: tuple[tuple[m.IpAssignment, m.IpRange | None], ...] = ()


@attrs.frozen
class VmStatus:
    """What ApiVmStatus shows of a VM: its rows, a custom VM's monthly price (0 for a standard
    one) and the state a client sees."""

    view: VmStatusRecords
    custom_amount: int
    state: VmRunningState


def custom_amount(view: VmStatusRecords) -> int:
    """A custom VM's monthly price from its pricing (0 without one, or when the pricing has
    no disk row for its disk type any more: shown as 0 rather than failing the read)."""
    if view.custom is None or view.pricing is None:
        return 0
    addresses = count_ips(ip.ip for ip in view.ips)
    try:
        return custom_price_for(
            view.custom, view.pricing, view.pricing_disks, addresses
        ).total.amount
    except DomainError:
        return 0


def view_of(records: VmRecords) -> VmView:
    """The view of a VM's rows."""
    return VmView(
        vm=records.vm,
        subscription=records.subscription,
        image=records.image,
        ssh_key=records.ssh_key,
        region=records.region,
        template=records.template,
        plan=records.plan,
        custom=records.custom,
        pricing=records.pricing,
        ips=records.ips,
    )


def display_state(view: VmStatusRecords, cached: VmRunningState | None) -> VmRunningState:
    """The state a client sees (§5.2): `creating` for a paid VM whose build the database has
    not recorded yet (placeholder MAC; the Pulumi client waits on it), whatever the cache or
    the host say; else the cache's when it knows one; else `unknown`.

    A host (or a state cache fed from it) can report a VM running before the worker has
    committed what the build produced; showing that would show a running VM without the
    addresses and MAC a client reads next. Only committed state is shown.
    """
    sub = view.subscription
    paid = sub is not None and (sub.is_setup or sub.expires is not None)  # as `in_service`
    if paid and not view.is_provisioned:
        return VmRunningState(state=VmRunState.CREATING)
    if cached is not None and cached.state is not VmRunState.UNKNOWN:
        return cached
    return cached if cached is not None else VmRunningState()


async def _statuses(views: list[VmStatusRecords], states: VmStateCache | None) -> list[VmStatus]:
    """Each view with its price and the state shown; the cached states read in one round trip."""
    cached = {} if states is None or not views else await states.get_many([v.id for v in views])
    return [VmStatus(v, custom_amount(v), display_state(v, cached.get(v.id))) for v in views]


async def user_vm_statuses(
    uow_factory: UnitOfWorkFactory,
    states: VmStateCache | None,
    user_id: int,
    vm_ids: list[int] | None = None,
) -> list[VmStatus]:
    """The user's VMs (not deleted), ascending id, all of them or those of `vm_ids`.

    One unit of work and a fixed number of statements whatever the number of VMs.
    """
    async with uow_factory() as uow:
        views = await uow.vm_reads.vm_statuses(VmFilter(user_id=user_id, vm_ids=vm_ids))
    return await _statuses(views, states)


async def user_vm_statuses_in(
    uow: UnitOfWork, states: VmStateCache | None, user_id: int, vm_ids: list[int] | None = None
) -> list[VmStatus]:
    """`user_vm_statuses` inside the caller's unit of work."""
    views = await uow.vm_reads.vm_statuses(VmFilter(user_id=user_id, vm_ids=vm_ids))
    return await _statuses(views, states)


async def owned_vm_status_by_key_in(
    uow: UnitOfWork, states: VmStateCache | None, pubkey: bytes, vm_id: int
) -> VmStatus | None:
    """The VM `vm_id` (not deleted) if the user with this public key owns it, read without
    looking the user up first (one statement fewer per request, issue 10); None otherwise
    (the caller then finds or creates the user as usual and answers "not found")."""
    which = VmFilter(vm_ids=[vm_id], owner_pubkey=pubkey)
    found = await _statuses(await uow.vm_reads.vm_statuses(which), states)
    return found[0] if found else None


async def user_vm_status(
    uow_factory: UnitOfWorkFactory, states: VmStateCache | None, user_id: int, vm_id: int
) -> VmStatus:
    """One of the user's VMs; another user's, a deleted or a missing one is `VmNotFound`."""
    found = await user_vm_statuses(uow_factory, states, user_id, [vm_id])
    if not found:
        raise VmNotFound("VM not found")
    return found[0]
