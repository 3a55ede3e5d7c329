"""libvirt VM host (lifecycle.md §11): VMs as persistent libvirt domains named `vm<id>`."""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from typing import Any, TypeVar

import libvirt

from adapters.vmhost.cloud_init import seed_files, seed_iso
from adapters.vmhost.image_download import download_image, file_chunks
from adapters.vmhost.libvirt_metrics import Sample, SampleHistory
from adapters.vmhost.libvirt_volumes import (
    delete_volume,
    is_test_driver,
    lookup_volume,
    store_image,
    write_volume,
)
from adapters.vmhost.libvirt_xml import (
    METADATA_KEY,
    METADATA_NS,
    DomainSpec,
    built_from,
    device_targets,
    disk_target,
    disk_volume_name,
    domain_name,
    domain_xml,
    image_volume_name,
    parse_started,
    seed_volume_name,
    started_metadata,
    vm_id_of,
    volume_xml,
)
from domain.enums import DiskInterface, DiskType
from domain.model import OsImage, Vm
from ports import vmhost
from ports.clock import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")
Conn = Any  # libvirt.virConnect: libvirt-python ships no type information
Dom = Any  # libvirt.virDomain

MAC_PREFIX = "52:54:00"
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_NS = 1_000_000_000
_USAGE_STEP = Decimal("0.0001")

_RUNNING = {
    libvirt.VIR_DOMAIN_RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED,
    libvirt.VIR_DOMAIN_SHUTDOWN,  # shutting down: still running
}
_STOPPED = {libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_CRASHED}

#: error codes that mean "libvirtd is unreachable, timed out or busy: try again later"
_TRANSIENT_CODES = {
    libvirt.VIR_ERR_RPC,
    libvirt.VIR_ERR_NO_CONNECT,
    libvirt.VIR_ERR_INVALID_CONN,
    libvirt.VIR_ERR_OPERATION_TIMEOUT,
    libvirt.VIR_ERR_AGENT_UNRESPONSIVE,
    libvirt.VIR_ERR_AUTH_UNAVAILABLE,
}
#: a system error (errno) is transient only on the link to libvirtd (socket, ssh tunnel)
_LINK_ORIGINS = {libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE}
#: default seconds one libvirt call may take before it counts as a hung link (transient)
CALL_TIMEOUT_S = 60.0
#: ... and a call that copies a disk or an image (create, reinstall, image upload)
LONG_CALL_TIMEOUT_S = 1800.0
#: threads of one host's calls: a hung link blocks these, never the default pool
_THREADS = 4
#: libvirt keepalive: a probe every 5 s, the link counts as dead after 3 unanswered
_KEEPALIVE = (5, 3)


def _silence_default_handler() -> None:
    """libvirt prints every error to stderr by default; ours are raised and logged instead."""
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)


def classify(exc: libvirt.libvirtError, what: str) -> vmhost.VmHostError:
    """A `VmHostError` for a libvirt failure: connection and timeout errors are transient."""
    code, origin = exc.get_error_code(), exc.get_error_domain()
    transient = code in _TRANSIENT_CODES or (
        code == libvirt.VIR_ERR_SYSTEM_ERROR and origin in _LINK_ORIGINS
    )
    return vmhost.VmHostError(
        f"libvirt {what} failed: {exc.get_error_message()}", transient=transient
    )


_events_lock = threading.Lock()
_events_started = False


def _start_event_loop() -> None:
    """Run libvirt's default event loop in a daemon thread, once per process: a client's
    keepalive probes (and its dead-link detection) only run with an event loop."""
    global _events_started
    with _events_lock:
        if _events_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                try:
                    libvirt.virEventRunDefaultImpl()
                except libvirt.libvirtError as exc:  # pragma: no cover - libvirt's own trouble
                    log.warning("libvirt event loop: %s", exc.get_error_message())
                    time.sleep(1)

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _events_started = True


def _close_quietly(conn: Conn, uri: str) -> None:
    """Close a connection in a thread of its own: a close over a hung link may hang too."""

    def close() -> None:
        try:
            conn.close()
        except libvirt.libvirtError as exc:
            log.debug("closing %s: %s", uri, exc)

    threading.Thread(target=close, name="libvirt-close", daemon=True).start()


def is_unicast_mac(mac: str) -> bool:
    """Six hex octets with the multicast bit clear (the placeholder `ff:…` is refused)."""
    return _MAC.match(mac) is not None and int(mac[:2], 16) & 1 == 0


