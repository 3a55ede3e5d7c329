"""Which subscriptions are never-paid orders (D25), said once for every repository's query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Select, select

from adapters.mysql import tables as t
from domain.enums import SubscriptionType
from ports.storage import NEVER_PAID_CLEANUP

_sub = t.subscription.c
_li = t.subscription_line_item.c


def never_paid_order() -> list[ColumnElement[bool]]:
    """Never paid: never set up (`is_setup = 0`) and no expiry (not `Subscription.in_service`)."""
    return [_sub.is_setup == False, _sub.expires.is_(None)]  # noqa: E712


def not_cleaned_up() -> ColumnElement[bool]:
    """No never-paid clean-up mark (`NEVER_PAID_CLEANUP`) on the subscription."""
    mark = t.lifecycle_mark.c
    return none_of(
        select(mark.id).where(mark.subscription_id == _sub.id, mark.action == NEVER_PAID_CLEANUP)
    )


def never_paid_ip_range() -> list[ColumnElement[bool]]:
    """Never paid (`never_paid_order`), sells an IP range, not cleaned up (`not_cleaned_up`)."""
    ip_item = select(_li.id).where(
        _li.subscription_id == _sub.id, _li.subscription_type == SubscriptionType.IP_RANGE
    )
    return [*never_paid_order(), first_of(ip_item).is_not(None), not_cleaned_up()]


def first_of(rows: Select[Any]) -> ColumnElement[Any]:
    """`(SELECT … LIMIT 1)`, looked up per subscription by the subquery's index, where a
    `[NOT] EXISTS` would not be: MariaDB turns an EXISTS into a semi-join and a NOT EXISTS
    into a NOT IN over a materialized subquery, each reading every matching row of the table
    (every IP-range line item, mark, unpaid or paid payment ever made), not those of the
    subscriptions the index range found."""
    return rows.limit(1).scalar_subquery()


def none_of(rows: Select[Any]) -> ColumnElement[bool]:
    """No row (`first_of` … IS NULL): a NOT EXISTS MariaDB reads by index per row."""
    return first_of(rows).is_(None)
