"""The refund tests' shared steps: a VM paid and partly used, the admin's refunds by hand and to
credit, their records, and refunds raced against each other."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast

import attrs
import pytest

from app.admin.credit_refund import refund_to_credit
from app.admin.manual_refund import refund_by_hand
from app.admin.refund_record import REFUND_KEY, AlreadyRefunded
from app.admin.vm_removal import refund_amount
from app.billing.credit_balance import Booked
from domain.enums import PaymentMethod, VmHistoryActionType
from domain.model import Vm
from ports.jobs import SendAdminNotification
from tests.contract.lock_waits import Gate, gated
from tests.unit.billing.world import ALICE, Shop

#: 4 days after the purchase on 31 Jan: 24 of the 28 days of the month bought (→ 28 Feb) left
DAYS_USED = 4
#: the unused time at the plan's EUR 1.32: 132 × 24 / 28 = 113.14 → 113 cents, before tax
UNUSED = 113
#: the 23 % VAT Alice (IE) paid on it, floor(113 × 0.23) = 25
VAT = 25
#: what is paid back: the value and its VAT
GROSS = UNUSED + VAT
#: the history metadata key of "the refund's notice was queued" (refund_record.NOTIFIED_KEY)
NOTIFIED_KEY = "refund_notified"


async def paid_vm(shop: Shop, months: int = 1) -> Vm:
    """ALICE's VM, `months` renewals paid, `DAYS_USED` days used; the queue emptied."""
    vm = await shop.order()
    for _ in range(months):
        await shop.complete(await shop.renew(vm))
    shop.clock.advance(timedelta(days=DAYS_USED))
    shop.queue.sent.clear()
    return vm


async def reference(shop: Shop, vm: Vm, expires: datetime) -> str:
    """The key of a refund of the VM's time up to `expires`, the end of the period its newest
    payment bought (`refund_record.refund_reference`)."""
    newest = (await shop.payments(vm))[0]
    sub = await shop.subscription(vm)
    return f"sub:{sub.id}:paid:{newest.id.hex()[:32]}:until:{int(expires.timestamp())}"


async def by_hand(
    shop: Shop,
    vm: Vm,
    from_date: datetime | None = None,
    *,
    invoice: str | None = None,
    method: PaymentMethod = PaymentMethod.REVOLUT,
) -> str:
    """An admin's refund by hand of the VM's unused time; the notice's job id."""
    return await refund_by_hand(
        shop.factory,
        shop.rates,
        shop.clock,
        shop.queue,
        vm_id=vm.id,
        method=method,
        from_date=from_date,
        lightning_invoice=invoice,
        admin_id=ALICE,
        reason="host retired",
    )


async def to_credit(shop: Shop, vm: Vm) -> Booked:
    """An admin's refund of the VM's unused time to its owner's credit."""
    return await refund_to_credit(
        shop.factory, shop.clock, shop.rates, vm_id=vm.id, admin_id=ALICE, reason=None
    )


async def _marks(shop: Shop, vm: Vm, key: str) -> list[dict[str, object]]:
    entries = await shop.history(vm, VmHistoryActionType.STATE_CHANGED)
    return [e.metadata[key] for e in entries if isinstance(e.metadata, dict) and key in e.metadata]


async def records(shop: Shop, vm: Vm) -> list[dict[str, object]]:
    """The VM's refund records, newest first."""
    return await _marks(shop, vm, REFUND_KEY)


async def notified(shop: Shop, vm: Vm) -> list[dict[str, object]]:
    """The VM's "a refund's notice was queued" marks, newest first."""
    return await _marks(shop, vm, NOTIFIED_KEY)


Refund = Callable[[Shop], Awaitable[object]]


async def race(shop: Shop, *refunds: Refund) -> list[object]:
    """Run the refunds at once, each given the shop over one gated factory: the first to take
    the subscription's lock holds it until every other waits for that lock (or, on memory,
    for the store's one lock), so all are in flight before any decides; their results, an
    error in place of a result."""
    gate = Gate(len(refunds), shop.factory)
    racing = attrs.evolve(
        shop,
        # the gated factory hands out the same units of work (typed as the memory one's)
        factory=cast(Any, gated(shop.factory, gate, "subscriptions", "get_for_update")),
    )
    return await asyncio.gather(*(refund(racing) for refund in refunds), return_exceptions=True)


async def refunded_once(shop: Shop, vm: Vm, results: list[object]) -> dict[str, object]:
    """Of racing refunds of the same time, one is recorded (returned) and the others are
    refused (409), with one exception: a refund by hand repeated after the winner by hand
    committed but before its notice was recorded queued is taken for a repeat after a lost
    notice (they cannot be told apart) and answers with that notice's job, so every answer
    is the one notice's. A refund to credit has no notice: it answers alone."""
    refused = [r for r in results if isinstance(r, BaseException)]
    answers = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, AlreadyRefunded) for r in refused), results
    [record] = await records(shop, vm)
    if record["kind"] == "credit":
        assert len(answers) == 1 and isinstance(answers[0], Booked), results
        assert shop.queue.sent == [] and await notified(shop, vm) == []
        return record
    [mark] = await notified(shop, vm)
    assert answers and set(answers) == {mark["job_id"]}, results
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification) and str(record["reference"]) in notice.message
    return record


async def figure(shop: Shop, vm: Vm) -> int:
    """GET /vms/{id}/refund's value of the unused time (EUR, before tax)."""
    found = await refund_amount(
        shop.factory,
        shop.rates,
        shop.clock,
        vm_id=vm.id,
        method=PaymentMethod.REVOLUT,
        from_date=None,
    )
    return found.value.amount


async def credited(shop: Shop, vm: Vm) -> int:
    """A refund to credit's booked amount."""
    return (await to_credit(shop, vm)).entry.amount


async def by_hand_value(shop: Shop, vm: Vm) -> int:
    """A refund by hand's value before tax (its credit notes add the VAT paid on it)."""
    await by_hand(shop, vm)
    [record] = await records(shop, vm)
    return int(str(record["value"]).split()[0])


#: one admin refund path, answering the value it refunds
RefundPath = Callable[[Shop, Vm], Awaitable[int]]
#: every admin refund path: the GET figure, a refund to credit, a refund by hand
REFUND_PATHS = pytest.mark.parametrize(
    "path", [figure, credited, by_hand_value], ids=["get-figure", "to-credit", "by-hand"]
)
