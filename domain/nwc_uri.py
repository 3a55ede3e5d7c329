"""NIP-47 `nostr+walletconnect://` strings: the one parser of PATCH checks and the wallet client."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import attrs

from domain.addresses import is_private_address, literal_address
from domain.errors import InvalidInput

SCHEMES = ("nostr+walletconnect", "nostrwalletconnect")
#: relays one connection string may name (each is a connection the server opens per payment)
MAX_RELAYS = 3
#: characters one relay URL may have
RELAY_URL_LIMIT = 256
_HEX32 = re.compile(r"[0-9a-fA-F]{64}")
_P = 2**256 - 2**32 - 977  # secp256k1 field prime
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141  # group order


class InvalidNwcString(InvalidInput):
    """A wallet connection string the server will not use (400); never carries the secret."""


@attrs.frozen
class RelayPolicy:
    """Which relays a connection string may name: private addresses only when allowed
    (dev mode, tests with a local relay), plain `ws://` only when TLS is not required."""

    allow_private: bool = False
    require_tls: bool = False


#: public relays, `ws://` or `wss://`
PUBLIC_RELAYS = RelayPolicy()
#: public `wss://` relays only (production)
PUBLIC_TLS_RELAYS = RelayPolicy(require_tls=True)


@attrs.frozen(kw_only=True, repr=False)
class NwcUri:
    """A parsed connection: wallet x-only key, its relay URLs (in order, at least one), the
    client secret (32 bytes)."""

    wallet_pubkey: bytes
    relays: tuple[str, ...]
    secret: bytes
    lud16: str | None = None

    @property
    def relay(self) -> str:
        """The first relay."""
        return self.relays[0]

    def __repr__(self) -> str:  # never print the secret
        return f"NwcUri(wallet_pubkey={self.wallet_pubkey.hex()}, relays={self.relays!r})"


def _key(text: str, what: str) -> bytes:
    if not _HEX32.fullmatch(text):
        raise InvalidNwcString(f"Failed to parse NWC url: {what} must be 64 hex digits")
    return bytes.fromhex(text)


def _on_curve(x_only: bytes) -> bool:
    """BIP-340: an x coordinate below p whose x³ + 7 is a square mod p."""
    x = int.from_bytes(x_only, "big")
    return x < _P and pow((pow(x, 3, _P) + 7) % _P, (_P - 1) // 2, _P) == 1


def _relay(url: str, policy: RelayPolicy) -> str:
    if len(url) > RELAY_URL_LIMIT:
        raise InvalidNwcString(
            f"Failed to parse NWC url: a relay URL is longer than {RELAY_URL_LIMIT}"
        )
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        raise InvalidNwcString("Failed to parse NWC url: a relay URL is not valid") from None
    if parts.scheme not in ("ws", "wss") or not host:
        raise InvalidNwcString("Failed to parse NWC url: relay must be a ws:// or wss:// URL")
    if policy.require_tls and parts.scheme != "wss":
        raise InvalidNwcString("Failed to parse NWC url: relay must be a wss:// URL")
    address = literal_address(host)
    if not policy.allow_private and address is not None and is_private_address(address):
        raise InvalidNwcString("Failed to parse NWC url: relay must be a public address")
    return url


def parse_nwc_uri(text: str, policy: RelayPolicy = PUBLIC_RELAYS) -> NwcUri:
    """The connection named by `text`; InvalidNwcString (without the secret) if unusable."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        raise InvalidNwcString("Failed to parse NWC url: not a valid URI") from None
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidNwcString("Failed to parse NWC url: scheme must be nostr+walletconnect")
    wallet = _key(parts.netloc or parts.path.lstrip("/"), "the wallet public key")
    query = parse_qs(parts.query)
    relays = tuple(dict.fromkeys(r.strip() for r in query.get("relay", []) if r.strip()))
    if not relays:
        raise InvalidNwcString("Failed to parse NWC url: missing relay")
    if len(relays) > MAX_RELAYS:
        raise InvalidNwcString(f"Failed to parse NWC url: more than {MAX_RELAYS} relays")
    relays = tuple(_relay(relay, policy) for relay in relays)
    secrets_ = query.get("secret", [])
    if not secrets_:
        raise InvalidNwcString("Failed to parse NWC url: missing secret")
    secret = _key(secrets_[0], "the secret")
    if not _on_curve(wallet):
        raise InvalidNwcString("Failed to parse NWC url: the wallet public key is not a valid key")
    if not 0 < int.from_bytes(secret, "big") < _N:
        raise InvalidNwcString("Failed to parse NWC url: the secret is not a valid key")
    lud16 = query.get("lud16", [None])[0]
    return NwcUri(wallet_pubkey=wallet, relays=relays, secret=secret, lud16=lud16)
