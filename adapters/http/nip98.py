"""NIP-98 HTTP auth (api.md §4.1): decode the `Nostr <base64 event>` header and check it."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import attrs
import orjson
from coincurve import PublicKeyXOnly
from yarl import URL

HTTP_AUTH_KIND = 27235
DEFAULT_MAX_SKEW = 600  # seconds either way, boundary inclusive (api.md §4.1 step 2)

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX128 = re.compile(r"[0-9a-fA-F]{128}")
_BASE64 = re.compile(r"[A-Za-z0-9+/\-_]*={0,2}")
# A `u` value must be one token of visible ASCII: no spaces, control or non-ASCII characters.
_URI_CHARS = re.compile(r"[\x21-\x7e]+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_U_MISMATCH = "Auth check failed: U tag does not match"


class Nip98Error(Exception):
    """An auth refusal: `reason` is the check that failed, `text` the response body (§2.3)."""

    def __init__(self, reason: str, *, status: int = 401, text: str | None = None) -> None:
        self.reason = reason
        self.status = status
        self.text = text if text is not None else f"Auth check failed: {reason}"
        super().__init__(self.text)


@attrs.frozen
class NostrEvent:
    """A decoded NIP-01 event; `pubkey` is the 32-byte x-only key, nothing verified yet."""

    id: bytes
    pubkey: bytes
    created_at: int
    kind: int
    tags: tuple[tuple[str, ...], ...]
    content: str
    sig: bytes
    #: the NIP-01 id computed from the fields and the parsed key, when `decode_event` made
    #: the event (both are needed to decode it; kept so the signature check does not redo
    #: them). Not constructor arguments: `attrs.evolve` of a changed event drops them, so a
    #: cache can never vouch for fields it was not computed from. `key` is shared by every
    #: event of the same pubkey (`_xonly_key`): verified with, never tweaked.
    digest: bytes | None = attrs.field(default=None, init=False, eq=False, repr=False)
    key: PublicKeyXOnly | None = attrs.field(default=None, init=False, eq=False, repr=False)

    def _remember(self, digest: bytes, key: PublicKeyXOnly) -> NostrEvent:
        object.__setattr__(self, "digest", digest)
        object.__setattr__(self, "key", key)
        return self

    def tag_value(self, name: str) -> str | None:
        """Value of the first tag `[name, value, ...]`; a bare `[name]` tag is skipped.

        The reference indexed `tag[1]` and panicked on `["u"]`; its later fix (and we) treat
        such a tag as absent.
        """
        for tag in self.tags:
            if len(tag) >= 2 and tag[0] == name:
                return tag[1]
        return None

    def computed_id(self) -> bytes:
        """NIP-01 id: sha256 of the compact JSON `[0, pubkey, created_at, kind, tags, content]`."""
        return hashlib.sha256(
            _canonical(self.pubkey, self.created_at, self.kind, self.tags, self.content)
        ).digest()


@attrs.frozen
class Origin:
    """Scheme, host and port of a URL, compared case-insensitively with default ports filled."""

    scheme: str
    host: str
    port: int | None

    @classmethod
    def of(cls, url: str) -> Origin | None:
        """The origin of an absolute URL; None when `url` has no scheme or host."""
        try:
            parsed = URL(url)
        except (ValueError, TypeError):
            return None
        if not parsed.is_absolute() or not parsed.scheme or not parsed.host:
            return None
        return cls(parsed.scheme.lower(), parsed.host.lower().rstrip("."), parsed.port)


@attrs.frozen
class UTag:
    """A parsed `u` tag: the absolute URL it was (None for a bare path), raw path and query."""

    url: str | None
    path: str
    query: str

    @property
    def origin(self) -> Origin | None:
        """The URL's origin (None for a bare path); only worked out where a public URL is
        configured to compare it with."""
        return None if self.url is None else Origin.of(self.url)


@attrs.frozen
class Nip98Request:
    """What an event is checked against: the request's method and raw target (path and, when
    there is one, `?query`, still percent-encoded), the time it is judged at, its raw body
    (None when there was none) for the optional `payload` tag, the allowed clock skew and,
    with `origin` (the configured public URL), the scheme, host and port its `u` tag must name.
    """

    method: str
    target: str
    now: datetime
    body: bytes | None = None
    max_skew: int = DEFAULT_MAX_SKEW
    origin: Origin | None = None


def verify_nip98_event(header_value: str | None, request: Nip98Request) -> NostrEvent:
    """Check an `Authorization` header against the request; return the verified event.

    D26: the `u` tag must name the same path and query as `request.target` (and the same
    origin when one is configured). Missing or malformed headers are 401 (D26), with the
    reference's texts.
    """
    if header_value is None or not header_value.isascii():
        raise Nip98Error("Auth header not found", text="Auth header not found")
    if not header_value.startswith("Nostr "):
        raise Nip98Error("Auth scheme must be Nostr", text="Auth scheme must be Nostr")
    event = decode_event(header_value[6:])
    check_event(event, request)
    return event


def verify_nip98_token(token: str | None, request: Nip98Request) -> bytes:
    """The `?auth=<base64 event>` variant (§4.1), with the reference's two refusal texts.

    The event sits in the query it would have to sign, so its `u` tag is checked against the
    server-built path in `request.target`, with no query (what the LNVPS web client signed
    for these links).
    """
    if token is None:
        raise Nip98Error("Missing auth param", text="Missing or invalid auth param")
    try:
        event = decode_event(token)
    except Nip98Error as exc:
        raise Nip98Error(exc.reason, text="Missing or invalid auth param") from exc
    try:
        check_event(event, request)
    except Nip98Error as exc:
        raise Nip98Error(exc.reason, text="Invalid auth event") from exc
    return event.pubkey


def decode_event(encoded: str) -> NostrEvent:
    """Base64 (padded, unpadded or URL-safe) → NIP-01 event; nothing is verified here."""
    raw = _b64decode(encoded)
    if raw is None:
        raise Nip98Error("Invalid auth string", text="Invalid auth: Invalid auth string")
    event = _parse_event(raw)
    if event is None:
        raise Nip98Error("Invalid nostr event", text="Invalid auth: Invalid nostr event")
    return event


def check_event(event: NostrEvent, request: Nip98Request) -> bytes:
    """The §4.1 checks in the reference's order, the `u` tag bound per D26; first failure raised."""
    if event.kind != HTTP_AUTH_KIND:
        raise Nip98Error("Wrong event kind")
    if abs(event.created_at - int(request.now.timestamp())) > request.max_skew:
        raise Nip98Error("Created timestamp is out of range")
    url = event.tag_value("u")
    if url is None:
        raise Nip98Error("Missing url tag")
    tag = parse_u_tag(url)
    if tag is None:
        raise Nip98Error("Invalid U tag")
    _check_target(tag, request.target, request.origin)
    tag_method = event.tag_value("method")
    if tag_method is None:
        raise Nip98Error("Missing method tag")
    if tag_method != request.method:
        raise Nip98Error("Method tag incorrect")
    if not _signature_ok(event):
        raise Nip98Error("Event signature invalid")
    _check_payload(event, request.body)
    return event.pubkey


