"""Who completed a payment by hand, and whether the Lightning node's settlement was counted."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import attrs

#: key of a paid payment's `metadata` (and of its VM history entries): the admin's completion
ADMIN_COMPLETION_KEY = "completed_by_admin"


class NodeSettlement(StrEnum):
    """What the Lightning node said of the invoice when an admin completed its payment.

    COUNTED: the node had settled it (or the intake had recorded its settlement): the admin's
    completion counted that money, so the settlement met later is the same money. NONE: the
    node had no settlement: one met later is money the completion did not count. UNKNOWN: the
    node could not be asked: a later settlement may be either."""

    COUNTED = "counted"
    NONE = "none"
    UNKNOWN = "unknown"


@attrs.frozen(kw_only=True)
class AdminCompletion:
    """An admin's completion of a payment; `settlement` None for a payment not paid over
    Lightning (a card order, a bank transfer)."""

    admin_id: int
    settlement: NodeSettlement | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"admin_id": self.admin_id}
        if self.settlement is not None:
            out["node_settlement"] = self.settlement.value
        return out

    @classmethod
    def from_json(cls, raw: object) -> AdminCompletion | None:
        """The record kept in a payment's metadata; None when absent or malformed."""
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
        return cls(admin_id=admin_id, settlement=settlement)

    @property
    def money_not_counted(self) -> bool:
        """A Lightning settlement met after this completion is money it did not count."""
        return self.settlement is NodeSettlement.NONE


def admin_completion_of(meta: Mapping[str, Any]) -> AdminCompletion | None:
    """The admin's completion recorded in a payment's metadata (None: not completed by hand)."""
    return AdminCompletion.from_json(meta.get(ADMIN_COMPLETION_KEY))
