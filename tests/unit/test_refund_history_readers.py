"""What a refund reads back from a VM's history: the period each payment bought (its Renewed
entry) and the cuts refunds made; entries of anything else are not periods."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import attrs

from app.admin.refund_record import CREDIT, cuts_of, refund_event
from app.billing.booked_records import paid_period
from domain.enums import VmHistoryActionType
from domain.model import VmHistory, vm_event
from domain.paid_periods import Cut, PaidPeriod

BOUGHT = datetime(2026, 1, 31, 12, tzinfo=UTC)
ENDS = datetime(2026, 2, 28, 12, tzinfo=UTC)
SECONDS = 28 * 86_400


def _renewed(entry_id: int, metadata: object, after: object = None) -> VmHistory:
    entry = vm_event(
        1,
        VmHistoryActionType.RENEWED,
        BOUGHT,
        "renewed",
        before={"expires": None},
        after=after if after is not None else {"expires": ENDS.isoformat()},
        metadata=metadata,
    )
    return attrs.evolve(entry, id=entry_id)


def test_a_payments_renewed_entry_is_the_period_it_bought() -> None:
    entry = _renewed(7, {"payment_id": "ab" * 32, "time_added_seconds": SECONDS})
    assert paid_period(entry) == PaidPeriod(key="ab" * 32, order=7, start=BOUGHT, end=ENDS)


def test_a_period_credited_by_value_is_marked_so() -> None:
    """Its time was measured on the subscription's grid (review r18): a refund measures it
    there too. A stale quote credited as quoted, or a credit entry it cannot read, is not."""
    meta = {"payment_id": "ab", "time_added_seconds": SECONDS}
    by_value = _renewed(7, {**meta, "credit": {"mode": "by_value", "seconds": SECONDS}})
    assert paid_period(by_value) == PaidPeriod(
        key="ab", order=7, start=BOUGHT, end=ENDS, by_value=True
    )
    for credit in ({"mode": "calendar"}, {"mode": "unpriced"}, "by_value", None):
        entry = _renewed(8, {**meta, "credit": credit})
        period = paid_period(entry)
        assert period is not None and not period.by_value, credit


def test_the_references_renewed_entry_reads_the_same() -> None:
    """The reference writes the same keys, its new expiry as `…Z`."""
    entry = _renewed(
        3, {"payment_id": "cd", "time_added_seconds": SECONDS}, {"expires": "2026-02-28T12:00:00Z"}
    )
    assert paid_period(entry) == PaidPeriod(key="cd", order=3, start=BOUGHT, end=ENDS)


def test_entries_that_bought_no_period_are_none() -> None:
    extend = _renewed(1, {"admin_action": True, "days_extended": 3})
    nothing = _renewed(2, {"payment_id": "ab", "time_added_seconds": 0})
    naive = _renewed(3, {"payment_id": "ab", "time_added_seconds": 1}, {"expires": "2026-02-28"})
    unreadable = _renewed(4, {"payment_id": "ab", "time_added_seconds": 1}, {"expires": "soon"})
    flag = _renewed(5, {"payment_id": "ab", "time_added_seconds": True})
    other = attrs.evolve(
        _renewed(6, {"payment_id": "ab", "time_added_seconds": SECONDS}),
        action_type=VmHistoryActionType.PAYMENT_RECEIVED,
    )
    for entry in (extend, nothing, naive, unreadable, flag, other):
        assert paid_period(entry) is None, entry


def test_refund_records_are_the_cuts_in_their_order() -> None:
    cut_to = BOUGHT + timedelta(days=4)
    record = refund_event(
        vm_id=1,
        kind=CREDIT,
        reference="sub:1:paid:none:until:0",
        admin_id=1,
        expires=ENDS,
        cut_to=cut_to,
        figure="113 EUR (smallest units)",
        now=cut_to,
        reason=None,
    )
    entries = [
        attrs.evolve(record, id=9),
        _renewed(8, {"payment_id": "ab", "time_added_seconds": SECONDS}),
        attrs.evolve(record, id=10, metadata={"refund": {"cut_to": "later"}}),
    ]
    assert cuts_of(entries) == [Cut(order=9, to=cut_to)]
