"""Memory repositories for regions, hosts, images, IP ranges, plans and pricing."""

from __future__ import annotations

from collections import Counter

from adapters.memory.db import RecordRepo, evolve
from domain.errors import IMAGE_EXISTS
from domain.model import (
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    Host,
    HostDisk,
    IpAssignment,
    IpRange,
    OsImage,
    Region,
    VmTemplate,
)


class MemoryRegions(RecordRepo[Region]):
    table = "vm_host_region"

    async def lock(self, region_id: int) -> None:
        """Nothing to do: a memory unit of work already runs alone (one lock for all)."""


class MemoryHosts(RecordRepo[Host]):
    table = "vm_host"

    async def list_by_region(self, region_id: int) -> list[Host]:
        return self._where(lambda h: h.region_id == region_id)


class MemoryHostDisks(RecordRepo[HostDisk]):
    table = "vm_host_disk"

    async def list_by_host(self, host_id: int) -> list[HostDisk]:
        return self._where(lambda d: d.host_id == host_id)


class MemoryImages(RecordRepo[OsImage]):
    table = "vm_os_image"
    unique = (("distribution", "flavour", "version"),)
    duplicate_message = IMAGE_EXISTS


class MemoryIpRanges(RecordRepo[IpRange]):
    table = "ip_range"

    async def list_by_region(self, region_id: int) -> list[IpRange]:
        return self._where(lambda r: r.region_id == region_id)


class MemoryIpAssignments(RecordRepo[IpAssignment]):
    table = "vm_ip_assignment"

    async def list_live(self) -> list[IpAssignment]:
        return self._where(lambda a: not a.deleted)

    async def list_by_vm(self, vm_id: int) -> list[IpAssignment]:
        return self._where(lambda a: a.vm_id == vm_id and not a.deleted)

    async def delete(self, assignment_id: int) -> None:
        rows = self._rows(self.table)
        if assignment_id in rows:
            rows[assignment_id] = evolve(rows[assignment_id], deleted=True)


class MemoryCostPlans(RecordRepo[CostPlan]):
    table = "vm_cost_plan"


class MemoryTemplates(RecordRepo[VmTemplate]):
    table = "vm_template"


class MemoryCustomPricings(RecordRepo[CustomPricing]):
    table = "vm_custom_pricing"

    async def list_by_region(self, region_id: int) -> list[CustomPricing]:
        return self._where(lambda p: p.region_id == region_id)

    async def add_disk(self, disk: CustomPricingDisk) -> CustomPricingDisk:
        return self._insert("vm_custom_pricing_disk", disk)

    async def list_disks(self, pricing_id: int) -> list[CustomPricingDisk]:
        rows = sorted(self._rows("vm_custom_pricing_disk").items())
        return [d for _, d in rows if d.pricing_id == pricing_id]

    async def remove_disks(self, pricing_id: int) -> int:
        rows = self._rows("vm_custom_pricing_disk")
        gone = [key for key, d in rows.items() if d.pricing_id == pricing_id]
        for key in gone:
            del rows[key]
        return len(gone)


class MemoryCustomTemplates(RecordRepo[CustomTemplate]):
    table = "vm_custom_template"

    async def count_by_pricing(self) -> dict[int, int]:
        return dict(Counter(t.pricing_id for t in self._where()))
