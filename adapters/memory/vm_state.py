"""In-process VM state cache (the reference's map when Redis is not configured)."""

from __future__ import annotations

from collections.abc import Collection

from ports.vmhost import VmRunningState


class MemoryVmStateCache:
    """A `VmStateCache` in a dict; nothing expires and nothing survives a restart."""

    def __init__(self) -> None:
        self.states: dict[int, VmRunningState] = {}

    async def get(self, vm_id: int) -> VmRunningState | None:
        return self.states.get(vm_id)

    async def get_many(self, vm_ids: Collection[int]) -> dict[int, VmRunningState]:
        return {i: self.states[i] for i in set(vm_ids) if i in self.states}

    async def set(self, vm_id: int, state: VmRunningState) -> None:
        self.states[vm_id] = state
