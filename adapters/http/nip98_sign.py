"""Signs NIP-98 `Authorization` headers (for `lnvps dev auth`, scripts and smoke tests)."""

from __future__ import annotations

import base64
import json

from coincurve import PrivateKey, PublicKeyXOnly

from adapters.http.nip98 import HTTP_AUTH_KIND, NostrEvent, payload_hash


def nip98_header(
    secret: bytes, url: str, method: str, created_at: int, body: bytes | None = None
) -> str:
    """`Nostr <base64 event>` for one request, signed BIP-340 with the 32-byte `secret`."""
    tags: list[tuple[str, ...]] = [("u", url), ("method", method.upper())]
    if body:
        tags.append(("payload", payload_hash(body)))
    unsigned = NostrEvent(
        id=b"",
        pubkey=PublicKeyXOnly.from_secret(secret).format(),
        created_at=created_at,
        kind=HTTP_AUTH_KIND,
        tags=tuple(tags),
        content="",
        sig=b"",
    )
    event_id = unsigned.computed_id()
    event = {
        "id": event_id.hex(),
        "pubkey": unsigned.pubkey.hex(),
        "created_at": created_at,
        "kind": HTTP_AUTH_KIND,
        "tags": [list(t) for t in tags],
        "content": "",
        "sig": PrivateKey(secret).sign_schnorr(event_id).hex(),
    }
    raw = json.dumps(event, separators=(",", ":")).encode()
    return "Nostr " + base64.b64encode(raw).decode()
