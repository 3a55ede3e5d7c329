"""LightningNode over LND's REST API (aiohttp): invoices, cancellation, settlement replay."""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import ssl
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp

from adapters.lightning.common import SystemClock, check_invoice_request
from ports.clock import Clock
from ports.closing import ClosesOnExit
from ports.lightning import Invoice, LightningUnavailable, SettledInvoice

SessionFactory = Callable[[], aiohttp.ClientSession]

#: LND error texts meaning "no such invoice" (newer LND answers 404, older ones 500).
_NOT_FOUND_TEXTS: Final = ("unable to locate invoice", "no existing invoices", "invoice not found")
#: LND error texts for a cancel that has nothing left to do.
_CANCEL_NOOP_TEXTS: Final = (*_NOT_FOUND_TEXTS, "already settled", "already canceled")
#: LND error texts meaning the macaroon was refused (retrying cannot help).
_AUTH_TEXTS: Final = ("macaroon", "verification failed", "permission denied")
_MAX_LINE_BYTES: Final = 4 * 1024 * 1024
_HASH_LEN: Final = 32


class LndError(LightningUnavailable):
    """LND answered with a non-2xx status; the message never holds the macaroon."""

    def __init__(self, message: str, *, status: int, lnd_message: str) -> None:
        super().__init__(message)
        self.status = status
        self.lnd_message = lnd_message

    @property
    def is_not_found(self) -> bool:
        text = self.lnd_message.lower()
        return self.status == 404 or any(marker in text for marker in _NOT_FOUND_TEXTS)

    @property
    def is_auth(self) -> bool:
        text = self.lnd_message.lower()
        return self.status in (401, 403) or any(marker in text for marker in _AUTH_TEXTS)


class _StreamProtocolError(LightningUnavailable):
    """The stream carried something unparseable; reconnecting would only replay it."""


def _b64decode(value: str) -> bytes:
    """LND's REST gateway writes bytes as standard base64; accept the URL-safe form too."""
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.b64decode(padded, validate=True)
    except binascii.Error:
        return base64.urlsafe_b64decode(padded)


def _error_text(body: bytes) -> str:
    """The `message` of a gRPC-gateway error body, else a short excerpt of the body."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return str(inner["message"])[:500]
    return body[:200].decode("utf-8", "replace")


def build_ssl_context(url: str, tls_cert_path: str | Path | None) -> ssl.SSLContext | None:
    """Trust exactly the node's certificate file; the system store if none; no TLS for http."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"LND URL must be http(s)://host:port, got scheme {scheme!r}")
    if scheme == "http":
        if tls_cert_path is not None:
            raise ValueError("a TLS certificate was configured but the LND URL is plain http")
        return None
    if tls_cert_path is None:
        return ssl.create_default_context()
    context = ssl.create_default_context(cafile=str(tls_cert_path))
    # LND's self-signed certificate is its own trust anchor; accept it even if it is a leaf,
    # and do not apply the RFC 5280 strictness some self-signed node certificates fail.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


def _load_macaroon(macaroon_path: str | Path | None, macaroon_hex: str | None) -> str:
    if (macaroon_path is None) == (macaroon_hex is None):
        raise ValueError("give exactly one of macaroon_path and macaroon_hex")
    if macaroon_path is not None:
        return Path(macaroon_path).read_bytes().hex()
    assert macaroon_hex is not None
    value = macaroon_hex.strip().lower()
    try:
        bytes.fromhex(value)
    except ValueError:
        raise ValueError("macaroon_hex is not hexadecimal") from None
    if not value:
        raise ValueError("macaroon_hex is empty")
    return value


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """Newline-delimited messages of a streaming response, however the chunks fall."""
    buffer = b""
    async for chunk in content.iter_any():
        buffer += chunk
        while (end := buffer.find(b"\n")) >= 0:
            line, buffer = buffer[:end], buffer[end + 1 :]
            if line.strip():
                yield line
        if len(buffer) > _MAX_LINE_BYTES:
            raise ValueError("LND stream message too large")
    if buffer.strip():
        yield buffer


def _settled_from(invoice: dict[str, Any]) -> SettledInvoice | None:
    """A SettledInvoice for an LND Invoice message in state SETTLED, else None."""
    if invoice.get("state") != "SETTLED":
        return None
    return SettledInvoice(
        payment_hash=_b64decode(str(invoice["r_hash"])),
        settle_index=int(invoice.get("settle_index") or 0),
        amount_paid_msat=int(invoice.get("amt_paid_msat") or 0),
        settled_at=datetime.fromtimestamp(int(invoice.get("settle_date") or 0), tz=UTC),
    )


