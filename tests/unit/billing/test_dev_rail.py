"""The billing flow over the dev Lightning rail: real-looking BOLT11, settlement, cancellation."""

from __future__ import annotations

import asyncio
import fcntl
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from adapters.lightning.bolt11 import payment_hash_of
from adapters.lightning.dev import DevLightningNode
from adapters.lightning.dev_journal import DevState, StateJournal
from app.billing.completion import complete_payment
from app.billing.rails import PaymentRails
from app.billing.renewal import renew
from app.billing.upgrades import create_upgrade_payment
from domain.upgrade import UpgradeConfig
from tests.unit.billing.world import ALICE, Shop

T = TypeVar("T")


async def test_an_order_paid_on_the_dev_node_is_spawned_and_rival_upgrades_cancelled(
    shop: Shop,
) -> None:
    node = DevLightningNode(clock=shop.clock)
    rails = PaymentRails(node)
    vm = await shop.order_custom()
    payment = await renew(
        shop.factory, shop.clock, rails, shop.rates, shop.tax_rates, user_id=ALICE, vm_id=vm.id
    )
    assert isinstance(payment.external_data, str)
    assert payment_hash_of(payment.external_data) == payment.id
    settled = await node.settle(payment.id)
    report = await complete_payment(
        shop.factory, shop.clock, rails, shop.queue, payment_id=settled.payment_hash
    )
    assert report.completed and [j.kind for j in report.jobs] == ["SpawnVm"]
    assert (await shop.subscription(vm)).expires == datetime(2026, 2, 28, 12, tzinfo=UTC)

    upgrades = [
        await create_upgrade_payment(
            shop.factory,
            shop.clock,
            rails,
            shop.rates,
            user_id=ALICE,
            vm_id=vm.id,
            cfg=UpgradeConfig(new_cpu=cpu),
        )
        for cpu in (4, 6)
    ]
    await node.settle(upgrades[0].id)
    report = await complete_payment(
        shop.factory, shop.clock, rails, shop.queue, payment_id=upgrades[0].id
    )
    assert report.cancelled == (upgrades[1].id,)
    assert await node.invoice_state(upgrades[1].id) == "CANCELED"


async def test_only_a_settlement_wakes_a_settlement_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New and cancelled invoices cannot settle anything: the streams are not woken for them
    (each wake-up read the state file on a thread); a settlement wakes them at once."""
    node = DevLightningNode(tmp_path / "dev.json", poll_interval=60)
    reads = 0
    real_query = StateJournal.query

    def counting(self: StateJournal, read: Callable[[DevState], T]) -> T:
        nonlocal reads
        reads += 1
        return real_query(self, read)

    monkeypatch.setattr(StateJournal, "query", counting)
    got: list[bytes] = []

    async def consume() -> None:
        async for settled in node.settled_invoices(None):
            got.append(settled.payment_hash)

    stream = asyncio.create_task(consume())
    try:
        await asyncio.sleep(0.05)
        before = reads
        invoices = [await node.create_invoice(21_000, f"n{n}", 600) for n in range(5)]
        await node.cancel_invoice(invoices[0].payment_hash)
        await asyncio.sleep(0.05)
        assert reads == before
        await node.settle(invoices[1].payment_hash)
        for _ in range(200):  # far less than the 60 s poll
            if got:
                break
            await asyncio.sleep(0.01)
        assert got == [invoices[1].payment_hash]
    finally:
        stream.cancel()


async def test_a_new_invoice_is_appended_in_the_loop_while_the_file_lock_is_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[object] = []
    real_to_thread = asyncio.to_thread

    async def counting(func: object, /, *args: object) -> object:
        sent.append(func)
        return await real_to_thread(func, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(asyncio, "to_thread", counting)
    path = tmp_path / "dev.json"
    node = DevLightningNode(path)
    invoice = await node.create_invoice(21_000, "loop", 600)
    assert sent == []
    again = DevLightningNode(path)  # another reader sees it in the file
    assert await again.invoice_state(invoice.payment_hash) == "OPEN"


async def test_while_another_process_holds_the_file_lock_the_append_waits_on_a_thread(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dev.json"
    node = DevLightningNode(path)
    await node.create_invoice(21_000, "first", 600)  # the lock file exists now
    with (tmp_path / "dev.json.lock").open("a") as other:  # another open file: another holder
        fcntl.flock(other.fileno(), fcntl.LOCK_EX)
        creating = asyncio.create_task(node.create_invoice(21_000, "second", 600))
        await asyncio.sleep(0.1)  # the loop runs meanwhile
        assert not creating.done()
        fcntl.flock(other.fileno(), fcntl.LOCK_UN)
        invoice = await asyncio.wait_for(creating, 5)
    assert await DevLightningNode(path).invoice_state(invoice.payment_hash) == "OPEN"
