"""What a subscription's unused paid time is worth at its whole price in force, for refunds."""

from __future__ import annotations

from datetime import datetime

from app.admin.refund_record import NothingToRefund
from app.billing.price_in_force import price_in_force
from domain.credit_conversion import Converted, convert_down
from domain.exchange import RateTable
from domain.model import Subscription
from domain.money import Money
from domain.pricing import parse_list_currency
from domain.unused_time import unused_value
from ports.rates import RateStore
from ports.storage import UnitOfWork


async def unused_worth(
    uow: UnitOfWork,
    sub: Subscription,
    start: datetime,
    now: datetime,
    rates: RateTable | RateStore,
) -> Converted:
    """The value of `sub`'s paid time from `start` to its expiry (later than `start`: the
    caller checked), before tax, in the subscription's currency: what every admin refund of
    it (to credit, by hand, and the figure GET /vms/{id}/refund shows) is worth.

    The price is the whole subscription's per interval as it is in force now
    (`price_in_force`: the VM's list price plus every other line item, such as an IP range
    billed with it): a refund cuts the whole subscription's expiry, so every item's time is
    taken back and every item's share is paid back. Each part is valued calendar-exactly
    (`unused_value`: whole intervals left at the whole price, the rest a share of the
    interval holding `start`), floored in its own unit; a part priced in another currency
    than the subscription's (a plan re-priced since) is converted exactly at today's BTC
    rates and the sum floored once (`convert_down`; `NoExchangeRate`, 503, without a fresh
    rate). `rates`: a table the caller read already, or the store, read only when a part
    needs converting. A free price is `NothingToRefund`."""
    assert sub.expires is not None and sub.expires > start
    basis = await price_in_force(uow, sub, purchase=False)
    if not basis.recurring:
        raise NothingToRefund("The unused time is worth nothing")
    unused = [
        unused_value(Money(c, a), basis.interval, sub.expires, start) for c, a in basis.recurring
    ]
    target = parse_list_currency(sub.currency)
    foreign = any(m.currency is not target and m.amount for m in unused)
    table = rates if isinstance(rates, RateTable) else await rates.table() if foreign else None
    return convert_down(unused, target, table, now)
