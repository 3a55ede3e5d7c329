"""Proxmox VE host over its REST API (the reference's `ProxmoxClient`, without SSH)."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp

from adapters.vmhost.assigned_ips import assigned_ips
from adapters.vmhost.image_checksum import resolve_digest
from adapters.vmhost.proxmox_api import (
    VMID_OFFSET,
    ProxmoxApi,
    ProxmoxConfig,
    TaskFailed,
    TaskStillRunning,
    vmid,
)
from adapters.vmhost.proxmox_metrics import rrd_points
from domain.clear_text import clear_text_url
from domain.enums import DiskType
from domain.model import Host, OsImage, Vm
from domain.unreadable import Unreadable
from ports import vmhost
from ports.clock import Clock

log = logging.getLogger(__name__)

MIB = 1024 * 1024
_PRIMARY_DISK = "scsi0"
#: the disks of a new guest: set by its create only, never again on an existing guest
_CREATE_ONLY = frozenset({_PRIMARY_DISK, "scsi1", "efidisk0"})
#: `size=32G` in a disk's config string
_DISK_SIZE = re.compile(r"(?:^|,)size=(\d+)([KMGT]?)(?:,|$)")
_UNITS = {"": 1, "K": 1024, "M": MIB, "G": 1024 * MIB, "T": 1024 * 1024 * MIB}


#: the exit status of a start task whose VM was already running
_ALREADY_RUNNING = re.compile(r"^Task finished with error: VM \d+ already running$")


def config_for_host(host: Host, **settings: Any) -> ProxmoxConfig:
    """A node's config from its `vm_host` row: `ip` is the API URL, `name` the node name.

    An `http://` URL to anything but a loopback address is refused (fatal): the row's API
    token would travel in clear (a row stored before the admin API refused it).
    """
    if clear_text_url(host.ip):
        raise vmhost.VmHostError(
            f"Proxmox host {host.id}: refusing to send its API token over http:// to {host.ip}"
        )
    if isinstance(host.api_token, Unreadable):
        raise vmhost.VmHostError(
            f"Proxmox host {host.id}: its API token cannot be decrypted (lost or rotated"
            " encryption key, or a corrupt value); set it again"
        )
    return ProxmoxConfig(base_url=host.ip, node=host.name, token=host.api_token, **settings)


class ProxmoxVmHost:
    """A `VmHost` on one Proxmox VE node; database VM N is Proxmox guest N + 100."""

    def __init__(
        self,
        config: ProxmoxConfig,
        clock: Clock,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._api = ProxmoxApi(config, session)
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        #: create tasks that outlived their wait, by vmid: the next create waits for them
        self._creating: dict[int, str] = {}

    async def aclose(self) -> None:
        await self._api.aclose()

    async def check_connection(self) -> None:
        """The API answers with this token and knows this node (no retries: an admin waits)."""
        await self._api.call("GET", "/version", retry=False)
        await self._api.call("GET", self._api.node_path("/status"), retry=False)

    async def create_vm(self, info: vmhost.FullVmInfo) -> None:
        """Create the guest with its disk imported from the image, grow the disk, then boot.

        Not retried as a whole here (a lost answer must not create twice): the spawn pipeline
        retries transient errors. A failure after the guest exists removes it again, and so
        does a create task that fails (Proxmox may leave its guest behind). A create
        task that outlives its wait (`TaskStillRunning`, transient) goes on on the node: the
        next create of that VM waits for the same task (remembered here, else found among
        the node's running tasks) instead of creating again, then sets the guest's settings
        from this call's `info` (its MAC is the one this spawn saves).
        """
        guest = vmid(info.vm.id)
        upid = self._creating.get(guest) or await self._api.running_task(guest, "qmcreate")
        adopted = upid is not None
        if upid is None:
            params = {"vmid": str(guest), **self._vm_config(info)}
            upid = await self._api.call("POST", self._api.node_path("/qemu"), params, retry=False)
        else:
            log.info("VM %s: waiting for its create task already running", info.vm.id)
        try:
            await self._api.wait_for_task(upid)
        except TaskStillRunning:
            self._creating[guest] = str(upid)
            raise
        except TaskFailed as exc:
            self._creating.pop(guest, None)
            log.warning("VM %s: its create task failed (%s)", info.vm.id, exc.exit_status)
            await self._remove_after_failed_create(info.vm)
            raise
        except BaseException:
            self._creating.pop(guest, None)
            raise
        self._creating.pop(guest, None)
        try:
            if adopted:  # built from another call's settings: this spawn's MAC and addresses
                settings = self._vm_config(info).items()
                await self._configure(info.vm, {k: v for k, v in settings if k not in _CREATE_ONLY})
            await self._resize_disk(info)
        except vmhost.VmHostError:
            log.warning("rolling back: deleting VM %s after a failed create", info.vm.id)
            await self.delete_vm(info.vm)
            raise
        if self.config.start_after_create:
            try:
                await self.start_vm(info.vm)
            except vmhost.VmHostError as exc:  # as the reference: maybe it is already running
                log.warning("failed to start VM %s after create: %s", info.vm.id, exc)

    async def start_vm(self, vm: Vm) -> None:
        """Make the VM run; one that already runs is left alone.

        `create_vm` boots the guest (`start_after_create`) and the spawn pipeline starts it
        again; a retried start whose first answer was lost does the same. Proxmox fails such
        a start's task with "VM N already running", which here means the start is done.

        It is marked `onboot=1` first, so a reboot of the node brings it back.
        """
        await self._start_on_boot(vm, True)
        try:
            await self._power(vm, "start")
        except vmhost.VmHostError as exc:
            if not isinstance(exc, TaskFailed) or not _ALREADY_RUNNING.search(exc.message):
                raise
            log.info("VM %s already running on %s", vm.id, self.config.node)

    async def stop_vm(self, vm: Vm) -> None:
        """Hard stop; `onboot` is cleared first, so a VM stopped for its expiry (or by its
        owner) stays off when the node reboots."""
        await self._start_on_boot(vm, False)
        await self._power(vm, "stop")

    async def restart_vm(self, vm: Vm) -> None:
        await self._start_on_boot(vm, True)
        await self._power(vm, "reset")

    async def delete_vm(self, vm: Vm) -> None:
        """Stop then destroy with its disks; a VM the host does not have is already deleted.

        A guest its create task still locks raises `VmBuildInProgress`: it cannot be
        destroyed before the task ends, and a spawn waits for that task instead.
        """
        try:
            status = await self._api.call("GET", self._qemu(vm, "/status/current"))
        except vmhost.VmNotFoundOnHost:
            log.info("VM %s not on %s, nothing to delete", vm.id, self.config.node)
            return
        if isinstance(status, Mapping) and status.get("lock") == "create":
            raise vmhost.VmBuildInProgress(vm.id)
        try:
            await self.stop_vm(vm)
        except vmhost.VmHostError as exc:
            log.warning("stopping VM %s before delete failed: %s", vm.id, exc)
        path = self._qemu(vm)
        params = {"purge": "1", "destroy-unreferenced-disks": "1"}
        await self._api.run_task("DELETE", path, params)

    async def reinstall_vm(self, info: vmhost.FullVmInfo) -> None:
        """Unlink (and drop) the primary disk, import a fresh one from the image, grow it.

        The cloud-init `sshkeys` are set to the VM's key as stored now: a key the owner
        changed since the build reaches the fresh disk (it is the only way it does)."""
        unlink = {"idlist": _PRIMARY_DISK, "force": "1"}
        await self._api.call("PUT", self._qemu(info.vm, "/unlink"), unlink)
        disk = {
            _PRIMARY_DISK: self._primary_disk(info),
            "boot": f"order={_PRIMARY_DISK}",
            "sshkeys": quote(info.authorized_key, safe=""),
        }
        await self._configure(info.vm, disk)
        await self._resize_disk(info)

    async def resize_vm(self, info: vmhost.FullVmInfo) -> None:
        """Grow the primary disk and set cores/memory; the caller stops and starts the VM.

        The disk is left alone when it is as large as the target already (grown by hand on
        the node, or by an earlier run): Proxmox refuses to shrink, and the size is absolute.
        """
        current = await self._disk_size(info.vm)
        if current is None or info.resources.disk_size > current:
            await self._resize_disk(info)
        else:
            log.info("VM %s: disk is %s bytes already; not resized", info.vm.id, current)
        res = info.resources
        await self._configure(info.vm, {"cores": str(res.cpu), "memory": str(res.memory // MIB)})

    async def get_vm_state(self, vm: Vm) -> vmhost.VmRunningState:
        data = await self._api.call("GET", self._qemu(vm, "/status/current"))
        return self._running_state(data)

    async def get_all_vm_states(self) -> Mapping[int, vmhost.VmRunningState]:
        guests = await self._api.call("GET", self._api.node_path("/qemu"))
        states: dict[int, vmhost.VmRunningState] = {}
        for guest in guests or ():
            guest_id = int(guest.get("vmid", 0))
            if guest_id > VMID_OFFSET and not guest.get("template"):
                states[guest_id - VMID_OFFSET] = self._running_state(guest)
        return states

    async def generate_mac(self, vm: Vm) -> str:
        prefix = self.config.mac_prefix
        if len(prefix) != 8 or ":" not in prefix:
            raise vmhost.VmHostError("Invalid mac prefix")
        return prefix + "".join(f":{self._rng.randrange(256):02x}" for _ in range(3))

    async def get_time_series(self, vm: Vm) -> Sequence[vmhost.TimeSeriesPoint]:
        """The guest's `rrddata` of the last hour (averages, about one point a minute)."""
        rows = await self._api.call(
            "GET", self._qemu(vm, "/rrddata"), {"timeframe": "hour", "cf": "AVERAGE"}
        )
        return rrd_points(row for row in rows or () if isinstance(row, Mapping))

    async def download_os_image(self, image: OsImage) -> bool:
        """`download-url` into the image storage as `import` content, with the checksum.

        An image file already listed in the storage is left alone (False). The checksum is
        `sha2`, else the file's line in the `sha2_url` sums file (fetched here, never with the
        node's token); Proxmox checks it and fails the task (keeping no file) on a mismatch.
        """
        filename = image_filename(image.url)
        storage = quote(self.config.image_storage, safe="")
        base = self._api.node_path(f"/storage/{storage}")
        volid = f"{self.config.image_storage}:import/{filename}"
        listed = await self._api.call("GET", base + "/content", {"content": "import"})
        if any(isinstance(v, Mapping) and v.get("volid") == volid for v in listed or ()):
            log.info("OS image %s already on %s", volid, self.config.node)
            return False
        params = {"url": image.url, "content": "import", "filename": filename}
        checksum = await resolve_digest(image)
        if checksum is not None:
            params.update({"checksum-algorithm": checksum[0], "checksum": checksum[1]})
        else:
            log.warning("OS image %s has no sha2: downloaded without a checksum", image.id)
        upid = await self._api.call("POST", base + "/download-url", params, retry=False)
        await self._api.wait_for_task(upid, self.config.download_timeout_s)
        return True

    async def _remove_after_failed_create(self, vm: Vm) -> None:
        """Delete what a failed create task left; failing that, the next VM check does."""
        try:
            await self.delete_vm(vm)
        except vmhost.VmHostError as exc:
            log.warning("VM %s: removing it after its failed create failed: %s", vm.id, exc)

    async def _start_on_boot(self, vm: Vm, on: bool) -> None:
        """Set the guest's `onboot` (a synchronous config change: no task)."""
        await self._api.call("PUT", self._qemu(vm, "/config"), {"onboot": "1" if on else "0"})

    async def _power(self, vm: Vm, action: str) -> None:
        await self._api.run_task("POST", self._qemu(vm, f"/status/{action}"))

    async def _configure(self, vm: Vm, params: Mapping[str, str]) -> None:
        await self._api.wait_for_task(
            await self._api.call("POST", self._qemu(vm, "/config"), params)
        )

    async def _resize_disk(self, info: vmhost.FullVmInfo) -> None:
        params = {"disk": _PRIMARY_DISK, "size": str(info.resources.disk_size)}
        await self._api.wait_for_task(
            await self._api.call("PUT", self._qemu(info.vm, "/resize"), params)
        )

    async def _disk_size(self, vm: Vm) -> int | None:
        """The primary disk's size in bytes from the guest's config (None: not stated)."""
        config = await self._api.call("GET", self._qemu(vm, "/config"))
        disk = config.get(_PRIMARY_DISK) if isinstance(config, Mapping) else None
        found = _DISK_SIZE.search(str(disk or ""))
        return None if found is None else int(found.group(1)) * _UNITS[found.group(2)]

    def _qemu(self, vm: Vm, suffix: str = "") -> str:
        return self._api.node_path(f"/qemu/{vmid(vm.id)}{suffix}")

    def _running_state(self, data: Any) -> vmhost.VmRunningState:
        state = {"running": vmhost.VmRunState.RUNNING, "stopped": vmhost.VmRunState.STOPPED}
        max_mem = Decimal(data.get("maxmem") or 1)
        return vmhost.VmRunningState(
            timestamp=int(self._clock.now().timestamp()),
            state=state.get(str(data.get("status")), vmhost.VmRunState.UNKNOWN),
            cpu_usage=Decimal(data.get("cpu") or 0),
            mem_usage=Decimal(data.get("mem") or 0) / max_mem,
            uptime=int(data.get("uptime") or 0),
            net_in=int(data.get("netin") or 0),
            net_out=int(data.get("netout") or 0),
            disk_write=int(data.get("diskwrite") or 0),
            disk_read=int(data.get("diskread") or 0),
        )

    def _primary_disk(self, info: vmhost.FullVmInfo) -> str:
        image = f"{self.config.image_storage}:import/{image_filename(info.image.url)}"
        disk = f"{info.disk.name}:0,import-from={image}"
        return disk + (",discard=on,ssd=1" if info.disk.kind is DiskType.SSD else "")

    def _vm_config(self, info: vmhost.FullVmInfo) -> dict[str, str]:
        """The reference's `make_config`, as Proxmox form fields."""
        cfg, res = self.config, info.resources
        net = [f"virtio={info.vm.mac_address}", f"bridge={cfg.bridge}", "firewall=1"]
        if info.host.vlan_id is not None:
            net.append(f"tag={info.host.vlan_id}")
        return {
            "name": f"VM{info.vm.id}",
            "cpu": cfg.cpu,
            "kvm": "1" if cfg.kvm else "0",
            "ipconfig0": ip_config(info),
            "machine": cfg.machine,
            "net0": ",".join(net),
            "ostype": cfg.os_type,
            "onboot": "1",
            "bios": "ovmf",
            "boot": f"order={_PRIMARY_DISK}",
            "cores": str(res.cpu),
            "memory": str(res.memory // MIB),
            "scsihw": "virtio-scsi-pci",
            "serial0": "socket",
            _PRIMARY_DISK: self._primary_disk(info),
            "scsi1": f"{info.disk.name}:cloudinit",
            "sshkeys": quote(info.authorized_key, safe=""),
            "efidisk0": f"{info.disk.name}:0,efitype=4m",
        }


def image_filename(url: str) -> str:
    """The file an OS image is stored as on the node: the last segment of its URL."""
    name = urlsplit(url).path.rsplit("/", 1)[-1]
    if not name:
        raise vmhost.VmHostError(f"Cannot derive an image file name from {url!r}")
    return name


def ip_config(info: vmhost.FullVmInfo) -> str:
    """cloud-init `ipconfig0`: IPv4 with the wider of range/gateway prefixes, IPv6 or SLAAC."""
    parts: list[str] = []
    for ip in assigned_ips(info):
        if ip.address.version == 4:
            parts.append(f"ip={ip.address}/{ip.prefix},gw={ip.gateway.ip}")
        elif ip.slaac:
            parts.append("ip6=auto")
        else:
            parts.append(f"ip6={ip.address}/{ip.prefix},gw6={ip.gateway.ip}")
    return ",".join(parts)
