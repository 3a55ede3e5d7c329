"""Fakes with observable state for the billing use-case tests: node, gateway, queue, rates."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Mapping
from datetime import timedelta
from decimal import Decimal

from domain.exchange import ExchangeRate, RateTable
from domain.money import Currency
from ports.clock import Clock
from ports.fiat import FiatOrder, FiatUnavailable, OrderExpiry
from ports.lightning import Invoice, LightningUnavailable, SettledInvoice
from ports.queue import Delivery, Job


class FakeNode:
    """A Lightning node that issues numbered invoices; `down` makes every call fail, and
    `settled` holds the settlements a test makes (none by default)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.down = False
        self.invoices: dict[bytes, Invoice] = {}
        self.memos: dict[bytes, str] = {}
        self.cancelled: list[bytes] = []
        #: settlements the node holds (by payment hash), whether the intake saw them or not
        self.settled: dict[bytes, SettledInvoice] = {}

    async def create_invoice(self, amount_msat: int, memo: str, expiry_seconds: int) -> Invoice:
        await asyncio.sleep(0)  # a network round trip: lets concurrent requests interleave
        if self.down:
            raise LightningUnavailable("connection refused")
        assert amount_msat % 1000 == 0
        payment_hash = hashlib.sha256(f"invoice-{len(self.invoices)}".encode()).digest()
        invoice = Invoice(
            payment_hash=payment_hash,
            bolt11=f"lnbcrt{amount_msat // 1000}n1fake{len(self.invoices)}",
            amount_msat=amount_msat,
            expires_at=self.clock.now() + timedelta(seconds=expiry_seconds),
        )
        self.invoices[payment_hash] = invoice
        self.memos[payment_hash] = memo
        return invoice

    async def cancel_invoice(self, payment_hash: bytes) -> None:
        if self.down:
            raise LightningUnavailable("connection refused")
        self.cancelled.append(payment_hash)

    async def settled_invoices(
        self, after_payment_hash: bytes | None
    ) -> AsyncIterator[SettledInvoice]:
        if False:  # pragma: no cover - the tests never listen
            yield SettledInvoice(
                payment_hash=b"", settle_index=0, amount_paid_msat=0, settled_at=self.clock.now()
            )

    async def settlements_after(self, settle_index: int) -> AsyncIterator[SettledInvoice]:
        if False:  # pragma: no cover - the tests never listen
            yield SettledInvoice(
                payment_hash=b"", settle_index=0, amount_paid_msat=0, settled_at=self.clock.now()
            )

    async def lookup_settlement(self, payment_hash: bytes) -> SettledInvoice | None:
        if self.down:
            raise LightningUnavailable("connection refused")
        return self.settled.get(payment_hash)  # only what a test settled


class FakeGateway:
    """A card gateway keeping its orders; `down` makes every call fail."""

    def __init__(self, name: str = "revolut") -> None:
        self.name = name
        self.down = False
        self.orders: dict[str, tuple[int, str, str]] = {}
        #: the expiry each order was created with
        self.expiries: dict[str, OrderExpiry | None] = {}
        self.cancelled: list[str] = []
        #: orders the provider says are NOT paid (every other order reads as paid)
        self.unpaid: set[str] = set()
        #: orders whose cancel always fails (a provider bug on that one order)
        self.failing: set[str] = set()

    async def create_order(
        self,
        amount_minor: int,
        currency: str,
        description: str,
        expiry: OrderExpiry | None = None,
    ) -> FiatOrder:
        if self.down:
            raise FiatUnavailable("503 from provider")
        order_id = f"{self.name}-order-{len(self.orders) + 1}"
        self.orders[order_id] = (amount_minor, currency, description)
        self.expiries[order_id] = expiry
        return FiatOrder(
            external_id=order_id, external_data=f'{{"id":"{order_id}"}}', amount_minor=amount_minor
        )

    async def cancel_order(self, external_id: str) -> None:
        if self.down or external_id in self.failing:
            raise FiatUnavailable("503 from provider")
        self.cancelled.append(external_id)

    async def is_paid(self, external_id: str) -> bool:
        if self.down:
            raise FiatUnavailable("503 from provider")
        return external_id in self.orders and external_id not in self.unpaid


class RecordingQueue:
    """A WorkQueue that only records what was sent."""

    claim_idle_ms = 10_000

    def __init__(self) -> None:
        self.sent: list[Job] = []

    async def send(self, job: Job) -> str:
        await asyncio.sleep(0)  # let concurrent completions interleave
        self.sent.append(job)
        return str(len(self.sent))

    async def receive(self, max_jobs: int = 10, block_ms: int = 100) -> list[Delivery]:
        return []

    async def ack(self, delivery: Delivery, *, then: Job | None = None) -> bool:
        if then is not None:
            self.sent.append(then)
        return True

    async def keep(self, delivery: Delivery) -> bool:
        return False

    async def fail(self, delivery: Delivery, *, counted: bool = True) -> None:
        return None


class FreshRates:
    """A RateStore whose rates are always observed "now" (the tests move the clock)."""

    def __init__(
        self,
        clock: Clock,
        eur_per_btc: Decimal = Decimal(100_000),
        others: Mapping[Currency, Decimal] | None = None,
    ) -> None:
        self.clock = clock
        self.eur = eur_per_btc
        self.others = dict(others or {})

    async def save(self, rates: object) -> None:
        return None

    async def table(self) -> RateTable:
        now = self.clock.now()
        return RateTable.of(
            [
                ExchangeRate(Currency.EUR, self.eur, now),
                ExchangeRate(Currency.USD, self.eur, now),
                *(ExchangeRate(c, rate, now) for c, rate in self.others.items()),
            ]
        )
