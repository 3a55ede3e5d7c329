"""DevLightningNode: a fake Lightning rail for the embedded default, paid by `lnvps dev pay`."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import secrets
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from adapters.lightning.bolt11 import encode_dev_invoice, payment_hash_of
from adapters.lightning.common import SystemClock, check_invoice_request
from ports.clock import Clock
from ports.lightning import Invoice, LightningUnavailable, SettledInvoice

#: Default state file, relative to the working directory (like the embedded `lnvps.db`).
DEFAULT_STATE_FILE: Final = "lnvps-dev-lightning.json"
_VERSION: Final = 1
_HASH_LEN: Final = 32
T = TypeVar("T")
State = dict[str, Any]


class DevInvoiceError(Exception):
    """A dev invoice cannot be settled: unknown, cancelled or expired."""


def parse_payment_id(text: str) -> bytes:
    """The payment hash named by a payment id (64 hex digits) or a BOLT11 string; ValueError."""
    text = text.strip()
    if len(text) == 2 * _HASH_LEN:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    if text.lower().startswith("ln"):
        return payment_hash_of(text)
    raise ValueError("expected a payment id (64 hex digits) or a BOLT11 invoice")


def _empty_state() -> State:
    return {"version": _VERSION, "last_settle_index": 0, "invoices": {}}


def _settled(payment_hash: str, record: dict[str, Any]) -> SettledInvoice:
    return SettledInvoice(
        payment_hash=bytes.fromhex(payment_hash),
        settle_index=int(record["settle_index"]),
        amount_paid_msat=int(record["amount_paid_msat"]),
        settled_at=datetime.fromisoformat(str(record["settled_at"])),
    )


def _settled_after(state: State, index: int) -> list[SettledInvoice]:
    found = [
        _settled(payment_hash, record)
        for payment_hash, record in state["invoices"].items()
        if record["state"] == "SETTLED" and int(record["settle_index"]) > index
    ]
    return sorted(found, key=lambda s: s.settle_index)


def _start_index(state: State, after_payment_hash: bytes | None) -> int:
    """Like LND: replay after the settle index of a settled `after`, else live from now."""
    if after_payment_hash is not None:
        record = state["invoices"].get(after_payment_hash.hex())
        if record is not None and record["state"] == "SETTLED":
            return int(record["settle_index"])
    return int(state["last_settle_index"])


class DevLightningNode:
    """Invoices that look real (signed regtest BOLT11, sha256(preimage) hashes) but move no money.

    With `state_file=None` everything stays in this object; `settle()` pays an invoice.
    With a state file, invoices and settlements live in that JSON file, so another process
    (`lnvps dev pay PAYMENT_ID`, which builds its own DevLightningNode on the same file and calls
    `settle`) can pay an invoice this process issued: every change is a read-modify-write under
    an exclusive `fcntl.flock` on `<state_file>.lock`, written to a temp file in the same
    directory, fsynced and `os.replace`d over the state file (readers never see a half-written
    file); `settled_invoices` re-reads the file every `poll_interval` seconds (and at once after
    a settlement made through this object). Settle indexes increase by one per settlement.

    `settled_invoices(after)` follows LND: settlements after the settle index of `after` when
    it names a settled invoice, otherwise only settlements made after the call (live);
    `lookup_settlement` reads one invoice's settlement from the same state.
    """

    def __init__(
        self,
        state_file: str | Path | None = None,
        *,
        poll_interval: float = 0.5,
        clock: Clock | None = None,
    ) -> None:
        self._path = Path(state_file) if state_file is not None else None
        self._memory: State = _empty_state()
        self._poll_interval = poll_interval
        self._clock: Clock = clock or SystemClock()
        self._changed: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"DevLightningNode({str(self._path) if self._path else 'in memory'!r})"

    @property
    def state_file(self) -> Path | None:
        return self._path

    # -- the port -------------------------------------------------------------------------

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> Invoice:
        check_invoice_request(amount_msat, expiry_seconds)
        preimage = secrets.token_bytes(32)
        payment_hash = hashlib.sha256(preimage).digest()
        now = self._clock.now()
        expires_at = now + timedelta(seconds=expiry_seconds)
        bolt11 = encode_dev_invoice(
            payment_hash=payment_hash,
            payment_secret=secrets.token_bytes(32),
            amount_msat=amount_msat,
            description=f"[lnvps dev] {memo}",
            timestamp=int(now.timestamp()),
            expiry_seconds=expiry_seconds,
        )
        record = {
            "state": "OPEN",
            "amount_msat": amount_msat,
            "memo": memo,
            "bolt11": bolt11,
            "preimage": preimage.hex(),
            "created_at": now.isoformat(),
            "expires_at": expires_at.isoformat(),
            "settle_index": 0,
            "settled_at": None,
            "amount_paid_msat": 0,
        }

        def add(state: State) -> None:
            state["invoices"][payment_hash.hex()] = record

        await self._update(add)
        return Invoice(
            payment_hash=payment_hash, bolt11=bolt11, amount_msat=amount_msat, expires_at=expires_at
        )

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        def cancel(state: State) -> None:
            record = state["invoices"].get(payment_hash.hex())
            if record is not None and record["state"] == "OPEN":
                record["state"] = "CANCELED"

        await self._update(cancel)

    def settled_invoices(self, after_payment_hash: bytes | None) -> AsyncIterator[SettledInvoice]:
        # The starting point is fixed now, so "live" means "settled after this call".
        try:
            start: int | LightningUnavailable = _start_index(self._read(), after_payment_hash)
        except LightningUnavailable as exc:
            start = exc
        return self._settlements(start)

    def settlements_after(self, settle_index: int) -> AsyncIterator[SettledInvoice]:
        if settle_index < 0:
            raise ValueError(f"settle index must be ≥ 0, got {settle_index}")
        return self._settlements(settle_index)

    async def lookup_settlement(self, payment_hash: bytes) -> SettledInvoice | None:
        state = await asyncio.to_thread(self._read) if self._path else self._memory
        record = state["invoices"].get(payment_hash.hex())
        if record is None or record["state"] != "SETTLED":
            return None
        return _settled(payment_hash.hex(), record)

    # -- dev controls ---------------------------------------------------------------------

    async def settle(self, payment_hash: bytes) -> SettledInvoice:
        """Pay an open invoice in full (idempotent for a settled one); DevInvoiceError if not."""
        now = self._clock.now()

        def settle(state: State) -> SettledInvoice:
            key = payment_hash.hex()
            record = state["invoices"].get(key)
            if record is None:
                where = self._path if self._path is not None else "this process"
                raise DevInvoiceError(f"no dev invoice with payment hash {key} in {where}")
            if record["state"] == "SETTLED":
                return _settled(key, record)
            if record["state"] == "CANCELED":
                raise DevInvoiceError(f"dev invoice {key} was cancelled")
            if datetime.fromisoformat(str(record["expires_at"])) <= now:
                raise DevInvoiceError(f"dev invoice {key} expired")
            state["last_settle_index"] = int(state["last_settle_index"]) + 1
            record.update(
                state="SETTLED",
                settle_index=state["last_settle_index"],
                settled_at=now.isoformat(),
                amount_paid_msat=record["amount_msat"],
            )
            return _settled(key, record)

        return await self._update(settle)

    async def invoice_state(self, payment_hash: bytes) -> str | None:
        """OPEN, SETTLED or CANCELED (None if unknown); expiry is not reflected."""
        state = await asyncio.to_thread(self._read) if self._path else self._memory
        record = state["invoices"].get(payment_hash.hex())
        return None if record is None else str(record["state"])

    # -- storage --------------------------------------------------------------------------

    async def _settlements(
        self, start: int | LightningUnavailable
    ) -> AsyncIterator[SettledInvoice]:
        if isinstance(start, LightningUnavailable):
            raise start
        last = start
        while True:
            changed = self._event()
            state = await asyncio.to_thread(self._read) if self._path else self._memory
            for settled in _settled_after(state, last):
                last = settled.settle_index
                yield settled
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._poll_interval):
                    await changed.wait()

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def _notify(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _update(self, change: Callable[[State], T]) -> T:
        if self._path is None:
            result = change(self._memory)
        else:
            result = await asyncio.to_thread(self._update_file, self._path, change)
        self._notify()
        return result

    def _read(self) -> State:
        if self._path is None:
            return self._memory
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return _empty_state()
        except OSError as exc:
            raise LightningUnavailable(
                f"cannot read dev Lightning state {self._path}: {exc}"
            ) from exc
        try:
            state = json.loads(raw)
        except ValueError:
            raise LightningUnavailable(f"dev Lightning state {self._path} is not JSON") from None
        if not isinstance(state, dict) or state.get("version") != _VERSION:
            raise LightningUnavailable(f"dev Lightning state {self._path} has an unknown format")
        return state

    def _update_file(self, path: Path, change: Callable[[State], T]) -> T:
        try:
            with _locked(path.with_name(path.name + ".lock")):
                state = self._read()
                result = change(state)
                _write_atomically(path, state)
        except OSError as exc:
            raise LightningUnavailable(f"cannot update dev Lightning state {path}: {exc}") from exc
        return result


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock shared by every process using the same state file."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _write_atomically(path: Path, state: State) -> None:
    """Temp file in the same directory, fsync, rename over the target."""
    fd, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=1, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
