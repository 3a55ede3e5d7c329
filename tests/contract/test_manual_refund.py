"""An admin refund by hand is recorded once, on memory, SQLite and MariaDB: the paid time is
cut to its start, a second refund of that time (by hand or to credit, either order, or
racing) is refused with 409, and a renewal quoted before it buys its own time only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.admin import manual_refund
from app.admin.refund_record import AlreadyRefunded, refund_event
from domain.enums import PaymentMethod
from domain.errors import InvalidInput
from domain.model import VmHistory
from ports.jobs import SendAdminNotification
from tests.contract import lifecycle_world, storage_backends
from tests.contract.refunds import (
    GROSS,
    UNUSED,
    by_hand,
    notified,
    paid_vm,
    race,
    records,
    reference,
    refunded_once,
    to_credit,
)
from tests.unit.billing.world import Shop

database = storage_backends.database
shop = lifecycle_world.shop


def written_before_the_uncovered_amount(**fields: Any) -> VmHistory:
    """A refund by hand's record as written before it stored the uncovered value as a number
    beside its figure: the figure alone."""
    extra = {k: v for k, v in fields["extra"].items() if k != "uncovered_amount"}
    return refund_event(**{**fields, "extra": extra})


@pytest.mark.parametrize("old_record", [False, True], ids=["record", "old-record-figure-only"])
async def test_a_refund_by_hand_ends_the_time_and_is_recorded_once(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, old_record: bool
) -> None:
    """Nothing is uncovered: the notice says nothing is capped, from a record written before
    the uncovered value was stored as a number too (its figure "0 EUR ...") as well."""
    if old_record:
        monkeypatch.setattr(manual_refund, "refund_event", written_before_the_uncovered_amount)
    vm = await paid_vm(shop)
    expires = (await shop.subscription(vm)).expires
    assert expires is not None

    await by_hand(shop, vm)

    now = shop.clock.now()
    assert (await shop.subscription(vm)).expires == now
    [record] = await records(shop, vm)
    assert record == {
        "kind": "manual",
        "reference": await reference(shop, vm, expires),
        "cut_to": int(now.timestamp()),
        "amount": f"{GROSS} EUR (smallest units)",
        "method": "revolut",
        "seconds": 24 * 86400,
        "invoice": None,
        "value": f"{UNUSED} EUR (smallest units)",
        "credit_notes": ["CN-2026-000001"],
        "credited": f"{GROSS} EUR (smallest units)",
        "uncovered": "0 EUR (smallest units)",
        **({} if old_record else {"uncovered_amount": 0}),
        "rate": "1",
    }
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification) and f"{GROSS} EUR" in notice.message
    assert "CN-2026-000001" in notice.message and "Capped" not in notice.message
    with pytest.raises(AlreadyRefunded):
        await by_hand(shop, vm)
    with pytest.raises(AlreadyRefunded):
        await to_credit(shop, vm)
    assert await shop.balances() == {}
    assert len(await records(shop, vm)) == 1 and len(shop.queue.sent) == 1


async def test_a_refund_to_credit_then_by_hand_is_refused(shop: Shop) -> None:
    vm = await paid_vm(shop)
    await to_credit(shop, vm)
    shop.clock.advance(timedelta(hours=1))
    shop.queue.sent.clear()

    with pytest.raises(AlreadyRefunded):
        await by_hand(shop, vm)

    assert [r["kind"] for r in await records(shop, vm)] == ["credit"]
    assert shop.queue.sent == []


async def test_racing_refunds_by_hand_and_to_credit_refund_once(shop: Shop) -> None:
    vm = await paid_vm(shop)

    results = await race(
        shop, lambda s: by_hand(s, vm), lambda s: to_credit(s, vm), lambda s: by_hand(s, vm)
    )

    await refunded_once(shop, vm, results)
    assert (await shop.subscription(vm)).expires == shop.clock.now()


async def test_a_repeat_between_the_refund_and_its_notice_sends_the_one_notice(
    shop: Shop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A repeat that finds the refund committed and its notice not yet recorded queued cannot
    tell it from one after a lost notice: it queues the notice (said to be sent again), and
    the first request, finding it queued, answers with that job: one notice, two answers."""
    vm = await paid_vm(shop)
    tell_admins = manual_refund._tell_admins
    repeats: list[str] = []

    async def repeated_first(*args: Any, **kw: Any) -> str:
        if not repeats:  # the repeat's own notice goes on as written
            repeats.append("")
            repeats[0] = await by_hand(shop, vm)
        return await tell_admins(*args, **kw)

    monkeypatch.setattr(manual_refund, "_tell_admins", repeated_first)
    job_id = await by_hand(shop, vm)

    assert repeats == [job_id]
    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification) and "sent again" in notice.message
    assert len(await records(shop, vm)) == 1
    assert [m["job_id"] for m in await notified(shop, vm)] == [job_id]
    with pytest.raises(AlreadyRefunded):
        await by_hand(shop, vm)


