"""Memory read models: a VM with its status rows and batched look-ups, from the snapshot."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from adapters.memory.db import Repo
from domain.model import IpAssignment, IpRange, User, Vm
from ports.storage.reads import SshKeyLabel, VmFilter, VmRecords, VmStatusRecords


class MemoryVmReads(Repo):
    async def vm_records(self, which: VmFilter) -> list[VmRecords]:
        user_id, deleted = which.user_id, which.deleted
        wanted = None if which.vm_ids is None else set(which.vm_ids)
        owners = None
        if which.owner_pubkey is not None:
            owners = {u.id for u in self._rows("users").values() if u.pubkey == which.owner_pubkey}
        vms: list[Vm] = [
            vm
            for _, vm in sorted(self._rows("vm").items())
            if (user_id is None or vm.user_id == user_id)
            and (owners is None or vm.user_id in owners)
            and (wanted is None or vm.id in wanted)
            and (deleted or not vm.deleted)
        ]
        return [self._records(vm) for vm in vms]

    async def vm_statuses(self, which: VmFilter) -> list[VmStatusRecords]:
        return [VmStatusRecords.of(r) for r in await self.vm_records(which)]

    def _get(self, table: str, key: int | None) -> Any:
        return None if key is None else self._rows(table).get(key)

    def _records(self, vm: Vm) -> VmRecords:
        item = self._get("subscription_line_item", vm.subscription_line_item_id)
        key = self._get("user_ssh_key", vm.ssh_key_id)
        ips: list[tuple[IpAssignment, IpRange | None]] = [
            (a, self._get("ip_range", a.ip_range_id))
            for _, a in sorted(self._rows("vm_ip_assignment").items())
            if a.vm_id == vm.id and not a.deleted
        ]
        sub = None if item is None else self._get("subscription", item.subscription_id)
        common: dict[str, Any] = {
            "vm": vm,
            "subscription": sub,
            "image": self._get("vm_os_image", vm.image_id),
            "ssh_key": None
            if key is None
            else SshKeyLabel(id=key.id, name=key.name, created=key.created),
            "ips": tuple(ips),
        }
        if vm.template_id is not None:
            template = self._get("vm_template", vm.template_id)
            if template is None:
                return VmRecords(**common)
            return VmRecords(
                template=template,
                plan=self._get("vm_cost_plan", template.cost_plan_id),
                region=self._get("vm_host_region", template.region_id),
                **common,
            )
        custom = self._get("vm_custom_template", vm.custom_template_id)
        pricing = None if custom is None else self._get("vm_custom_pricing", custom.pricing_id)
        if pricing is None:
            return VmRecords(custom=custom, **common)
        disks = tuple(
            d
            for _, d in sorted(self._rows("vm_custom_pricing_disk").items())
            if d.pricing_id == pricing.id
        )
        return VmRecords(
            custom=custom,
            pricing=pricing,
            pricing_disks=disks,
            region=self._get("vm_host_region", pricing.region_id),
            **common,
        )


class MemoryReadLookups(Repo):
    async def users(self, user_ids: Collection[int]) -> dict[int, User]:
        rows = self._rows("users")
        return {i: rows[i] for i in set(user_ids) if i in rows}

    async def vm_counts(self, user_ids: Collection[int]) -> dict[int, int]:
        return self._count_by("vm", "user_id", user_ids, lambda vm: not vm.deleted)

    async def admins(self, user_ids: Collection[int], now: datetime) -> set[int]:
        wanted = set(user_ids)
        return {
            a.user_id
            for a in self._rows("admin_role_assignments").values()
            if a.user_id in wanted and (a.expires_at is None or a.expires_at > now)
        }

    async def payment_counts(self, subscription_ids: Collection[int]) -> dict[int, int]:
        return self._count_by("subscription_payment", "subscription_id", subscription_ids)

    async def base_currencies(self, subscription_ids: Collection[int]) -> dict[int, str]:
        subs, companies = self._rows("subscription"), self._rows("company")
        out: dict[int, str] = {}
        for sub_id in set(subscription_ids):
            sub = subs.get(sub_id)
            company = None if sub is None else companies.get(sub.company_id)
            if company is not None:
                out[sub_id] = company.base_currency
        return out

    def _count_by(
        self,
        table: str,
        key: str,
        wanted: Collection[int],
        keep: Callable[[Any], bool] | None = None,
    ) -> dict[int, int]:
        """How many rows of `table` (those `keep` keeps) have each wanted value of `key`."""
        keys = set(wanted)
        kept = [r for r in self._rows(table).values() if keep is None or keep(r)]
        return dict(Counter(getattr(r, key) for r in kept if getattr(r, key) in keys))
