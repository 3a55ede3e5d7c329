"""IP addresses named in URLs: reading a literal host, and which addresses are private."""

from __future__ import annotations

import ipaddress

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def literal_address(host: str) -> IpAddress | None:
    """The IP address `host` spells (brackets and an IPv6 zone allowed), None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def is_private_address(address: IpAddress) -> bool:
    """Whether the server must not open a connection to `address` for a user: loopback,
    private, link-local, CGNAT, unspecified, multicast or reserved (IPv4-mapped IPv6 judged
    as its IPv4 address)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT)
    )