async def test_a_refund_from_a_later_date_leaves_the_time_before_it(shop: Shop) -> None:
    """Refunded from 10 days on: the time until then is kept (and may be refunded on its
    own), the time from then cannot be refunded again."""
    vm = await paid_vm(shop)
    later = shop.clock.now() + timedelta(days=10)

    await by_hand(shop, vm, later)

    assert (await shop.subscription(vm)).expires == later
    with pytest.raises(AlreadyRefunded):
        await by_hand(shop, vm, later)
    booked = await to_credit(shop, vm)  # the 10 days before it: other time
    assert (await shop.subscription(vm)).expires == shop.clock.now()
    assert [r["kind"] for r in await records(shop, vm)] == ["credit", "manual"]
    assert booked is not None


async def test_a_refund_from_before_now_is_refused_and_changes_nothing(shop: Shop) -> None:
    vm = await paid_vm(shop)
    before = await shop.subscription(vm)

    with pytest.raises(InvalidInput, match="must not be earlier than now"):
        await by_hand(shop, vm, shop.clock.now() - timedelta(seconds=1))

    assert await shop.subscription(vm) == before
    assert await records(shop, vm) == [] and shop.queue.sent == []


async def test_a_renewal_quoted_before_the_refund_buys_only_its_own_time(shop: Shop) -> None:
    """Its quote was made while the refunded time was still there; paid after the refund it
    extends from the cut expiry (now), not from the expiry that was refunded."""
    vm = await paid_vm(shop)
    pending = await shop.renew(vm)
    await by_hand(shop, vm)
    shop.clock.advance(timedelta(minutes=10))

    await shop.complete(pending)

    sub = await shop.subscription(vm)
    assert sub.expires is not None
    paid_at = shop.clock.now()
    assert paid_at < sub.expires <= paid_at + timedelta(days=31)


INVOICE = "lnbc1500n1pexampleinvoice"


def _with_the_old_notice_flag(**fields: Any) -> VmHistory:
    """A refund by hand's record as written before its kind alone said a notice belongs to
    it: with `"notice": true` too."""
    return refund_event(**{**fields, "extra": {**fields["extra"], "notice": True}})


@pytest.mark.parametrize("old_record", [False, True], ids=["record", "old-record-with-flag"])
async def test_a_refund_whose_notice_was_not_queued_is_notified_when_asked_again(
    shop: Shop, monkeypatch: pytest.MonkeyPatch, old_record: bool
) -> None:
    """The queue is down after the refund committed: the admin gets the error, the refund
    stands with its payout details stored, and asking again sends its notice (the stored
    invoice and amount, the reference, marked as a repeat) instead of 409; once the notice
    is queued a repeat is 409 and tells nobody. A record stored with the notice flag of
    older records reads the same."""
    if old_record:
        monkeypatch.setattr(manual_refund, "refund_event", _with_the_old_notice_flag)
    vm = await paid_vm(shop)
    expires = (await shop.subscription(vm)).expires
    assert expires is not None
    key = await reference(shop, vm, expires)
    real_send = shop.queue.send

    async def down(job: object) -> str:
        raise ConnectionError("queue down")

    monkeypatch.setattr(shop.queue, "send", down)
    with pytest.raises(ConnectionError):
        await by_hand(shop, vm, invoice=INVOICE, method=PaymentMethod.LIGHTNING)
    monkeypatch.setattr(shop.queue, "send", real_send)

    cut = shop.clock.now()
    assert (await shop.subscription(vm)).expires == cut
    [record] = await records(shop, vm)
    assert (record["invoice"], record["method"], record["kind"]) == (INVOICE, "lightning", "manual")
    assert record.get("notice") == (True if old_record else None)
    assert await notified(shop, vm) == [] and shop.queue.sent == []
    shop.clock.advance(timedelta(minutes=5))

    # the admin asks again, in another currency: the recorded refund is the one notified
    job_id = await by_hand(shop, vm, method=PaymentMethod.REVOLUT)

    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification)
    assert INVOICE in notice.message and key in notice.message
    assert str(record["amount"]) in notice.message and "Lightning" in notice.message
    assert "sent again" in notice.message and "host retired" in notice.message
    assert await notified(shop, vm) == [
        {"reference": key, "cut_to": int(cut.timestamp()), "job_id": job_id}
    ]
    assert (await shop.subscription(vm)).expires == cut and len(await records(shop, vm)) == 1
    with pytest.raises(AlreadyRefunded):
        await by_hand(shop, vm, invoice=INVOICE, method=PaymentMethod.LIGHTNING)
    with pytest.raises(AlreadyRefunded):
        await to_credit(shop, vm)
    assert len(shop.queue.sent) == 1 and len(await notified(shop, vm)) == 1


async def test_a_first_notice_carries_the_reference_and_is_recorded_sent(shop: Shop) -> None:
    vm = await paid_vm(shop)
    expires = (await shop.subscription(vm)).expires
    assert expires is not None

    job_id = await by_hand(shop, vm, invoice=INVOICE, method=PaymentMethod.LIGHTNING)

    [notice] = shop.queue.sent
    assert isinstance(notice, SendAdminNotification) and "sent again" not in notice.message
    key = await reference(shop, vm, expires)
    assert key in notice.message and INVOICE in notice.message
    [mark] = await notified(shop, vm)
    assert mark == {
        "reference": key,
        "cut_to": int(shop.clock.now().timestamp()),
        "job_id": job_id,
    }
