"""domain.nwc_uri: the relays a wallet string may name (no private addresses, wss in production)."""

from __future__ import annotations

import ipaddress

import pytest

from domain.addresses import is_private_address
from domain.errors import InvalidInput
from domain.nwc_uri import (
    MAX_RELAYS,
    PUBLIC_RELAYS,
    PUBLIC_TLS_RELAYS,
    RELAY_URL_LIMIT,
    RelayPolicy,
    parse_nwc_uri,
)

WALLET = "ab" * 32  # a point on secp256k1
SECRET = "cd" * 32


def nwc(*relays: str) -> str:
    query = "".join(f"relay={r}&" for r in relays)
    return f"nostr+walletconnect://{WALLET}?{query}secret={SECRET}"


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "127.1.2.3",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # CGNAT
        "0.0.0.0",
        "224.0.0.1",
        "[::1]",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[::ffff:127.0.0.1]",  # IPv4-mapped
        "[::ffff:169.254.169.254]",
    ],
)
def test_a_relay_on_a_private_address_is_refused(host: str) -> None:
    with pytest.raises(InvalidInput, match="public address") as caught:
        parse_nwc_uri(nwc(f"wss://{host}:7777/internal"))
    assert SECRET[:16] not in str(caught.value)
    assert parse_nwc_uri(nwc(f"wss://{host}:7777/"), RelayPolicy(allow_private=True))


def test_the_reviewers_loopback_admin_path_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_nwc_uri(nwc("ws://127.0.0.1:8001/internal/admin%3Fx"))


@pytest.mark.parametrize(
    "relay", ["wss://relay.example.com/v1", "wss://8.8.8.8", "wss://[2606:4700::1111]:443"]
)
def test_a_public_wss_relay_parses_in_production(relay: str) -> None:
    assert parse_nwc_uri(nwc(relay), PUBLIC_TLS_RELAYS).relays == (relay,)


def test_plain_ws_only_outside_production() -> None:
    assert (
        parse_nwc_uri(nwc("ws://relay.example.com"), PUBLIC_RELAYS).relay
        == "ws://relay.example.com"
    )
    with pytest.raises(InvalidInput, match="wss://"):
        parse_nwc_uri(nwc("ws://relay.example.com"), PUBLIC_TLS_RELAYS)


def test_relay_count_and_length_are_bounded() -> None:
    many = [f"wss://r{i}.example.com" for i in range(MAX_RELAYS + 1)]
    assert len(parse_nwc_uri(nwc(*many[:MAX_RELAYS])).relays) == MAX_RELAYS
    with pytest.raises(InvalidInput, match="relays"):
        parse_nwc_uri(nwc(*many))
    long = "wss://relay.example.com/" + "a" * RELAY_URL_LIMIT
    with pytest.raises(InvalidInput, match="longer"):
        parse_nwc_uri(nwc(long))


@pytest.mark.parametrize("relay", ["wss://relay.example.com:99999", "wss://[::1", "wss://:443/"])
def test_a_malformed_relay_url_is_refused(relay: str) -> None:
    with pytest.raises(InvalidInput):
        parse_nwc_uri(nwc(relay))


def test_keys_off_the_curve_are_refused_as_the_client_would() -> None:
    with pytest.raises(InvalidInput, match="public key"):
        parse_nwc_uri(nwc("wss://r.example").replace(WALLET, "b3" * 32))
    with pytest.raises(InvalidInput, match="secret"):
        parse_nwc_uri(nwc("wss://r.example").replace(SECRET, "ff" * 32))


def test_public_addresses_are_not_private() -> None:
    for text in ("8.8.8.8", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8"):
        assert not is_private_address(ipaddress.ip_address(text))
