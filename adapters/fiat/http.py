"""One provider HTTP client shared by the fiat gateways: timeouts, size cap, scrubbed errors."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, TypedDict, Unpack
from urllib.parse import quote

import aiohttp

from ports.closing import ClosesOnExit
from ports.fiat import FiatRefused, FiatUnavailable

SessionFactory = Callable[[], aiohttp.ClientSession]

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
#: an order or intent is a few kilobytes; anything far larger is not one.
MAX_BODY_BYTES = 1024 * 1024
_MAX_DETAIL_CHARS = 300
_REDACTED = "<redacted>"
#: client-error statuses a later attempt may not get: a request timeout (408), a conflict
#: with a concurrent request (409, Stripe's idempotency clash) and rate limiting (429)
PASSING_CLIENT_ERRORS = frozenset({408, 409, 429})


class Payload(TypedDict, total=False):
    """A request's body: JSON, or a form (Stripe's API takes forms)."""

    json_body: Mapping[str, object] | None
    form: Mapping[str, str] | None


class Transport(TypedDict, total=False):
    """How a gateway reaches its provider; what is left out takes the defaults above."""

    session_factory: SessionFactory | None
    timeout_s: float
    connect_timeout_s: float


class FiatProviderError(FiatUnavailable):
    """The provider answered a non-2xx status; the message never holds the API key."""

    def __init__(self, message: str, *, status: int, code: str, detail: str) -> None:
        super().__init__(message)
        self.status = status
        #: the provider's machine-readable error code, "" when it sent none
        self.code = code
        #: the provider's (scrubbed, shortened) error text
        self.detail = detail


class FiatProviderRefused(FiatProviderError, FiatRefused):
    """The provider answered a 4xx that asking again will not change (`is_refusal`)."""


def is_refusal(status: int) -> bool:
    """A client error other than the passing ones: the provider will refuse it again."""
    return 400 <= status < 500 and status not in PASSING_CLIENT_ERRORS


def path_part(value: str) -> str:
    """An id made safe to place in one URL path segment."""
    return quote(value, safe="")


def _error_fields(raw: bytes) -> tuple[str, str]:
    """(code, message) from a provider error body: Revolut `{code, message}`, Stripe
    `{error: {code, message}}`, anything else as text."""
    text = raw.decode("utf-8", "replace").strip()
    try:
        document: Any = json.loads(text)
    except ValueError:
        return "", text
    if isinstance(document, dict):
        inner = document.get("error")
        source = inner if isinstance(inner, dict) else document
        code = source.get("code")
        message = source.get("message")
        return (
            code if isinstance(code, str) else "",
            message if isinstance(message, str) else text,
        )
    return "", text


class ProviderHttp:
    """One provider's HTTP client: lazy session, timeouts, and errors as `FiatUnavailable`.

    `secret` (the API key) travels only in the Authorization header and is scrubbed from
    every error message, whatever the provider or the transport echoes back.
    """

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        secret: str,
        headers: Mapping[str, str],
        **transport: Unpack[Transport],
    ) -> None:
        if not secret:
            raise ValueError(f"{name}: an API key is required")
        self.name = name
        self._base = base_url.rstrip("/")
        self._secret = secret
        self._headers = {"Authorization": f"Bearer {secret}", **headers}
        self._session_factory: SessionFactory = (
            transport.get("session_factory") or aiohttp.ClientSession
        )
        self._session: aiohttp.ClientSession | None = None
        self._timeout = aiohttp.ClientTimeout(
            total=transport.get("timeout_s", DEFAULT_TIMEOUT_S),
            connect=transport.get("connect_timeout_s", DEFAULT_CONNECT_TIMEOUT_S),
        )

    def __repr__(self) -> str:
        return f"ProviderHttp({self.name!r}, {self._base!r})"

    async def aclose(self) -> None:
        """Close the HTTP session (if one was opened)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    def scrub(self, text: str) -> str:
        """`text` without the API key in it."""
        return text.replace(self._secret, _REDACTED)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        return self._session

    async def call(self, method: str, path: str, **payload: Unpack[Payload]) -> tuple[int, bytes]:
        """(status, body) of one request; transport failures raise `FiatUnavailable`."""
        what = f"{self.name} {method} {path}"
        try:
            async with self._get_session().request(
                method,
                self._base + path,
                json=payload.get("json_body"),
                data=payload.get("form"),
                headers=self._headers,
                timeout=self._timeout,
            ) as response:
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise FiatUnavailable(f"{what} sent more than {MAX_BODY_BYTES} bytes")
                return response.status, bytes(body)
        except TimeoutError:
            raise FiatUnavailable(f"{what} timed out") from None
        except (aiohttp.ClientError, OSError) as exc:
            detail = self.scrub(f"{type(exc).__name__}: {exc}")
            raise FiatUnavailable(f"{what} failed: {detail}") from None

    def status_error(self, method: str, path: str, status: int, raw: bytes) -> FiatProviderError:
        """The error of a non-2xx answer: `FiatProviderRefused` for a refusal for good
        (`is_refusal`), else `FiatProviderError` (an outage: 5xx, 408, 409, 429)."""
        code, message = _error_fields(raw)
        detail = self.scrub(message)[:_MAX_DETAIL_CHARS]
        code = self.scrub(code)[:_MAX_DETAIL_CHARS]
        kind = FiatProviderRefused if is_refusal(status) else FiatProviderError
        return kind(
            f"{self.name} {method} {path} answered HTTP {status}: {detail}",
            status=status,
            code=code,
            detail=detail,
        )

    async def call_json(
        self, method: str, path: str, **payload: Unpack[Payload]
    ) -> tuple[dict[str, Any], str]:
        """The JSON object a 2xx answer carries and its text; anything else raises."""
        status, raw = await self.call(method, path, **payload)
        if not 200 <= status < 300:
            raise self.status_error(method, path, status, raw)
        try:
            text = raw.decode("utf-8")
            document = json.loads(text)
        except ValueError:
            raise FiatUnavailable(f"{self.name} {method} {path} answered malformed JSON") from None
        if not isinstance(document, dict):
            raise FiatUnavailable(f"{self.name} {method} {path} answered a non-object")
        return document, text

    async def get_json_or_none(self, path: str) -> tuple[dict[str, Any], str] | None:
        """`call_json("GET", path)`, but None where the provider does not know it (404)."""
        try:
            return await self.call_json("GET", path)
        except FiatProviderError as exc:
            if exc.status == 404:
                return None
            raise


class GatewayBase(ClosesOnExit):
    """Lifecycle shared by the gateways: `aclose()` and `async with`."""

    _http: ProviderHttp

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._http!r})"

    async def aclose(self) -> None:
        """Close the HTTP session this gateway opened (if any)."""
        await self._http.aclose()


def check_order_request(name: str, amount_minor: int, currency: str) -> None:
    """Refuse what no provider can charge: non-positive or non-integer amounts, bad codes."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise ValueError(f"{name}: amount_minor must be an integer")
    if amount_minor <= 0:
        raise ValueError(f"{name}: order amount must be positive, got {amount_minor}")
    if len(currency) != 3 or not currency.isascii() or not currency.isalpha():
        raise ValueError(f"{name}: {currency!r} is not an ISO 4217 currency code")
