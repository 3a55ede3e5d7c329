"""What a subscription's unused paid time is worth at its whole price in force, for refunds."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.admin.refund_record import NothingToRefund
from app.billing.price_in_force import price_in_force
from domain.credit_conversion import Converted, convert_down
from domain.exchange import RateTable
from domain.model import Subscription
from domain.money import Currency, Money
from domain.pricing import parse_list_currency
from domain.unused_time import unused_value
from ports.storage import UnitOfWork


@attrs.frozen
class Unused:
    """The unused time's value per currency its parts are priced in, to be valued in
    `target` (the subscription's currency)."""

    parts: tuple[Money, ...]
    target: Currency

    @property
    def needs_rates(self) -> bool:
        """A part priced in another currency than `target`: valuing it reads today's rates."""
        return any(m.currency is not self.target and m.amount for m in self.parts)

    def valued(self, table: RateTable | None, now: datetime) -> Converted:
        """The sum in `target`, the foreign parts converted exactly at today's BTC rates of
        `table` and the sum floored once (`convert_down`; `NoExchangeRate`, 503, without a
        fresh rate). `table` may be None when nothing `needs_rates`."""
        return convert_down(self.parts, self.target, table, now)


async def unused_worth(uow: UnitOfWork, sub: Subscription, start: datetime) -> Unused:
    """The value of `sub`'s paid time from `start` to its expiry (later than `start`: the
    caller checked), before tax, in the subscription's currency once `valued`: what every
    admin refund of it (to credit, by hand, and the figure GET /vms/{id}/refund shows) is
    worth.

    The price is the whole subscription's per interval as it is in force now
    (`price_in_force`: the VM's list price plus every other line item, such as an IP range
    billed with it): a refund cuts the whole subscription's expiry, so every item's time is
    taken back and every item's share is paid back. Each part is valued calendar-exactly
    (`unused_value`: whole intervals left at the whole price, the rest a share of the
    interval holding `start`), floored in its own unit; a part priced in another currency
    than the subscription's (a plan re-priced since) is converted when `valued`, so the
    caller reads the rates only when it `needs_rates`. A free price is `NothingToRefund`."""
    assert sub.expires is not None and sub.expires > start
    basis = await price_in_force(uow, sub, purchase=False)
    if not basis.recurring:
        raise NothingToRefund("The unused time is worth nothing")
    unused = [
        unused_value(Money(c, a), basis.interval, sub.expires, start) for c, a in basis.recurring
    ]
    return Unused(tuple(unused), parse_list_currency(sub.currency))
