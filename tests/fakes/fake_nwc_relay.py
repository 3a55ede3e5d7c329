"""A fake Nostr relay (real aiohttp websocket server) with a fake NIP-47 wallet behind it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from coincurve import PublicKeyXOnly

from adapters.nwc import nip04, nip44
from adapters.nwc.client import INFO_KIND, REQUEST_KIND, RESPONSE_KIND, sign_event, verify_event

#: "Pays" a BOLT11 and returns the preimage hex; raising `WalletRefusal` answers an error.
PayFn = Callable[[str], Awaitable[str]]
WALLET_SECRET = bytes.fromhex("11" * 32)
CLIENT_SECRET = bytes.fromhex("22" * 32)


class WalletRefusal(Exception):
    """Raised by a `PayFn`: the wallet answers `{"error": {"code", "message"}}`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _matches(flt: dict[str, Any], event: dict[str, Any]) -> bool:
    if "kinds" in flt and event["kind"] not in flt["kinds"]:
        return False
    if "authors" in flt and event["pubkey"] not in flt["authors"]:
        return False
    for key, wanted in flt.items():
        if key.startswith("#"):
            values = {t[1] for t in event["tags"] if len(t) > 1 and t[0] == key[1:]}
            if not values & set(wanted):
                return False
    return True


class FakeWallet:
    """Answers kind-23194 `pay_invoice` requests addressed to its key, via `pay`.

    `silent` never answers; `answer_lost` pays but its answer never arrives; `signer` signs
    answers with another key; `paid` lists the invoices it paid; `requests` counts the
    requests it saw. `encryption` is the info event's `encryption` tag (None: an older wallet
    without one, NIP-04 only); answers use the scheme the request used.
    """

    def __init__(self, pay: PayFn, secret: bytes = WALLET_SECRET) -> None:
        self.pay = pay
        self.secret = secret
        self.pubkey = PublicKeyXOnly.from_secret(secret).format()
        self.silent = False
        self.answer_lost = False
        self.encryption: str | None = None
        #: which scheme each request came in ("nip04" / "nip44_v2")
        self.schemes: list[str] = []
        #: set: responses are signed with this key instead (an impostor's answer)
        self.signer: bytes | None = None
        self.requests = 0
        self.paid: list[str] = []
        self.methods: list[str] = []

    def connection_string(self, relay: str, client_secret: bytes = CLIENT_SECRET) -> str:
        return (
            f"nostr+walletconnect://{self.pubkey.hex()}?relay={relay}"
            f"&secret={client_secret.hex()}&lud16=alice@example.com"
        )

    async def answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        """The signed response event to `request`, or None (not for this wallet, silent)."""
        if request["kind"] != REQUEST_KIND or ["p", self.pubkey.hex()] not in request["tags"]:
            return None
        self.requests += 1
        if self.silent:
            return None
        client = bytes.fromhex(request["pubkey"])
        scheme = "nip44_v2" if ["encryption", "nip44_v2"] in request["tags"] else "nip04"
        self.schemes.append(scheme)
        key = nip44.conversation_key(self.secret, client)
        if scheme == "nip44_v2":
            body = json.loads(nip44.decrypt(key, request["content"]))
        else:
            body = json.loads(nip04.decrypt(self.secret, client, request["content"]))
        self.methods.append(body["method"])
        reply: dict[str, Any]
        try:
            if body["method"] != "pay_invoice":
                raise WalletRefusal("NOT_IMPLEMENTED", f"{body['method']} is not supported")
            invoice = body["params"]["invoice"]
            preimage = await self.pay(invoice)
            self.paid.append(invoice)
            reply = {"result_type": "pay_invoice", "result": {"preimage": preimage}}
        except WalletRefusal as refusal:
            reply = {
                "result_type": "pay_invoice",
                "error": {"code": refusal.code, "message": refusal.message},
            }
        if self.answer_lost:
            return None
        if scheme == "nip44_v2":
            content = nip44.encrypt(key, json.dumps(reply))
        else:
            content = nip04.encrypt(self.secret, client, json.dumps(reply))
        tags = [["e", request["id"]], ["p", request["pubkey"]]]
        return sign_event(self.signer or self.secret, RESPONSE_KIND, tags, content)

    def info_event(self) -> dict[str, Any]:
        """The wallet's NIP-47 info event (kind 13194)."""
        tags = [] if self.encryption is None else [["encryption", self.encryption]]
        return sign_event(self.secret, INFO_KIND, tags, "pay_invoice get_info")


class FakeRelay:
    """Stores and forwards events between websocket clients; the wallet listens in-process.

    `wallet=None`: a relay the wallet does not use (requests are stored, never answered). The
    wallet's info event is stored (as a wallet publishes it) unless `with_info` is off.
    """

    def __init__(self, wallet: FakeWallet | None, *, with_info: bool = True) -> None:
        self.wallet = wallet
        self.with_info = with_info
        self.info: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []
        self.closed_subs: list[str] = []
        self._subs: dict[tuple[int, str], tuple[web.WebSocketResponse, dict[str, Any]]] = {}

    async def _publish(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        for (_, sub_id), (ws, flt) in list(self._subs.items()):
            if _matches(flt, event) and not ws.closed:
                await ws.send_json(["EVENT", sub_id, event])

    async def _on_event(self, ws: web.WebSocketResponse, event: dict[str, Any]) -> None:
        ok = verify_event(event)
        await ws.send_json(["OK", event.get("id", ""), ok, "" if ok else "invalid: bad event"])
        if not ok:
            return
        await self._publish(event)
        if self.wallet is None:
            return
        response = await self.wallet.answer(event)
        if response is not None:
            await self._publish(response)

    async def _handler(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        try:
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                message = json.loads(msg.data)
                if message[0] == "REQ":
                    self._subs[(id(ws), message[1])] = (ws, message[2])
                    for stored in ([self.info] if self.info else []) + self.events:
                        if _matches(message[2], stored):
                            await ws.send_json(["EVENT", message[1], stored])
                    await ws.send_json(["EOSE", message[1]])
                elif message[0] == "CLOSE":
                    self.closed_subs.append(message[1])
                    self._subs.pop((id(ws), message[1]), None)
                elif message[0] == "EVENT":
                    await self._on_event(ws, message[1])
        finally:
            for key in [k for k, (w, _) in self._subs.items() if w is ws]:
                del self._subs[key]
        return ws

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on 127.0.0.1 at a free port; yields the relay's ws:// URL."""
        if self.wallet is not None and self.with_info:
            self.info = self.wallet.info_event()
        app = web.Application()
        app.router.add_get("/", self._handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("/")).replace("http://", "ws://", 1)
        finally:
            await server.close()
