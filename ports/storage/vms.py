"""Storage ports for virtual machines and their history."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

import attrs

from domain.model import CostPlan, Vm, VmHistory, VmTemplate
from ports.storage.common import Page, Records


@attrs.frozen
class VmOnPlan:
    """A VM with the template and cost plan that price it; None where the VM has no template
    (a custom VM) or the row is gone."""

    vm: Vm
    template: VmTemplate | None
    cost_plan: CostPlan | None


@attrs.frozen
class SpecTotals:
    """What the live VMs on one disk of one host add up to: CPU, memory bytes, disk bytes."""

    host_id: int
    disk_id: int
    cpu: int
    memory: int
    disk: int


@attrs.frozen(kw_only=True)
class VmListFilter:
    """Which VMs an admin lists (api.md §9.3): every filter given narrows the list (they
    combine with AND). `owner_pubkey`: the VMs of the user with this public key (none when
    no user has it); `region_id`: the VMs on that region's hosts; soft-deleted VMs only
    with `include_deleted`."""

    user_id: int | None = None
    owner_pubkey: bytes | None = None
    host_id: int | None = None
    region_id: int | None = None
    include_deleted: bool = False


class Vms(Records[Vm], Protocol):
    """`get` sees soft-deleted VMs too; the other lookups say whether they do.

    `update` writes every column except `deleted` (lifecycle.md D15) and `resize_requested`,
    so a stale copy never resurrects or deletes a VM, nor loses or revives a resize;
    `delete` and `undelete_for_subscription` change the first, `request_resize` and
    `settle_resize` the second. The other columns it writes from the caller's copy: only a
    copy read under the subscription's lock (taken as the transaction's first statement)
    may be written back; every writer of a VM's row holds that lock (review r5).
    """

    async def get_by_line_item(self, line_item_id: int) -> Vm | None:
        """The VM sold by this line item that is not soft-deleted (lifecycle.md D5)."""
        ...

    async def get_any_by_line_item(self, line_item_id: int) -> Vm | None:
        """The lowest-id VM whose row points at this line item, soft-deleted ones too (a late
        payment restores a deleted VM through it, D24): the item cannot be deleted."""
        ...

    async def get_owned_by_key(self, vm_id: int, pubkey: bytes) -> Vm | None:
        """The VM (soft-deleted too) if the user with this public key owns it, found without
        looking the user up first (issue 10)."""
        ...

    async def get_by_subscription(self, subscription_id: int) -> Vm | None:
        """The lowest-id VM on a Vps line item of the subscription, deleted or not (D6)."""
        ...

    async def list_by_user(self, user_id: int, limit: int, offset: int = 0) -> Page[Vm]:
        """The user's VMs that are not soft-deleted, ascending id."""
        ...

    async def list_page(self, which: VmListFilter, limit: int, offset: int) -> Page[Vm]:
        """The VMs `which` selects, id descending (LIMIT/OFFSET), and how many it selects in
        all: filtered, counted and paged by the storage, the public key and the region
        matched there too. SQL: one statement whatever the number of rows (two for a page
        past the end)."""
        ...

    async def list_active(self) -> list[Vm]:
        """Every VM that is not soft-deleted, ascending id (the worker's VM check)."""
        ...

    async def spec_totals(
        self, host_ids: Collection[int], *, never_paid: bool = False
    ) -> list[SpecTotals]:
        """The specs of the VMs that are not soft-deleted on these hosts, summed by host and
        disk (a VM's standard template, else its custom template; one whose row is gone
        counts nothing), in host then disk order. A fixed number of statements whatever the
        number of VMs (SQL: one per 1 000 hosts): capacity is read on every order.
        `never_paid`: only the VMs of never-paid orders, as `list_never_paid` finds them."""
        ...

    async def list_never_paid(
        self, *, user_id: int | None = None, ordered_before: datetime | None = None
    ) -> list[Vm]:
        """Live VMs of never-paid orders, ascending id (D25).

        Never paid: the VM's subscription was never set up and has no expiry (the never-paid
        cleanup's test, D17). `user_id` narrows to one user's VMs; `ordered_before` to
        subscriptions created strictly before that time.
        """
        ...

    async def count_using(
        self, *, template_id: int | None = None, image_id: int | None = None
    ) -> int:
        """VMs, soft-deleted ones too, whose row points at the template / image (either given
        filter must match); a catalogue row they point at cannot be deleted."""
        ...

    async def delete(self, vm_id: int) -> None:
        """Soft delete (`deleted = 1`, lifecycle.md D14)."""
        ...

    async def set_ssh_key(self, vm_id: int, ssh_key_id: int) -> bool:
        """Write `ssh_key_id` alone, on a VM that is not soft-deleted (the owner's PATCH,
        review r5: a whole-row write of a copy read earlier could undo an upgrade's template
        change); False when no such live VM is left."""
        ...

    async def set_image(self, vm_id: int, image_id: int) -> None:
        """Write `image_id` alone (a re-install, review r5: the re-install's host call is
        slow, and an upgrade booked meanwhile changes the template columns of the row)."""
        ...

    async def undelete_for_subscription(self, subscription_id: int) -> int:
        """Clear `deleted` on every VM of the subscription's line items (D20 step 2).

        Returns how many VMs were soft-deleted before.
        """
        ...

    async def request_resize(self, vm_id: int, now: datetime) -> datetime:
        """Mark the VM's records as ahead of its host (a paid upgrade applied), in the
        caller's transaction: `resize_requested` becomes `next_resize_mark` of the value it
        holds (read under the row's lock), which is returned."""
        ...

    async def settle_resize(self, vm_id: int, seen: datetime, then: datetime | None) -> bool:
        """Compare-and-set: `resize_requested` becomes `then` (None: the host has the size)
        only if it still holds `seen`; False when a newer upgrade changed it meanwhile."""
        ...

    async def list_resize_requested(self, before: datetime) -> list[Vm]:
        """VMs, soft-deleted ones too, whose `resize_requested` is earlier than `before`,
        ascending id: one query, on the column's index (the worker's VM check)."""
        ...


class VmHistories(Protocol):
    async def add(self, entry: VmHistory) -> VmHistory: ...

    async def list_by_vm(self, vm_id: int, limit: int, offset: int = 0) -> Page[VmHistory]:
        """Newest first (timestamp DESC, id DESC)."""
        ...

    async def list_all_by_vm(self, vm_id: int) -> list[VmHistory]:
        """Every entry of the VM, newest first (timestamp DESC, id DESC), in one query."""
        ...
