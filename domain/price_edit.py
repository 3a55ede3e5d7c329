"""The VM history entry of an admin's change of a line item's price, written with the change."""

from __future__ import annotations

from datetime import datetime

from domain.admin_edit import admin_edit_event, admin_named
from domain.errors import DomainError
from domain.model import LineItem, VmHistory
from domain.money import Currency, Money

#: the history metadata key of a price edit: `{"line_item_id", "currency", "from", "to"}`,
#: `from`/`to` each `{"amount", "setup_amount"}` in the currency's smallest unit
PRICE_EDIT_KEY = "price_edit"


def repriced(before: LineItem, after: LineItem) -> bool:
    """Whether `before → after` changes what the item costs (`amount` or `setup_amount`)."""
    return (before.amount, before.setup_amount) != (after.amount, after.setup_amount)


def _money(currency: str, amount: int) -> str:
    """`EUR 5.00`; raw when the currency is not one we know."""
    try:
        return str(Money(Currency.parse(currency), amount))
    except DomainError:
        return f"{currency} {amount}"


def _price(item: LineItem) -> dict[str, int]:
    return {"amount": item.amount, "setup_amount": item.setup_amount}


def price_edit_event(
    vm_id: int,
    before: LineItem,
    after: LineItem,
    currency: str,
    now: datetime,
    admin_id: int | None,
) -> VmHistory:
    """The history entry of VM `vm_id` saying admin `admin_id` (None: not known) changed the
    price of line item `before` of its subscription (billed in `currency`) to `after`'s.

    `admin_edit_event`'s entry, as an expiry edit's: the old and new price in the previous
    and new state."""
    parts = []
    if after.amount != before.amount:
        old, new = _money(currency, before.amount), _money(currency, after.amount)
        parts.append(f"price from {old} to {new}")
    if after.setup_amount != before.setup_amount:
        old, new = _money(currency, before.setup_amount), _money(currency, after.setup_amount)
        parts.append(f"setup fee from {old} to {new}")
    text = (
        f"VM {vm_id}'s subscription line item {before.id} ({before.name}) changed its "
        f"{' and '.join(parts)} by {admin_named(admin_id)}"
    )
    record = {
        "line_item_id": before.id,
        "currency": currency,
        "from": _price(before),
        "to": _price(after),
    }
    return admin_edit_event(
        vm_id,
        now,
        text,
        admin_id,
        key=PRICE_EDIT_KEY,
        record=record,
        before={"line_item_id": before.id, **_price(before)},
        after={"line_item_id": after.id, **_price(after)},
    )
