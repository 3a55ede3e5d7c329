"""The VM running-state cache port: what the API shows as a VM's status (lifecycle.md §2.7)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from ports.vmhost import VmRunningState


class VmStateCache(Protocol):
    """Last known host state per VM id; the worker writes it, the API reads it.

    Entries may expire (Redis TTL); a missing entry reads as None (the API then shows
    `unknown`).
    """

    async def get(self, vm_id: int) -> VmRunningState | None: ...

    async def get_many(self, vm_ids: Collection[int]) -> dict[int, VmRunningState]:
        """The known states of these VMs in one round trip; unknown ones are absent."""
        ...

    async def set(self, vm_id: int, state: VmRunningState) -> None: ...