def _check_target(tag: UTag, target: str, origin: Origin | None) -> None:
    """D26: same path (exactly, as §4.1), same query, and the public URL's origin if set.

    Queries are compared as the ordered (name, value) pairs the handlers will read, decoded
    by the same parser aiohttp uses, so `?a=%41` signs `?a=A` but `?a=1&a=2` never signs
    `?a=2&a=1`. The log gets the precise reason; the caller always sees "U tag does not match".
    """
    path, _, query = target.partition("?")
    if tag.path != path:
        raise Nip98Error("U tag does not match")
    if query_pairs(tag.query) != query_pairs(query):
        raise Nip98Error("U tag query does not match", text=_U_MISMATCH)
    if origin is not None and tag.origin != origin:
        raise Nip98Error("U tag is not for this server's public-url", text=_U_MISMATCH)


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The decoded (name, value) pairs of a raw query string, in order, as aiohttp reads them."""
    if not raw_query:
        return []
    return list(URL("/?" + raw_query, encoded=True).query.items())


def parse_u_tag(value: str) -> UTag | None:
    """A `u` tag (absolute URL or origin-form path) split up; None when unparseable."""
    if not _URI_CHARS.fullmatch(value):
        return None
    if value.startswith("/"):
        without_fragment = value.split("#", 1)[0]
        path, _, query = without_fragment.partition("?")
        return UTag(None, path, query)
    if not _SCHEME.match(value):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None
    if not parts.netloc:
        return None
    return UTag(value, parts.path or "/", parts.query)


def uri_path(value: str) -> str | None:
    """The path of a `u` tag (absolute URL or origin-form path), None when unparseable."""
    tag = parse_u_tag(value)
    return None if tag is None else tag.path


def payload_hash(body: bytes) -> str:
    """What a NIP-98 `payload` tag carries: lowercase hex sha256 of the body."""
    return hashlib.sha256(body).hexdigest()


def _check_payload(event: NostrEvent, body: bytes | None) -> None:
    """Verified only when the (signed) event makes the claim: stricter than the reference."""
    expected = event.tag_value("payload")
    if expected is None:
        return
    if body is None:
        raise Nip98Error("Payload tag present but request has no body")
    if expected.lower() != payload_hash(body):
        raise Nip98Error("Payload tag does not match request body")


def _signature_ok(event: NostrEvent) -> bool:
    digest = event.computed_id() if event.digest is None else event.digest
    if digest != event.id:
        return False
    try:
        key = _xonly_key(event.pubkey) if event.key is None else event.key
        return bool(key.verify(event.sig, event.id))
    except (ValueError, TypeError):
        return False


@functools.lru_cache(maxsize=4096)
def _xonly_key(pubkey: bytes) -> PublicKeyXOnly:
    """`pubkey` parsed as an x-only public key (ValueError: not a curve point), once per key
    while it is among the last 4 096 (issue 10: a client signs every request with the same
    key, and the parse, ~9 µs, is a tenth of the signature check). Shared by every event
    of the key: verified with, never tweaked."""
    return PublicKeyXOnly(pubkey)


def _b64decode(encoded: str) -> bytes | None:
    if not _BASE64.fullmatch(encoded):
        return None
    unpadded = encoded.rstrip("=")
    if encoded != unpadded and len(encoded) % 4:
        return None
    if len(unpadded) % 4 == 1:
        return None
    standard = unpadded.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _loads(raw: bytes) -> Any:
    """The JSON value of strictly UTF-8 text, as serde_json reads it, by orjson (a fifth of
    the cost; issue 10) where it parses it, else by `json`.

    orjson refuses what `json` alone accepts (NaN, infinities, lone surrogates, nesting
    deeper than 1024), which then gets `json`'s answer; where both parse, they agree except
    for integers beyond 64 bits, which orjson reads as floats: the event fields that are
    numbers (`created_at`, `kind`) must be integers below 2**64, so such a value is refused
    either way, and other fields are not read."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw.decode("utf-8"))


