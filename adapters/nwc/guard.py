"""An aiohttp connector that never connects a wallet relay to a private address."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp.abc import ResolveResult

from domain.addresses import is_private_address, literal_address


class PrivateAddressRefused(OSError):
    """A relay host is, or resolves to, an address the server must not connect to."""


class PublicOnlyConnector(aiohttp.TCPConnector):
    """A TCPConnector whose every host lookup (DNS names, IP literals, redirect targets) is
    checked: when any address is private, loopback, link-local, CGNAT, … the connection is
    refused. aiohttp then connects to the addresses returned here, the ones checked, so a
    second DNS answer (rebinding) cannot send it elsewhere."""

    async def _resolve_host(
        self, host: str, port: int, traces: Sequence[Any] | None = None
    ) -> list[ResolveResult]:
        results = await super()._resolve_host(host, port, traces=traces)
        for result in results:
            address = literal_address(result["host"])
            if address is None or is_private_address(address):
                raise PrivateAddressRefused("relay address refused")
        return results


def relay_connector(allow_private: bool) -> aiohttp.TCPConnector:
    """The connector for relay connections: any address when `allow_private`, else public only."""
    if allow_private:
        return aiohttp.TCPConnector()
    return PublicOnlyConnector(family=socket.AF_UNSPEC)
