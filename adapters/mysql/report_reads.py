"""SQL report reads: a window's paid payments, then what they belong to in a few `IN` reads."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast

import attrs
from sqlalchemy import ColumnElement, Select, and_, exists, func, or_, select

from adapters.mysql import tables as t
from adapters.mysql.in_lists import IN_LIST_SIZE, id_chunks
from adapters.mysql.mapping import Mapper
from adapters.mysql.repositories import Connect, SqlRepo
from domain.enums import SubscriptionType
from domain.invoice import Invoice
from domain.model import Host, Region, SubscriptionPayment, Vm
from ports.storage.reports import PaidRecord, PaidWindow

K = TypeVar("K")

_pay = t.subscription_payment.c
_sub = t.subscription.c
_li = t.subscription_line_item.c
_vm = t.vm.c
_VPS = SubscriptionType.VPS
#: a line item with its VMs (inner: those that have one; outer: every item)
_ITEM_VMS = t.subscription_line_item.join(t.vm, _vm.subscription_line_item_id == _li.id)
_ITEM_ANY_VMS = t.subscription_line_item.outerjoin(t.vm, _vm.subscription_line_item_id == _li.id)
_PAID_SUBS = t.subscription_payment.join(t.subscription, _sub.id == _pay.subscription_id)
#: labels of the columns read beside a record's own (none of its names)
_LIST_CURRENCY, _SUB_ID, _ITEM_ID = "report_list_currency", "report_sub_id", "report_item_id"


@attrs.frozen
class ReportMappers:
    payment: Mapper[SubscriptionPayment]
    vm: Mapper[Vm]
    host: Mapper[Host]
    region: Mapper[Region]
    invoice: Mapper[Invoice]


def _paid_time(pay: Any) -> ColumnElement[Any]:
    return func.coalesce(pay.paid_at, pay.created)


class SqlReportReads(SqlRepo):
    def __init__(self, connection: Connect, mappers: ReportMappers) -> None:
        super().__init__(connection)
        self.mappers = mappers

    async def paid(
        self, window: PaidWindow, company_id: int, currency: str | None
    ) -> list[PaidRecord]:
        wanted = _sub.company_id == company_id
        if currency is not None:
            wanted = wanted & (func.upper(_pay.currency) == currency)
        return await self._records(self._paid_in(window, wanted))

    async def first_paid_referred(
        self, window: PaidWindow, ref_code: str | None
    ) -> list[PaidRecord]:
        referred = (_vm.ref_code.is_not(None)) & (_vm.ref_code != "")
        if ref_code is not None:
            referred = referred & (_vm.ref_code == ref_code)
        subs_referred = (
            select(_li.subscription_id)
            .select_from(_ITEM_VMS)
            .where(_li.subscription_type == _VPS, referred)
        )
        earlier = t.subscription_payment.alias("earlier")
        mine, theirs = _paid_time(t.subscription_payment.c), _paid_time(earlier.c)
        paid_before = exists().where(
            earlier.c.subscription_id == _pay.subscription_id,
            earlier.c.is_paid == True,  # noqa: E712
            or_(theirs < mine, and_(theirs == mine, earlier.c.id < _pay.id)),
        )
        wanted = _pay.subscription_id.in_(subs_referred) & ~paid_before
        found = await self._records(self._paid_in(window, wanted))
        # the VM a record names is its subscription's first VPS item's: referred itself
        return [r for r in found if r.vm and r.vm.ref_code and ref_code in (None, r.vm.ref_code)]

    def _paid_in(self, window: PaidWindow, wanted: ColumnElement[bool]) -> Select[Any]:
        paid = _paid_time(_pay)
        return (
            select(*self.mappers.payment.columns, _sub.currency.label(_LIST_CURRENCY))
            .select_from(_PAID_SUBS)
            .where(_pay.is_paid == True, paid >= window.since, paid < window.until, wanted)  # noqa: E712
            .order_by(paid, _pay.id)
        )

    async def _records(self, query: Select[Any]) -> list[PaidRecord]:
        rows = (await self.conn.execute(query)).mappings().all()
        payments = [(self.mappers.payment.from_row(row), str(row[_LIST_CURRENCY])) for row in rows]
        vms = await self._vms_of({p.subscription_id for p, _ in payments})
        hosts = await self._by_id(self.mappers.host, t.vm_host, {vm.host_id for vm in vms.values()})
        regions = await self._by_id(
            self.mappers.region, t.vm_host_region, {h.region_id for h in hosts.values()}
        )
        invoices = await self._invoices_of([p.id for p, _ in payments])
        out: list[PaidRecord] = []
        for payment, list_currency in payments:
            vm = vms.get(payment.subscription_id)
            host = None if vm is None else hosts.get(vm.host_id)
            out.append(
                PaidRecord(
                    payment=payment,
                    list_currency=list_currency,
                    vm=vm,
                    host=host,
                    region=None if host is None else regions.get(host.region_id),
                    invoice=invoices.get(payment.id),
                )
            )
        return out

    async def _vms_of(self, subscription_ids: Collection[int]) -> dict[int, Vm]:
        """The lowest-id VM (soft-deleted too) of each subscription's first VPS line item; a
        subscription whose first VPS item has no VM is absent."""
        mapper = self.mappers.vm
        first_item: dict[int, int] = {}
        out: dict[int, Vm] = {}
        for chunk in id_chunks(subscription_ids):
            query = (
                select(_li.subscription_id.label(_SUB_ID), _li.id.label(_ITEM_ID), *mapper.columns)
                .select_from(_ITEM_ANY_VMS)
                .where(_li.subscription_id.in_(chunk), _li.subscription_type == _VPS)
                .order_by(_li.id, _vm.id)
            )
            for row in (await self.conn.execute(query)).mappings():
                sub_id = int(row[_SUB_ID])
                if first_item.setdefault(sub_id, int(row[_ITEM_ID])) != row[_ITEM_ID]:
                    continue
                if row["id"] is not None and sub_id not in out:
                    out[sub_id] = mapper.from_row(cast(Mapping[str, Any], row))
        return out

    async def _by_id(self, mapper: Mapper[K], table: Any, ids: Collection[int]) -> dict[int, K]:
        out: dict[int, K] = {}
        for chunk in id_chunks(ids):
            query = select(*mapper.columns).where(table.c.id.in_(chunk))
            for row in (await self.conn.execute(query)).mappings():
                out[int(row["id"])] = mapper.from_row(cast(Mapping[str, Any], row))
        return out

    async def _invoices_of(self, payment_ids: Sequence[bytes]) -> dict[bytes, Invoice]:
        mapper = self.mappers.invoice
        out: dict[bytes, Invoice] = {}
        for chunk in _chunks(payment_ids):
            query = select(*mapper.columns).where(t.invoice.c.payment_id.in_(chunk))
            for invoice in await self._all(mapper, query):
                out[invoice.payment_id] = invoice
        return out


def _chunks(ids: Sequence[bytes]) -> Iterator[list[bytes]]:
    """The ids in lists of at most `IN_LIST_SIZE` (as `id_chunks`, for binary ids)."""
    for start in range(0, len(ids), IN_LIST_SIZE):
        yield list(ids[start : start + IN_LIST_SIZE])