def _parse_event(raw: bytes) -> NostrEvent | None:
    try:
        obj = _loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    try:
        event_id, pubkey = _hex(obj["id"], _HEX64), _hex(obj["pubkey"], _HEX64)
        created_at = _uint(obj["created_at"], 2**64 - 1)
        kind = _uint(obj["kind"], 2**16 - 1)
        tags, content = _tags(obj["tags"]), _str(obj["content"])
        sig = _hex(obj["sig"], _HEX128)
        key = _xonly_key(pubkey)  # not a curve point → not a valid event (rust-nostr)
        # lone surrogates cannot be hashed → not a valid event
        digest = hashlib.sha256(_canonical(pubkey, created_at, kind, tags, content)).digest()
    except (KeyError, TypeError, ValueError, UnicodeEncodeError):
        return None
    event = NostrEvent(event_id, pubkey, created_at, kind, tags, content, sig)
    return event._remember(digest, key)


def _hex(value: Any, pattern: re.Pattern[str]) -> bytes:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError("bad hex field")
    return bytes.fromhex(value)


def _uint(value: Any, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise ValueError("bad integer field")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("bad string field")
    return value


def _tags(value: Any) -> tuple[tuple[str, ...], ...]:
    if not isinstance(value, list):
        raise ValueError("tags must be a list")
    tags: list[tuple[str, ...]] = []
    for tag in value:
        if not isinstance(tag, list) or not all(isinstance(v, str) for v in tag):
            raise ValueError("a tag must be a list of strings")
        tags.append(tuple(tag))
    return tuple(tags)


def _canonical(
    pubkey: bytes, created_at: int, kind: int, tags: tuple[tuple[str, ...], ...], content: str
) -> bytes:
    """NIP-01's serialisation: compact JSON, UTF-8 unescaped (orjson writes exactly what
    `json.dumps(separators=(",", ":"), ensure_ascii=False)` does, at a fifth of the cost; it
    refuses lone surrogates, which cannot be encoded as UTF-8 either way)."""
    data = [0, pubkey.hex(), created_at, kind, [list(t) for t in tags], content]
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
