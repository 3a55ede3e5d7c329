"""DevLightningNode: a fake Lightning rail for the embedded default, paid by `lnvps dev pay`."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from adapters.lightning.bolt11 import encode_dev_invoice, payment_hash_of
from adapters.lightning.common import SystemClock, check_invoice_request
from adapters.lightning.dev_journal import Change, DevState, Record, StateJournal
from ports.clock import Clock
from ports.lightning import Invoice, LightningUnavailable, SettledInvoice

#: Default state file, relative to the working directory (like the embedded `lnvps.db`).
DEFAULT_STATE_FILE: Final = "lnvps-dev-lightning.json"
_HASH_LEN: Final = 32
T = TypeVar("T")


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


def _settled(payment_hash: str, record: Record) -> SettledInvoice:
    return SettledInvoice(
        payment_hash=bytes.fromhex(payment_hash),
        settle_index=int(record["settle_index"]),
        amount_paid_msat=int(record["amount_paid_msat"]),
        settled_at=datetime.fromisoformat(str(record["settled_at"])),
    )


def _settled_after(state: DevState, index: int) -> list[SettledInvoice]:
    return [_settled(key, record) for key, record in state.settled_after(index)]


def _start_index(state: DevState, after_payment_hash: bytes | None) -> int:
    """Like LND: replay after the settle index of a settled `after`, else live from now."""
    if after_payment_hash is not None:
        record = state.invoices.get(after_payment_hash.hex())
        if record is not None and record["state"] == "SETTLED":
            return int(record["settle_index"])
    return state.last_settle_index


class DevLightningNode:
    """Invoices that look real (signed regtest BOLT11, sha256(preimage) hashes) but move no money.

    With `state_file=None` everything stays in this object; `settle()` pays an invoice.
    With a state file, invoices and settlements live in that file (`dev_journal.StateJournal`:
    an append-only journal under an exclusive `fcntl.flock`, not fsynced), so another
    process (`lnvps dev pay PAYMENT_ID`, which builds its own DevLightningNode on the same file
    and calls `settle`) can pay an invoice this process issued. Changes are appended in the
    event loop when the file lock is free (else on a thread that waits for it); changes made
    while an earlier batch is on a thread are then written together. `settled_invoices` reads
    what was appended every `poll_interval` seconds (and at once after a settlement made
    through this object). Settle indexes increase by one per settlement.

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
        self._journal = StateJournal(self._path) if self._path is not None else None
        self._memory = DevState()
        self._poll_interval = poll_interval
        self._clock: Clock = clock or SystemClock()
        self._changed: asyncio.Event | None = None
        self._waiting: list[tuple[Change[Any], asyncio.Future[Any]]] = []
        self._writer: asyncio.Task[None] | None = None

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
        key = payment_hash.hex()
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

        def add(state: DevState) -> tuple[None, str]:
            state.put(key, record)
            return None, key

        await self._update(add)
        return Invoice(
            payment_hash=payment_hash, bolt11=bolt11, amount_msat=amount_msat, expires_at=expires_at
        )

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        key = payment_hash.hex()

        def cancel(state: DevState) -> tuple[None, str | None]:
            record = state.invoices.get(key)
            if record is None or record["state"] != "OPEN":
                return None, None
            state.put(key, {**record, "state": "CANCELED"})
            return None, key

        await self._update(cancel)

    def settled_invoices(self, after_payment_hash: bytes | None) -> AsyncIterator[SettledInvoice]:
        # The starting point is fixed now, so "live" means "settled after this call".
        try:
            start: int | LightningUnavailable = self._query_now(
                lambda state: _start_index(state, after_payment_hash)
            )
        except LightningUnavailable as exc:
            start = exc
        return self._settlements(start)

    def settlements_after(self, settle_index: int) -> AsyncIterator[SettledInvoice]:
        if settle_index < 0:
            raise ValueError(f"settle index must be ≥ 0, got {settle_index}")
        return self._settlements(settle_index)

    async def lookup_settlement(self, payment_hash: bytes) -> SettledInvoice | None:
        key = payment_hash.hex()

        def find(state: DevState) -> SettledInvoice | None:
            record = state.invoices.get(key)
            if record is None or record["state"] != "SETTLED":
                return None
            return _settled(key, record)

        return await self._query(find)

    # -- dev controls ---------------------------------------------------------------------

    async def settle(self, payment_hash: bytes) -> SettledInvoice:
        """Pay an open invoice in full (idempotent for a settled one); DevInvoiceError if not."""
        now = self._clock.now()
        key = payment_hash.hex()

        def settle(state: DevState) -> tuple[SettledInvoice, str | None]:
            record = state.invoices.get(key)
            if record is None:
                where = self._path if self._path is not None else "this process"
                raise DevInvoiceError(f"no dev invoice with payment hash {key} in {where}")
            if record["state"] == "SETTLED":
                return _settled(key, record), None
            if record["state"] == "CANCELED":
                raise DevInvoiceError(f"dev invoice {key} was cancelled")
            if datetime.fromisoformat(str(record["expires_at"])) <= now:
                raise DevInvoiceError(f"dev invoice {key} expired")
            settled = {
                **record,
                "state": "SETTLED",
                "settle_index": state.last_settle_index + 1,
                "settled_at": now.isoformat(),
                "amount_paid_msat": record["amount_msat"],
            }
            state.put(key, settled)
            return _settled(key, settled), key

        result: SettledInvoice = await self._update(settle, settles=True)
        return result

    async def invoice_state(self, payment_hash: bytes) -> str | None:
        """OPEN, SETTLED or CANCELED (None if unknown); expiry is not reflected."""
        key = payment_hash.hex()

        def state_of(state: DevState) -> str | None:
            record = state.invoices.get(key)
            return None if record is None else str(record["state"])

        return await self._query(state_of)

    # -- storage --------------------------------------------------------------------------

    async def _settlements(
        self, start: int | LightningUnavailable
    ) -> AsyncIterator[SettledInvoice]:
        if isinstance(start, LightningUnavailable):
            raise start
        last = start
        while True:
            changed = self._event()
            for settled in await self._query(functools.partial(_settled_after, index=last)):
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

    def _query_now(self, read: Callable[[DevState], T]) -> T:
        return read(self._memory) if self._journal is None else self._journal.query(read)

    async def _query(self, read: Callable[[DevState], T]) -> T:
        if self._journal is None:
            return read(self._memory)
        return await asyncio.to_thread(self._journal.query, read)

    async def _update(self, change: Change[T], *, settles: bool = False) -> T:
        """Apply `change` (in memory, or written to the journal with those waiting); with
        `settles`, wake the settlement streams at once. Only a settlement can give them
        something new: waking them for every new or cancelled invoice cost each a thread
        hop and a read of the file for nothing (issue 10)."""
        if self._journal is None:
            result, _ = change(self._memory)
        else:
            future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
            self._waiting.append((change, future))
            if self._writer is None or self._writer.done():
                self._writer = asyncio.create_task(self._write_waiting(self._journal))
            result = await future
        if settles:
            self._notify()
        return result

    async def _write_waiting(self, journal: StateJournal) -> None:
        """Write the waiting changes, a batch at a time, until none is left: in the loop when
        the journal's lock is free (an append without fsync takes microseconds), else on a
        thread that waits for it (another process, e.g. `lnvps dev pay`, is writing)."""
        while self._waiting:
            batch, self._waiting = self._waiting, []
            changes = [c for c, _ in batch]
            try:
                outcomes = journal.try_apply(changes)
                if outcomes is None:
                    outcomes = await asyncio.to_thread(journal.apply, changes)
            except Exception as exc:  # every change of the batch fails with it
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue
                if isinstance(outcome, Exception):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)
