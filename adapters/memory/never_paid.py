"""The never-paid IP-range order rule (D25), said once for the memory repositories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from domain.enums import SubscriptionType
from domain.model import Subscription
from ports.storage import NEVER_PAID_CLEANUP

#: a repository's rows of one table by name (`Repo._rows`)
Rows = Callable[[str], dict[Any, Any]]


def never_paid_ip_range(rows: Rows, s: Subscription, *, vms_too: bool) -> bool:
    """Never paid (not `in_service`: never set up, no expiry), sells an IP range (and no VM
    unless `vms_too`), not cleaned up."""
    if s.in_service:
        return False
    kinds = {
        i.subscription_type
        for i in rows("subscription_line_item").values()
        if i.subscription_id == s.id
    }
    if SubscriptionType.IP_RANGE not in kinds:
        return False
    if not vms_too and SubscriptionType.VPS in kinds:
        return False
    return not any(k[0] == s.id and k[1] == NEVER_PAID_CLEANUP for k in rows("lifecycle_mark"))