class LndRestNode(ClosesOnExit):
    """LND over REST with a macaroon header and the node's TLS certificate.

    `settled_invoices` looks up the settle index of `after_payment_hash` (0 if None or unknown;
    LND replays nothing for index 0), subscribes from it and yields each SETTLED invoice with a
    higher settle index once. A dropped stream is reopened from the last yielded index after
    `reconnect_delay` (doubling up to `max_reconnect_delay`); after `max_reconnect_attempts`
    consecutive failures (None: never give up) or a refused macaroon it raises
    LightningUnavailable. `lookup_settlement` is LookupInvoice (GET /v1/invoice/{hex}): the
    settlement of a SETTLED invoice, None for any other state or an unknown hash. Close with
    `aclose()` or use as an async context manager.
    """

    def __init__(
        self,
        url: str,
        *,
        macaroon_path: str | Path | None = None,
        macaroon_hex: str | None = None,
        tls_cert_path: str | Path | None = None,
        session_factory: SessionFactory | None = None,
        clock: Clock | None = None,
        request_timeout: float = 30.0,
        connect_timeout: float = 10.0,
        reconnect_delay: float = 0.5,
        max_reconnect_delay: float = 10.0,
        max_reconnect_attempts: int | None = 5,
    ) -> None:
        self._url = url.rstrip("/")
        self._macaroon = _load_macaroon(macaroon_path, macaroon_hex)
        self._ssl = build_ssl_context(self._url, tls_cert_path)
        self._session_factory: SessionFactory = session_factory or aiohttp.ClientSession
        self._session: aiohttp.ClientSession | None = None
        self._clock: Clock = clock or SystemClock()
        self._timeout = aiohttp.ClientTimeout(total=request_timeout, connect=connect_timeout)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, connect=connect_timeout, sock_connect=connect_timeout, sock_read=None
        )
        self._reconnect_delay = reconnect_delay
        self._max_reconnect_delay = max_reconnect_delay
        self._max_reconnect_attempts = max_reconnect_attempts

    def __repr__(self) -> str:
        return f"LndRestNode({self._url!r})"

    async def aclose(self) -> None:
        """Close the HTTP session this node opened (if any)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- the port -------------------------------------------------------------------------

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> Invoice:
        check_invoice_request(amount_msat, expiry_seconds)
        now = self._clock.now()
        body = {"value_msat": str(amount_msat), "memo": memo, "expiry": str(expiry_seconds)}
        data = await self._call("POST", "/v1/invoices", body)
        try:
            payment_hash = _b64decode(str(data["r_hash"]))
            bolt11 = str(data["payment_request"])
        except (KeyError, TypeError, ValueError, binascii.Error):
            raise LightningUnavailable(
                "LND answered AddInvoice without r_hash/payment_request"
            ) from None
        if len(payment_hash) != _HASH_LEN or not bolt11:
            raise LightningUnavailable("LND answered AddInvoice with a malformed invoice")
        return Invoice(
            payment_hash=payment_hash,
            bolt11=bolt11,
            amount_msat=amount_msat,
            expires_at=now + timedelta(seconds=expiry_seconds),
        )

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        if len(payment_hash) != _HASH_LEN:
            return  # cannot name an invoice on the node: unknown, hence nothing to cancel
        body = {"payment_hash": base64.b64encode(payment_hash).decode("ascii")}
        try:
            await self._call("POST", "/v2/invoices/cancel", body)
        except LndError as exc:
            text = exc.lnd_message.lower()
            if exc.status == 404 or any(marker in text for marker in _CANCEL_NOOP_TEXTS):
                return
            raise

    def settled_invoices(self, after_payment_hash: bytes | None) -> AsyncIterator[SettledInvoice]:
        return self._settlements(after_payment_hash)

    def settlements_after(self, settle_index: int) -> AsyncIterator[SettledInvoice]:
        if settle_index < 0:
            raise ValueError(f"settle index must be ≥ 0, got {settle_index}")
        return self._settlements(None, start=settle_index)

    async def lookup_settlement(self, payment_hash: bytes) -> SettledInvoice | None:
        invoice = await self._lookup_invoice(payment_hash)
        if invoice is None:
            return None
        try:
            return _settled_from(invoice)
        except (KeyError, TypeError, ValueError, binascii.Error, OverflowError, OSError):
            raise LightningUnavailable(
                "LND answered LookupInvoice with a malformed invoice"
            ) from None

    # -- internals ------------------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._session_factory()
        return self._session

    @property
    def _headers(self) -> dict[str, str]:
        return {"Grpc-Metadata-macaroon": self._macaroon}

    def _scrub(self, text: str) -> str:
        """Never let the macaroon travel in an error message."""
        lowered = text.lower()
        at = lowered.find(self._macaroon)
        while at >= 0:
            text = text[:at] + "<macaroon>" + text[at + len(self._macaroon) :]
            lowered = text.lower()
            at = lowered.find(self._macaroon)
        return text

    def _transport_error(self, what: str, exc: BaseException) -> LightningUnavailable:
        detail = self._scrub(f"{type(exc).__name__}: {exc}")
        return LightningUnavailable(f"LND {what} failed: {detail}")

    def _status_error(self, what: str, status: int, body: bytes) -> LndError:
        lnd_message = self._scrub(_error_text(body))
        return LndError(
            f"LND {what} answered HTTP {status}: {lnd_message}",
            status=status,
            lnd_message=lnd_message,
        )

    async def _call(self, method: str, path: str, body: dict[str, str] | None = None) -> Any:
        what = f"{method} {path}"
        try:
            async with self._get_session().request(
                method,
                self._url + path,
                json=body,
                headers=self._headers,
                ssl=self._ssl if self._ssl is not None else True,
                timeout=self._timeout,
            ) as response:
                status, raw = response.status, await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise self._transport_error(what, exc) from None
        if not 200 <= status < 300:
            raise self._status_error(what, status, raw)
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise LightningUnavailable(f"LND {what} answered malformed JSON") from None
        if not isinstance(data, dict):
            raise LightningUnavailable(f"LND {what} answered an unexpected JSON value")
        return data

    async def _lookup_invoice(self, payment_hash: bytes) -> dict[str, Any] | None:
        """LND's Invoice message for that hash; None if the hash is malformed or unknown."""
        if len(payment_hash) != _HASH_LEN:
            return None
        try:
            data: dict[str, Any] = await self._call("GET", f"/v1/invoice/{payment_hash.hex()}")
        except LndError as exc:
            if exc.is_not_found and not exc.is_auth:
                return None
            raise
        return data

    async def _settle_index_of(self, payment_hash: bytes | None) -> int:
        """The settle index of an invoice; 0 for None, unknown or unsettled invoices."""
        data = None if payment_hash is None else await self._lookup_invoice(payment_hash)
        if data is None:
            return 0
        try:
            return int(data.get("settle_index") or 0)
        except (TypeError, ValueError):
            raise LightningUnavailable("LND answered a malformed settle_index") from None

    def _backoff(self, failures: int) -> float:
        return float(min(self._reconnect_delay * 2 ** (failures - 1), self._max_reconnect_delay))

    async def _settlements(
        self, after_payment_hash: bytes | None, start: int | None = None
    ) -> AsyncIterator[SettledInvoice]:
        last: int | None = start  # the highest settle index already yielded (or the start)
        failures = 0
        while True:
            problem: LightningUnavailable
            try:
                if last is None:
                    last = await self._settle_index_of(after_payment_hash)
                async with self._get_session().get(
                    self._url + "/v1/invoices/subscribe",
                    params={"settle_index": str(last)},
                    headers=self._headers,
                    ssl=self._ssl if self._ssl is not None else True,
                    timeout=self._stream_timeout,
                ) as response:
                    if response.status != 200:
                        raise self._status_error(
                            "SubscribeInvoices", response.status, await response.read()
                        )
                    failures = 0
                    async for line in _lines(response.content):
                        settled = self._parse_stream_message(line)
                        if settled is not None and settled.settle_index > last:
                            last = settled.settle_index
                            yield settled
                problem = LightningUnavailable("LND settlement stream ended")
            except _StreamProtocolError:
                raise
            except LndError as exc:
                if exc.is_auth:
                    raise
                problem = exc
            except LightningUnavailable as exc:
                problem = exc
            except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
                problem = self._transport_error("settlement stream", exc)
            failures += 1
            if self._max_reconnect_attempts is not None and failures > self._max_reconnect_attempts:
                raise LightningUnavailable(
                    f"LND settlement stream gave up after {failures} attempts: {problem}"
                )
            await asyncio.sleep(self._backoff(failures))

    def _parse_stream_message(self, line: bytes) -> SettledInvoice | None:
        try:
            message = json.loads(line)
        except ValueError:
            raise _StreamProtocolError("LND settlement stream sent malformed JSON") from None
        if not isinstance(message, dict):
            return None
        error = message.get("error")
        if isinstance(error, dict):
            status = int(error.get("http_code") or 500)
            raise self._status_error("SubscribeInvoices", status, json.dumps(error).encode())
        invoice = message.get("result", message)
        if not isinstance(invoice, dict):
            return None
        try:
            return _settled_from(invoice)
        except (KeyError, TypeError, ValueError, binascii.Error, OverflowError, OSError):
            raise _StreamProtocolError("LND settlement stream sent a malformed invoice") from None
