"""Which VM host API URLs would carry the host's token in clear (refused for Proxmox rows)."""

from __future__ import annotations

from urllib.parse import urlsplit

from domain import model as m
from domain.addresses import literal_address
from domain.enums import VmHostKind


def clear_text_proxmox(host: m.Host) -> bool:
    """A Proxmox host whose API URL would carry its token in clear (`clear_text_url`)."""
    return host.kind is VmHostKind.PROXMOX and clear_text_url(host.ip)


def clear_text_url(url: str) -> bool:
    """Whether an API URL is `http://` to a host other than a loopback address: a token
    sent there travels in clear. (Loopback is allowed: a tunnel's end, the tests' fake node.)
    """
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return False  # not a URL at all: refused by its use, not for being clear text
    if parts.scheme.lower() != "http":
        return False
    if host is None:
        return True
    if host.lower() == "localhost":
        return False
    address = literal_address(host)
    return address is None or not address.is_loopback  # a name may resolve anywhere
