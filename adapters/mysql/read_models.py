"""SQL read models: a VM with its status rows in one joined query; batched look-ups."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar, cast

import attrs
from sqlalchemy import Column, ColumnElement, Select, func, select

from adapters.mysql import tables as t
from adapters.mysql.connection import SqlConnection
from adapters.mysql.mapping import Mapper, Part
from adapters.mysql.status_reads import VmStatusPlan, vm_statuses
from adapters.mysql.vm_select import (
    FilterShape,
    ShapedSelect,
    filter_shape,
    in_vm_order,
    status_select,
)
from domain.model import (
    CostPlan,
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    IpAssignment,
    IpRange,
    OsImage,
    Region,
    Subscription,
    User,
    Vm,
    VmTemplate,
)
from ports.storage.reads import SshKeyLabel, VmFilter, VmRecords, VmStatusRecords

R = TypeVar("R")
Connect = Callable[[], SqlConnection]


@attrs.frozen
class VmReadMappers:
    vm: Mapper[Vm]
    subscription: Mapper[Subscription]
    image: Mapper[OsImage]
    region: Mapper[Region]
    template: Mapper[VmTemplate]
    cost_plan: Mapper[CostPlan]
    custom_template: Mapper[CustomTemplate]
    custom_pricing: Mapper[CustomPricing]
    custom_pricing_disk: Mapper[CustomPricingDisk]
    ip_assignment: Mapper[IpAssignment]
    ip_range: Mapper[IpRange]


_KEY = t.user_ssh_key.c
_KEY_LABELS = ("user_ssh_key__id", "user_ssh_key__name", "user_ssh_key__created")


class VmReadPlan:
    """The joined select and its column groups, built once per unit-of-work factory."""

    def __init__(self, mappers: VmReadMappers) -> None:
        self.mappers = mappers
        mp = mappers
        parts: list[Part[Any]] = []

        def part(mapper: Mapper[R]) -> Part[R]:
            made = Part(mapper, parts[-1].end if parts else 0)
            parts.append(made)
            return made

        self.vm = part(mp.vm)
        self._sub = part(mp.subscription)
        self._image = part(mp.image)
        self._region = part(mp.region)
        self._template = part(mp.template)
        self._cost_plan = part(mp.cost_plan)
        self._custom = part(mp.custom_template)
        self._pricing = part(mp.custom_pricing)
        self.ip = part(mp.ip_assignment)
        self.ip_range = part(mp.ip_range)
        self._parts: Sequence[Part[Any]] = tuple(parts)
        self._key_at = parts[-1].end  # the SSH key's id, name, created follow the parts
        self._shapes = ShapedSelect(self._select())

    def statement(self, shape: FilterShape) -> Select[Any]:
        """The joined select for one shape of filter (see `shaped`)."""
        return self._shapes.select(shape)

    def records(self, row: Sequence[Any]) -> VmRecords:
        """A VM's records from its first row (addresses and disks left empty)."""
        vm = self.vm.read(row)
        assert vm is not None
        key = None
        at = self._key_at
        if row[at] is not None:
            key = SshKeyLabel(id=row[at], name=row[at + 1], created=row[at + 2])
        common: dict[str, Any] = {
            "vm": vm,
            "subscription": self._sub.read(row),
            "image": self._image.read(row),
            "ssh_key": key,
        }
        if vm.template_id is not None:
            template = self._template.read(row)
            return VmRecords(
                template=template,
                plan=self._cost_plan.read(row) if template is not None else None,
                region=self._region.read(row) if template is not None else None,
                **common,
            )
        custom = self._custom.read(row) if vm.custom_template_id is not None else None
        pricing = self._pricing.read(row) if custom is not None else None
        region = self._region.read(row) if pricing is not None else None
        return VmRecords(custom=custom, pricing=pricing, region=region, **common)

    def _select(self) -> Select[Any]:
        columns: list[Any] = [c for part in self._parts for c in part.columns()]
        columns += [
            _KEY.id.label(_KEY_LABELS[0]),
            _KEY.name.label(_KEY_LABELS[1]),
            _KEY.created.label(_KEY_LABELS[2]),
        ]
        return status_select(columns)


