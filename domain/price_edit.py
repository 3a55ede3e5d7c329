"""What counts as a change of a line item's price, and the VM history entry that records one."""

from __future__ import annotations

from datetime import datetime

from domain.admin_edit import admin_edit_event, admin_named
from domain.errors import DomainError
from domain.model import LineItem, VmHistory
from domain.money import Currency, Money

#: the history metadata key of a price edit: `{"line_item_id", "currency", "from", "to"}`,
#: `from`/`to` each `{"amount", "setup_amount"}` in the currency's smallest unit, and
#: `"supplies"` (the `SUPPLY_KEYS` of the configuration) when what the item sells changed
PRICE_EDIT_KEY = "price_edit"

#: the keys of a line item's `configuration` that decide what it sells: the IP space and the
#: block size an IP-range item is given (`app.billing.ip_room.range_asked`). Nothing else
#: in a configuration is read to supply anything: `ip_space_pricing_id` only names the tier
#: it was ordered at, and a VM item's upgrade JSON (`new_cpu`…) records what an upgrade
#: did, the VM's template deciding its size
SUPPLY_KEYS = ("available_ip_space_id", "prefix_size")


def supplies(item: LineItem) -> dict[str, object]:
    """The `SUPPLY_KEYS` of the item's configuration, as stored (None: not given)."""
    config = item.configuration
    found = config if isinstance(config, dict) else {}
    return {key: found.get(key) for key in SUPPLY_KEYS}


def resupplied(before: LineItem, after: LineItem) -> bool:
    """Whether `before → after` changes what the item sells (`supplies`): a /24 order
    edited to a /22 is sold a /22 at the /24's price."""
    return supplies(before) != supplies(after)


def repriced(before: LineItem, after: LineItem) -> bool:
    """Whether `before → after` changes the price: what the item costs (`amount` or
    `setup_amount`) or what that buys (`resupplied`)."""
    costs = (before.amount, before.setup_amount) != (after.amount, after.setup_amount)
    return costs or resupplied(before, after)


def _money(currency: str, amount: int) -> str:
    """`EUR 5.00`; raw when the currency is not one we know."""
    try:
        return str(Money(Currency.parse(currency), amount))
    except DomainError:
        return f"{currency} {amount}"


def _price(item: LineItem, with_supply: bool) -> dict[str, object]:
    price: dict[str, object] = {"amount": item.amount, "setup_amount": item.setup_amount}
    if with_supply:
        price["supplies"] = supplies(item)
    return price


def _supply_text(item: LineItem) -> str:
    """`/24 of IP space 3`, or the raw values when they are not a size and a space."""
    got = supplies(item)
    space, prefix = got["available_ip_space_id"], got["prefix_size"]
    if type(space) is int and type(prefix) is int:
        return f"/{prefix} of IP space {space}"
    return ", ".join(f"{key}={value!r}" for key, value in got.items())


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
    and new state, with what the item sells (`supplies`) when that changed."""
    parts = []
    if after.amount != before.amount:
        old, new = _money(currency, before.amount), _money(currency, after.amount)
        parts.append(f"price from {old} to {new}")
    if after.setup_amount != before.setup_amount:
        old, new = _money(currency, before.setup_amount), _money(currency, after.setup_amount)
        parts.append(f"setup fee from {old} to {new}")
    with_supply = resupplied(before, after)
    if with_supply:
        parts.append(f"supply from {_supply_text(before)} to {_supply_text(after)}")
    text = (
        f"VM {vm_id}'s subscription line item {before.id} ({before.name}) changed its "
        f"{' and '.join(parts)} by {admin_named(admin_id)}"
    )
    record = {
        "line_item_id": before.id,
        "currency": currency,
        "from": _price(before, with_supply),
        "to": _price(after, with_supply),
    }
    return admin_edit_event(
        vm_id,
        now,
        text,
        admin_id,
        key=PRICE_EDIT_KEY,
        record=record,
        before={"line_item_id": before.id, **_price(before, with_supply)},
        after={"line_item_id": after.id, **_price(after, with_supply)},
    )
