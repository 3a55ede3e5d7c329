"""Who completed a payment by hand, and whether the Lightning node's settlement was counted."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import attrs

from domain.intervals import require_utc

#: key of a paid payment's `metadata` (and of its VM history entries): the admin's completion
ADMIN_COMPLETION_KEY = "completed_by_admin"

#: How much later than the completion's booking (our clock) a settlement must be stamped (the
#: node's clock) to be surely after it. The booking is stamped under its locks, moments before
#: its commit; the margin covers what follows in that transaction (its records, the commit:
#: well under a second, seconds on a busy database) and the skew between the node's clock and
#: ours (both NTP-synced, so under a second; LND's whole-second `settle_date` only makes a
#: settlement look earlier). Two minutes is far beyond both, and a real payment made after an
#: admin completed the same payment by hand comes minutes to days later; one that falls inside
#: is only reported, not lost.
RACE_MARGIN = timedelta(minutes=2)


class NodeSettlement(StrEnum):
    """What the Lightning node said of the invoice when an admin completed its payment.

    COUNTED: the node had settled it (or the intake had recorded its settlement): the admin's
    completion counted that money, so the settlement met later is the same money. NONE: the
    node had no settlement when asked: one met later, surely after the completion was
    booked, is money the completion did not count (`AdminCompletion.settled_later`).
    UNKNOWN: the node could not be asked: a later settlement may be either."""

    COUNTED = "counted"
    NONE = "none"
    UNKNOWN = "unknown"


class SettledLater(StrEnum):
    """What a Lightning settlement met after an admin's completion of its payment is."""

    #: the completion counted it (`NodeSettlement.COUNTED`): the same money
    SAME_MONEY = "same_money"
    #: the node had none when asked, and this one is stamped surely after the booking
    NOT_COUNTED = "not_counted"
    #: the node could not be asked (or the payment was not a Lightning one)
    NODE_NOT_ASKED = "node_not_asked"
    #: the node had none when asked, but this one is stamped not clearly after the booking
    #: (within `RACE_MARGIN`): it may have settled between the node's answer and the booking
    IN_RACE_WINDOW = "in_race_window"
    #: the node had none when asked, but the record is older than `booked_at`: when it was
    #: booked is not known, so neither is whether this settlement raced it
    UNTIMED = "untimed"


@attrs.frozen(kw_only=True)
class AdminCompletion:
    """An admin's completion of a payment; `settlement` None for a payment not paid over
    Lightning (a card order, a bank transfer). `booked_at`: when the booking recorded it
    (aware UTC, our clock); None in a record written before it was kept, or until booked."""

    admin_id: int
    settlement: NodeSettlement | None = None
    booked_at: datetime | None = None
    #: what the Lightning node had received when it was less than the payment's total: the
    #: admin counted a short settlement as paid, the rest waived (its invoice states what
    #: was received); None for a payment paid in full or not known to be short
    short_received_msat: int | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"admin_id": self.admin_id}
        if self.settlement is not None:
            out["node_settlement"] = self.settlement.value
        if self.booked_at is not None:
            out["booked_at"] = require_utc(self.booked_at).isoformat()
        if self.short_received_msat is not None:
            out["short_received_msat"] = self.short_received_msat
        return out

    @classmethod
    def from_json(cls, raw: object) -> AdminCompletion | None:
        """The record kept in a payment's metadata; None when absent or malformed. A
        `booked_at` that is not an aware ISO time reads as missing (then a later settlement
        is reported, never credited)."""
        if not isinstance(raw, Mapping):
            return None
        admin_id = raw.get("admin_id")
        if not isinstance(admin_id, int) or isinstance(admin_id, bool):
            return None
        seen = raw.get("node_settlement")
        try:
            settlement = None if seen is None else NodeSettlement(seen)
        except ValueError:
            return None
        short = raw.get("short_received_msat")
        if short is not None and (type(short) is not int or short < 0):
            return None
        return cls(
            admin_id=admin_id,
            settlement=settlement,
            booked_at=_aware(raw.get("booked_at")),
            short_received_msat=short,
        )

    def settled_later(self, settled_at: datetime) -> SettledLater:
        """What a Lightning settlement stamped `settled_at` by the node, met after this
        completion, is. Only one the node had not settled when asked (`NONE`) and stamped
        more than `RACE_MARGIN` after the booking is surely money the completion did not
        count: one that settled while the admin completed the payment (after the node's
        answer, before the commit) was likely what the admin gave the service for, and
        nobody can tell. A record without `booked_at` (written before it was kept) cannot
        tell either, so its settlement is reported, not credited."""
        if self.settlement is NodeSettlement.COUNTED:
            return SettledLater.SAME_MONEY
        if self.settlement is not NodeSettlement.NONE:
            return SettledLater.NODE_NOT_ASKED
        if self.booked_at is None:
            return SettledLater.UNTIMED
        if settled_at.tzinfo is None or settled_at <= self.booked_at + RACE_MARGIN:
            return SettledLater.IN_RACE_WINDOW
        return SettledLater.NOT_COUNTED


def _aware(raw: object) -> datetime | None:
    """An aware time kept as ISO text; None when absent or not one."""
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return None if moment.tzinfo is None else moment


def admin_completion_of(meta: Mapping[str, Any]) -> AdminCompletion | None:
    """The admin's completion recorded in a payment's metadata (None: not completed by hand)."""
    return AdminCompletion.from_json(meta.get(ADMIN_COMPLETION_KEY))
