"""Contract tests of the LightningNode port: LndRestNode against a fake LND, and the dev rail."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest

from adapters.lightning.bolt11 import payment_hash_of
from adapters.lightning.dev import (
    DEFAULT_STATE_FILE,
    DevInvoiceError,
    DevLightningNode,
    parse_payment_id,
)
from adapters.lightning.dev_journal import read_journal
from adapters.lightning.lnd import LndRestNode
from domain.bech32 import decode as bech32_decode
from ports.lightning import LightningNode, LightningUnavailable, SettledInvoice
from tests.fakes.fake_lnd import FakeLnd, free_port_url, running_fake_lnd, write_self_signed_cert
from tests.fakes.fake_lnd import fake_lnd as fake_lnd_fixture

fake_lnd = fake_lnd_fixture  # the shared fixture: a FakeLnd served over TLS on 127.0.0.1

QUIET = 0.1  # how long "no further settlement arrives" is watched
POLL = 0.01  # dev rail poll interval in tests
REPO_ROOT = Path(__file__).resolve().parents[2]
RAILS = ["lnd", "dev-file", "dev-memory"]


class Collector:
    """Consumes a settlement stream in a task; tests wait for and inspect what arrived."""

    def __init__(self, stream: AsyncIterator[SettledInvoice]) -> None:
        self.items: list[SettledInvoice] = []
        self._task = asyncio.create_task(self._run(stream))

    async def _run(self, stream: AsyncIterator[SettledInvoice]) -> None:
        async for item in stream:
            self.items.append(item)

    @property
    def hashes(self) -> list[bytes]:
        return [item.payment_hash for item in self.items]

    async def wait_for(self, count: int) -> list[SettledInvoice]:
        async with asyncio.timeout(5):
            while len(self.items) < count:
                if self._task.done():
                    self._task.result()  # raises what ended the stream
                    raise AssertionError("stream ended early")
                await asyncio.sleep(0.005)
        return self.items

    async def settled_exactly(self, count: int) -> list[bytes]:
        """Wait for `count` items, then check nothing more arrives."""
        await self.wait_for(count)
        await asyncio.sleep(QUIET)
        assert len(self.items) == count, self.items
        return self.hashes

    async def stop(self) -> None:
        """Cancel the consumer; a stream error is reported by `wait_for`, not here."""
        if self._task.done():
            if not self._task.cancelled():
                self._task.exception()  # retrieved, so asyncio does not warn about it
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


@attrs.define
class Rail:
    """One LightningNode implementation with the backend controls the contract needs."""

    name: str
    node: LightningNode
    pay: Callable[[bytes], Awaitable[object]]
    #: wait until `n` settlement streams in total are subscribed (no-op where a call suffices)
    subscribed: Callable[[int], Awaitable[None]]
    #: a new node instance on the same backend (a restarted process)
    restart: Callable[[], LightningNode]


@pytest.fixture(params=RAILS)
async def rail(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rail]:
    if request.param == "lnd":
        async with running_fake_lnd(tmp_path) as fake:
            nodes: list[LndRestNode] = []

            def lnd_node() -> LndRestNode:
                nodes.append(fast_lnd(fake))
                return nodes[-1]

            async def pay(payment_hash: bytes) -> int:
                return fake.settle(payment_hash)

            yield Rail("lnd", lnd_node(), pay, fake.wait_for_subscriptions, lnd_node)
            for node in nodes:
                await node.aclose()
        return
    path = tmp_path / "dev" / DEFAULT_STATE_FILE if request.param == "dev-file" else None
    dev = DevLightningNode(path, poll_interval=POLL)

    async def no_wait(_: int) -> None:
        return None

    def restart() -> DevLightningNode:
        return DevLightningNode(path, poll_interval=POLL) if path else dev

    yield Rail(request.param, dev, dev.settle, no_wait, restart)


def fast_lnd(fake: FakeLnd, **overrides: object) -> LndRestNode:
    options: dict[str, object] = {
        "macaroon_hex": fake.macaroon_hex,
        "tls_cert_path": fake.cert_path,
        "reconnect_delay": 0.01,
        "max_reconnect_delay": 0.05,
        "max_reconnect_attempts": 3,
        "request_timeout": 5.0,
    }
    options.update(overrides)
    return LndRestNode(fake.url, **options)  # type: ignore[arg-type]


async def paid_invoices(rail: Rail, count: int, amount_msat: int = 21_000) -> list[bytes]:
    hashes = []
    for n in range(count):
        invoice = await rail.node.create_invoice(amount_msat, f"test {n}", 600)
        await rail.pay(invoice.payment_hash)
        hashes.append(invoice.payment_hash)
    return hashes


# -- the contract, on every rail -----------------------------------------------------------


async def test_create_invoice_is_well_formed(rail: Rail) -> None:
    before = datetime.now(UTC)
    invoice = await rail.node.create_invoice(150_000, "Subscription renewal: VM1", 600)
    assert len(invoice.payment_hash) == 32
    assert invoice.bolt11.startswith("lnbcrt")
    assert invoice.amount_msat == 150_000
    assert invoice.expires_at.tzinfo is not None
    expected = before + timedelta(seconds=600)
    assert expected - timedelta(seconds=5) <= invoice.expires_at <= expected + timedelta(seconds=5)
    other = await rail.node.create_invoice(150_000, "Subscription renewal: VM1", 600)
    assert other.payment_hash != invoice.payment_hash


async def test_settlement_is_streamed_once(rail: Rail) -> None:
    stream = Collector(rail.node.settled_invoices(None))
    try:
        await rail.subscribed(1)
        invoice = await rail.node.create_invoice(33_210_000, "Subscription purchase: VM1", 600)
        await rail.pay(invoice.payment_hash)
        await rail.pay(invoice.payment_hash)  # paying twice settles once
        assert await stream.settled_exactly(1) == [invoice.payment_hash]
        settled = stream.items[0]
        assert settled.amount_paid_msat == 33_210_000
        assert settled.settle_index >= 1
        assert settled.settled_at.utcoffset() == timedelta(0)
        assert abs(settled.settled_at - datetime.now(UTC)) < timedelta(seconds=5)
    finally:
        await stream.stop()


async def test_a_new_stream_without_a_last_paid_invoice_is_live_only(rail: Rail) -> None:
    await paid_invoices(rail, 2)
    stream = Collector(rail.node.settled_invoices(None))
    try:
        await rail.subscribed(1)
        [later] = await paid_invoices(rail, 1)
        assert await stream.settled_exactly(1) == [later]
    finally:
        await stream.stop()


async def test_replay_after_the_last_paid_invoice_yields_only_later_ones(rail: Rail) -> None:
    first, second, third = await paid_invoices(rail, 3)
    unpaid = await rail.node.create_invoice(5_000, "never paid", 600)
    stream = Collector(rail.node.settled_invoices(first))
    try:
        assert await stream.settled_exactly(2) == [second, third]
        assert stream.items[0].settle_index < stream.items[1].settle_index
        await rail.subscribed(1)
        [live] = await paid_invoices(rail, 1)
        assert await stream.settled_exactly(3) == [second, third, live]
        assert unpaid.payment_hash not in stream.hashes
    finally:
        await stream.stop()


async def test_replay_after_a_settle_index_yields_every_later_settlement(rail: Rail) -> None:
    """The listener's persisted cursor: everything settled after an index, then live ones."""
    first, second, third = await paid_invoices(rail, 3)
    settled = await rail.node.lookup_settlement(first)
    assert settled is not None
    stream = Collector(rail.node.settlements_after(settled.settle_index))
    try:
        assert await stream.settled_exactly(2) == [second, third]
        await rail.subscribed(1)
        [live] = await paid_invoices(rail, 1)
        assert await stream.settled_exactly(3) == [second, third, live]
    finally:
        await stream.stop()


