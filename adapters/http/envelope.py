"""The wire envelope (api.md §2): `{"data": …}`, pages, `{"error": …}`, JSON bodies, times."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import orjson
from aiohttp import web

from adapters.http.bounds import INT_MAX, query_int
from domain.errors import InvalidInput

DEFAULT_LIMIT = 50
#: timestamps every backend stores (MariaDB DATETIME starts at year 1000; 1970 is the floor
#: any business time needs)
_MIN_YEAR, _MAX_YEAR = 1970, 9998
MAX_LIMIT = 100
#: a request body nested deeper than this many levels of objects and arrays is refused (400)
#: before any handler runs: serde_json's recursion limit (the reference refuses the same
#: bodies), far past any body the API takes, and well inside the stack of every walk over it
MAX_JSON_DEPTH = 127
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


class HttpError(Exception):
    """A refusal decided by the HTTP layer itself (415, 400 bad JSON …), rendered as JSON."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 kept as is (the reference's serde_json output)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def dump_bytes(value: Any) -> bytes:
    """`dumps` as UTF-8 bytes, by orjson (about 4x faster; issue 10) where it can encode the
    value; integers beyond 64 bits and other types orjson refuses go through `json`."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return dumps(value).encode()


def json_response(body: Any, status: int = 200) -> web.Response:
    """A JSON response with `Content-Type: application/json; charset=utf-8`."""
    return web.Response(
        body=dump_bytes(body), status=status, content_type="application/json", charset="utf-8"
    )


def data_response(data: Any) -> web.Response:
    """200 `{"data": data}`; a handler that returns nothing passes None (`{"data": null}`)."""
    return json_response({"data": data})


def error_response(status: int, message: str) -> web.Response:
    """`{"error": message}` with the given status (D19)."""
    return json_response({"error": message}, status=status)


@attrs.frozen
class PageParams:
    """Effective `limit`/`offset` of a list request, after defaulting and clamping."""

    limit: int = DEFAULT_LIMIT
    offset: int = 0


def parse_page(
    query: Mapping[str, str],
    default_limit: int = DEFAULT_LIMIT,
    max_limit: int | None = MAX_LIMIT,
) -> PageParams:
    """Read `limit`/`offset` (§2.6): numeric strings, defaults 50/0, limit clamped to max.

    Non-numeric or negative values are a 400 (InvalidInput), as the reference's u64 parse is;
    so is anything above INT_MAX, which no backend can bind. A `limit` between `max_limit`
    and INT_MAX is clamped (the reference's behaviour, and what the OpenAPI document says).
    """
    limit = query_int(query, "limit", default_limit, maximum=INT_MAX)
    offset = query_int(query, "offset", 0, maximum=INT_MAX)
    if max_limit is not None:
        limit = min(limit, max_limit)
    return PageParams(limit=limit, offset=offset)


def page_response(items: Sequence[Any], total: int, page: PageParams) -> web.Response:
    """200 `{"data": [...], "total", "limit", "offset"}` echoing the effective page."""
    return json_response(
        {"data": list(items), "total": total, "limit": page.limit, "offset": page.offset}
    )


async def read_json(request: web.Request) -> Any:
    """The request's JSON body: 415 unless `application/json` (charset allowed), 400 if invalid
    (lone UTF-16 surrogates such as `"\ud800"` included).

    aiohttp caches the body bytes, so this works after auth has read them for `payload`.
    """
    if request.content_type != "application/json":
        raise HttpError(415, "Expected request with `Content-Type: application/json`")
    raw = await request.read()
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # (UnicodeDecodeError is a ValueError)
        raise HttpError(400, "Failed to parse the request body as JSON") from exc
    if _nested_deeper(value, MAX_JSON_DEPTH):
        raise HttpError(
            400,
            "Failed to parse the request body as JSON: nested more than "
            f"{MAX_JSON_DEPTH} levels deep",
        )
    try:
        # `"\ud800"` is valid JSON but no UTF-8 text: storage and the log would fail on it
        dumps(value).encode("utf-8")
    except ValueError as exc:  # UnicodeEncodeError
        raise HttpError(400, "Failed to parse the request body as JSON") from exc
    return value


def _nested_deeper(value: Any, limit: int) -> bool:
    """Whether `value` has objects or arrays nested more than `limit` levels deep (a walk
    with its own stack: no recursion, whatever the depth)."""
    pending: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while pending:
        node, level = pending.pop()
        if level > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        pending.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return False


def format_time(when: datetime) -> str:
    """RFC 3339 in UTC with `Z`, fraction only when non-zero (3 or 6 digits), as chrono does."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"naive datetime refused: {when!r}")
    return _format_utc(when if when.tzinfo is UTC else when.astimezone(UTC))


@functools.lru_cache(maxsize=8192)
def _format_utc(utc: datetime) -> str:
    """`format_time` of a UTC datetime, memoised: a VM's status shows the same few creation
    times on every read of it (issue 10). Keyed by the UTC value, which names one instant
    (a local time in a DST overlap would not)."""
    if utc.year >= 1000:  # `isoformat` (a third of strftime's cost) pads years to 4 digits
        text = utc.isoformat(timespec="seconds")[:19]
    else:
        text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    micros = utc.microsecond
    if micros == 0:
        return text + "Z"
    if micros % 1000 == 0:
        return f"{text}.{micros // 1000:03d}Z"
    return f"{text}.{micros:06d}Z"


def format_optional_time(when: datetime | None) -> str | None:
    """`format_time`, passing None through (for nullable fields)."""
    return None if when is None else format_time(when)


def parse_time(text: str) -> datetime:
    """An RFC 3339 timestamp with any offset → aware UTC; sub-microsecond digits truncated."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise InvalidInput(f"invalid RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in match.group(1, 2, 3, 4, 5, 6))
    fraction = match.group(7) or ""
    micros = int((fraction + "000000")[:6])
    offset = timedelta(0)
    if match.group(9):
        sign = -1 if match.group(9) == "-" else 1
        offset = sign * timedelta(hours=int(match.group(10)), minutes=int(match.group(11)))
    try:
        zone = timezone(offset)
        utc = datetime(year, month, day, hour, minute, second, micros, tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidInput(f"invalid RFC 3339 timestamp: {text!r}") from exc
    if not _MIN_YEAR <= utc.year <= _MAX_YEAR:
        raise InvalidInput(f"timestamp out of range ({_MIN_YEAR}..{_MAX_YEAR}): {text!r}")
    return utc


def same_named(source: object, *names: str) -> dict[str, Any]:
    """The JSON fields that copy `source`'s attributes of the same name, in `names`' order."""
    return {name: getattr(source, name) for name in names}
