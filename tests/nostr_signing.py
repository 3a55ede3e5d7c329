"""Test helper: real NIP-01 events signed with BIP-340 (coincurve) and NIP-98 auth headers."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs
from coincurve import PrivateKey, PublicKeyXOnly

from adapters.http.nip98 import Nip98Request, verify_nip98_event

HTTP_AUTH_KIND = 27235


@attrs.frozen
class NostrKey:
    """A secp256k1 key pair from a 32-byte secret; `pubkey` is the 32-byte x-only key."""

    secret: bytes

    @classmethod
    def from_seed(cls, seed: int) -> NostrKey:
        """A deterministic key for tests: the secret is sha256 of the seed."""
        return cls(hashlib.sha256(f"lnvps-test-key-{seed}".encode()).digest())

    @property
    def pubkey(self) -> bytes:
        return PublicKeyXOnly.from_secret(self.secret).format()

    @property
    def pubkey_hex(self) -> str:
        return self.pubkey.hex()

    def sign_event(
        self, *, created_at: int, kind: int, tags: Sequence[Sequence[str]], content: str = ""
    ) -> dict[str, Any]:
        """A complete signed event: NIP-01 id and a BIP-340 signature over it."""
        tag_lists = [list(t) for t in tags]
        event_id = event_id_hex(self.pubkey_hex, created_at, kind, tag_lists, content)
        sig = PrivateKey(self.secret).sign_schnorr(bytes.fromhex(event_id))
        return {
            "id": event_id,
            "pubkey": self.pubkey_hex,
            "created_at": created_at,
            "kind": kind,
            "tags": tag_lists,
            "content": content,
            "sig": sig.hex(),
        }


def event_id_hex(
    pubkey_hex: str, created_at: int, kind: int, tags: list[list[str]], content: str
) -> str:
    """NIP-01: sha256 of the compact UTF-8 JSON `[0, pubkey, created_at, kind, tags, content]`."""
    data = [0, pubkey_hex, created_at, kind, tags, content]
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def nip98_event(
    key: NostrKey,
    url: str,
    method: str,
    created_at: int | datetime,
    *,
    body: bytes | None = None,
    kind: int = HTTP_AUTH_KIND,
    tags: Sequence[Sequence[str]] | None = None,
    content: str = "",
) -> dict[str, Any]:
    """A signed NIP-98 event; `tags` replaces the default `u`/`method` (+`payload`) tags."""
    when = int(created_at.timestamp()) if isinstance(created_at, datetime) else created_at
    if tags is None:
        defaults = [["u", url], ["method", method]]
        if body is not None:
            defaults.append(["payload", hashlib.sha256(body).hexdigest()])
        tags = defaults
    return key.sign_event(created_at=when, kind=kind, tags=tags, content=content)


def encode_event(event: dict[str, Any], *, padded: bool = True, urlsafe: bool = False) -> str:
    """Base64 of the event JSON, standard and padded as clients send it, or variants."""
    raw = json.dumps(event, separators=(",", ":")).encode()
    text = (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(raw).decode()
    return text if padded else text.rstrip("=")


def auth_header(event: dict[str, Any], *, padded: bool = True, urlsafe: bool = False) -> str:
    """The `Authorization` value: `Nostr <base64 event>`."""
    return "Nostr " + encode_event(event, padded=padded, urlsafe=urlsafe)


def sign_request(
    key: NostrKey, url: str, method: str, created_at: int | datetime, **kw: Any
) -> str:
    """Shortcut: the `Authorization` header for one request."""
    return auth_header(nip98_event(key, url, method, created_at, **kw))


def verify_nip98(
    header: str | None, method: str, target: str, now: datetime, body: bytes | None, **options: Any
) -> bytes:
    """`verify_nip98_event`, returning just the signer's x-only key."""
    return verify_nip98_event(header, Nip98Request(method, target, now, body, **options)).pubkey