async def test_replay_after_an_unknown_hash_is_live_only(rail: Rail) -> None:
    await paid_invoices(rail, 2)
    stream = Collector(rail.node.settled_invoices(secrets.token_bytes(32)))
    try:
        await rail.subscribed(1)
        [later] = await paid_invoices(rail, 1)
        assert await stream.settled_exactly(1) == [later]
    finally:
        await stream.stop()


async def test_a_restarted_stream_yields_the_missed_settlements_once(rail: Rail) -> None:
    stream = Collector(rail.node.settled_invoices(None))
    await rail.subscribed(1)
    [first] = await paid_invoices(rail, 1)
    assert await stream.settled_exactly(1) == [first]
    await stream.stop()

    missed = await paid_invoices(rail, 2)  # while nobody listens

    restarted = Collector(rail.restart().settled_invoices(first))
    try:
        assert await restarted.settled_exactly(2) == missed
        await rail.subscribed(2)
        [live] = await paid_invoices(rail, 1)
        assert await restarted.settled_exactly(3) == [*missed, live]
    finally:
        await restarted.stop()


async def test_cancel_is_idempotent_and_a_cancelled_invoice_never_settles(rail: Rail) -> None:
    stream = Collector(rail.node.settled_invoices(None))
    try:
        await rail.subscribed(1)
        invoice = await rail.node.create_invoice(10_000, "to cancel", 600)
        await rail.node.cancel_invoice(invoice.payment_hash)
        await rail.node.cancel_invoice(invoice.payment_hash)
        await rail.node.cancel_invoice(secrets.token_bytes(32))  # unknown: not an error
        with pytest.raises((ValueError, DevInvoiceError)):
            await rail.pay(invoice.payment_hash)
        [paid] = await paid_invoices(rail, 1)
        await rail.node.cancel_invoice(paid)  # settled: not an error, stays settled
        assert await stream.settled_exactly(1) == [paid]
    finally:
        await stream.stop()


