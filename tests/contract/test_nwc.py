"""NWC adapter: NIP-04 glue, URI parsing and the client against a fake relay and wallet."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket

import pytest
from coincurve import PrivateKey, PublicKeyXOnly
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from adapters.nwc import nip04
from adapters.nwc.client import NwcClient, sign_event, verify_event
from adapters.nwc.uri import parse_nwc_uri
from ports.nwc import InvalidNwcUri, NwcAnswerLost, NwcError
from tests.fakes.fake_nwc_relay import (
    CLIENT_SECRET,
    WALLET_SECRET,
    FakeRelay,
    FakeWallet,
    WalletRefusal,
)

A_SECRET, B_SECRET = bytes.fromhex("01" * 32), bytes.fromhex("02" * 32)
A_PUB = PublicKeyXOnly.from_secret(A_SECRET).format()
B_PUB = PublicKeyXOnly.from_secret(B_SECRET).format()
WALLET_PUB = PublicKeyXOnly.from_secret(WALLET_SECRET).format().hex()
SECRET_HEX = CLIENT_SECRET.hex()
PREIMAGE = "ab" * 32
BOLT11 = "lnbcrt10u1fakeinvoice"


# -- NIP-04 -------------------------------------------------------------------------------


def test_nip04_round_trip_between_the_two_key_pairs() -> None:
    content = nip04.encrypt(A_SECRET, B_PUB, "héllo wallet")
    assert nip04.decrypt(B_SECRET, A_PUB, content) == "héllo wallet"
    assert nip04.encrypt(A_SECRET, B_PUB, "x") != nip04.encrypt(A_SECRET, B_PUB, "x")  # random IV


def test_nip04_shared_secret_is_the_unhashed_ecdh_x_coordinate() -> None:
    point = PrivateKey(A_SECRET).public_key.multiply(B_SECRET).format(compressed=False)
    assert nip04.shared_secret(A_SECRET, B_PUB) == point[1:33]
    assert nip04.shared_secret(B_SECRET, A_PUB) == point[1:33]


def test_nip04_known_vector_and_exact_format() -> None:
    iv = bytes(range(16))
    key = nip04.shared_secret(A_SECRET, B_PUB)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(b'{"method":"pay_invoice"}') + padder.finalize()
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    expected = (
        base64.b64encode(enc.update(plain) + enc.finalize()).decode()
        + "?iv="
        + base64.b64encode(iv).decode()
    )
    assert nip04.encrypt(A_SECRET, B_PUB, '{"method":"pay_invoice"}', iv=iv) == expected
    assert expected.endswith("?iv=AAECAwQFBgcICQoLDA0ODw==")
    assert nip04.decrypt(B_SECRET, A_PUB, expected) == '{"method":"pay_invoice"}'


@pytest.mark.parametrize("content", ["", "abc", "AAAA?iv=", "!!!?iv=AAECAwQFBgcICQoLDA0ODw=="])
def test_nip04_malformed_content_is_rejected(content: str) -> None:
    with pytest.raises(nip04.Nip04Error):
        nip04.decrypt(B_SECRET, A_PUB, content)


def test_nip04_wrong_key_does_not_decrypt_silently() -> None:
    content = nip04.encrypt(A_SECRET, B_PUB, "secret text " * 4)
    other = bytes.fromhex("03" * 32)
    with contextlib.suppress(nip04.Nip04Error):
        assert nip04.decrypt(other, A_PUB, content) != "secret text " * 4


# -- events -------------------------------------------------------------------------------


def test_signed_events_verify_and_tampering_is_caught() -> None:
    event = sign_event(A_SECRET, 23194, [["p", B_PUB.hex()]], "content")
    assert event["pubkey"] == A_PUB.hex() and verify_event(event)
    assert not verify_event({**event, "content": "other"})
    assert not verify_event({**event, "sig": "00" * 64})
    assert not verify_event({"id": "x"})


# -- URI ----------------------------------------------------------------------------------


def uri(**parts: str) -> str:
    query = {"relay": "wss://relay.example.com/v1", "secret": SECRET_HEX}
    query.update(parts)
    wallet = query.pop("wallet", WALLET_PUB)
    rest = "&".join(f"{k}={v}" for k, v in query.items() if v != "-")
    return f"nostr+walletconnect://{wallet}?{rest}"


def test_uri_parses_wallet_relay_secret_and_lud16() -> None:
    parsed = parse_nwc_uri(uri(lud16="alice@example.com"))
    assert parsed.wallet_pubkey.hex() == WALLET_PUB
    assert parsed.relay == "wss://relay.example.com/v1"
    assert parsed.secret == CLIENT_SECRET
    assert parsed.lud16 == "alice@example.com"
    assert SECRET_HEX not in repr(parsed)


def test_uri_accepts_percent_encoded_relay_and_legacy_scheme() -> None:
    parsed = parse_nwc_uri(uri(relay="wss%3A%2F%2Frelay.example.com"))
    assert parsed.relay == "wss://relay.example.com"
    legacy = uri().replace("nostr+walletconnect://", "nostrwalletconnect://")
    assert parse_nwc_uri(legacy).secret == CLIENT_SECRET


@pytest.mark.parametrize(
    "text",
    [
        uri(secret="-"),
        uri(relay="-"),
        uri(relay="https://relay.example.com"),
        uri(secret=SECRET_HEX[:-2] + "zz"),
        uri(secret=SECRET_HEX + "00"),
        uri(wallet="abc"),
        uri(wallet="zz" * 32),
        uri(wallet="00" * 32),  # 64 hex digits, but not a point on the curve
        uri(secret="00" * 32),  # not a valid private key
        uri().replace("nostr+walletconnect", "https"),
        "",
        "not a uri at all " + SECRET_HEX,
    ],
)
def test_bad_uris_raise_without_the_secret(text: str) -> None:
    with pytest.raises(InvalidNwcUri) as caught:
        parse_nwc_uri(text)
    assert SECRET_HEX[:16] not in caught.value.message
    assert SECRET_HEX[:16] not in str(caught.value)
    assert isinstance(caught.value, NwcError)


# -- client against the fake relay ----------------------------------------------------------


async def pay_ok(bolt11: str) -> str:
    return PREIMAGE


async def test_pay_invoice_returns_the_preimage() -> None:
    wallet = FakeWallet(pay_ok)
    relay = FakeRelay(wallet)
    async with relay.running() as url:
        preimage = await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
            wallet.connection_string(url), BOLT11
        )
    assert preimage == PREIMAGE
    assert wallet.paid == [BOLT11] and wallet.methods == ["pay_invoice"]
    request, response = relay.events
    assert request["kind"] == 23194 and request["tags"] == [["p", WALLET_PUB]]
    assert request["pubkey"] == PublicKeyXOnly.from_secret(CLIENT_SECRET).format().hex()
    assert BOLT11 not in request["content"] and "?iv=" in request["content"]
    assert response["kind"] == 23195 and ["e", request["id"]] in response["tags"]
    assert len(relay.closed_subs) == 2  # the info lookup and the answer subscription


async def test_wallet_error_is_an_nwc_error_with_the_wallets_message() -> None:
    async def refuse(bolt11: str) -> str:
        raise WalletRefusal("INSUFFICIENT_BALANCE", "not enough sats in the wallet")

    wallet = FakeWallet(refuse)
    async with FakeRelay(wallet).running() as url:
        with pytest.raises(NwcError) as caught:
            await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
                wallet.connection_string(url), BOLT11
            )
    assert "not enough sats in the wallet" in caught.value.message
    assert "INSUFFICIENT_BALANCE" in caught.value.message
    assert SECRET_HEX not in caught.value.message


async def test_silent_wallet_times_out() -> None:
    wallet = FakeWallet(pay_ok)
    wallet.silent = True
    async with FakeRelay(wallet).running() as url:
        with pytest.raises(NwcError) as caught:
            await NwcClient(timeout_s=0.3, allow_private_relays=True).pay_invoice(
                wallet.connection_string(url), BOLT11
            )
    assert "did not answer" in caught.value.message
    assert wallet.requests == 1


async def test_relay_down_is_an_nwc_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    wallet = FakeWallet(pay_ok)
    with pytest.raises(NwcError) as caught:
        await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
            wallet.connection_string(f"ws://127.0.0.1:{port}/"), BOLT11
        )
    assert caught.value.message == "Wallet relay is unreachable"


async def test_answers_from_other_keys_are_ignored() -> None:
    """A response signed by someone other than the wallet never counts (then: timeout)."""
    wallet = FakeWallet(pay_ok)
    wallet.signer = bytes.fromhex("33" * 32)
    async with FakeRelay(wallet).running() as url:
        with pytest.raises(NwcError, match="did not answer"):
            await NwcClient(timeout_s=0.3, allow_private_relays=True).pay_invoice(
                wallet.connection_string(url), BOLT11
            )


async def test_invalid_uri_is_raised_before_any_connection() -> None:
    with pytest.raises(InvalidNwcUri):
        await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
            "nostr+walletconnect://nope", BOLT11
        )


async def test_request_content_is_pay_invoice_json() -> None:
    wallet = FakeWallet(pay_ok)
    relay = FakeRelay(wallet)
    async with relay.running() as url:
        await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
            wallet.connection_string(url), BOLT11
        )
    client_pub = PublicKeyXOnly.from_secret(CLIENT_SECRET).format()
    body = json.loads(nip04.decrypt(WALLET_SECRET, client_pub, relay.events[0]["content"]))
    assert body == {"method": "pay_invoice", "params": {"invoice": BOLT11}}


# -- NIP-44, every relay, lost answers -------------------------------------------------------


@pytest.mark.parametrize(
    ("offered", "scheme"),
    [("nip44_v2 nip04", "nip44_v2"), ("nip44_v2", "nip44_v2"), ("nip04", "nip04"), (None, "nip04")],
)
async def test_nip44_v2_when_the_wallet_info_offers_it_else_nip04(
    offered: str | None, scheme: str
) -> None:
    wallet = FakeWallet(pay_ok)
    wallet.encryption = offered
    relay = FakeRelay(wallet)
    async with relay.running() as url:
        preimage = await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
            wallet.connection_string(url), BOLT11
        )
    assert preimage == PREIMAGE and wallet.paid == [BOLT11]
    assert wallet.schemes == [scheme]
    request = relay.events[0]
    assert (["encryption", "nip44_v2"] in request["tags"]) == (scheme == "nip44_v2")
    assert ("?iv=" in request["content"]) == (scheme == "nip04")


async def test_a_wallet_without_an_info_event_gets_nip04() -> None:
    wallet = FakeWallet(pay_ok)
    wallet.encryption = "nip44_v2"
    async with FakeRelay(wallet, with_info=False).running() as url:
        await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
            wallet.connection_string(url), BOLT11
        )
    assert wallet.schemes == ["nip04"]


def _two_relays(wallet: FakeWallet, first: str, second: str) -> str:
    return wallet.connection_string(first) + "&relay=" + second


async def test_every_relay_of_the_uri_is_used_and_the_first_answer_wins() -> None:
    wallet = FakeWallet(pay_ok)
    wallet.encryption = "nip44_v2 nip04"
    idle, used = FakeRelay(None), FakeRelay(wallet)
    async with idle.running() as idle_url, used.running() as used_url:
        uri = _two_relays(wallet, idle_url, used_url)
        assert (
            await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(uri, BOLT11)
            == PREIMAGE
        )
    # published on both relays; the wallet (on the second only) chose NIP-44 from its info
    assert [e["kind"] for e in idle.events] == [23194]
    assert idle.events[0]["id"] == used.events[0]["id"]
    assert wallet.schemes == ["nip44_v2"] and wallet.paid == [BOLT11]


async def test_an_unreachable_relay_does_not_stop_the_others() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    wallet = FakeWallet(pay_ok)
    async with FakeRelay(wallet).running() as url:
        uri = _two_relays(wallet, f"ws://127.0.0.1:{port}/", url)
        assert (
            await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(uri, BOLT11)
            == PREIMAGE
        )


async def test_an_answer_lost_after_paying_is_answer_lost_not_a_refusal() -> None:

    wallet = FakeWallet(pay_ok)
    wallet.answer_lost = True
    async with FakeRelay(wallet).running() as url:
        with pytest.raises(NwcAnswerLost):
            await NwcClient(timeout_s=0.5, allow_private_relays=True).pay_invoice(
                wallet.connection_string(url), BOLT11
            )
    assert wallet.paid == [BOLT11]


async def test_a_refusal_and_an_unreachable_relay_are_not_answer_lost() -> None:

    async def refuse(bolt11: str) -> str:
        raise WalletRefusal("QUOTA_EXCEEDED", "budget used up")

    wallet = FakeWallet(refuse)
    async with FakeRelay(wallet).running() as url:
        with pytest.raises(NwcError) as caught:
            await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
                wallet.connection_string(url), BOLT11
            )
    assert not isinstance(caught.value, NwcAnswerLost)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(NwcError) as caught:
        await NwcClient(timeout_s=5, allow_private_relays=True).pay_invoice(
            wallet.connection_string(f"ws://127.0.0.1:{port}/"), BOLT11
        )
    assert not isinstance(caught.value, NwcAnswerLost)


def test_uri_keeps_every_relay_in_order_without_duplicates() -> None:
    text = (
        f"nostr+walletconnect://{WALLET_PUB}?relay=wss%3A%2F%2Fa.example&relay=wss://b.example"
        f"&relay=wss://a.example&secret={SECRET_HEX}"
    )
    parsed = parse_nwc_uri(text)
    assert parsed.relays == ("wss://a.example", "wss://b.example")
    assert parsed.relay == "wss://a.example"
    with pytest.raises(InvalidNwcUri, match="ws:// or wss://"):
        parse_nwc_uri(text + "&relay=https://c.example")


async def test_a_string_with_more_relays_than_allowed_contacts_none() -> None:
    from domain.nwc_uri import MAX_RELAYS

    wallet = FakeWallet(pay_ok)
    relays = [FakeRelay(wallet) for _ in range(MAX_RELAYS + 1)]
    async with contextlib.AsyncExitStack() as stack:
        urls = [await stack.enter_async_context(r.running()) for r in relays]
        uri = wallet.connection_string(urls[0]) + "".join(f"&relay={u}" for u in urls[1:])
        with pytest.raises(InvalidNwcUri, match="relays"):
            await NwcClient(timeout_s=0.5, allow_private_relays=True).pay_invoice(uri, BOLT11)
    assert wallet.requests == 0 and all(r.events == [] for r in relays)


async def test_a_relay_name_resolving_to_loopback_is_never_connected_to() -> None:
    """Checked at connect time: `localhost` resolves to 127.0.0.1, which is refused before any
    connection (a name passes the PATCH check; its address is only known when resolved)."""
    seen: list[bytes] = []

    async def on_conn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(2048))
        writer.close()

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    wallet = FakeWallet(pay_ok)
    try:
        with pytest.raises(NwcError) as caught:
            await NwcClient(timeout_s=3).pay_invoice(
                wallet.connection_string(f"ws://localhost:{port}/"), BOLT11
            )
    finally:
        server.close()
        await server.wait_closed()
    assert caught.value.message == "Wallet relay is unreachable"
    assert not isinstance(caught.value, NwcAnswerLost)
    assert seen == []
