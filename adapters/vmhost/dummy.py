"""Dummy VM host (lifecycle.md §11.2): simulated VMs in memory, optionally kept in a JSON file."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from adapters.vmhost.dummy_metrics import hourly_series
from adapters.vmhost.dummy_state import DummyStateFile, MockVm
from domain.model import OsImage, Vm
from ports.clock import Clock
from ports.vmhost import (
    FullVmInfo,
    TimeSeriesPoint,
    VmNotFoundOnHost,
    VmRunningState,
    VmRunState,
)

T = TypeVar("T")


class DummyVmHost:
    """A `VmHost` that simulates VMs without a hypervisor.

    `state_file=None` is the reference's isolated mode (a fresh map per instance). With a file,
    the map is loaded lazily, re-read when another instance or process has rewritten the file,
    and the file is rewritten atomically after every mutating call (create, delete, start, stop,
    reset); reads tick the in-memory map without saving, as the reference does.
    """

    def __init__(
        self,
        state_file: Path | None,
        clock: Clock,
        rng: random.Random | None = None,
        create_delay_s: int = 0,
    ) -> None:
        self._file = DummyStateFile(state_file) if state_file is not None else None
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._create_delay_s = create_delay_s
        self._vms: dict[int, MockVm] = {}
        self._lock = threading.Lock()
        #: image URLs "downloaded" by this instance (the dummy host stores no files)
        self.images: set[str] = set()

    async def create_vm(self, info: FullVmInfo) -> None:
        if self._create_delay_s > 0:
            await asyncio.sleep(self._create_delay_s)

        def create(vms: dict[int, MockVm]) -> None:
            vms[info.vm.id] = MockVm(state=VmRunState.STOPPED)

        await self._call(create, mutating=True)

    async def delete_vm(self, vm: Vm) -> None:
        await self._call(lambda vms: vms.pop(vm.id, None), mutating=True)

    async def start_vm(self, vm: Vm) -> None:
        await self._call(self._transition(vm, VmRunState.RUNNING, reset_uptime=False), True)

    async def stop_vm(self, vm: Vm) -> None:
        await self._call(self._transition(vm, VmRunState.STOPPED, reset_uptime=True), True)

    async def restart_vm(self, vm: Vm) -> None:
        await self._call(self._transition(vm, VmRunState.RUNNING, reset_uptime=True), True)

    async def reinstall_vm(self, info: FullVmInfo) -> None:
        """Unlinking and re-importing the disk are no-ops on the dummy host."""

    async def resize_vm(self, info: FullVmInfo) -> None:
        """Resizing the disk and configuring cpu/memory are no-ops on the dummy host."""

    async def get_vm_state(self, vm: Vm) -> VmRunningState:
        def read(vms: dict[int, MockVm]) -> VmRunningState:
            mock = vms.get(vm.id)
            if mock is None:
                raise VmNotFoundOnHost(vm.id)
            now_s = self._now_s()
            mock.tick(now_s, self._rng)
            return mock.snapshot(now_s)

        return await self._call(read, mutating=False)

    async def get_all_vm_states(self) -> Mapping[int, VmRunningState]:
        def read(vms: dict[int, MockVm]) -> dict[int, VmRunningState]:
            now_s = self._now_s()
            for mock in vms.values():
                mock.tick(now_s, self._rng)
            return {vm_id: mock.snapshot(now_s) for vm_id, mock in vms.items()}

        return await self._call(read, mutating=False)

    async def generate_mac(self, vm: Vm) -> str:
        return "ff:ff:ff:" + ":".join(f"{self._rng.randrange(256):02x}" for _ in range(3))

    async def get_time_series(self, vm: Vm) -> Sequence[TimeSeriesPoint]:
        """The synthetic hourly series of §11.2 for a VM the host has."""

        def exists(vms: dict[int, MockVm]) -> bool:
            return vm.id in vms

        if not await self._call(exists, mutating=False):
            raise VmNotFoundOnHost(vm.id)
        return hourly_series(self._now_s())

    async def download_os_image(self, image: OsImage) -> bool:
        """Records the image URL; True the first time this instance sees it."""
        with self._lock:
            fresh = image.url not in self.images
            self.images.add(image.url)
        return fresh

    def _transition(
        self, vm: Vm, state: VmRunState, *, reset_uptime: bool
    ) -> Callable[[dict[int, MockVm]], None]:
        """Tick then change state, when the VM is present; an absent VM is silently ignored."""

        def apply(vms: dict[int, MockVm]) -> None:
            mock = vms.get(vm.id)
            if mock is None:
                return
            mock.tick(self._now_s(), self._rng)
            mock.state = state
            if reset_uptime:
                mock.uptime_secs = 0

        return apply

    def _now_s(self) -> int:
        return int(self._clock.now().timestamp())

    async def _call(self, op: Callable[[dict[int, MockVm]], T], mutating: bool) -> T:
        if self._file is None:
            return self._run(op, mutating)
        return await asyncio.to_thread(self._run, op, mutating)

    def _run(self, op: Callable[[dict[int, MockVm]], T], mutating: bool) -> T:
        """Apply `op` to the map, under this instance's lock and the file's lock."""
        with self._lock:
            if self._file is None:
                return op(self._vms)
            with self._file.locked():
                if self._file.changed_since_last_sync():
                    self._vms = self._file.load()
                result = op(self._vms)
                if mutating:
                    self._file.save(self._vms)
                return result