async def test_lookup_settlement_reports_only_settled_invoices(rail: Rail) -> None:
    open_invoice = await rail.node.create_invoice(4_000, "open", 600)
    cancelled = await rail.node.create_invoice(5_000, "cancelled", 600)
    await rail.node.cancel_invoice(cancelled.payment_hash)
    first, paid = await paid_invoices(rail, 2, amount_msat=6_000)

    settled = await rail.node.lookup_settlement(paid)
    assert settled is not None
    assert settled.payment_hash == paid
    assert settled.amount_paid_msat == 6_000
    earlier = await rail.node.lookup_settlement(first)
    assert earlier is not None
    assert 1 <= earlier.settle_index < settled.settle_index
    assert settled.settled_at.utcoffset() == timedelta(0)
    assert abs(settled.settled_at - datetime.now(UTC)) < timedelta(seconds=5)
    # another process on the same node sees the same settlement
    assert await rail.restart().lookup_settlement(paid) == settled

    assert await rail.node.lookup_settlement(open_invoice.payment_hash) is None
    assert await rail.node.lookup_settlement(cancelled.payment_hash) is None
    assert await rail.node.lookup_settlement(secrets.token_bytes(32)) is None


@pytest.mark.parametrize("amount_msat", [1_500, 999, 0, -1_000, 1_000_001])
async def test_amounts_that_are_not_whole_positive_sats_are_refused(
    rail: Rail, amount_msat: int
) -> None:
    with pytest.raises(ValueError, match="whole number of sats"):
        await rail.node.create_invoice(amount_msat, "bad", 600)


async def test_non_positive_expiry_is_refused(rail: Rail) -> None:
    with pytest.raises(ValueError, match="expiry"):
        await rail.node.create_invoice(1_000, "bad", 0)


# -- LND specifics -------------------------------------------------------------------------


def _assert_no_macaroon(exc: BaseException, macaroon_hex: str) -> None:
    for text in (str(exc), repr(exc), *(str(a) for a in exc.args)):
        assert macaroon_hex not in text.lower()
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        _assert_no_macaroon(cause, macaroon_hex)


async def test_lnd_wire_format(fake_lnd: FakeLnd) -> None:
    async with fast_lnd(fake_lnd) as node:
        invoice = await node.create_invoice(42_000, "memo ü", 600)
        stored = fake_lnd.invoices[invoice.payment_hash]
        assert (stored["value_msat"], stored["memo"], stored["expiry"]) == (
            "42000",
            "memo ü",
            "600",
        )
        assert invoice.bolt11 == stored["payment_request"]
        assert invoice.external_id is None
        await node.cancel_invoice(invoice.payment_hash)
        assert stored["state"] == "CANCELED"
    assert fake_lnd.requests == ["POST /v1/invoices", "POST /v2/invoices/cancel"]


