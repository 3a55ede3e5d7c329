"""Admin regions (api.md §9.7): stats, create, update, soft delete refused while hosts remain."""

from __future__ import annotations

from collections import Counter, defaultdict

import attrs

from app.admin import catalogue_common as common
from domain.model import Region
from ports.storage import UnitOfWork, UnitOfWorkFactory


@attrs.frozen
class RegionInfo:
    region: Region
    host_count: int = 0
    total_vms: int = 0
    total_cpu_cores: int = 0
    total_memory_bytes: int = 0
    total_ip_assignments: int = 0


async def _infos(uow: UnitOfWork, regions: list[Region]) -> list[RegionInfo]:
    """Hosts with their CPU and memory, live VMs on them and those VMs' live addresses."""
    hosts = await uow.hosts.list_all()
    region_of_host = {h.id: h.region_id for h in hosts}
    cpu: Counter[int] = Counter()
    memory: Counter[int] = Counter()
    host_count: Counter[int] = Counter()
    for host in hosts:
        host_count[host.region_id] += 1
        cpu[host.region_id] += host.cpu
        memory[host.region_id] += host.memory
    vms: Counter[int] = Counter()
    region_of_vm: dict[int, int] = {}
    for vm in await uow.vms.list_active():
        if vm.host_id in region_of_host:
            region_of_vm[vm.id] = region_of_host[vm.host_id]
            vms[region_of_host[vm.host_id]] += 1
    ips: dict[int, int] = defaultdict(int)
    for assignment in await uow.ip_assignments.list_live():
        if assignment.vm_id in region_of_vm:
            ips[region_of_vm[assignment.vm_id]] += 1
    return [
        RegionInfo(r, host_count[r.id], vms[r.id], cpu[r.id], memory[r.id], ips[r.id])
        for r in regions
    ]


async def list_regions(
    uow_factory: UnitOfWorkFactory, enabled: bool | None = None
) -> list[RegionInfo]:
    async with uow_factory() as uow:
        return await _infos(uow, common.matching(await uow.regions.list_all(), enabled=enabled))


async def get_region(uow_factory: UnitOfWorkFactory, region_id: int) -> RegionInfo:
    async with uow_factory() as uow:
        region = await uow.regions.get(region_id)
        if region is None:
            raise common.not_found("Region")
        return (await _infos(uow, [region]))[0]


async def _check_company(uow: UnitOfWork, company_id: int) -> None:
    await common.check_reference(uow.companies, company_id, "Company")


async def create_region(uow_factory: UnitOfWorkFactory, fields: common.Fields) -> RegionInfo:
    """Without `company_id` (the LNVPS admin front end may send null) the first company owns
    the region, as the reference's default company does."""
    name = common.trimmed(fields.get("name") or "", "Region name cannot be empty")
    async with uow_factory() as uow:
        company_id = fields.get("company_id")
        if company_id is None:
            companies = await uow.companies.list_all()
            if not companies:
                raise common.UnknownReference(
                    "Create a company first: a region belongs to a company"
                )
            company_id = companies[0].id
        await _check_company(uow, company_id)
        region = await uow.regions.add(
            Region(
                id=0,
                name=name,
                enabled=fields.get("enabled", True),
                company_id=company_id,
            )
        )
        await uow.commit()
    return RegionInfo(region)


async def update_region(
    uow_factory: UnitOfWorkFactory, region_id: int, fields: common.Fields
) -> RegionInfo:
    changes = dict(fields)
    if "name" in changes:
        changes["name"] = common.trimmed(changes["name"] or "", "Region name cannot be empty")
    async with uow_factory() as uow:
        region = await uow.regions.get(region_id)
        if region is None:
            raise common.not_found("Region")
        if "company_id" in changes:
            await _check_company(uow, changes["company_id"])
        updated = common.evolve(region, changes)
        await uow.regions.update(updated)
        return await common.committed(uow, updated, _infos)


async def disable_region(uow_factory: UnitOfWorkFactory, region_id: int) -> None:
    """The reference's "delete": `enabled = false`; refused while hosts are assigned (its VMs
    and templates still point at the region, so the row must stay)."""
    async with uow_factory() as uow:
        region = await uow.regions.get(region_id)
        if region is None:
            raise common.not_found("Region")
        hosts = len(await uow.hosts.list_by_region(region_id))
        if hosts:
            raise common.InUse(f"Cannot delete region with {hosts} assigned hosts")
        await uow.regions.update(attrs.evolve(region, enabled=False))
        await uow.commit()
