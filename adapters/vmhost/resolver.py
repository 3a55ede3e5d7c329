"""The host-client registry: each `vm_host` row resolves to its adapter (lifecycle.md §11.1)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import aiohttp

from adapters.vmhost.libvirt_uri import check_libvirt_uri
from adapters.vmhost.proxmox import ProxmoxVmHost, config_for_host
from domain.enums import VmHostKind
from domain.model import Host
from ports.clock import Clock
from ports.vmhost import VmHost, VmHostError

if TYPE_CHECKING:
    from adapters.vmhost.libvirt_host import LibvirtVmHost

log = logging.getLogger("lnvps.vmhost")

#: seconds a test connection may take before the host counts as not answering
PROBE_TIMEOUT_S = 10
#: the `LibvirtVmHost` settings `vm-hosts.libvirt` may set (checked without importing libvirt)
LIBVIRT_SETTINGS = frozenset(
    {
        "storage_pool",
        "network",
        "nameservers",
        "download_dir",
        "call_timeout_s",
        "long_call_timeout_s",
    }
)


def _row_key(host: Host) -> tuple[object, ...]:
    """What a client is built from: an edit of any of these fields builds a new client."""
    return (host.kind, host.ip, host.name, host.api_token)


class VmHostClients:
    """A `VmHostResolver`: one shared dummy host (`mock` rows), one client per real host row.

    A Proxmox row's `ip` is the API URL, `name` the node and `api_token` the (decrypted) token;
    `proxmox` holds the other `ProxmoxConfig` settings (bridge, TLS, polling, retries). A
    libvirt row's `ip` is the libvirt URI; `libvirt` holds `LibvirtVmHost` settings
    (storage_pool, network); its URI is checked first (`check_libvirt_uri`). A client is
    built on first use of a row version and replaced (the old one closed) when the row's
    connection fields change; `aclose` closes them all.
    libvirt-python is imported only when a libvirt host is first used.
    """

    def __init__(
        self,
        clock: Clock,
        dummy: VmHost,
        proxmox: Mapping[str, Any] | None = None,
        session: aiohttp.ClientSession | None = None,
        libvirt: Mapping[str, Any] | None = None,
        *,
        libvirt_test_files: bool = False,
    ) -> None:
        self._clock = clock
        self._dummy = dummy
        self._proxmox_settings = dict(proxmox or {})
        self._libvirt_settings = dict(libvirt or {})
        unknown = sorted(set(self._libvirt_settings) - LIBVIRT_SETTINGS)
        if unknown:  # fail at start, not at the first libvirt VM
            raise ValueError(f"vm-hosts.libvirt: unknown settings {', '.join(unknown)}")
        self._session = session
        self._libvirt_test_files = libvirt_test_files
        self._clients: dict[int, tuple[tuple[object, ...], VmHost]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def _build(self, host: Host) -> ProxmoxVmHost | LibvirtVmHost:
        if host.kind is VmHostKind.PROXMOX:
            config = config_for_host(host, **self._proxmox_settings)
            return ProxmoxVmHost(config, self._clock, self._session)
        if host.kind is VmHostKind.LIBVIRT:
            check_libvirt_uri(host.ip, allow_test_files=self._libvirt_test_files)
            from adapters.vmhost.libvirt_host import LibvirtVmHost

            return LibvirtVmHost(host.ip, self._clock, **self._libvirt_settings)
        raise VmHostError(f"Unknown host config: {host.kind.name.lower()}")

    def for_host(self, host: Host) -> VmHost:
        if host.kind is VmHostKind.DUMMY:
            return self._dummy
        key = _row_key(host)
        found = self._clients.get(host.id)
        if found is not None and found[0] == key:
            return found[1]
        client = self._build(host)
        self._clients[host.id] = (key, client)
        if found is not None:
            self._retire(found[1])
        return client

    def _retire(self, client: VmHost) -> None:
        """Close the client of an edited row's old version without blocking the caller."""
        try:
            task = asyncio.get_running_loop().create_task(_close(client))
        except RuntimeError:  # no loop (a synchronous caller): nothing holds it open but GC
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def probe(self, host: Host) -> None:
        """Check that a host row's connection settings work (the admin's test connection).

        Proxmox: the API version and the node's status with the row's token, no retries;
        libvirt: open the URI and read the host name. Raises `VmHostError` with the reason.
        A throwaway client is used, so a failed probe leaves the registry untouched.
        """
        if host.kind is VmHostKind.DUMMY:
            return
        client = self._build(host)
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_S):
                await client.check_connection()
        except TimeoutError:
            raise VmHostError(f"no answer within {PROBE_TIMEOUT_S} s") from None
        finally:
            await _close(client)

    async def aclose(self) -> None:
        clients = [c for _, c in self._clients.values()]
        self._clients.clear()
        for client in clients:
            await _close(client)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _close(client: VmHost) -> None:
    closer = getattr(client, "aclose", None)
    if closer is None:
        return
    try:
        await closer()
    except Exception as exc:  # closing must not stop the others from closing
        log.warning("closing a host client failed: %s", exc)