async def test_lnd_lookup_settlement_wire_format(fake_lnd: FakeLnd) -> None:
    async with fast_lnd(fake_lnd) as node:
        held = await node.create_invoice(1_000, "hodl", 600)
        fake_lnd.invoices[held.payment_hash]["state"] = "ACCEPTED"  # held, not settled yet
        assert await node.lookup_settlement(held.payment_hash) is None
        [paid] = await paid_invoices_on(node, fake_lnd, 1)
        settled = await node.lookup_settlement(paid)
        assert settled is not None
        assert settled.settle_index == int(fake_lnd.invoices[paid]["settle_index"])
        assert await node.lookup_settlement(b"short") is None  # never sent
        fake_lnd.failure = (500, "unable to locate invoice")  # older LND: 500, not 404
        assert await node.lookup_settlement(paid) is None
        fake_lnd.failure = (500, "invoice registry shutting down")
        with pytest.raises(LightningUnavailable, match="shutting down"):
            await node.lookup_settlement(paid)
    assert fake_lnd.requests == [
        "POST /v1/invoices",
        f"GET /v1/invoice/{held.payment_hash.hex()}",
        "POST /v1/invoices",
        f"GET /v1/invoice/{paid.hex()}",
        f"GET /v1/invoice/{paid.hex()}",
        f"GET /v1/invoice/{paid.hex()}",
    ]


async def test_lnd_refused_amount_sends_nothing(fake_lnd: FakeLnd) -> None:
    async with fast_lnd(fake_lnd) as node:
        with pytest.raises(ValueError):
            await node.create_invoice(1_001, "bad", 600)
    assert fake_lnd.requests == []


async def test_lnd_macaroon_from_file(fake_lnd: FakeLnd, tmp_path: Path) -> None:
    macaroon_file = tmp_path / "admin.macaroon"
    macaroon_file.write_bytes(fake_lnd.macaroon)
    async with LndRestNode(
        fake_lnd.url, macaroon_path=macaroon_file, tls_cert_path=fake_lnd.cert_path
    ) as n:
        assert len((await n.create_invoice(1_000, "m", 60)).payment_hash) == 32
    with pytest.raises(ValueError):
        LndRestNode(fake_lnd.url, macaroon_path=macaroon_file, macaroon_hex=fake_lnd.macaroon_hex)
    with pytest.raises(ValueError):
        LndRestNode(fake_lnd.url)


async def test_lnd_unreachable_is_unavailable() -> None:
    macaroon_hex = secrets.token_bytes(32).hex()
    node = LndRestNode(
        free_port_url(),
        macaroon_hex=macaroon_hex,
        reconnect_delay=0.001,
        max_reconnect_attempts=2,
    )
    async with node:
        with pytest.raises(LightningUnavailable) as created:
            await node.create_invoice(1_000, "m", 600)
        with pytest.raises(LightningUnavailable) as cancelled:
            await node.cancel_invoice(secrets.token_bytes(32))
        with pytest.raises(LightningUnavailable) as looked_up:
            await node.lookup_settlement(secrets.token_bytes(32))
        with pytest.raises(LightningUnavailable) as streamed:
            async for _ in node.settled_invoices(secrets.token_bytes(32)):
                pass
    for exc in (created.value, cancelled.value, looked_up.value, streamed.value):
        _assert_no_macaroon(exc, macaroon_hex)
    assert "gave up after 3 attempts" in str(streamed.value)


async def test_lnd_bad_macaroon_is_unavailable_and_never_echoed(fake_lnd: FakeLnd) -> None:
    wrong = secrets.token_bytes(48).hex()
    async with fast_lnd(fake_lnd, macaroon_hex=wrong.upper()) as node:
        with pytest.raises(LightningUnavailable) as created:
            await node.create_invoice(1_000, "m", 600)
        with pytest.raises(LightningUnavailable) as cancelled:
            await node.cancel_invoice(secrets.token_bytes(32))
        with pytest.raises(LightningUnavailable) as looked_up:
            await node.lookup_settlement(secrets.token_bytes(32))
        with pytest.raises(LightningUnavailable) as streamed:
            async for _ in node.settled_invoices(None):
                pass
    for exc in (created.value, cancelled.value, looked_up.value, streamed.value):
        assert "403" in str(exc)
        _assert_no_macaroon(exc, wrong)
        _assert_no_macaroon(exc, fake_lnd.macaroon_hex)
    assert repr(node) == f"LndRestNode({fake_lnd.url!r})"
    # a refused macaroon is not retried
    assert fake_lnd.requests.count("GET /v1/invoices/subscribe") == 1