def _code(exc: libvirt.libvirtError) -> int:
    return int(exc.get_error_code())


class LibvirtVmHost:
    """A `VmHost` on one libvirt hypervisor (e.g. `qemu+ssh://root@host/system`).

    * `create_vm` clones the OS image volume (named after the last segment of the image URL,
      put into `storage_pool` beforehand) into a qcow2 volume `vm<id>-disk0` of the template's
      size, writes the cloud-init NoCloud seed ISO `vm<id>-cidata.iso` (SSH key, host name,
      static addresses and routes, `nameservers`) and defines a persistent domain `vm<id>` on
      `network` with the seed as a CD-ROM. Like the dummy host the VM is left **stopped**.
    * `download_os_image` streams the image URL to a temporary file in `download_dir`
      (checksum verified), uploads it into a volume of its own and copies that to the
      image volume once complete.
    * `get_time_series` turns the counters of every state read of this client (the worker's
      VM checks, and the read itself) into rates between consecutive samples.
    * `stop_vm` is a hard power-off (`destroy`), as Proxmox's `status/stop`; `restart_vm` is a
      hard `reset` (a stopped VM is started instead, as the dummy does). A start or restart
      marks the domain autostart and a stop clears it (as Proxmox's `onboot`), so a
      hypervisor reboot brings back the running VMs and leaves the stopped ones off.
    * Uptime counts from the start LNVPS recorded (with `clock`) in the running domain's live
      metadata, so it survives a new client and vanishes when the domain stops.
    * Power calls on a missing domain raise `VmNotFoundOnHost`; `delete_vm` of one succeeds.

    The blocking libvirt calls run in this host's own threads (a hung link never eats the
    default pool) over one lazily opened connection, which is re-opened when it is found
    dead. A call with no answer within `call_timeout_s` (`long_call_timeout_s` for those
    that copy a disk or an image) raises a transient `VmHostError` and the connection is
    dropped, so the next call opens a new one; keepalive is asked for on each connection.

    A create or reinstall that timed out still runs in its thread: until that thread ends a
    new create of the same VM waits for it (then keeps the domain it defined), and a
    reinstall or delete raises `VmBuildInProgress` (transient), so a retried spawn never
    builds the VM twice at once nor deletes it under the build. A create whose define
    fails deletes the volumes it made only while no domain of the VM is on the host: one
    there was defined by another build (another worker's) with volumes of the same names.
    """

    def __init__(
        self,
        uri: str,
        clock: Clock,
        storage_pool: str = "default",
        network: str = "default",
        *,
        rng: random.Random | None = None,
        nameservers: Sequence[str] = (),
        download_dir: str | None = None,
        call_timeout_s: float = CALL_TIMEOUT_S,
        long_call_timeout_s: float = LONG_CALL_TIMEOUT_S,
    ) -> None:
        if call_timeout_s <= 0 or long_call_timeout_s <= 0:
            raise ValueError("libvirt call timeouts must be positive")
        self.uri = uri
        self.call_timeout_s = call_timeout_s
        self.long_call_timeout_s = long_call_timeout_s
        self._threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="libvirt")
        self._closed = False
        self.storage_pool = storage_pool
        self.network = network
        self.nameservers = tuple(nameservers)
        self.download_dir = download_dir
        self._history = SampleHistory()
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._conn: Conn | None = None
        self._lock = threading.Lock()
        #: last (unix s, cpu ns) seen per VM, for cpu usage between two reads
        self._cpu_samples: dict[int, tuple[int, int]] = {}
        #: VMs a create or reinstall call of this client is building: the call's thread (None
        #: for the moment between the mark and the thread's submission)
        self._building: dict[int, Future[Any] | None] = {}

    # --- connection -------------------------------------------------------------------------

    def close(self) -> None:
        """Drop the connection and stop this host's threads; a stuck thread is left behind."""
        with self._lock:
            conn, self._conn = self._conn, None
            self._closed = True
        self._threads.shutdown(wait=False, cancel_futures=True)
        if conn is not None:
            _close_quietly(conn, self.uri)

    async def aclose(self) -> None:
        self.close()  # never blocks: the connection is closed in a thread of its own

    async def check_connection(self) -> None:
        """The URI opens and the hypervisor answers (the admin's test connection)."""
        await self._run("read the host name", lambda conn: conn.getHostname())

    def _connection(self) -> Conn:
        """The open connection, else a new one; the lock is not held while connecting (a
        hung connect must not block `close` nor the drop of a dead connection)."""
        with self._lock:
            conn = self._conn
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
            log.warning("libvirt connection to %s lost, reconnecting", self.uri)
            self._drop(conn)
        _silence_default_handler()
        _start_event_loop()
        try:
            fresh = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise classify(exc, f"connect to {self.uri}") from exc
        try:
            fresh.setKeepAlive(*_KEEPALIVE)
        except libvirt.libvirtError as exc:  # a local driver, or no event loop: no keepalive
            log.debug("no libvirt keepalive on %s: %s", self.uri, exc.get_error_message())
        with self._lock:
            if self._conn is None:
                self._conn = fresh
                return fresh
            kept = self._conn  # another call connected meanwhile: one connection is kept
        _close_quietly(fresh, self.uri)
        return kept

    def _drop(self, conn: Conn) -> None:
        """Forget `conn` if it is still the open connection (a call on it hung or failed)."""
        with self._lock:
            if self._conn is conn:
                self._conn = None

    def is_building(self, vm_id: int) -> bool:
        """Whether a create or reinstall of the VM still runs in one of this client's threads."""
        with self._lock:
            return vm_id in self._building

    def _refuse_while_building(self, vm_id: int, *, begin: bool = False) -> None:
        """Raise `VmBuildInProgress` while the VM is being built; with `begin`, mark it as
        being built otherwise (checked and marked under one hold of the lock)."""
        with self._lock:
            if vm_id in self._building:
                raise vmhost.VmBuildInProgress(vm_id)
            if begin:
                self._building[vm_id] = None

    def _end_build(self, vm_id: int, thread: Future[Any] | None) -> None:
        """Forget the build of the VM if it is still the one running in `thread`."""
        with self._lock:
            if vm_id in self._building and self._building[vm_id] is thread:
                del self._building[vm_id]

    async def _wait_for_build(self, vm_id: int, limit: float) -> float:
        """Wait up to `limit` s for a create or reinstall of the VM running in a thread of
        this client (one whose wait timed out); the seconds waited. Still running after
        the limit: `VmBuildInProgress`."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        while True:
            with self._lock:
                thread = self._building.get(vm_id)
            if thread is None or self._closed:  # a closed client refuses the call for good
                return loop.time() - began
            left = began + limit - loop.time()
            if left <= 0:
                raise vmhost.VmBuildInProgress(vm_id)
            log.info("VM %s: waiting for its build still running on %s", vm_id, self.uri)
            # `wait` never cancels the thread's future, whose own wait may still hold it
            await asyncio.wait({asyncio.wrap_future(thread)}, timeout=left)

    async def _run(
        self,
        what: str,
        call: Callable[[Conn], T],
        *,
        long: bool = False,
        builds: int | None = None,
        limit_s: float | None = None,
    ) -> T:
        """`call` in one of this host's threads within its time limit (`limit_s`, else the
        long or the default one); `builds` names the VM a create or reinstall builds, marked
        as being built until the thread ends (not when the wait for it times out)."""
        used: list[Conn] = []

        def guarded() -> T:
            conn = self._connection()
            used.append(conn)
            try:
                return call(conn)
            except libvirt.libvirtError as exc:
                raise classify(exc, what) from exc

        if self._closed:
            raise vmhost.VmHostError(f"libvirt client for {self.uri} is closed")
        limit = self.long_call_timeout_s if long else self.call_timeout_s
        if limit_s is not None:
            limit = limit_s
        if builds is not None:
            self._refuse_while_building(builds, begin=True)
        try:
            future = self._threads.submit(guarded)
        except RuntimeError:  # shut down by a close meanwhile
            if builds is not None:
                self._end_build(builds, None)
            raise vmhost.VmHostError(f"libvirt client for {self.uri} is closed") from None
        if builds is not None:
            vm_id = builds
            with self._lock:
                self._building[vm_id] = future
            future.add_done_callback(lambda done: self._end_build(vm_id, done))
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), limit)
        except TimeoutError:
            for conn in used:  # a hung link: the next call connects again
                self._drop(conn)
                _close_quietly(conn, self.uri)
            raise vmhost.VmHostError(
                f"libvirt {what} on {self.uri}: no answer within {limit:g} s", transient=True
            ) from None

    # --- the port -----------------------------------------------------------------------------

    async def create_vm(self, info: vmhost.FullVmInfo) -> None:
        """Clone the image into the VM's volume and define the domain (left stopped).

        A create of this client still building the VM (it outlived its wait) is waited for,
        up to the long call limit; this call's own build gets what is left of that limit,
        or the default limit if more. A domain of that name already on the host, with its
        disk volume, that is what this create defines (the same spec: a build that outlived
        its wait, another process's, a define whose answer was lost) is accepted as it is,
        running or not; any other domain of that name is refused (fatal), so a create never
        overwrites a VM. A leftover volume of an earlier failed create is replaced.
        """
        res = info.resources
        spec_of = info.template if info.template is not None else info.custom_template
        interface = spec_of.disk_interface if spec_of is not None else DiskInterface.PCIE
        kind = spec_of.disk_type if spec_of is not None else DiskType.SSD
        if not is_unicast_mac(info.vm.mac_address):
            raise vmhost.VmHostError(f"VM {info.vm.id} has no unicast MAC: {info.vm.mac_address!r}")
        try:
            image = image_volume_name(info.image.url)
        except ValueError as exc:
            raise vmhost.VmHostError(str(exc)) from exc

        def create(conn: Conn) -> None:
            vm_id = info.vm.id
            spec = DomainSpec(
                vm_id=vm_id,
                vcpus=res.cpu,
                memory=res.memory,
                mac=info.vm.mac_address,
                pool=self.storage_pool,
                volume=disk_volume_name(vm_id),
                network=self.network,
                disk_interface=interface,
                disk_kind=kind,
                domain_type="test" if str(conn.getType()).upper() == "TEST" else "kvm",
                seed_volume=seed_volume_name(vm_id),
            )
            if self._built_already(conn, spec):
                dom = self._find(conn, vm_id)
                if dom is not None:  # a build of before an upgrade: the disk paid for now
                    target = disk_target(interface)
                    self._grow_disk(conn, dom, vm_id, res.disk_size, target)
                return
            pool = conn.storagePoolLookupByName(self.storage_pool)
            base = self._image(pool, image)
            volume = self._clone(pool, base, disk_volume_name(vm_id), res.disk_size)
            try:
                seed = self._write_seed(conn, pool, info)
            except BaseException:
                self._undo_volumes(conn, vm_id, [volume])
                raise
            try:
                conn.defineXML(domain_xml(spec))
            except libvirt.libvirtError:
                self._undo_volumes(conn, vm_id, [volume, seed])
                raise

        vm_id = info.vm.id
        waited = await self._wait_for_build(vm_id, self.long_call_timeout_s)
        long = self.long_call_timeout_s
        limit = max(long - waited, min(self.call_timeout_s, long))
        await self._run(f"create VM {vm_id}", create, builds=vm_id, limit_s=limit)

    def _built_already(self, conn: Conn, spec: DomainSpec) -> bool:
        """Whether the VM's domain is on the host as `spec` defines it, with its disk
        volume; a domain of its name that is not raises the fatal "already exists"."""
        dom = self._find(conn, spec.vm_id)
        if dom is None:
            return False
        pool = self._pool_or_none(conn)
        disk = None if pool is None else lookup_volume(pool, spec.volume)
        xml = str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        if disk is None or not built_from(xml, spec):
            name = domain_name(spec.vm_id)
            raise vmhost.VmHostError(f"VM {spec.vm_id} already exists on {self.uri} as {name}")
        log.info("VM %s is on %s as this create defines it; kept", spec.vm_id, self.uri)
        return True

    def _undo_volumes(self, conn: Conn, vm_id: int, volumes: Sequence[Any]) -> None:
        """Delete the volumes a failed create made, unless a domain of the VM is on the host
        (or that cannot be told): another build defined it with volumes of these names
        (or this define's answer was lost), and deleting them would leave it without a disk.
        """
        try:
            kept = self._find(conn, vm_id) is not None
        except libvirt.libvirtError as exc:
            log.warning("VM %s: cannot tell whether its domain exists: %s", vm_id, exc)
            kept = True
        if kept:
            log.warning("VM %s: create failed, its domain is on the host: volumes kept", vm_id)
            return
        log.warning("rolling back: deleting the volumes of VM %s after a failed create", vm_id)
        for volume in volumes:
            delete_volume(volume)

    async def start_vm(self, vm: Vm) -> None:
        """Start the VM and mark it autostart, so a reboot of the hypervisor brings it back."""

        def start(dom: Dom) -> None:
            dom.setAutostart(1)
            if not dom.isActive():
                dom.create()
                self._stamp_start(dom, vm.id)

        await self._on_domain(vm, "start", start)

    async def stop_vm(self, vm: Vm) -> None:
        """Hard power-off (`destroy`): deterministic, as the expiry stop and upgrades need.

        Autostart is cleared first: a VM stopped for its expiry (or by its owner) stays off
        when the hypervisor reboots.
        """

        def stop(dom: Dom) -> None:
            dom.setAutostart(0)
            if dom.isActive():
                dom.destroy()
            self._cpu_samples.pop(vm.id, None)

        await self._on_domain(vm, "stop", stop)

    async def restart_vm(self, vm: Vm) -> None:
        """Hard reset of a running VM; a stopped one is started (autostart set, as a start)."""

        def restart(dom: Dom) -> None:
            dom.setAutostart(1)
            if dom.isActive():
                dom.reset(0)
            else:
                dom.create()
            self._stamp_start(dom, vm.id)

        await self._on_domain(vm, "restart", restart)

    async def _on_domain(self, vm: Vm, what: str, act: Callable[[Dom], None]) -> None:
        """`act` on the VM's domain (`VmNotFoundOnHost` when there is none), in a worker
        thread; failures are named `{what} VM {id}`."""
        await self._run(f"{what} VM {vm.id}", lambda conn: act(self._get(conn, vm.id)))

    async def delete_vm(self, vm: Vm) -> None:
        """Power off, undefine, and delete the VM's disk volume; an absent VM is already gone.

        A VM a create or reinstall of this client still builds raises `VmBuildInProgress`.
        """
        self._refuse_while_building(vm.id)

        def delete(conn: Conn) -> None:
            dom = self._find(conn, vm.id)
            if dom is None:
                log.info("VM %s not on %s, nothing to undefine", vm.id, self.uri)
            else:
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                )
            self._cpu_samples.pop(vm.id, None)
            self._history.forget(vm.id)
            pool = self._pool_or_none(conn)
            if pool is not None:
                delete_volume(lookup_volume(pool, disk_volume_name(vm.id)))
                delete_volume(lookup_volume(pool, seed_volume_name(vm.id)))

        await self._run(f"delete VM {vm.id}", delete)

    async def reinstall_vm(self, info: vmhost.FullVmInfo) -> None:
        """Replace the primary volume with a fresh clone of `info.image`, same name and size.

        A running VM is powered off for it and started again afterwards. A missing image is
        refused before anything is touched.
        """
        res = info.resources
        try:
            image = image_volume_name(info.image.url)
        except ValueError as exc:
            raise vmhost.VmHostError(str(exc)) from exc

        def reinstall(conn: Conn) -> None:
            dom = self._get(conn, info.vm.id)
            pool = conn.storagePoolLookupByName(self.storage_pool)
            base = self._image(pool, image)
            was_running = bool(dom.isActive())
            if was_running:
                dom.destroy()
            self._clone(pool, base, disk_volume_name(info.vm.id), res.disk_size)
            self._write_seed(conn, pool, info, instance_tag=str(self._now()))
            if was_running:
                dom.create()
                self._stamp_start(dom, info.vm.id)

        await self._run(f"reinstall VM {info.vm.id}", reinstall, long=True, builds=info.vm.id)

    async def resize_vm(self, info: vmhost.FullVmInfo) -> None:
        """Set vcpus and memory in the persistent config (effective at the next boot: the
        upgrade stops and starts the VM) and grow the disk; a disk is never shrunk.

        A step the driver does not support fails the resize for good (the worker tells the
        admins); only the test driver's (it cannot resize volumes) is logged and skipped.
        """
        res = info.resources
        spec_of = info.template if info.template is not None else info.custom_template
        interface = spec_of.disk_interface if spec_of is not None else DiskInterface.PCIE

        def resize(conn: Conn) -> None:
            dom = self._get(conn, info.vm.id)
            config = libvirt.VIR_DOMAIN_AFFECT_CONFIG
            max_vcpus = int(dom.vcpusFlags(config | libvirt.VIR_DOMAIN_VCPU_MAXIMUM))
            vcpu_steps = [
                (lambda: dom.setVcpusFlags(res.cpu, config | libvirt.VIR_DOMAIN_VCPU_MAXIMUM)),
                (lambda: dom.setVcpusFlags(res.cpu, config)),
            ]
            if res.cpu < max_vcpus:
                vcpu_steps.reverse()
            kib = res.memory // 1024
            max_kib = int(dom.maxMemory())
            mem_steps = [
                (lambda: dom.setMemoryFlags(kib, config | libvirt.VIR_DOMAIN_MEM_MAXIMUM)),
                (lambda: dom.setMemoryFlags(kib, config)),
            ]
            if kib < max_kib:
                mem_steps.reverse()
            for step in (*vcpu_steps, *mem_steps):
                self._optional(conn, f"VM {info.vm.id}: set cpu/memory", step)
            self._grow_disk(conn, dom, info.vm.id, res.disk_size, disk_target(interface))

        await self._run(f"resize VM {info.vm.id}", resize)

    async def get_vm_state(self, vm: Vm) -> vmhost.VmRunningState:
        def read(conn: Conn) -> vmhost.VmRunningState:
            return self._state(vm.id, self._get(conn, vm.id))

        return await self._run(f"read VM {vm.id}", read)

    async def get_all_vm_states(self) -> Mapping[int, vmhost.VmRunningState]:
        """Every domain named `vm<id>`; other domains on the hypervisor are not LNVPS's."""

        def read_all(conn: Conn) -> dict[int, vmhost.VmRunningState]:
            states: dict[int, vmhost.VmRunningState] = {}
            for dom in conn.listAllDomains(0):
                vm_id = vm_id_of(str(dom.name()))
                if vm_id is None:
                    continue
                try:
                    states[vm_id] = self._state(vm_id, dom)
                except libvirt.libvirtError as exc:
                    if _code(exc) != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
            return states

        return await self._run("list VMs", read_all)

    async def generate_mac(self, vm: Vm) -> str:
        """`52:54:00` (the QEMU/KVM prefix) and three random bytes."""
        return MAC_PREFIX + "".join(f":{self._rng.randrange(256):02x}" for _ in range(3))

    async def get_time_series(self, vm: Vm) -> Sequence[vmhost.TimeSeriesPoint]:
        """Rates between the samples this client took (a running VM is sampled now too)."""

        def read(conn: Conn) -> None:
            dom = self._get(conn, vm.id)
            if dom.isActive():
                self._state(vm.id, dom)

        await self._run(f"read metrics of VM {vm.id}", read)
        return self._history.series(vm.id)

    async def download_os_image(self, image: OsImage) -> bool:
        """Download the image (checksum verified) and upload it as the pool's image volume.

        An image volume already in the pool is kept (False), as is one another download
        stored meanwhile; a mismatch leaves nothing behind. The volume of the image's name
        only ever holds a complete upload (`store_image`), so its presence is enough.
        """
        try:
            name = image_volume_name(image.url)
        except ValueError as exc:
            raise vmhost.VmHostError(str(exc)) from exc

        def present(conn: Conn) -> bool:
            pool = conn.storagePoolLookupByName(self.storage_pool)
            try:
                pool.refresh(0)
            except libvirt.libvirtError as exc:
                log.warning("refreshing pool %s: %s", self.storage_pool, exc.get_error_message())
            return lookup_volume(pool, name) is not None

        if await self._run(f"look up image {name}", present):
            log.info("OS image %s already in pool %s", name, self.storage_pool)
            return False
        path = await download_image(image, self.download_dir)
        try:
            size = path.stat().st_size

            def store(conn: Conn) -> bool:
                pool = conn.storagePoolLookupByName(self.storage_pool)
                return store_image(conn, pool, name, file_chunks(path), size)

            return await self._run(f"upload image {name}", store, long=True)
        finally:
            path.unlink(missing_ok=True)

    # --- helpers (run in worker threads) -----------------------------------------------------

    def _find(self, conn: Conn, vm_id: int) -> Dom | None:
        try:
            return conn.lookupByName(domain_name(vm_id))
        except libvirt.libvirtError as exc:
            if _code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
                return None
            raise

    def _get(self, conn: Conn, vm_id: int) -> Dom:
        dom = self._find(conn, vm_id)
        if dom is None:
            raise vmhost.VmNotFoundOnHost(vm_id)
        return dom

    def _pool_or_none(self, conn: Conn) -> Any:
        try:
            return conn.storagePoolLookupByName(self.storage_pool)
        except libvirt.libvirtError as exc:
            if _code(exc) == libvirt.VIR_ERR_NO_STORAGE_POOL:
                log.warning("storage pool %s not on %s", self.storage_pool, self.uri)
                return None
            raise

    def _image(self, pool: Any, image: str) -> Any:
        """The OS image volume; the pool is refreshed first so an image copied in is seen."""
        try:  # best effort: refused e.g. while another volume is being built in the pool
            pool.refresh(0)
        except libvirt.libvirtError as exc:
            log.warning("refreshing pool %s: %s", self.storage_pool, exc.get_error_message())
        base = lookup_volume(pool, image)
        if base is None:
            raise vmhost.VmHostError(f"OS image {image} is not in storage pool {self.storage_pool}")
        return base

    def _clone(self, pool: Any, base: Any, name: str, size: int) -> Any:
        """A fresh qcow2 volume `name` cloned from `base` (replacing any volume of that name).

        The clone's capacity is read back (`info` re-reads a file volume) and grown when it is
        still smaller than `size`; a clone that cannot be grown is deleted again.
        """
        delete_volume(lookup_volume(pool, name))
        volume = pool.createXMLFrom(volume_xml(name, size), base, 0)
        if int(volume.info()[1]) < size:
            try:
                self._optional(
                    pool.connect(), f"grow volume {name}", lambda: volume.resize(size, 0)
                )
            except BaseException:
                delete_volume(volume)
                raise
        return volume

    def _grow_disk(self, conn: Conn, dom: Dom, vm_id: int, size: int, target: str) -> None:
        pool = conn.storagePoolLookupByName(self.storage_pool)
        volume = lookup_volume(pool, disk_volume_name(vm_id))
        if volume is None:
            log.warning("VM %s has no volume %s to resize", vm_id, disk_volume_name(vm_id))
            return
        capacity = int(volume.info()[1])
        if size < capacity:
            log.warning("VM %s disk not shrunk from %s to %s bytes", vm_id, capacity, size)
        elif size > capacity:
            if dom.isActive():
                bytes_flag = libvirt.VIR_DOMAIN_BLOCK_RESIZE_BYTES
                self._optional(
                    conn,
                    f"VM {vm_id}: grow disk",
                    lambda: dom.blockResize(target, size, bytes_flag),
                )
            else:
                self._optional(conn, f"VM {vm_id}: grow disk", lambda: volume.resize(size, 0))

    def _write_seed(
        self, conn: Conn, pool: Any, info: vmhost.FullVmInfo, instance_tag: str = ""
    ) -> Any:
        """(Re)write the VM's cloud-init seed ISO volume."""
        data = seed_iso(seed_files(info, self.nameservers, instance_tag))
        return write_volume(conn, pool, seed_volume_name(info.vm.id), [data], len(data))

    def _optional(self, conn: Conn, what: str, step: Callable[[], object]) -> None:
        """Run a sizing step; one the test driver does not implement is logged and skipped.

        On any other driver an unsupported step raises (a fatal `VmHostError` once
        classified): skipping it would report a paid disk or memory upgrade as done, or
        give a new VM a smaller disk than it was sold with.
        """
        try:
            step()
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_SUPPORT or not is_test_driver(conn):
                raise
            log.warning(
                "%s skipped, unsupported by %s: %s", what, self.uri, exc.get_error_message()
            )

    def _stamp_start(self, dom: Dom, vm_id: int) -> None:
        """Record in the live metadata that LNVPS (re)started the domain now; a driver that
        keeps no metadata only costs the uptime figure (logged), never the start."""
        now = self._now()
        try:
            dom.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                started_metadata(now),
                METADATA_KEY,
                METADATA_NS,
                libvirt.VIR_DOMAIN_AFFECT_LIVE,
            )
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_SUPPORT:
                raise
            log.warning("VM %s: start time not recorded by %s: %s", vm_id, self.uri, exc)
        self._cpu_samples.pop(vm_id, None)

    def _started_at(self, dom: Dom) -> int | None:
        try:
            xml = dom.metadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT, METADATA_NS, libvirt.VIR_DOMAIN_AFFECT_LIVE
            )
        except libvirt.libvirtError as exc:
            if _code(exc) in (
                libvirt.VIR_ERR_NO_DOMAIN_METADATA,
                libvirt.VIR_ERR_NO_SUPPORT,
                libvirt.VIR_ERR_OPERATION_INVALID,
            ):
                return None
            raise
        return parse_started(str(xml))

    def _now(self) -> int:
        return int(self._clock.now().timestamp())

    def _state(self, vm_id: int, dom: Dom) -> vmhost.VmRunningState:
        now = self._now()
        state_code, max_kib, cur_kib, vcpus, cpu_ns = dom.info()
        if state_code in _STOPPED:
            return vmhost.VmRunningState(timestamp=now, state=vmhost.VmRunState.STOPPED)
        if state_code not in _RUNNING:
            return vmhost.VmRunningState(timestamp=now, state=vmhost.VmRunState.UNKNOWN)
        started = self._started_at(dom)
        uptime = max(0, now - started) if started is not None else 0
        cpu_ns = self._cpu_time(dom, int(cpu_ns))
        net_in, net_out, disk_read, disk_write = self._counters(dom)
        mem_usage = self._mem_usage(dom, int(max_kib), int(cur_kib))
        sample = Sample(
            at=now,
            cpu_ns=cpu_ns,
            vcpus=int(vcpus),
            memory=mem_usage,
            memory_size=int(max_kib) * 1024,
            net_in=net_in,
            net_out=net_out,
            disk_read=disk_read,
            disk_write=disk_write,
        )
        self._history.record(vm_id, sample)
        return vmhost.VmRunningState(
            timestamp=now,
            state=vmhost.VmRunState.RUNNING,
            cpu_usage=self._cpu_usage(vm_id, now, uptime, cpu_ns, int(vcpus)),
            mem_usage=mem_usage,
            uptime=uptime,
            net_in=net_in,
            net_out=net_out,
            disk_read=disk_read,
            disk_write=disk_write,
        )

    def _cpu_time(self, dom: Dom, fallback_ns: int) -> int:
        """The guest's total cpu time in ns (`getCPUStats`, else `info()`'s figure)."""
        try:
            stats = dom.getCPUStats(True)
            return int(stats[0]["cpu_time"])
        except (libvirt.libvirtError, LookupError, TypeError):
            return fallback_ns

    def _cpu_usage(self, vm_id: int, now: int, uptime: int, cpu_ns: int, vcpus: int) -> Decimal:
        """Share of the VM's vcpus used since the last read (first read: since the start)."""
        previous = self._cpu_samples.get(vm_id)
        self._cpu_samples[vm_id] = (now, cpu_ns)
        if previous is not None and now > previous[0] and cpu_ns >= previous[1]:
            used, elapsed = cpu_ns - previous[1], now - previous[0]
        elif uptime > 0:
            used, elapsed = cpu_ns, uptime
        else:
            return Decimal(0)
        return _fraction(Decimal(used), Decimal(elapsed * _NS * max(vcpus, 1)))

    def _mem_usage(self, dom: Dom, max_kib: int, cur_kib: int) -> Decimal:
        """Guest-reported used/available (balloon stats), else rss/actual, else current/max."""
        try:
            stats = {str(k): int(v) for k, v in dict(dom.memoryStats()).items()}
        except (libvirt.libvirtError, TypeError, ValueError):
            stats = {}
        if stats.get("available", 0) > 0 and "unused" in stats:
            used = stats["available"] - stats["unused"]
            return _fraction(Decimal(used), Decimal(stats["available"]))
        if stats.get("actual", 0) > 0 and "rss" in stats:
            return _fraction(Decimal(stats["rss"]), Decimal(stats["actual"]))
        return _fraction(Decimal(cur_kib), Decimal(max(max_kib, 1)))

    def _counters(self, dom: Dom) -> tuple[int, int, int, int]:
        """Bytes in/out over every NIC and read/written over every disk, 0 where unreadable."""
        try:
            nics, disks = device_targets(str(dom.XMLDesc(0)))
        except libvirt.libvirtError:
            return 0, 0, 0, 0
        net_in, net_out = _summed("interface", nics, dom.interfaceStats, 0, 4)
        disk_read, disk_write = _summed("block", disks, dom.blockStats, 1, 3)
        return net_in, net_out, disk_read, disk_write


def _summed(
    kind: str, devices: Sequence[str], stats_of: Callable[[str], Any], first: int, second: int
) -> tuple[int, int]:
    """The sums of two fields of each device's stats; a device whose stats cannot be read
    counts 0."""
    one = two = 0
    for device in devices:
        try:
            stats = stats_of(device)
            one, two = one + int(stats[first]), two + int(stats[second])
        except libvirt.libvirtError as exc:
            log.debug("%s stats of %s: %s", kind, device, exc)
    return one, two


def _fraction(part: Decimal, whole: Decimal) -> Decimal:
    """`part / whole` clamped to 0–1, to four places."""
    if whole <= 0:
        return Decimal(0)
    return min(Decimal(1), max(Decimal(0), part / whole)).quantize(_USAGE_STEP)
