"""Parse and validate `nostr+walletconnect://<wallet pubkey>?relay=…&secret=…` URIs."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import attrs
from coincurve import PrivateKey, PublicKey

from ports.nwc import InvalidNwcUri

SCHEMES = ("nostr+walletconnect", "nostrwalletconnect")
_HEX32 = re.compile(r"[0-9a-fA-F]{64}")


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
        raise InvalidNwcUri(f"Wallet connection: {what} must be 64 hex digits")
    return bytes.fromhex(text)


def parse_nwc_uri(text: str) -> NwcUri:
    """The connection named by `text`; InvalidNwcUri (without the secret) if unusable."""
    try:
        parts = urlsplit(text.strip())
    except ValueError:
        raise InvalidNwcUri("Wallet connection string is not a valid URI") from None
    if parts.scheme.lower() not in SCHEMES:
        raise InvalidNwcUri("Wallet connection string must start with nostr+walletconnect://")
    wallet = _key(parts.netloc or parts.path.lstrip("/"), "the wallet public key")
    query = parse_qs(parts.query)
    relays = tuple(dict.fromkeys(r.strip() for r in query.get("relay", []) if r.strip()))
    if not relays:
        raise InvalidNwcUri("Wallet connection string has no relay")
    for relay in relays:
        if urlsplit(relay).scheme not in ("ws", "wss") or not urlsplit(relay).netloc:
            raise InvalidNwcUri("Wallet connection relay must be a ws:// or wss:// URL")
    secrets_ = query.get("secret", [])
    if not secrets_:
        raise InvalidNwcUri("Wallet connection string has no secret")
    secret = _key(secrets_[0], "the secret")
    try:
        PublicKey(b"\x02" + wallet)
    except ValueError:
        raise InvalidNwcUri("Wallet connection: the wallet public key is not a valid key") from None
    try:
        PrivateKey(secret)
    except ValueError:
        raise InvalidNwcUri("Wallet connection: the secret is not a valid key") from None
    lud16 = query.get("lud16", [None])[0]
    return NwcUri(wallet_pubkey=wallet, relays=relays, secret=secret, lud16=lud16)
