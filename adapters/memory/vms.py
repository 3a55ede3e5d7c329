"""Memory repositories for VMs and VM history."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from datetime import datetime

from adapters.memory.db import RecordRepo, evolve, page_of
from domain.enums import SubscriptionType
from domain.model import Vm, VmHistory
from domain.upgrade import next_resize_mark
from ports.storage import Page, SpecTotals, VmListFilter, VmOnPlan


class MemoryVms(RecordRepo[Vm]):
    """`update` leaves `deleted` alone (lifecycle.md D15): only delete/undelete change it."""

    table = "vm"

    async def update(self, record: Vm) -> None:
        old = await self.get(record.id)
        if old is not None:
            kept = evolve(record, deleted=old.deleted, resize_requested=old.resize_requested)
            await super().update(kept)

    async def get_by_line_item(self, line_item_id: int) -> Vm | None:
        found = self._where(lambda v: v.subscription_line_item_id == line_item_id and not v.deleted)
        return found[0] if found else None

    async def get_any_by_line_item(self, line_item_id: int) -> Vm | None:
        found = self._where(lambda v: v.subscription_line_item_id == line_item_id)
        return found[0] if found else None

    async def get_on_plan_by_line_item(self, line_item_id: int) -> VmOnPlan | None:
        """`get_by_line_item` with its template and plan (`MemoryLineItems.list_priced`)."""
        vm = await self.get_by_line_item(line_item_id)
        if vm is None:
            return None
        template = None if vm.template_id is None else self._rows("vm_template").get(vm.template_id)
        plan = None if template is None else self._rows("vm_cost_plan").get(template.cost_plan_id)
        return VmOnPlan(vm, template, plan)

    async def spec_totals(
        self, host_ids: Collection[int], *, never_paid: bool = False
    ) -> list[SpecTotals]:
        hosts = set(host_ids)
        templates, customs = self._rows("vm_template"), self._rows("vm_custom_template")
        sums: defaultdict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0, 0])
        if never_paid:
            vms = [vm for vm in await self.list_never_paid() if vm.host_id in hosts]
        else:
            vms = self._where(lambda v: not v.deleted and v.host_id in hosts)
        for vm in vms:
            if vm.template_id is not None:
                spec = templates.get(vm.template_id)
            else:
                spec = None if vm.custom_template_id is None else customs.get(vm.custom_template_id)
            if spec is not None:
                total = sums[(vm.host_id, vm.disk_id)]
                total[0] += spec.cpu
                total[1] += spec.memory
                total[2] += spec.disk_size
        return [SpecTotals(h, d, *sums[(h, d)]) for h, d in sorted(sums)]

    async def get_owned_by_key(self, vm_id: int, pubkey: bytes) -> Vm | None:
        vm = await self.get(vm_id)
        owner = None if vm is None else self._rows("users").get(vm.user_id)
        return vm if owner is not None and owner.pubkey == pubkey else None

    async def get_by_subscription(self, subscription_id: int) -> Vm | None:
        items = self._line_items_of(subscription_id, SubscriptionType.VPS)
        found = self._where(lambda v: v.subscription_line_item_id in items)
        return found[0] if found else None

    async def list_by_user(self, user_id: int, limit: int, offset: int = 0) -> Page[Vm]:
        rows = self._where(lambda v: v.user_id == user_id and not v.deleted)
        return Page(*page_of(rows, limit, offset))

    async def list_page(self, which: VmListFilter, limit: int, offset: int) -> Page[Vm]:
        owners = hosts = None
        if which.owner_pubkey is not None:
            users = self._rows("users").values()
            owners = {u.id for u in users if u.pubkey == which.owner_pubkey}
        if which.region_id is not None:
            on = self._rows("vm_host").values()
            hosts = {h.id for h in on if h.region_id == which.region_id}
        rows = self._where(
            lambda v: which.include_deleted or not v.deleted,
            lambda v: which.user_id is None or v.user_id == which.user_id,
            lambda v: owners is None or v.user_id in owners,
            lambda v: which.host_id is None or v.host_id == which.host_id,
            lambda v: hosts is None or v.host_id in hosts,
        )
        return Page(*page_of(rows[::-1], limit, offset))

    async def list_active(self) -> list[Vm]:
        return self._where(lambda v: not v.deleted)

    async def count_using(
        self, *, template_id: int | None = None, image_id: int | None = None
    ) -> int:
        return len(
            self._where(
                lambda v: template_id is None or v.template_id == template_id,
                lambda v: image_id is None or v.image_id == image_id,
            )
        )

    async def list_never_paid(
        self, *, user_id: int | None = None, ordered_before: datetime | None = None
    ) -> list[Vm]:
        items = self._rows("subscription_line_item")
        subs = self._rows("subscription")

        def never_paid(vm: Vm) -> bool:
            item = items.get(vm.subscription_line_item_id)
            sub = None if item is None else subs.get(item.subscription_id)
            return (
                sub is not None
                and not sub.in_service
                and (ordered_before is None or sub.created < ordered_before)
            )

        return self._where(
            lambda v: not v.deleted and (user_id is None or v.user_id == user_id), never_paid
        )

    async def delete(self, vm_id: int) -> None:
        rows = self._rows(self.table)
        if vm_id in rows:
            rows[vm_id] = evolve(rows[vm_id], deleted=True)

    async def set_ssh_key(self, vm_id: int, ssh_key_id: int) -> bool:
        return self._set(vm_id, live_only=True, ssh_key_id=ssh_key_id)

    async def set_image(self, vm_id: int, image_id: int) -> None:
        self._set(vm_id, image_id=image_id)

    async def undelete_for_subscription(self, subscription_id: int) -> int:
        items = self._line_items_of(subscription_id, None)
        rows = self._rows(self.table)
        revived = [v for v in rows.values() if v.subscription_line_item_id in items and v.deleted]
        for vm in revived:
            rows[vm.id] = evolve(vm, deleted=False)
        return len(revived)

    async def request_resize(self, vm_id: int, now: datetime) -> datetime:
        rows = self._rows(self.table)
        mark = next_resize_mark(rows[vm_id].resize_requested, now)
        rows[vm_id] = evolve(rows[vm_id], resize_requested=mark)
        return mark

    async def settle_resize(self, vm_id: int, seen: datetime, then: datetime | None) -> bool:
        rows = self._rows(self.table)
        vm = rows.get(vm_id)
        if vm is None or vm.resize_requested != seen:
            return False
        rows[vm_id] = evolve(vm, resize_requested=then)
        return True

    async def list_resize_requested(self, before: datetime) -> list[Vm]:
        return self._where(lambda v: v.resize_requested is not None and v.resize_requested < before)

    def _line_items_of(self, subscription_id: int, kind: SubscriptionType | None) -> set[int]:
        return {
            li.id
            for li in self._rows("subscription_line_item").values()
            if li.subscription_id == subscription_id and kind in (None, li.subscription_type)
        }


class MemoryVmHistories(RecordRepo[VmHistory]):
    table = "vm_history"

    async def list_by_vm(self, vm_id: int, limit: int, offset: int = 0) -> Page[VmHistory]:
        rows = self._where(lambda h: h.vm_id == vm_id)
        rows.sort(key=lambda h: (h.timestamp, h.id), reverse=True)
        return Page(*page_of(rows, limit, offset))

    async def list_all_by_vm(self, vm_id: int) -> list[VmHistory]:
        rows = self._where(lambda h: h.vm_id == vm_id)
        rows.sort(key=lambda h: (h.timestamp, h.id), reverse=True)
        return rows
