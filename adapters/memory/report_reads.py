"""Memory report reads: a window's paid payments with what they belong to, from the snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from adapters.memory.db import Repo
from domain.enums import SubscriptionType
from domain.model import SubscriptionPayment, Vm
from ports.storage.reports import PaidRecord, PaidWindow


class MemoryReportReads(Repo):
    async def paid(
        self, window: PaidWindow, company_id: int, currency: str | None
    ) -> list[PaidRecord]:
        subs = self._rows("subscription")

        def keep(p: SubscriptionPayment) -> bool:
            sub = subs.get(p.subscription_id)
            return (
                sub is not None
                and sub.company_id == company_id
                and currency in (None, p.currency.upper())
            )

        return self._records(self._paid_in(window, keep))

    async def first_paid_referred(
        self, window: PaidWindow, ref_code: str | None
    ) -> list[PaidRecord]:
        firsts: dict[int, SubscriptionPayment] = {}
        for p in sorted(self._paid_rows(), key=_paid_order, reverse=True):
            firsts[p.subscription_id] = p

        def keep(p: SubscriptionPayment) -> bool:
            vm = self._vm_of(p.subscription_id)
            referred = vm is not None and bool(vm.ref_code) and ref_code in (None, vm.ref_code)
            return referred and firsts[p.subscription_id].id == p.id

        return self._records(self._paid_in(window, keep))

    def _paid_rows(self) -> list[SubscriptionPayment]:
        return [p for p in self._rows("subscription_payment").values() if p.is_paid]

    def _paid_in(
        self, window: PaidWindow, keep: Callable[[SubscriptionPayment], bool]
    ) -> list[SubscriptionPayment]:
        found = [
            p for p in self._paid_rows() if window.since <= p.paid_time < window.until and keep(p)
        ]
        return sorted(found, key=_paid_order)

    def _records(self, payments: Iterable[SubscriptionPayment]) -> list[PaidRecord]:
        invoices = {i.payment_id: i for i in self._rows("invoice").values()}
        return [self._record(p, invoices.get(p.id)) for p in payments]

    def _record(self, payment: SubscriptionPayment, invoice: Any) -> PaidRecord:
        sub = self._rows("subscription")[payment.subscription_id]
        vm = self._vm_of(sub.id)
        host = None if vm is None else self._rows("vm_host").get(vm.host_id)
        region = None if host is None else self._rows("vm_host_region").get(host.region_id)
        return PaidRecord(
            payment=payment,
            list_currency=sub.currency,
            vm=vm,
            host=host,
            region=region,
            invoice=invoice,
        )

    def _vm_of(self, subscription_id: int) -> Vm | None:
        """The lowest-id VM (soft-deleted too) of the subscription's first VPS line item."""
        items = [
            item
            for _, item in sorted(self._rows("subscription_line_item").items())
            if item.subscription_id == subscription_id
            and item.subscription_type is SubscriptionType.VPS
        ]
        if not items:
            return None
        vms = [
            vm
            for _, vm in sorted(self._rows("vm").items())
            if vm.subscription_line_item_id == items[0].id
        ]
        return vms[0] if vms else None


def _paid_order(p: SubscriptionPayment) -> tuple[Any, bytes]:
    return (p.paid_time, p.id)
