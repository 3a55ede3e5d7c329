"""Read models: a VM's status rows and batched look-ups, a fixed number of queries per page."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Protocol

import attrs

from domain import model as m


@attrs.frozen(kw_only=True)
class SshKeyLabel:
    """An SSH key as a VM's status names it (its key data stays unread)."""

    id: int
    name: str
    created: datetime


@attrs.frozen(kw_only=True)
class VmRecords:
    """A VM with every row its status shows; a missing row is None.

    `region` is the template's (standard VM) or the custom pricing's (custom VM);
    `pricing_disks` are the custom pricing's disk prices (empty for a standard VM).
    """

    vm: m.Vm
    subscription: m.Subscription | None = None
    image: m.OsImage | None = None
    ssh_key: SshKeyLabel | None = None
    region: m.Region | None = None
    template: m.VmTemplate | None = None
    plan: m.CostPlan | None = None
    custom: m.CustomTemplate | None = None
    pricing: m.CustomPricing | None = None
    pricing_disks: tuple[m.CustomPricingDisk, ...] = ()
    ips: tuple[tuple[m.IpAssignment, m.IpRange | None], ...] = ()


@attrs.frozen(kw_only=True)
class VmFilter:
    """Which VMs to read: the user's only when `user_id` is given, those of the user with the
    public key `owner_pubkey` only when that is given, those of `vm_ids` only when given,
    soft-deleted ones only when `deleted`."""

    user_id: int | None = None
    vm_ids: Collection[int] | None = None
    deleted: bool = False
    owner_pubkey: bytes | None = None


class VmReads(Protocol):
    async def vm_records(self, which: VmFilter) -> list[VmRecords]:
        """The VMs `which` selects, by ascending id, with their rows. Addresses are the live
        (not deleted) ones, ascending id.

        A fixed number of statements whatever the number of VMs (SQL: one joined query, and
        one more for the custom pricings' disks when a custom VM is among them).
        """
        ...


class ReadLookups(Protocol):
    """Batched look-ups for list pages: one query per kind, whatever the number of ids."""

    async def users(self, user_ids: Collection[int]) -> dict[int, m.User]:
        """The users of these ids that exist."""
        ...

    async def vm_counts(self, user_ids: Collection[int]) -> dict[int, int]:
        """How many VMs (not deleted) each user has; a user without any is absent."""
        ...

    async def admins(self, user_ids: Collection[int], now: datetime) -> set[int]:
        """The users among these that hold an unexpired role assignment."""
        ...

    async def payment_counts(self, subscription_ids: Collection[int]) -> dict[int, int]:
        """How many payments (paid or not) each subscription has; none: absent."""
        ...

    async def base_currencies(self, subscription_ids: Collection[int]) -> dict[int, str]:
        """The base currency of the company that sells each subscription (existing ones)."""
        ...
