"""NwcClient: pays an invoice by one NIP-47 request/response round trip through the relay."""

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
from coincurve import PrivateKey, PublicKeyXOnly

from adapters.nwc import nip04
from adapters.nwc.uri import NwcUri, parse_nwc_uri
from ports.nwc import NwcError

REQUEST_KIND: Final = 23194
RESPONSE_KIND: Final = 23195
DEFAULT_TIMEOUT_S: Final = 60.0
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


class NwcClient:
    """Implements `NwcWallet`: connect, REQ the answer, publish the request, await, close.

    One websocket per payment; `timeout_s` bounds the whole round trip (default 60 s).
    """

    def __init__(
        self, timeout_s: float = DEFAULT_TIMEOUT_S, session: aiohttp.ClientSession | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self._session = session

    async def pay_invoice(self, connection_string: str, bolt11: str) -> str:
        uri = parse_nwc_uri(connection_string)
        content = json.dumps({"method": "pay_invoice", "params": {"invoice": bolt11}})
        request = sign_event(
            uri.secret,
            REQUEST_KIND,
            [["p", uri.wallet_pubkey.hex()]],
            nip04.encrypt(uri.secret, uri.wallet_pubkey, content),
        )
        try:
            async with asyncio.timeout(self.timeout_s):
                if self._session is not None:
                    return await self._round_trip(self._session, uri, request)
                async with aiohttp.ClientSession() as session:
                    return await self._round_trip(session, uri, request)
        except TimeoutError:
            raise NwcError(f"Wallet did not answer within {self.timeout_s:g} s") from None
        except (aiohttp.ClientError, OSError) as exc:
            log.warning("NWC relay %s unreachable: %s", uri.relay, exc)
            raise NwcError("Wallet relay is unreachable") from None

    async def _round_trip(
        self, session: aiohttp.ClientSession, uri: NwcUri, request: dict[str, Any]
    ) -> str:
        sub_id = secrets.token_hex(8)
        async with session.ws_connect(uri.relay, heartbeat=30) as ws:
            filt = {
                "kinds": [RESPONSE_KIND],
                "#e": [request["id"]],
                "authors": [uri.wallet_pubkey.hex()],
            }
            await ws.send_json(["REQ", sub_id, filt])
            await ws.send_json(["EVENT", request])
            try:
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    answer = self._handle(uri, request["id"], sub_id, msg.data)
                    if answer is not None:
                        return answer
            finally:
                if not ws.closed:
                    with contextlib.suppress(aiohttp.ClientError, OSError, RuntimeError):
                        await ws.send_json(["CLOSE", sub_id])
        raise NwcError("Wallet relay closed the connection before the wallet answered")

    def _handle(self, uri: NwcUri, request_id: str, sub_id: str, data: str) -> str | None:
        """The preimage if `data` is the wallet's answer; NwcError if it is a refusal."""
        try:
            message = json.loads(data)
        except ValueError:
            return None
        if not isinstance(message, list) or not message:
            return None
        if message[0] == "OK" and len(message) >= 3 and message[1] == request_id:
            if message[2] is not True:
                reason = message[3] if len(message) > 3 else ""
                raise NwcError(f"Wallet relay rejected the payment request: {_short(reason)}")
            return None
        if message[0] != "EVENT" or len(message) < 3 or message[1] != sub_id:
            return None
        event = message[2]
        if not self._is_answer(uri, request_id, event):
            return None
        try:
            body = json.loads(nip04.decrypt(uri.secret, uri.wallet_pubkey, event["content"]))
        except (nip04.Nip04Error, ValueError):
            raise NwcError("Wallet sent an answer that cannot be read") from None
        return _preimage(body)

    @staticmethod
    def _is_answer(uri: NwcUri, request_id: str, event: Any) -> bool:
        if not isinstance(event, dict) or not verify_event(event):
            return False
        if event["kind"] != RESPONSE_KIND or event["pubkey"] != uri.wallet_pubkey.hex():
            return False
        return any(isinstance(t, list) and t[:2] == ["e", request_id] for t in event["tags"])


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
