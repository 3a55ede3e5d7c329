"""Picks the VmHost client of a host by its kind (lifecycle.md §11.1 client selection)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

from adapters.vmhost.proxmox import ProxmoxVmHost, config_for_host
from domain.enums import VmHostKind
from domain.model import Host
from ports.clock import Clock
from ports.vmhost import VmHost, VmHostError


class VmHostClients:
    """A `VmHostResolver`: one shared dummy host, one Proxmox client per host row.

    `proxmox` holds the provisioner settings of `ProxmoxConfig` other than the URL, node and
    token (which come from the host row); without it Proxmox hosts are refused, as the
    reference refuses a host kind without its provisioner config. `libvirt` likewise holds
    `LibvirtVmHost` settings (storage_pool, network); the host row's `ip` is the libvirt URI.
    libvirt-python is imported only when a LibVirt host is first used.
    """

    def __init__(
        self,
        clock: Clock,
        dummy: VmHost,
        proxmox: Mapping[str, Any] | None = None,
        session: aiohttp.ClientSession | None = None,
        libvirt: Mapping[str, Any] | None = None,
    ) -> None:
        self._clock = clock
        self._libvirt_settings = dict(libvirt) if libvirt is not None else None
        self._libvirt: dict[tuple[int, str], VmHost] = {}
        self._dummy = dummy
        self._proxmox_settings = dict(proxmox) if proxmox is not None else None
        self._session = session
        self._proxmox: dict[tuple[int, str, str, str], ProxmoxVmHost] = {}

    def for_host(self, host: Host) -> VmHost:
        if host.kind is VmHostKind.DUMMY:
            return self._dummy
        if host.kind is VmHostKind.PROXMOX and self._proxmox_settings is not None:
            key = (host.id, host.ip, host.name, host.api_token)  # an edited row gets a new client
            client = self._proxmox.get(key)
            if client is None:
                config = config_for_host(host, **self._proxmox_settings)
                client = self._proxmox[key] = ProxmoxVmHost(config, self._clock, self._session)
            return client
        if host.kind is VmHostKind.LIBVIRT and self._libvirt_settings is not None:
            found = self._libvirt.get((host.id, host.ip))
            if found is None:
                from adapters.vmhost.libvirt_host import LibvirtVmHost

                found = LibvirtVmHost(host.ip, self._clock, **self._libvirt_settings)
                self._libvirt[(host.id, host.ip)] = found
            return found
        raise VmHostError(f"Unknown host config: {host.kind.name.lower()}")

    async def aclose(self) -> None:
        for client in self._proxmox.values():
            await client.aclose()
        self._proxmox.clear()
