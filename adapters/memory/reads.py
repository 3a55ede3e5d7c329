"""Memory read models: a VM with its status rows, from the unit of work's snapshot."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from adapters.memory.db import Repo
from domain.model import IpAssignment, IpRange, Vm
from ports.storage.reads import SshKeyLabel, VmRecords


class MemoryVmReads(Repo):
    async def vm_records(
        self,
        *,
        user_id: int | None = None,
        vm_ids: Collection[int] | None = None,
        deleted: bool = False,
    ) -> list[VmRecords]:
        wanted = None if vm_ids is None else set(vm_ids)
        vms: list[Vm] = [
            vm for _, vm in sorted(self._rows("vm").items())
            if (user_id is None or vm.user_id == user_id)
            and (wanted is None or vm.id in wanted)
            and (deleted or not vm.deleted)
        ]
        return [self._records(vm) for vm in vms]

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
            "ssh_key": None if key is None else SshKeyLabel(
                id=key.id, name=key.name, created=key.created),
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
            d for _, d in sorted(self._rows("vm_custom_pricing_disk").items())
            if d.pricing_id == pricing.id
        )
        return VmRecords(
            custom=custom, pricing=pricing, pricing_disks=disks,
            region=self._get("vm_host_region", pricing.region_id), **common,
        )
