"""Read models: a VM's status rows and batched look-ups, a fixed number of queries per page."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any, Protocol

import attrs

from domain import model as m
from domain.enums import CpuArch, CpuMfg, DiskInterface, DiskType, IntervalType, OsDistribution


@attrs.frozen
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


# --- the status read model: only what ApiVmStatus shows (issue 10) ---------------------------
# Positional labels whose fields are named as their table's columns (the SQL adapter selects
# them by these names and builds them from a row slice).


@attrs.frozen
class SubscriptionLabel:
    """What a VM's status shows of its subscription (and whether it was ever paid)."""

    id: int
    created: datetime
    expires: datetime | None
    is_setup: bool
    auto_renewal_enabled: bool


@attrs.frozen
class ImageLabel:
    id: int
    distribution: OsDistribution
    flavour: str
    version: str
    release_date: datetime
    default_username: str | None


@attrs.frozen
class TemplateLabel:
    """A standard template as a VM's status shows it."""

    id: int
    name: str
    created: datetime
    expires: datetime | None
    cpu: int
    memory: int
    disk_size: int
    disk_type: DiskType
    disk_interface: DiskInterface
    cpu_mfg: CpuMfg
    cpu_arch: CpuArch
    cpu_features: tuple[str, ...]


@attrs.frozen
class PlanLabel:
    """A cost plan as a VM's status shows it."""

    id: int
    name: str
    currency: str
    amount: int
    interval_amount: int
    interval_type: IntervalType


@attrs.frozen
class RegionLabel:
    id: int
    name: str


@attrs.frozen
class IpLabel:
    """A live address of a VM with its range's CIDR and gateway (both None: no range row)."""

    id: int
    ip: str
    dns_forward: str | None
    dns_reverse: str | None
    cidr: str | None
    gateway: str | None


def _label(cls: type[Any], record: object | None) -> Any:
    """The label of a record (its same-named fields), None for None."""
    if record is None:
        return None
    return cls(*(getattr(record, f.name) for f in attrs.fields(cls)))


@attrs.frozen(kw_only=True)
class VmStatusRecords:
    """What ApiVmStatus shows of one VM (api.md §5.2) and nothing more: the same rows as
    `VmRecords` narrowed to the rendered fields, a missing row None. A custom VM keeps its
    whole spec, pricing and disks: its monthly price is computed from them."""

    id: int
    mac_address: str
    image_id: int
    ssh_key_id: int
    subscription: SubscriptionLabel | None = None
    image: ImageLabel | None = None
    ssh_key: SshKeyLabel | None = None
    region: RegionLabel | None = None
    template: TemplateLabel | None = None
    plan: PlanLabel | None = None
    custom: m.CustomTemplate | None = None
    pricing: m.CustomPricing | None = None
    pricing_disks: tuple[m.CustomPricingDisk, ...] = ()
    ips: tuple[IpLabel, ...] = ()

    @property
    def is_provisioned(self) -> bool:
        return self.mac_address != m.PLACEHOLDER_MAC

    @classmethod
    def of(cls, records: VmRecords) -> VmStatusRecords:
        """The narrow view of a VM's whole records (what the memory adapter serves)."""
        vm = records.vm
        ips = tuple(
            IpLabel(
                a.id,
                a.ip,
                a.dns_forward,
                a.dns_reverse,
                None if r is None else r.cidr,
                None if r is None else r.gateway,
            )
            for a, r in records.ips
        )
        return cls(
            id=vm.id,
            mac_address=vm.mac_address,
            image_id=vm.image_id,
            ssh_key_id=vm.ssh_key_id,
            subscription=_label(SubscriptionLabel, records.subscription),
            image=_label(ImageLabel, records.image),
            ssh_key=records.ssh_key,
            region=_label(RegionLabel, records.region),
            template=_label(TemplateLabel, records.template),
            plan=_label(PlanLabel, records.plan),
            custom=records.custom,
            pricing=records.pricing,
            pricing_disks=records.pricing_disks,
            ips=ips,
        )


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

    async def vm_statuses(self, which: VmFilter) -> list[VmStatusRecords]:
        """`vm_records` narrowed to what a VM's status shows (`VmStatusRecords.of` of each),
        for the user API's hottest read (issue 10). The same statements: one, and one more
        for the custom VMs' specs, pricings and disks when one is among them."""
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
