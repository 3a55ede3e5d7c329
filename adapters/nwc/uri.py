"""Parse a stored `nostr+walletconnect://` string with the domain's rules, as `InvalidNwcUri`."""

from __future__ import annotations

from domain.nwc_uri import PUBLIC_RELAYS, SCHEMES, InvalidNwcString, NwcUri, RelayPolicy
from domain.nwc_uri import parse_nwc_uri as _parse
from ports.nwc import InvalidNwcUri

__all__ = ["SCHEMES", "NwcUri", "RelayPolicy", "parse_nwc_uri"]


def parse_nwc_uri(text: str, policy: RelayPolicy = PUBLIC_RELAYS) -> NwcUri:
    """The connection named by `text` (the rules PATCH /api/v1/account applied); InvalidNwcUri
    (without the secret) if unusable."""
    try:
        return _parse(text, policy)
    except InvalidNwcString as exc:
        raise InvalidNwcUri(exc.message) from None