async def test_lnd_error_bodies_echoing_the_macaroon_are_scrubbed(fake_lnd: FakeLnd) -> None:
    fake_lnd.failure = (500, f"bad macaroon {fake_lnd.macaroon_hex}")
    async with fast_lnd(fake_lnd) as node:
        with pytest.raises(LightningUnavailable) as created:
            await node.create_invoice(1_000, "m", 600)
        with pytest.raises(LightningUnavailable) as streamed:
            async for _ in node.settled_invoices(None):
                pass
    for exc in (created.value, streamed.value):
        assert "<macaroon>" in str(exc)
        _assert_no_macaroon(exc, fake_lnd.macaroon_hex)


async def test_lnd_stream_reconnects_without_repeating(fake_lnd: FakeLnd) -> None:
    fake_lnd.replay_inclusive = True  # the node re-sends the last settlement on reconnect
    async with fast_lnd(fake_lnd) as node:
        first = await node.create_invoice(1_000, "a", 600)
        fake_lnd.settle(first.payment_hash)
        stream = Collector(node.settled_invoices(None))
        try:
            await fake_lnd.wait_for_subscriptions(1)
            second = await node.create_invoice(2_000, "b", 600)
            fake_lnd.settle(second.payment_hash)
            await stream.wait_for(1)
            fake_lnd.drop_streams()
            third = await node.create_invoice(3_000, "c", 600)
            fake_lnd.settle(third.payment_hash)  # while the stream is down
            await fake_lnd.wait_for_subscriptions(2)
            fourth = await node.create_invoice(4_000, "d", 600)
            fake_lnd.settle(fourth.payment_hash)
            hashes = await stream.settled_exactly(3)
            assert hashes == [second.payment_hash, third.payment_hash, fourth.payment_hash]
            assert [i.amount_paid_msat for i in stream.items] == [2_000, 3_000, 4_000]
        finally:
            await stream.stop()


async def test_lnd_stream_error_messages(fake_lnd: FakeLnd) -> None:
    async with fast_lnd(fake_lnd) as node:
        stream = Collector(node.settled_invoices(None))
        try:
            await fake_lnd.wait_for_subscriptions(1)
            fake_lnd.fail_streams("invoice registry shutting down")  # transient: reconnects
            await fake_lnd.wait_for_subscriptions(2)
            [paid] = await paid_invoices_on(node, fake_lnd, 1)
            assert await stream.settled_exactly(1) == [paid]
            fake_lnd.fail_streams("verification failed: macaroon revoked", http_code=500)
            with pytest.raises(LightningUnavailable, match="macaroon revoked"):
                await stream.wait_for(2)
            assert fake_lnd.subscriptions == 2  # a refused macaroon is not retried
        finally:
            await stream.stop()


async def paid_invoices_on(node: LndRestNode, fake: FakeLnd, count: int) -> list[bytes]:
    hashes = []
    for _ in range(count):
        invoice = await node.create_invoice(1_000, "m", 600)
        fake.settle(invoice.payment_hash)
        hashes.append(invoice.payment_hash)
    return hashes


