"""NwcClient: pays an invoice by one NIP-47 request/response round trip through the relays."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import time
from typing import Any, Final

import aiohttp
import attrs
from coincurve import PrivateKey, PublicKeyXOnly

from adapters.nwc import nip04, nip44
from adapters.nwc.guard import relay_connector
from adapters.nwc.uri import NwcUri, RelayPolicy, parse_nwc_uri
from domain.nwc_uri import MAX_RELAYS
from ports.nwc import NwcAnswerLost, NwcError

INFO_KIND: Final = 13194
REQUEST_KIND: Final = 23194
RESPONSE_KIND: Final = 23195
DEFAULT_TIMEOUT_S: Final = 60.0
#: how long to wait for a relay's stored info event before assuming NIP-04 only
INFO_TIMEOUT_S: Final = 5.0
_MAX_MESSAGE: Final = 200
log = logging.getLogger("lnvps.nwc")


def event_id(pubkey: str, created_at: int, kind: int, tags: list[list[str]], content: str) -> str:
    """NIP-01 id: sha256 of the compact JSON `[0, pubkey, created_at, kind, tags, content]`."""
    data = [0, pubkey, created_at, kind, tags, content]
    raw = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(raw).hexdigest()


def sign_event(secret: bytes, kind: int, tags: list[list[str]], content: str) -> dict[str, Any]:
    """A NIP-01 event signed (BIP-340) with `secret`, created now."""
    pubkey = PublicKeyXOnly.from_secret(secret).format().hex()
    created_at = int(time.time())
    eid = event_id(pubkey, created_at, kind, tags, content)
    sig = PrivateKey(secret).sign_schnorr(bytes.fromhex(eid)).hex()
    return {
        "id": eid,
        "pubkey": pubkey,
        "created_at": created_at,
        "kind": kind,
        "tags": tags,
        "content": content,
        "sig": sig,
    }


def verify_event(event: Any) -> bool:
    """True if `event` is a well-formed NIP-01 event whose id and signature check out."""
    try:
        eid = event_id(
            event["pubkey"], event["created_at"], event["kind"], event["tags"], event["content"]
        )
        if eid != event["id"]:
            return False
        key = PublicKeyXOnly(bytes.fromhex(event["pubkey"]))
        return bool(key.verify(bytes.fromhex(event["sig"]), bytes.fromhex(eid)))
    except (KeyError, TypeError, ValueError, UnicodeEncodeError):
        return False


def _short(text: object) -> str:
    return str(text)[:_MAX_MESSAGE]


class _RelayRejected(Exception):
    """A relay refused to store the request (`OK false`)."""


@attrs.define
class _Attempt:
    """What is known about one payment attempt when it ends without an answer."""

    published: bool = False
    rejections: list[str] = attrs.Factory(list)


class NwcClient:
    """Implements `NwcWallet`: one NIP-47 round trip through every relay of the connection.

    Connects to each relay of the URI at once, reads the wallet's info event (kind 13194) to
    choose NIP-44 v2 when the wallet lists it under `encryption` (NIP-04 otherwise), publishes
    the request on every relay and takes the first answer. `timeout_s` bounds the whole round
    trip (default 60 s). Once the request is out, a missing answer is `NwcAnswerLost`, not a
    refusal: the wallet may have paid.

    The relays are the user's choice: unless `allow_private_relays` (dev mode, tests with a
    local relay), a relay whose host is or resolves to a private, loopback, link-local, CGNAT,
    … address is not connected to, and counts as unreachable.
    """

    def __init__(
        self, timeout_s: float = DEFAULT_TIMEOUT_S, *, allow_private_relays: bool = False
    ) -> None:
        self.timeout_s = timeout_s
        self.allow_private_relays = allow_private_relays

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        uri = parse_nwc_uri(connection_string, RelayPolicy(allow_private=self.allow_private_relays))
        attempt = _Attempt()
        try:
            async with asyncio.timeout(self.timeout_s):
                connector = relay_connector(self.allow_private_relays)
                async with aiohttp.ClientSession(connector=connector) as session:
                    return await self._pay(session, uri, bolt11, attempt)
        except TimeoutError:
            if attempt.published:
                raise NwcAnswerLost(
                    f"Wallet did not answer within {self.timeout_s:g} s; if it paid, the "
                    "payment completes when it settles"
                ) from None
            raise NwcError(f"Wallet did not answer within {self.timeout_s:g} s") from None

    async def _pay(
        self, session: aiohttp.ClientSession, uri: NwcUri, bolt11: str, attempt: _Attempt
    ) -> str:
        async with contextlib.AsyncExitStack() as stack:
            sockets = await self._connect(session, uri, stack)
            nip44_ok = any(await asyncio.gather(*(self._offers_nip44(ws, uri) for ws in sockets)))
            request = _request(uri, bolt11, nip44_ok)
            return await self._race(sockets, uri, request, attempt)

    async def _connect(
        self, session: aiohttp.ClientSession, uri: NwcUri, stack: contextlib.AsyncExitStack
    ) -> list[aiohttp.ClientWebSocketResponse]:
        """A websocket per reachable relay; NwcError when none can be reached."""
        relays = uri.relays[:MAX_RELAYS]
        results = await asyncio.gather(
            *(session.ws_connect(relay, heartbeat=30) for relay in relays),
            return_exceptions=True,
        )
        sockets = []
        for relay, result in zip(relays, results, strict=True):
            if isinstance(result, aiohttp.ClientWebSocketResponse):
                stack.push_async_callback(result.close)
                sockets.append(result)
            elif isinstance(result, (aiohttp.ClientError, OSError)):
                log.warning("NWC relay %s unreachable: %s", relay, result)
            elif isinstance(result, BaseException):
                raise result
        if not sockets:
            raise NwcError("Wallet relay is unreachable")
        return sockets

    async def _offers_nip44(self, ws: aiohttp.ClientWebSocketResponse, uri: NwcUri) -> bool:
        """Whether this relay holds the wallet's info event listing `nip44_v2` (NIP-47)."""
        sub_id = secrets.token_hex(8)
        wallet = uri.wallet_pubkey.hex()
        try:
            await ws.send_json(["REQ", sub_id, {"kinds": [INFO_KIND], "authors": [wallet]}])
            async with asyncio.timeout(INFO_TIMEOUT_S):
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    message = _json(msg.data)
                    if message[:2] == ["EOSE", sub_id]:
                        return False
                    if message[:2] == ["EVENT", sub_id] and len(message) > 2:
                        info = message[2]
                        if _is_info(info, wallet):
                            return "nip44_v2" in _encryptions(info)
            return False
        except (TimeoutError, aiohttp.ClientError, OSError, RuntimeError):
            return False
        finally:
            if not ws.closed:
                with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
                    await ws.send_json(["CLOSE", sub_id])

    async def _race(
        self,
        sockets: list[aiohttp.ClientWebSocketResponse],
        uri: NwcUri,
        request: dict[str, Any],
        attempt: _Attempt,
    ) -> str:
        """Publish on every relay; the first answer wins (a refusal is an answer too)."""
        tasks = [asyncio.create_task(self._listen(ws, uri, request, attempt)) for ws in sockets]
        try:
            pending: set[asyncio.Task[str | None]] = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    try:
                        answer = task.result()
                    except _RelayRejected as rejected:
                        attempt.rejections.append(str(rejected))
                        continue
                    if answer is not None:
                        return answer
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if len(attempt.rejections) == len(sockets):
            reason = _short(attempt.rejections[0])
            raise NwcError(f"Wallet relay rejected the payment request: {reason}")
        if not attempt.published:
            raise NwcError("Wallet relay closed the connection before the request was sent")
        raise NwcAnswerLost(
            "Wallet relay closed the connection before the wallet answered; if it paid, the "
            "payment completes when it settles"
        )

    async def _listen(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        uri: NwcUri,
        request: dict[str, Any],
        attempt: _Attempt,
    ) -> str | None:
        """This relay's answer: the preimage, NwcError for a refusal, None if it closed."""
        sub_id = secrets.token_hex(8)
        filt = {
            "kinds": [RESPONSE_KIND],
            "#e": [request["id"]],
            "authors": [uri.wallet_pubkey.hex()],
        }
        try:
            await ws.send_json(["REQ", sub_id, filt])
            await ws.send_json(["EVENT", request])
            attempt.published = True
            async for msg in ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    continue
                answer = self._handle(uri, request["id"], sub_id, msg.data)
                if answer is not None:
                    return answer
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("NWC relay connection lost: %s", exc)
        finally:
            if not ws.closed:
                with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
                    await ws.send_json(["CLOSE", sub_id])
        return None

    def _handle(self, uri: NwcUri, request_id: str, sub_id: str, data: str) -> str | None:
        """The preimage if `data` is the wallet's answer; NwcError if it is a refusal."""
        message = _json(data)
        if not message:
            return None
        if message[0] == "OK" and len(message) >= 3 and message[1] == request_id:
            if message[2] is not True:
                raise _RelayRejected(message[3] if len(message) > 3 else "")
            return None
        if message[0] != "EVENT" or len(message) < 3 or message[1] != sub_id:
            return None
        event = message[2]
        if not self._is_answer(uri, request_id, event):
            return None
        try:
            body = json.loads(_decrypt(uri, event["content"]))
        except (nip04.Nip04Error, nip44.Nip44Error, ValueError):
            raise NwcError("Wallet sent an answer that cannot be read") from None
        return _preimage(body)

    @staticmethod
    def _is_answer(uri: NwcUri, request_id: str, event: Any) -> bool:
        if not isinstance(event, dict) or not verify_event(event):
            return False
        if event["kind"] != RESPONSE_KIND or event["pubkey"] != uri.wallet_pubkey.hex():
            return False
        return any(isinstance(t, list) and t[:2] == ["e", request_id] for t in event["tags"])


