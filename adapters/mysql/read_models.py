"""SQL read models: a VM with its status rows in one joined query; batched look-ups."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar, cast

import attrs
from sqlalchemy import Column, ColumnElement, Label, Select, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.mysql import tables as t
from adapters.mysql.mapping import Mapper
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
from ports.storage.reads import SshKeyLabel, VmFilter, VmRecords

R = TypeVar("R")
Connect = Callable[[], AsyncConnection]


class _Part(Generic[R]):
    """One table's columns in the joined select, labelled `<table>__<column>`, read back by
    position (`at` is where its columns start in the row)."""

    def __init__(self, mapper: Mapper[R], at: int) -> None:
        self.mapper = mapper
        prefix = f"{mapper.table.name}__"
        self.names = tuple(c.name for c in mapper.columns)
        self.labels = [(name, f"{prefix}{name}") for name in self.names]
        self.start = at
        self.end = at + len(self.names)
        self.id_at = at + self.names.index("id")

    def columns(self) -> list[Label[Any]]:
        table = self.mapper.table
        return [table.c[name].label(label) for name, label in self.labels]

    def read(self, row: Sequence[Any]) -> R | None:
        """The record, or None when the outer join found no row."""
        if row[self.id_at] is None:
            return None
        return self.mapper.from_values(
            dict(zip(self.names, row[self.start : self.end], strict=True))
        )


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
        parts: list[_Part[Any]] = []

        def part(mapper: Mapper[R]) -> _Part[R]:
            made = _Part(mapper, parts[-1].end if parts else 0)
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
        self._parts: Sequence[_Part[Any]] = tuple(parts)
        self._key_at = parts[-1].end  # the SSH key's id, name, created follow the parts
        self.select = self._select()
        self._shapes: dict[tuple[bool, bool, int, bool], Select[Any]] = {}

    def statement(
        self, *, by_user: bool, ids: int, deleted: bool, by_pubkey: bool = False
    ) -> Select[Any]:
        """The joined select for one shape of filter, built once with bound parameters so that
        a call costs no statement building and no cache-key walk (issue 10): `by_user` adds
        `vm.user_id = :user_id`; `by_pubkey` the owner's key (`users.pubkey = :pubkey`, a
        unique index, so the caller needs no user look-up first); `ids` 1 adds
        `vm.id = :vm_id`, 2 `vm.id IN :vm_ids` (expanding), 0 nothing; without `deleted` only
        rows not deleted."""
        key = (by_user, by_pubkey, ids, deleted)
        found = self._shapes.get(key)
        if found is not None:
            return found
        vm = t.vm.c
        where: list[ColumnElement[bool]] = []
        if by_user:
            where.append(vm.user_id == bindparam("user_id"))
        if by_pubkey:
            owner = select(t.users.c.id).where(t.users.c.pubkey == bindparam("pubkey"))
            where.append(vm.user_id == owner.scalar_subquery())
        if ids == 1:
            where.append(vm.id == bindparam("vm_id"))
        elif ids:
            where.append(vm.id.in_(bindparam("vm_ids", expanding=True)))
        if not deleted:
            where.append(vm.deleted == False)  # noqa: E712
        built = self._shapes[key] = self.select.where(*where)
        return built

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
        vm, li, sub = t.vm, t.subscription_line_item, t.subscription
        template, custom, pricing = t.vm_template, t.vm_custom_template, t.vm_custom_pricing
        ip, ip_range = t.vm_ip_assignment, t.ip_range
        columns: list[Any] = [c for part in self._parts for c in part.columns()]
        columns += [
            _KEY.id.label(_KEY_LABELS[0]),
            _KEY.name.label(_KEY_LABELS[1]),
            _KEY.created.label(_KEY_LABELS[2]),
        ]
        joined = (
            vm.outerjoin(li, li.c.id == vm.c.subscription_line_item_id)
            .outerjoin(sub, sub.c.id == li.c.subscription_id)
            .outerjoin(t.vm_os_image, t.vm_os_image.c.id == vm.c.image_id)
            .outerjoin(t.user_ssh_key, _KEY.id == vm.c.ssh_key_id)
            .outerjoin(template, template.c.id == vm.c.template_id)
            .outerjoin(t.vm_cost_plan, t.vm_cost_plan.c.id == template.c.cost_plan_id)
            .outerjoin(custom, custom.c.id == vm.c.custom_template_id)
            .outerjoin(pricing, pricing.c.id == custom.c.pricing_id)
            .outerjoin(
                t.vm_host_region,
                t.vm_host_region.c.id == func.coalesce(template.c.region_id, pricing.c.region_id),
            )
            .outerjoin(ip, and_(ip.c.vm_id == vm.c.id, ip.c.deleted == False))  # noqa: E712
            .outerjoin(ip_range, ip_range.c.id == ip.c.ip_range_id)
        )
        return select(*columns).select_from(joined).order_by(vm.c.id, ip.c.id)


class SqlVmReads:
    """`VmReads` over SQL: VM ⋈ line item ⋈ subscription, image, key, offer, region, addresses."""

    def __init__(self, connection: Connect, plan: VmReadPlan) -> None:
        self._connection = connection
        self._plan = plan

    async def vm_records(self, which: VmFilter) -> list[VmRecords]:
        user_id, vm_ids, deleted = which.user_id, which.vm_ids, which.deleted
        if vm_ids is not None and not vm_ids:
            return []
        plan = self._plan
        params: dict[str, Any] = {}
        if user_id is not None:
            params["user_id"] = user_id
        if which.owner_pubkey is not None:
            params["pubkey"] = which.owner_pubkey
        ids = 0
        if vm_ids is not None:
            wanted = sorted(set(vm_ids))
            ids = 1 if len(wanted) == 1 else 2
            if ids == 1:
                params["vm_id"] = wanted[0]
            else:
                params["vm_ids"] = wanted
        query = plan.statement(
            by_user=user_id is not None,
            ids=ids,
            deleted=deleted,
            by_pubkey=which.owner_pubkey is not None,
        )
        rows = (await self._connection().execute(query, params)).all()
        found: dict[int, tuple[VmRecords, list[tuple[IpAssignment, IpRange | None]]]] = {}
        for row in rows:
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
