"""In-process VM state cache (the reference's map when Redis is not configured)."""

from __future__ import annotations

from ports.vmhost import VmRunningState


class MemoryVmStateCache:
    """A `VmStateCache` in a dict; nothing expires and nothing survives a restart."""

    def __init__(self) -> None:
        self.states: dict[int, VmRunningState] = {}

    async def get(self, vm_id: int) -> VmRunningState | None:
        return self.states.get(vm_id)

    async def set(self, vm_id: int, state: VmRunningState) -> None:
        self.states[vm_id] = state
