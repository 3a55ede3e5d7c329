"""SQLAlchemy Core repositories for VMs and VM history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, select, true, update

from adapters.mysql import tables as t
from adapters.mysql.in_lists import id_chunks
from adapters.mysql.never_paid import never_paid_order
from adapters.mysql.repositories import SqlRecords, prebuilt
from domain.enums import SubscriptionType
from domain.model import Vm, VmHistory
from domain.upgrade import next_resize_mark
from ports.storage import Page, SpecTotals, VmListFilter

_vm = t.vm.c
_li = t.subscription_line_item.c
_sub = t.subscription.c


def _never_paid_spec_totals() -> Select[Any]:
    """`_spec_totals` of the VMs of never-paid orders only (D25's host share): each live VM
    of the hosts joined to its subscription by primary keys, as the all-VM sum reads them,
    not a list of every never-paid subscription ever made (cleaned-up orders stay so)."""
    return _spec_totals(never_paid=True)


def _spec_totals(never_paid: bool = False) -> Select[Any]:
    """The live VMs' specs summed by host and disk: the standard template's where the VM has
    one, else the custom template's (a missing row joins as NULL, which SUM leaves out).
    `never_paid`: those of never-paid subscriptions only (never set up, no expiry)."""
    tpl, custom = t.vm_template.c, t.vm_custom_template.c

    def of_spec(template_col: Any, custom_col: Any) -> Any:
        return func.sum(case((_vm.template_id.is_not(None), template_col), else_=custom_col))

    joined = t.vm.outerjoin(t.vm_template, tpl.id == _vm.template_id).outerjoin(
        t.vm_custom_template, custom.id == _vm.custom_template_id
    )
    where: list[ColumnElement[bool]] = [
        _vm.deleted == False,  # noqa: E712
        _vm.host_id.in_(bindparam("ids", expanding=True)),
    ]
    if never_paid:
        joined = joined.join(
            t.subscription_line_item, _li.id == _vm.subscription_line_item_id
        ).join(t.subscription, _sub.id == _li.subscription_id)
        where += never_paid_order()
    return (
        select(
            _vm.host_id,
            _vm.disk_id,
            of_spec(tpl.cpu, custom.cpu),
            of_spec(tpl.memory, custom.memory),
            of_spec(tpl.disk_size, custom.disk_size),
        )
        .select_from(joined)
        .where(*where)
        .group_by(_vm.host_id, _vm.disk_id)
    )


def _listed(which: VmListFilter, vm: Any = t.vm) -> ColumnElement[bool]:
    """The WHERE of an admin's VM list over `vm` (the table or an alias of it): the owner's
    key and the host's region matched through subqueries."""
    c = vm.c
    where: list[ColumnElement[bool]] = []
    if not which.include_deleted:
        where.append(c.deleted == False)  # noqa: E712
    if which.user_id is not None:
        where.append(c.user_id == which.user_id)
    if which.owner_pubkey is not None:
        owner = select(t.users.c.id).where(t.users.c.pubkey == which.owner_pubkey)
        where.append(c.user_id.in_(owner))
    if which.host_id is not None:
        where.append(c.host_id == which.host_id)
    if which.region_id is not None:
        hosts = select(t.vm_host.c.id).where(t.vm_host.c.region_id == which.region_id)
        where.append(c.host_id.in_(hosts))
    return and_(*where) if where else true()


class SqlVms(SqlRecords[Vm]):
    """`update` leaves `deleted` alone (lifecycle.md D15): only delete/undelete change it;
    and `resize_requested`: only request_resize/settle_resize change it."""

    frozen_columns = ("deleted", "resize_requested")

    async def get_by_line_item(self, line_item_id: int) -> Vm | None:
        statement = prebuilt(("vm by line item", self.table, self.mapper.cls), self._on_item)
        return await self._first_with(self.mapper, statement, {"line_item_id": line_item_id})

    def _on_item(self) -> Select[Any]:
        query = self._select().where(
            _vm.subscription_line_item_id == bindparam("line_item_id"),
            _vm.deleted == False,  # noqa: E712
        )
        return query.order_by(_vm.id).limit(1)

    async def get_any_by_line_item(self, line_item_id: int) -> Vm | None:
        query = self._select().where(_vm.subscription_line_item_id == line_item_id)
        return await self._one(self.mapper, query.order_by(_vm.id))

    async def get_owned_by_key(self, vm_id: int, pubkey: bytes) -> Vm | None:
        statement = prebuilt(("vm by owner key", self.table, self.mapper.cls), self._by_key)
        return await self._first_with(self.mapper, statement, {"vm_id": vm_id, "pubkey": pubkey})

    def _by_key(self) -> Select[Any]:
        owner = select(t.users.c.id).where(t.users.c.pubkey == bindparam("pubkey"))
        query = self._select().where(
            _vm.id == bindparam("vm_id"), _vm.user_id == owner.scalar_subquery()
        )
        return query.limit(1)

    async def get_by_subscription(self, subscription_id: int) -> Vm | None:
        items = select(_li.id).where(
            _li.subscription_id == subscription_id, _li.subscription_type == SubscriptionType.VPS
        )
        query = self._select().where(_vm.subscription_line_item_id.in_(items)).order_by(_vm.id)
        return await self._one(self.mapper, query)

    async def count_using(
        self, *, template_id: int | None = None, image_id: int | None = None
    ) -> int:
        where: ColumnElement[bool] = true()
        if template_id is not None:
            where = where & (_vm.template_id == template_id)
        if image_id is not None:
            where = where & (_vm.image_id == image_id)
        query = select(func.count()).select_from(t.vm).where(where)
        return int((await self.conn.execute(query)).scalar_one())

    async def spec_totals(
        self, host_ids: Collection[int], *, never_paid: bool = False
    ) -> list[SpecTotals]:
        if never_paid:
            statement = prebuilt(("vm spec totals", "never paid"), _never_paid_spec_totals)
        else:
            statement = prebuilt(("vm spec totals",), _spec_totals)
        sums: defaultdict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
        for ids in id_chunks(host_ids):
            for host, disk, cpu, memory, size in await self.conn.execute(statement, {"ids": ids}):
                total = sums[(int(host), int(disk))]  # SUM of nothing is NULL: counts 0
                total[0] += int(cpu or 0)
                total[1] += int(memory or 0)
                total[2] += int(size or 0)
        return [SpecTotals(h, d, *sums[(h, d)]) for h, d in sorted(sums)]

    async def list_by_user(self, user_id: int, limit: int, offset: int = 0) -> Page[Vm]:
        where = (_vm.user_id == user_id) & (_vm.deleted == False)  # noqa: E712
        return await self._page(self.mapper, where, [_vm.id], limit, offset)

    async def list_page(self, which: VmListFilter, limit: int, offset: int) -> Page[Vm]:
        """One statement: the page, each row carrying the filter's total (an uncorrelated
        COUNT subquery, run once). Only a page past the end (no row, `offset` > 0) counts
        in a statement of its own."""
        counted = t.vm.alias("counted")
        total = select(func.count()).select_from(counted).where(_listed(which, counted))
        query: Select[Any] = (
            select(*self.mapper.columns, total.scalar_subquery().label("listed_total"))
            .where(_listed(which))
            .order_by(_vm.id.desc())
            .limit(limit)
            .offset(offset)
        )
        rows = (await self.conn.execute(query)).mappings().all()
        if rows:
            return Page([self.mapper.from_row(r) for r in rows], int(rows[0]["listed_total"]))
        if offset == 0:
            return Page([], 0)
        return Page([], int((await self.conn.execute(total)).scalar_one()))

    async def list_active(self) -> list[Vm]:
        return await self._where(_vm.deleted == False)  # noqa: E712

    async def list_never_paid(
        self, *, user_id: int | None = None, ordered_before: datetime | None = None
    ) -> list[Vm]:
        unpaid = never_paid_order()
        if ordered_before is not None:
            unpaid.append(_sub.created < ordered_before)
        items = select(_li.id).join(t.subscription, _sub.id == _li.subscription_id).where(*unpaid)
        where: list[ColumnElement[bool]] = [
            _vm.deleted == False,  # noqa: E712
            _vm.subscription_line_item_id.in_(items),
        ]
        if user_id is not None:
            where.append(_vm.user_id == user_id)
        return await self._where(*where)

    async def delete(self, vm_id: int) -> None:
        await self.conn.execute(update(t.vm).where(_vm.id == vm_id).values(deleted=True))

    async def set_ssh_key(self, vm_id: int, ssh_key_id: int) -> bool:
        return await self._set(vm_id, live_only=True, ssh_key_id=ssh_key_id)

    async def set_image(self, vm_id: int, image_id: int) -> None:
        await self._set(vm_id, image_id=image_id)

    async def undelete_for_subscription(self, subscription_id: int) -> int:
        """Bring back the subscription's soft-deleted VMs.

        Found first by the line items' ids (a locking read on the VM index, matching rows
        only), then updated by primary key: one `UPDATE … WHERE … IN (subquery)` made
        MariaDB lock every VM row it examined, and concurrent completions of different
        subscriptions deadlocked on them.
        """
        items = select(_li.id).where(_li.subscription_id == subscription_id)
        item_ids = [row[0] for row in await self.conn.execute(items)]
        if not item_ids:
            return 0
        deleted = (
            select(_vm.id)
            .where(_vm.subscription_line_item_id.in_(item_ids), _vm.deleted == True)  # noqa: E712
            .with_for_update()
        )
        vm_ids = [row[0] for row in await self.conn.execute(deleted)]
        if not vm_ids:
            return 0
        query = update(t.vm).where(_vm.id.in_(vm_ids)).values(deleted=False)
        return (await self.conn.execute(query)).rowcount

    async def request_resize(self, vm_id: int, now: datetime) -> datetime:
        """Two statements: the marker read under the row's lock (SQLite: the transaction
        that booked the upgrade holds the write lock already), then written."""
        query = select(_vm.resize_requested).where(_vm.id == vm_id)
        if self.locks_rows:
            query = query.with_for_update()
        current = (await self.conn.execute(query)).scalar_one()
        mark = next_resize_mark(current, now)
        statement = update(t.vm).where(_vm.id == vm_id).values(resize_requested=mark)
        await self.conn.execute(statement)
        return mark

    async def settle_resize(self, vm_id: int, seen: datetime, then: datetime | None) -> bool:
        held = (_vm.id == vm_id) & (_vm.resize_requested == seen)
        statement = update(t.vm).where(held).values(resize_requested=then)
        return bool((await self.conn.execute(statement)).rowcount)

    async def list_resize_requested(self, before: datetime) -> list[Vm]:
        # a range on idx_vm_resize_requested; ordered here, as `ORDER BY id` made SQLite
        # prefer a full scan in id order to the index
        found = await self._all(self.mapper, self._select().where(_vm.resize_requested < before))
        return sorted(found, key=lambda vm: vm.id)


class SqlVmHistories(SqlRecords[VmHistory]):
    async def list_by_vm(self, vm_id: int, limit: int, offset: int = 0) -> Page[VmHistory]:
        c = t.vm_history.c
        order = [c.timestamp.desc(), c.id.desc()]
        return await self._page(self.mapper, c.vm_id == vm_id, order, limit, offset)

    async def list_all_by_vm(self, vm_id: int) -> list[VmHistory]:
        c = t.vm_history.c
        query = self._select().where(c.vm_id == vm_id).order_by(c.timestamp.desc(), c.id.desc())
        return await self._all(self.mapper, query)