class SqlVmReads:
    """`VmReads` over SQL: VM ⋈ line item ⋈ subscription, image, key, offer, region, addresses."""

    def __init__(self, connection: Connect, plan: VmReadPlan, status: VmStatusPlan) -> None:
        self._connection = connection
        self._plan = plan
        self._status = status

    async def vm_statuses(self, which: VmFilter) -> list[VmStatusRecords]:
        return await vm_statuses(self._connection(), self._status, which)

    async def vm_records(self, which: VmFilter) -> list[VmRecords]:
        shaped = filter_shape(which)
        if shaped is None:
            return []
        plan = self._plan
        query = plan.statement(shaped[0])
        params = shaped[1]
        rows = (await self._connection().execute(query, params)).all()
        found: dict[int, tuple[VmRecords, list[tuple[IpAssignment, IpRange | None]]]] = {}
        for row in in_vm_order(rows, plan.vm.id_at, plan.ip.id_at):
            vm_id = row[plan.vm.id_at]
            if vm_id not in found:
                found[vm_id] = (plan.records(row), [])
            assignment = plan.ip.read(row)
            if assignment is not None:
                found[vm_id][1].append((assignment, plan.ip_range.read(row)))
        disks = await self._disks({r.pricing.id for r, _ in found.values() if r.pricing})
        return [
            attrs.evolve(
                records,
                ips=tuple(ips),
                pricing_disks=disks.get(records.pricing.id, ()) if records.pricing else (),
            )
            for records, ips in found.values()
        ]

    async def _disks(self, pricing_ids: set[int]) -> dict[int, tuple[CustomPricingDisk, ...]]:
        if not pricing_ids:
            return {}
        mapper = self._plan.mappers.custom_pricing_disk
        query = (
            select(*mapper.columns)
            .where(t.vm_custom_pricing_disk.c.pricing_id.in_(sorted(pricing_ids)))
            .order_by(t.vm_custom_pricing_disk.c.id)
        )
        result = await self._connection().execute(query)
        out: dict[int, list[CustomPricingDisk]] = {}
        for row in result.mappings():
            disk = mapper.from_row(cast(Mapping[str, Any], row))
            out.setdefault(disk.pricing_id, []).append(disk)
        return {pricing_id: tuple(disks) for pricing_id, disks in out.items()}


class SqlReadLookups:
    """`ReadLookups` over SQL: one `IN (…)` query per call (none for no ids)."""

    def __init__(self, connection: Connect, users: Mapper[User]) -> None:
        self._connection = connection
        self._users = users

    async def _rows(self, query: Select[Any]) -> list[Any]:
        return list((await self._connection().execute(query)).all())

    async def users(self, user_ids: Collection[int]) -> dict[int, User]:
        if not user_ids:
            return {}
        mapper = self._users
        query = select(*mapper.columns).where(t.users.c.id.in_(sorted(set(user_ids))))
        result = await self._connection().execute(query)
        found = [mapper.from_row(cast(Mapping[str, Any], row)) for row in result.mappings()]
        return {user.id: user for user in found}

    async def vm_counts(self, user_ids: Collection[int]) -> dict[int, int]:
        vm = t.vm.c
        return await self._count_by(vm.user_id, user_ids, vm.deleted == False)  # noqa: E712

    async def admins(self, user_ids: Collection[int], now: datetime) -> set[int]:
        if not user_ids:
            return set()
        a = t.admin_role_assignments.c
        query = (
            select(a.user_id)
            .distinct()
            .where(
                a.user_id.in_(sorted(set(user_ids))), a.expires_at.is_(None) | (a.expires_at > now)
            )
        )
        return {int(user_id) for (user_id,) in await self._rows(query)}

    async def payment_counts(self, subscription_ids: Collection[int]) -> dict[int, int]:
        return await self._count_by(t.subscription_payment.c.subscription_id, subscription_ids)

    async def _count_by(
        self, key: Column[Any], wanted: Collection[int], *where: ColumnElement[bool]
    ) -> dict[int, int]:
        """Rows per wanted value of `key` (none: absent), in one grouped query."""
        if not wanted:
            return {}
        query = select(key, func.count()).where(key.in_(sorted(set(wanted))), *where).group_by(key)
        return {int(value): int(count) for value, count in await self._rows(query)}

    async def base_currencies(self, subscription_ids: Collection[int]) -> dict[int, str]:
        if not subscription_ids:
            return {}
        sub, company = t.subscription, t.company
        query = (
            select(sub.c.id, company.c.base_currency)
            .select_from(sub.join(company, company.c.id == sub.c.company_id))
            .where(sub.c.id.in_(sorted(set(subscription_ids))))
        )
        return {int(sub_id): str(currency) for sub_id, currency in await self._rows(query)}
