"""The VM host port: the hypervisor a VM lives on (lifecycle.md §11), one adapter per host kind."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

import attrs

from domain import model as m
from domain.unreadable import Unreadable
from ports.failures import RetryableError


class VmRunState(StrEnum):
    """What the hypervisor says a VM is doing; the reference's `VmRunningStates` strings."""

    UNKNOWN = "unknown"
    RUNNING = "running"
    STOPPED = "stopped"
    CREATING = "creating"


@attrs.frozen(kw_only=True)
class VmRunningState:
    """A snapshot of one VM on its host; the defaults are the reference's "unknown" state.

    Usage figures are fractions 0–1 as exact decimals (D1: no binary floats); counters are bytes,
    `uptime` seconds and `timestamp` Unix seconds of the collection.
    """

    timestamp: int = 0
    state: VmRunState = VmRunState.UNKNOWN
    cpu_usage: Decimal = Decimal(0)
    mem_usage: Decimal = Decimal(0)
    uptime: int = 0
    net_in: int = 0
    net_out: int = 0
    disk_write: int = 0
    disk_read: int = 0


@attrs.frozen(kw_only=True)
class TimeSeriesPoint:
    """One sample of a VM's metrics (api.md §6.5 `TimeSeriesData`), exact decimals (D1).

    `cpu` and `memory` are fractions 0–1 (memory used of `memory_size` bytes); the network and
    disk figures are average rates in bytes per second over the sample's interval.
    """

    timestamp: int
    cpu: Decimal
    memory: Decimal
    memory_size: int
    net_in: Decimal
    net_out: Decimal
    disk_write: Decimal
    disk_read: Decimal


class VmHostError(RetryableError):
    """A host call failed; `transient` failures may be retried, the others may not."""


class VmNotFoundOnHost(VmHostError):
    """The host has no such VM (the reference's fatal "Vm not found"); makes CheckVm re-spawn."""

    def __init__(self, vm_id: int) -> None:
        super().__init__("Vm not found", transient=False)
        self.vm_id = vm_id


class VmBuildInProgress(VmHostError):
    """The host is still building the VM (a create that outlived its wait): not a leftover
    to delete; a later spawn finds the build done, or waits for it (transient)."""

    def __init__(self, vm_id: int) -> None:
        super().__init__(f"VM {vm_id} is still being built on its host", transient=True)
        self.vm_id = vm_id


class InvalidVmConfig(VmHostError):
    """A VM with neither a template nor a custom template cannot be built (fatal)."""

    def __init__(self, vm_id: int) -> None:
        super().__init__("Invalid VM config, no template", transient=False)
        self.vm_id = vm_id


@attrs.frozen(kw_only=True)
class FullVmInfo:
    """Everything a host needs to build or change a VM: the reference's `FullVmInfo`.

    `ips` are the VM's non-deleted assignments and `ranges` the IP ranges they come from.
    """

    vm: m.Vm
    host: m.Host
    disk: m.HostDisk
    image: m.OsImage
    ssh_key: m.SshKey
    template: m.VmTemplate | None = None
    custom_template: m.CustomTemplate | None = None
    ips: tuple[m.IpAssignment, ...] = ()
    ranges: tuple[m.IpRange, ...] = ()

    @property
    def resources(self) -> VmResources:
        """CPU, memory and disk size from the template, else the custom template."""
        spec = self.template if self.template is not None else self.custom_template
        if spec is None:
            raise InvalidVmConfig(self.vm.id)
        return VmResources(cpu=spec.cpu, memory=spec.memory, disk_size=spec.disk_size)

    @property
    def authorized_key(self) -> str:
        """The SSH public key the VM is built with; one whose stored text cannot be decrypted
        (a lost or rotated key) is a fatal host error: the user could not log in."""
        key = self.ssh_key.key_data
        if isinstance(key, Unreadable):
            raise VmHostError(
                f"SSH key {self.ssh_key.id} of VM {self.vm.id} cannot be decrypted; the user"
                " must add it again",
                transient=False,
            )
        return key


@attrs.frozen(kw_only=True)
class VmResources:
    """The sizes a VM is built with: cores, memory bytes and disk bytes."""

    cpu: int
    memory: int
    disk_size: int


class VmHost(Protocol):
    """One hypervisor. Every call raises `VmHostError` on failure (transient or fatal)."""

    async def create_vm(self, info: FullVmInfo) -> None:
        """Build the VM (disk from the image, network, cloud-init).

        The dummy host leaves it stopped (lifecycle.md §11.2); Proxmox boots it, as the
        reference does. Either way the VM exists on the host when this returns.
        """
        ...

    async def start_vm(self, vm: m.Vm) -> None:
        """Power the VM on (the dummy ignores an absent VM; real hosts raise VmNotFoundOnHost)."""
        ...

    async def stop_vm(self, vm: m.Vm) -> None:
        """Power the VM off."""
        ...

    async def restart_vm(self, vm: m.Vm) -> None:
        """Hard-reset the VM (the reference's `reset_vm`)."""
        ...

    async def delete_vm(self, vm: m.Vm) -> None:
        """Remove the VM and its disks from the host."""
        ...

    async def reinstall_vm(self, info: FullVmInfo) -> None:
        """Replace the primary disk with a fresh one from `info.image`."""
        ...

    async def resize_vm(self, info: FullVmInfo) -> None:
        """Grow the disk and set cpu/memory to `info.resources` (upgrade)."""
        ...

    async def get_vm_state(self, vm: m.Vm) -> VmRunningState:
        """The VM's state now; raises `VmNotFoundOnHost` when the host has no such VM."""
        ...

    async def get_all_vm_states(self) -> Mapping[int, VmRunningState]:
        """The state of every VM on the host, keyed by the VM's database id."""
        ...

    async def generate_mac(self, vm: m.Vm) -> str:
        """A MAC address for the VM's network card (used when its IP range has no router)."""
        ...

    async def get_time_series(self, vm: m.Vm) -> Sequence[TimeSeriesPoint]:
        """The VM's metrics of about the last hour, oldest first (empty when none are known).

        Raises `VmNotFoundOnHost` when the host has no such VM.
        """
        ...

    async def download_os_image(self, image: m.OsImage) -> bool:
        """Fetch `image.url` into the host's image storage, checked against `image.sha2`.

        Idempotent: True when it was fetched now, False when the host already had it.
        A checksum mismatch is a fatal `VmHostError` and leaves nothing behind.
        """
        ...


class HostProber(Protocol):
    """Checks a host row's connection settings before it is saved (the test connection)."""

    async def probe(self, host: m.Host) -> None:
        """Return when the host answers with these settings; raise `VmHostError` otherwise."""
        ...


class VmHostResolver(Protocol):
    """Picks the client for a host by `host.kind` (Proxmox, LibVirt, Dummy)."""

    def for_host(self, host: m.Host) -> VmHost:
        """The client of this host; raises `VmHostError` for a kind it cannot serve."""
        ...