async def test_lnd_tls_trusts_only_the_configured_certificate(
    fake_lnd: FakeLnd, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    other_cert, _ = write_self_signed_cert(other)
    async with fast_lnd(fake_lnd, tls_cert_path=other_cert) as node:
        with pytest.raises(LightningUnavailable, match=r"(?i)certificate|ssl"):
            await node.create_invoice(1_000, "m", 600)
    async with fast_lnd(fake_lnd, tls_cert_path=None) as node:  # system trust store
        with pytest.raises(LightningUnavailable):
            await node.create_invoice(1_000, "m", 600)
    with pytest.raises(ValueError, match="http"):
        LndRestNode("http://127.0.0.1:1", macaroon_hex="00", tls_cert_path=fake_lnd.cert_path)


async def test_lnd_over_plain_http(tmp_path: Path) -> None:
    async with running_fake_lnd(tmp_path, tls=False) as plain:
        node = LndRestNode(plain.url, macaroon_hex=plain.macaroon_hex)
        async with node:
            invoice = await node.create_invoice(1_000, "m", 600)
            assert invoice.payment_hash in plain.invoices


# -- dev rail specifics --------------------------------------------------------------------


async def test_dev_invoice_is_a_signed_regtest_bolt11(tmp_path: Path) -> None:
    node = DevLightningNode(poll_interval=POLL)
    invoice = await node.create_invoice(3_321_000, "Subscription renewal: VM1", 600)
    hrp, _ = bech32_decode(invoice.bolt11)
    assert hrp == "lnbcrt33210n"
    assert payment_hash_of(invoice.bolt11) == invoice.payment_hash
    assert parse_payment_id(invoice.bolt11) == invoice.payment_hash
    assert parse_payment_id(f" {invoice.payment_hash.hex().upper()}\n") == invoice.payment_hash
    for bad in ("", "xyz", "ab" * 31, "lnbcrt1bogus"):
        with pytest.raises(ValueError):
            parse_payment_id(bad)


async def test_dev_payment_hash_is_sha256_of_a_stored_preimage(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    node = DevLightningNode(path, poll_interval=POLL)
    invoice = await node.create_invoice(1_000, "m", 600)
    record = read_journal(path.read_bytes()).invoices[invoice.payment_hash.hex()]
    assert hashlib.sha256(bytes.fromhex(record["preimage"])).digest() == invoice.payment_hash
    assert await node.invoice_state(invoice.payment_hash) == "OPEN"


async def test_dev_pay_from_another_process(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    server = DevLightningNode(path, poll_interval=POLL)
    stream = Collector(server.settled_invoices(None))
    try:
        invoice = await server.create_invoice(7_000, "m", 600)
        script = (
            "import asyncio, sys\n"
            "from adapters.lightning.dev import DevLightningNode\n"
            "node = DevLightningNode(sys.argv[1])\n"
            "print(asyncio.run(node.settle(bytes.fromhex(sys.argv[2]))).settle_index)\n"
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", script, str(path), invoice.payment_hash.hex()],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO_ROOT,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "1"
        assert await stream.settled_exactly(1) == [invoice.payment_hash]
    finally:
        await stream.stop()


async def test_dev_concurrent_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    issuer, payer = DevLightningNode(path), DevLightningNode(path)
    invoices = await asyncio.gather(*(issuer.create_invoice(1_000, str(n), 600) for n in range(20)))
    settled = await asyncio.gather(*(payer.settle(i.payment_hash) for i in invoices))
    assert sorted(s.settle_index for s in settled) == list(range(1, 21))
    for invoice in invoices:
        assert await issuer.invoice_state(invoice.payment_hash) == "SETTLED"


async def test_dev_refuses_unknown_and_expired_invoices(tmp_path: Path) -> None:
    class Later:
        def __init__(self) -> None:
            self.at = datetime.now(UTC)

        def now(self) -> datetime:
            return self.at

    clock = Later()
    node = DevLightningNode(tmp_path / DEFAULT_STATE_FILE, clock=clock)
    with pytest.raises(DevInvoiceError, match="no dev invoice"):
        await node.settle(secrets.token_bytes(32))
    invoice = await node.create_invoice(1_000, "m", 600)
    clock.at += timedelta(seconds=601)
    with pytest.raises(DevInvoiceError, match="expired"):
        await node.settle(invoice.payment_hash)


async def test_dev_unreadable_state_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    path.write_text("{not json")
    node = DevLightningNode(path, poll_interval=POLL)
    with pytest.raises(LightningUnavailable):
        await node.create_invoice(1_000, "m", 600)
    with pytest.raises(LightningUnavailable):
        await node.lookup_settlement(secrets.token_bytes(32))
    with pytest.raises(LightningUnavailable):
        async for _ in node.settled_invoices(None):
            pass


# -- the dev rail's journal file -------------------------------------------------------------


async def test_dev_state_file_is_appended_to_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    node = DevLightningNode(path, poll_interval=POLL)
    first = await node.create_invoice(1_000, "m", 600)
    inode, head = path.stat().st_ino, path.read_bytes()
    second = await node.create_invoice(2_000, "m", 600)
    await node.settle(first.payment_hash)
    assert path.stat().st_ino == inode and path.read_bytes().startswith(head)
    lines = path.read_bytes().splitlines()
    assert json.loads(lines[0]) == {"last_settle_index": 0, "version": 2}
    assert len(lines) == 4  # header, two invoices, one settlement
    state = read_journal(path.read_bytes())
    assert state.invoices[second.payment_hash.hex()]["state"] == "OPEN"
    assert state.invoices[first.payment_hash.hex()]["state"] == "SETTLED"
    assert state.last_settle_index == 1


async def test_dev_concurrent_changes_are_batched_and_each_fails_alone(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    node = DevLightningNode(path, poll_interval=POLL)
    unknown = node.settle(secrets.token_bytes(32))
    created, refused = await asyncio.gather(
        asyncio.gather(*(node.create_invoice(1_000, str(n), 600) for n in range(10))),
        unknown,
        return_exceptions=True,
    )
    assert isinstance(refused, DevInvoiceError)
    assert isinstance(created, list) and len(created) == 10
    again = DevLightningNode(path, poll_interval=POLL)  # what another process reads
    for invoice in created:
        assert await again.invoice_state(invoice.payment_hash) == "OPEN"


async def test_dev_torn_last_line_is_ignored_then_cut_by_the_next_writer(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    node = DevLightningNode(path, poll_interval=POLL)
    kept = await node.create_invoice(1_000, "m", 600)
    with path.open("ab") as handle:  # a crash in the middle of an append
        handle.write(b'{"hash":"00","rec')
    reader = DevLightningNode(path, poll_interval=POLL)
    assert await reader.invoice_state(kept.payment_hash) == "OPEN"
    later = await reader.create_invoice(2_000, "m", 600)
    assert await node.invoice_state(later.payment_hash) == "OPEN"
    assert b'"rec\n' not in path.read_bytes() and path.read_bytes().endswith(b"\n")
    assert len(read_journal(path.read_bytes()).invoices) == 2


async def test_dev_reads_a_version_1_state_file_and_rewrites_it_as_a_journal(
    tmp_path: Path,
) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    node = DevLightningNode(poll_interval=POLL)
    paid = await node.create_invoice(1_000, "m", 600)
    open_one = await node.create_invoice(2_000, "m", 600)
    await node.settle(paid.payment_hash)
    invoices = {key: dict(record) for key, record in node._memory.invoices.items()}
    path.write_text(
        json.dumps({"version": 1, "last_settle_index": 1, "invoices": invoices}, indent=1)
    )
    old = DevLightningNode(path, poll_interval=POLL)
    assert await old.lookup_settlement(paid.payment_hash) is not None
    settled = await old.settle(open_one.payment_hash)
    assert settled.settle_index == 2
    assert json.loads(path.read_bytes().splitlines()[0])["version"] == 2
    assert len(read_journal(path.read_bytes()).invoices) == 2


async def test_dev_a_restarted_node_replays_from_the_journal(tmp_path: Path) -> None:
    path = tmp_path / DEFAULT_STATE_FILE
    node = DevLightningNode(path, poll_interval=POLL)
    invoices = [await node.create_invoice(1_000, str(n), 600) for n in range(3)]
    for invoice in invoices:
        await node.settle(invoice.payment_hash)
    await node.cancel_invoice(invoices[0].payment_hash)  # a settled one stays settled
    restarted = DevLightningNode(path, poll_interval=POLL)
    stream = restarted.settled_invoices(invoices[0].payment_hash)
    replayed = [await anext(stream), await anext(stream)]
    assert [s.settle_index for s in replayed] == [2, 3]
    assert [s.payment_hash for s in replayed] == [i.payment_hash for i in invoices[1:]]
