"""Storage ports for what is sold and where it runs: regions, hosts, images, plans, pricing."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

import attrs

from domain import model as m
from domain.enums import DiskInterface, DiskType
from ports.storage.common import Catalogue, Records, Removable


class Regions(Catalogue[m.Region], Protocol):
    async def lock(self, region_id: int) -> None:
        """Hold the region's row lock until the transaction ends.

        Address allocation takes it, so two workers spawning VMs in one region at the same
        moment never pick the same free IP; ordering takes it (after the buyer's lock), so
        two orders never both take a host's last room.
        """
        ...


class Hosts(Catalogue[m.Host], Protocol):
    async def list_by_region(self, region_id: int) -> list[m.Host]: ...


class HostDisks(Catalogue[m.HostDisk], Protocol):
    async def list_by_host(self, host_id: int) -> list[m.HostDisk]: ...


class Images(Catalogue[m.OsImage], Removable, Protocol):
    pass


class IpRanges(Catalogue[m.IpRange], Protocol):
    async def list_by_region(self, region_id: int) -> list[m.IpRange]: ...


@attrs.frozen
class AddressUse:
    """How a region's address pool is used: the live VMs of its hosts that hold no live
    address yet (ids), and how many distinct addresses live VMs hold in its ranges."""

    unaddressed: frozenset[int]
    held: int


class IpAssignments(Records[m.IpAssignment], Protocol):
    """`update` writes every column except `deleted` (as `Vms.update`): a stale copy never
    brings back an address a deletion released; only `delete` changes it."""

    async def address_use(
        self, host_ids: Collection[int], range_ids: Collection[int]
    ) -> AddressUse:
        """The live VMs on these hosts with no live assignment at all (each will take an
        address when built: `app.worker.addresses.pick`), and the number of distinct
        addresses the live assignments of live VMs hold in these ranges. Rows read grow
        with the unaddressed VMs only (orders and builds under way), not with the VMs."""
        ...

    async def list_live(self) -> list[m.IpAssignment]:
        """Every assignment that is not soft-deleted, ascending id (admin region stats)."""
        ...

    async def list_by_vm(self, vm_id: int) -> list[m.IpAssignment]:
        """The VM's assignments that are not soft-deleted, ascending id."""
        ...

    async def set_dns_reverse(self, vm_id: int, name: str | None) -> int:
        """Write `dns_reverse` alone on every live (not soft-deleted) assignment of the VM;
        how many rows were written. A deleted assignment stays deleted (review r5: a whole-
        row write of a copy read before the VM's deletion brought the address back)."""
        ...

    async def delete(self, assignment_id: int) -> None:
        """Soft delete (`deleted = 1`); the address may then be reused."""
        ...


class CostPlans(Catalogue[m.CostPlan], Removable, Protocol):
    pass


class Templates(Catalogue[m.VmTemplate], Removable, Protocol):
    pass


class CustomPricings(Catalogue[m.CustomPricing], Removable, Protocol):
    async def list_by_region(self, region_id: int) -> list[m.CustomPricing]:
        """The region's pricings, ascending id (the first enabled one is the region's price)."""
        ...

    async def add_disk(self, disk: m.CustomPricingDisk) -> m.CustomPricingDisk: ...

    async def list_disks(self, pricing_id: int) -> list[m.CustomPricingDisk]:
        """The pricing's per-disk prices, ascending id."""
        ...

    async def remove_disks(self, pricing_id: int) -> int:
        """Delete every per-disk price of the pricing; how many went."""
        ...


class CustomTemplates(Records[m.CustomTemplate], Protocol):
    async def get_many(self, record_ids: Collection[int]) -> dict[int, m.CustomTemplate]:
        """The custom templates with these ids, by id (an unknown id is left out); a fixed
        number of statements whatever the count (SQL: one per 1 000 ids). Capacity reads
        every live custom VM's spec with it."""
        ...

    async def count_by_pricing(self) -> dict[int, int]:
        """How many custom templates use each pricing (pricings with none are left out)."""
        ...

    async def disks_in_use(self, pricing_id: int) -> dict[tuple[DiskType, DiskInterface], int]:
        """How many live custom templates of the pricing have each (disk type, interface):
        those of a VM that is not deleted, and those no VM is seen using (an order's VM
        committed after this transaction's snapshot; none is left behind otherwise). The
        templates are read as last committed, on MariaDB by a shared locking read (`LOCK IN
        SHARE MODE`), not the transaction's snapshot: under the region's lock, which every
        order takes before it reads the pricing, nothing ordered is missed."""
        ...
