"""SQL status read model: only what a VM's status shows, in one narrow joined select (issue 10)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
from sqlalchemy import Column, Label, Select, Table, bindparam, select

from adapters.mysql import tables as t
from adapters.mysql.connection import SqlConnection
from adapters.mysql.mapping import Mapper, Part
from adapters.mysql.vm_select import ShapedSelect, filter_shape, in_vm_order, status_select
from domain.model import CustomPricing, CustomPricingDisk, CustomTemplate
from ports.storage.reads import (
    ImageLabel,
    IpLabel,
    PlanLabel,
    RegionLabel,
    SshKeyLabel,
    SubscriptionLabel,
    TemplateLabel,
    VmFilter,
    VmStatusRecords,
)

Connect = Callable[[], SqlConnection]
CustomRows = tuple[CustomTemplate, CustomPricing | None, tuple[CustomPricingDisk, ...]]
#: the VM's own columns, first in every row and read by position (row[0] … row[5])
_VM_COLUMNS = ("id", "mac_address", "image_id", "ssh_key_id", "template_id", "custom_template_id")


class _Label:
    """A positional label's columns (its fields, in order) and where they sit in the row; built
    from the row slice as is, None when the outer join found no row (its first column, an id
    or a NOT NULL column, is NULL)."""

    def __init__(self, cls: type[Any], columns: Sequence[Column[Any]], at: int) -> None:
        self.cls = cls
        self.columns = [c.label(f"{c.table.name}__{c.name}") for c in columns]
        self.start, self.end = at, at + len(columns)

    def read(self, row: Sequence[Any]) -> Any:
        if row[self.start] is None:
            return None
        return self.cls(*row[self.start : self.end])


def _named(cls: type[Any], table: Table) -> list[Column[Any]]:
    """The table's columns named as the label's fields, in field order."""
    return [table.c[f.name] for f in attrs.fields(cls)]


@attrs.frozen
class CustomMappers:
    custom_template: Mapper[CustomTemplate]
    custom_pricing: Mapper[CustomPricing]
    custom_pricing_disk: Mapper[CustomPricingDisk]


class VmStatusPlan:
    """The narrow joined select (per filter shape) and the custom VMs' select, built once per
    unit-of-work factory: ~40 columns, no type conversion the status does not show, and
    labels built from row slices instead of ten domain records (issue 10)."""

    def __init__(self, mappers: CustomMappers) -> None:
        labels: list[_Label] = []

        def label(cls: type[Any], columns: Sequence[Column[Any]]) -> _Label:
            made = _Label(cls, columns, labels[-1].end if labels else len(_VM_COLUMNS))
            labels.append(made)
            return made

        ip, ip_range = t.vm_ip_assignment.c, t.ip_range.c
        self._sub = label(SubscriptionLabel, _named(SubscriptionLabel, t.subscription))
        self._image = label(ImageLabel, _named(ImageLabel, t.vm_os_image))
        self._key = label(SshKeyLabel, _named(SshKeyLabel, t.user_ssh_key))
        self._region = label(RegionLabel, _named(RegionLabel, t.vm_host_region))
        self._template = label(TemplateLabel, _named(TemplateLabel, t.vm_template))
        self._plan = label(PlanLabel, _named(PlanLabel, t.vm_cost_plan))
        ip_columns = [ip.id, ip.ip, ip.dns_forward, ip.dns_reverse, ip_range.cidr, ip_range.gateway]
        self._ip = label(IpLabel, ip_columns)
        vm_columns = [t.vm.c[name].label(f"vm__{name}") for name in _VM_COLUMNS]
        columns: list[Label[Any]] = vm_columns + [c for lb in labels for c in lb.columns]
        self._shapes = ShapedSelect(status_select(columns))
        self._custom_select, self._custom_parts = _custom_select(mappers)

    def statement(self, which: VmFilter) -> tuple[Select[Any], dict[str, Any]] | None:
        shaped = filter_shape(which)
        if shaped is None:
            return None
        return self._shapes.select(shaped[0]), shaped[1]

    def first(self, row: Sequence[Any]) -> dict[str, Any]:
        """A VM's fields from its first row (addresses and the custom spec not yet)."""
        found: dict[str, Any] = {
            "id": row[0],
            "mac_address": row[1],
            "image_id": row[2],
            "ssh_key_id": row[3],
            "subscription": self._sub.read(row),
            "image": self._image.read(row),
            "ssh_key": self._key.read(row),
        }
        if row[4] is not None:  # a standard template: its plan and region only if it exists
            template = found["template"] = self._template.read(row)
            if template is not None:
                found["plan"] = self._plan.read(row)
                found["region"] = self._region.read(row)
        return found

    @property
    def ip_id_at(self) -> int:
        """Where an address's id is in a row."""
        return self._ip.start

    def ip(self, row: Sequence[Any]) -> IpLabel | None:
        found: IpLabel | None = self._ip.read(row)
        return found

    def region(self, row: Sequence[Any]) -> RegionLabel | None:
        found: RegionLabel | None = self._region.read(row)
        return found

    async def rows(
        self, connection: SqlConnection, query: Select[Any], params: dict[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The status rows of `query`."""
        result = await connection.execute(query, params)
        found_rows: Sequence[Sequence[Any]] = result.all()
        return found_rows

    @property
    def custom_select(self) -> Select[Any]:
        return self._custom_select

    def custom_rows(self, rows: Sequence[Sequence[Any]]) -> dict[int, CustomRows]:
        """Each custom template's record with its pricing and the pricing's disks."""
        spec_part, pricing_part, disk_part = self._custom_parts
        out: dict[int, tuple[CustomTemplate, CustomPricing | None, list[CustomPricingDisk]]] = {}
        for row in rows:
            spec_id = row[spec_part.id_at]
            if spec_id not in out:
                spec = spec_part.read(row)
                assert spec is not None
                out[spec_id] = (spec, pricing_part.read(row), [])
            disk = disk_part.read(row)
            if disk is not None:
                out[spec_id][2].append(disk)
        return {key: (spec, pricing, tuple(disks)) for key, (spec, pricing, disks) in out.items()}


def _custom_select(
    mappers: CustomMappers,
) -> tuple[Select[Any], tuple[Part[CustomTemplate], Part[CustomPricing], Part[CustomPricingDisk]]]:
    """Custom templates `:ids` ⟕ their pricing ⟕ its disks, by template id then disk id."""
    spec = Part(mappers.custom_template, 0)
    pricing = Part(mappers.custom_pricing, spec.end)
    disk = Part(mappers.custom_pricing_disk, pricing.end)
    c, p, d = t.vm_custom_template, t.vm_custom_pricing, t.vm_custom_pricing_disk
    joined = c.outerjoin(p, p.c.id == c.c.pricing_id).outerjoin(d, d.c.pricing_id == p.c.id)
    query = (
        select(*spec.columns(), *pricing.columns(), *disk.columns())
        .select_from(joined)
        .where(c.c.id.in_(bindparam("ids", expanding=True)))
        .order_by(c.c.id, d.c.id)
    )
    return query, (spec, pricing, disk)


async def vm_statuses(
    connection: SqlConnection, plan: VmStatusPlan, which: VmFilter
) -> list[VmStatusRecords]:
    """`VmReads.vm_statuses` over SQL: one statement, and one more when a custom VM is found."""
    built = plan.statement(which)
    if built is None:
        return []
    rows = await plan.rows(connection, *built)
    found: dict[int, tuple[dict[str, Any], list[IpLabel], Sequence[Any]]] = {}
    for row in in_vm_order(rows, 0, plan.ip_id_at):
        vm_id = row[0]
        entry = found.get(vm_id)
        if entry is None:
            entry = found[vm_id] = (plan.first(row), [], row)
        ip = plan.ip(row)
        if ip is not None:
            entry[1].append(ip)
    custom_ids = {row[5] for _, _, row in found.values() if row[4] is None and row[5] is not None}
    customs: dict[int, CustomRows] = {}
    if custom_ids:
        result = await connection.execute(plan.custom_select, {"ids": sorted(custom_ids)})
        customs = plan.custom_rows(result.all())
    out = []
    for fields, ips, row in found.values():
        custom = None if row[4] is not None or row[5] is None else customs.get(row[5])
        if custom is not None:
            spec, pricing, disks = custom
            fields["custom"] = spec
            if pricing is not None:
                fields.update(pricing=pricing, pricing_disks=disks, region=plan.region(row))
        out.append(VmStatusRecords(ips=tuple(ips), **fields))
    return out