def _json(data: str) -> list[Any]:
    try:
        message = json.loads(data)
    except ValueError:
        return []
    return message if isinstance(message, list) else []


def _is_info(event: Any, wallet: str) -> bool:
    return (
        isinstance(event, dict)
        and verify_event(event)
        and event["kind"] == INFO_KIND
        and event["pubkey"] == wallet
    )


def _encryptions(info: dict[str, Any]) -> set[str]:
    """The schemes an info event's `encryption` tag lists (space-separated); none → NIP-04."""
    for tag in info.get("tags", []):
        if isinstance(tag, list) and len(tag) > 1 and tag[0] == "encryption":
            return set(str(tag[1]).split())
    return set()


def _request(uri: NwcUri, bolt11: str, nip44_ok: bool) -> dict[str, Any]:
    """The signed kind-23194 `pay_invoice` request, NIP-44 v2 when the wallet offers it."""
    content = json.dumps({"method": "pay_invoice", "params": {"invoice": bolt11}})
    tags = [["p", uri.wallet_pubkey.hex()]]
    if nip44_ok:
        key = nip44.conversation_key(uri.secret, uri.wallet_pubkey)
        tags.append(["encryption", "nip44_v2"])
        return sign_event(uri.secret, REQUEST_KIND, tags, nip44.encrypt(key, content))
    encrypted = nip04.encrypt(uri.secret, uri.wallet_pubkey, content)
    return sign_event(uri.secret, REQUEST_KIND, tags, encrypted)


def _decrypt(uri: NwcUri, content: str) -> str:
    """A wallet answer in either scheme: NIP-04 carries `?iv=`, NIP-44 is bare base64."""
    if "?iv=" in content:
        return nip04.decrypt(uri.secret, uri.wallet_pubkey, content)
    return nip44.decrypt(nip44.conversation_key(uri.secret, uri.wallet_pubkey), content)


def _preimage(body: Any) -> str:
    if not isinstance(body, dict):
        raise NwcError("Wallet sent an answer that cannot be read")
    error = body.get("error")
    if error:
        if isinstance(error, dict):
            code, text = error.get("code") or "ERROR", error.get("message") or ""
        else:
            code, text = "ERROR", error
        raise NwcError(f"Wallet refused the payment ({_short(code)}): {_short(text)}")
    result = body.get("result")
    preimage = result.get("preimage") if isinstance(result, dict) else None
    if not isinstance(preimage, str) or not preimage:
        raise NwcError("Wallet answered without a payment preimage")
    return preimage
