"""Memory repositories for regions, hosts, images, IP ranges, plans and pricing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Protocol, TypeVar

from adapters.memory.db import RecordRepo, evolve
from domain import model as m
from domain.enums import DiskInterface, DiskType
from domain.errors import IMAGE_EXISTS
from ports.storage.catalogue import AddressUse


class _HasRegion(Protocol):
    @property
    def region_id(self) -> int: ...


InRegion = TypeVar("InRegion", bound=_HasRegion)


class _RegionRecords(RecordRepo[InRegion]):
    """A table whose rows each belong to one region (hosts, IP ranges, custom pricings)."""

    async def list_by_region(self, region_id: int) -> list[InRegion]:
        return self._where(lambda row: row.region_id == region_id)


class MemoryRegions(RecordRepo[m.Region]):
    table = "vm_host_region"

    async def lock(self, region_id: int) -> None:
        """Nothing to do: a memory unit of work already runs alone (one lock for all)."""


class MemoryHosts(_RegionRecords[m.Host]):
    table = "vm_host"


class MemoryHostDisks(RecordRepo[m.HostDisk]):
    table = "vm_host_disk"

    async def list_by_host(self, host_id: int) -> list[m.HostDisk]:
        return self._where(lambda d: d.host_id == host_id)


class MemoryImages(RecordRepo[m.OsImage]):
    table = "vm_os_image"
    unique = (("distribution", "flavour", "version"),)
    duplicate_message = IMAGE_EXISTS


class MemoryIpRanges(_RegionRecords[m.IpRange]):
    table = "ip_range"


class MemoryIpAssignments(RecordRepo[m.IpAssignment]):
    """`update` leaves `deleted` alone: only `delete` changes it."""

    table = "vm_ip_assignment"

    async def update(self, record: m.IpAssignment) -> None:
        old = await self.get(record.id)
        if old is not None:
            await super().update(evolve(record, deleted=old.deleted))

    async def address_use(
        self, host_ids: Collection[int], range_ids: Collection[int]
    ) -> AddressUse:
        hosts, ranges = set(host_ids), set(range_ids)
        vms = {v.id: v for v in self._rows("vm").values() if not v.deleted}
        live = [a for a in self._where(lambda a: not a.deleted) if a.vm_id in vms]
        addressed = {a.vm_id for a in live}
        unaddressed = {i for i, v in vms.items() if v.host_id in hosts and i not in addressed}
        held = {a.ip for a in live if a.ip_range_id in ranges}
        return AddressUse(frozenset(unaddressed), len(held))

    async def list_live(self) -> list[m.IpAssignment]:
        return self._where(lambda a: not a.deleted)

    async def list_by_vm(self, vm_id: int) -> list[m.IpAssignment]:
        return self._where(lambda a: a.vm_id == vm_id and not a.deleted)

    async def set_dns_reverse(self, vm_id: int, name: str | None) -> int:
        live = await self.list_by_vm(vm_id)
        return sum(self._set(a.id, live_only=True, dns_reverse=name) for a in live)

    async def delete(self, assignment_id: int) -> None:
        rows = self._rows(self.table)
        if assignment_id in rows:
            rows[assignment_id] = evolve(rows[assignment_id], deleted=True)


class MemoryCostPlans(RecordRepo[m.CostPlan]):
    table = "vm_cost_plan"


class MemoryTemplates(RecordRepo[m.VmTemplate]):
    table = "vm_template"


class MemoryCustomPricings(_RegionRecords[m.CustomPricing]):
    table = "vm_custom_pricing"

    async def add_disk(self, disk: m.CustomPricingDisk) -> m.CustomPricingDisk:
        return self._insert("vm_custom_pricing_disk", disk)

    async def list_disks(self, pricing_id: int) -> list[m.CustomPricingDisk]:
        rows = sorted(self._rows("vm_custom_pricing_disk").items())
        return [d for _, d in rows if d.pricing_id == pricing_id]

    async def remove_disks(self, pricing_id: int) -> int:
        rows = self._rows("vm_custom_pricing_disk")
        gone = [key for key, d in rows.items() if d.pricing_id == pricing_id]
        for key in gone:
            del rows[key]
        return len(gone)


class MemoryCustomTemplates(RecordRepo[m.CustomTemplate]):
    table = "vm_custom_template"

    async def count_by_pricing(self) -> dict[int, int]:
        return dict(Counter(t.pricing_id for t in self._where()))

    async def disks_in_use(self, pricing_id: int) -> dict[tuple[DiskType, DiskInterface], int]:
        vms = self._rows("vm").values()
        dead = {v.custom_template_id for v in vms if v.deleted} - {
            v.custom_template_id for v in vms if not v.deleted
        }
        return dict(
            Counter(
                (t.disk_type, t.disk_interface)
                for t in self._where(lambda t: t.pricing_id == pricing_id and t.id not in dead)
            )
        )
