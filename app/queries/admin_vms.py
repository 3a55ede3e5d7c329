"""The admin VM list (api.md §9.3): filtered, counted and paged by storage, id descending."""

from __future__ import annotations

import attrs

from domain.model import Vm
from ports.storage import UnitOfWork, VmListFilter
from ports.vm_state import VmStateCache
from ports.vmhost import VmRunningState


@attrs.frozen
class AdminVmPage:
    """A page of VMs, how many the filter selects in all, and each shown VM's cached state
    (None where the cache knows none)."""

    vms: list[Vm]
    total: int
    states: dict[int, VmRunningState | None]


def vm_list_filter(
    *,
    user_id: int | None = None,
    pubkey: str | None = None,
    host_id: int | None = None,
    region_id: int | None = None,
    include_deleted: bool = False,
) -> VmListFilter | None:
    """The filter of the admin's query; an empty `pubkey` filters nothing.

    None when `pubkey` is not hex: no user has such a key, so the list is empty (the
    reference's database decodes it to nothing and finds no user), not a 400.
    """
    owner = None
    if pubkey:
        try:
            owner = bytes.fromhex(pubkey)
        except ValueError:
            return None
    return VmListFilter(
        user_id=user_id,
        owner_pubkey=owner,
        host_id=host_id,
        region_id=region_id,
        include_deleted=include_deleted,
    )


async def admin_vm_page(
    uow: UnitOfWork,
    states: VmStateCache | None,
    which: VmListFilter | None,
    limit: int,
    offset: int,
) -> AdminVmPage:
    """The VMs `which` selects (None: nothing), newest id first, in the caller's unit of work.

    A fixed number of statements whatever the number of VMs (a count and a page), and one
    state-cache round trip for the page; soft-deleted VMs are listed only when asked for.
    """
    if which is None:
        return AdminVmPage([], 0, {})
    page = await uow.vms.list_page(which, limit, offset)
    ids = [vm.id for vm in page.items]
    cached = {} if states is None or not ids else await states.get_many(ids)
    return AdminVmPage(page.items, page.total, {i: cached.get(i) for i in ids})
