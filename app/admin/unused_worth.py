"""What a subscription's unused paid time is worth at its whole price in force, for refunds."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction

import attrs

from app.admin.paid_records import paid_periods_of, paid_upgrades_of
from app.admin.refund_record import NothingToRefund, cuts_of, refund_reference
from app.billing.price_in_force import price_in_force
from domain.credit import value_anchor
from domain.credit_conversion import Converted
from domain.exchange import RateTable
from domain.model import Subscription
from domain.paid_periods import newest_period, unused_time
from domain.pricing import parse_list_currency
from domain.refund_worth import RefundWorth
from ports.storage import UnitOfWork

#: the refusal of a refund of time no payment bought (days an admin added free are not money)
NO_PAID_TIME = (
    "The unused time is worth nothing: only time a payment bought is refunded, not days added free"
)


@attrs.frozen
class Unused:
    """The unused time's worth (`RefundWorth`: at the price in force, limited to what was
    paid for it), in the subscription's currency once `valued`, and the key of the refund
    of it (`refund_reference`: the subscription, the period it ends in, its expiry)."""

    worth: RefundWorth
    reference: str

    @property
    def needs_rates(self) -> bool:
        """A part priced in another currency than the subscription's: valuing it reads
        today's rates."""
        return self.worth.needs_rates

    def valued(self, table: RateTable | None, now: datetime) -> Converted:
        """`RefundWorth.valued`: `NoExchangeRate`, 503, without a fresh rate it needs;
        `table` may be None when nothing `needs_rates`."""
        return self.worth.valued(table, now)

    def split(self, value: int, table: RateTable | None, now: datetime) -> dict[str, int]:
        """`RefundWorth.split`: the `valued` figure `value` shared out among the payments
        that bought the time (by payment id in hex), what each one's invoice gives back."""
        return self.worth.split(value, table, now)

    def exact_split(
        self, value: int, table: RateTable | None, now: datetime
    ) -> dict[str, Fraction]:
        """`RefundWorth.exact_split`: `split`'s shares before rounding."""
        return self.worth.exact_split(value, table, now)

    def wholes(self) -> dict[str, Fraction | None]:
        """What each payment behind the time carried for all the time it bought (by payment
        id in hex; None: not known), in the subscription's currency."""
        return {share.key: share.whole for share in self.worth.shares}


async def unused_worth(uow: UnitOfWork, sub: Subscription, vm_id: int, start: datetime) -> Unused:
    """The value of `sub`'s paid time from `start` to its expiry (later than `start`: the
    caller checked), before tax, in the subscription's currency once `valued`: what every
    admin refund of it (to credit, by hand, and the figure GET /vms/{id}/refund shows) is
    worth.

    The price is the whole subscription's per interval as it is in force now
    (`price_in_force`: the VM's list price plus every other line item, such as an IP range
    billed with it): a refund cuts the whole subscription's expiry, so every item's time is
    taken back and every item's share is paid back. How many intervals the time left is
    worth is the unused share of the periods its payments bought (`unused_intervals`: each
    payment's own period, counted from its real start, so a month bought on 31 Jan and
    refunded at once is a whole month; a period bought by value on the subscription's grid,
    as it was bought), read from VM `vm_id`'s history: the Renewed entry
    of each payment (where it started and ended) and the refunds that cut the time since.
    Each part is that many intervals of its price, floored in its own unit; a part priced
    in another currency than the subscription's (a plan re-priced since) is converted when
    `valued`, so the caller reads the rates only when it `needs_rates`.

    That value is limited to what was paid for the time (`unused_time`, `RefundWorth`): the
    unused share of what each payment behind it carried (its net amount and the credit it
    applied, at its own rates: `paid_periods_of`) and of each upgrade booked since
    (`paid_upgrades_of`), which D7 charged for the growth by one rate per second and the
    price in force counts as whole months; time no known payment explains is taken at the
    price in force in both. A free price is `NothingToRefund`. The refund's key names the
    last payment's period and how many refunds of it are recorded (`refund_reference`)."""
    assert sub.expires is not None and sub.expires > start
    basis = await price_in_force(uow, sub, purchase=False)
    if not basis.recurring:
        raise NothingToRefund("The unused time is worth nothing")
    target = parse_list_currency(sub.currency)
    history = await uow.vm_history.list_all_by_vm(vm_id)
    periods = await paid_periods_of(uow, sub, history, start, target)
    upgrades = await paid_upgrades_of(uow, sub, history, start, target)
    cuts = cuts_of(history)
    anchor = value_anchor(sub)  # the grid time bought by value was measured on
    time = unused_time(basis.interval, sub.expires, start, periods, cuts, upgrades, anchor=anchor)
    newest = newest_period(periods)
    # the refunds recorded since the newest period was paid (all of them when none was):
    # the key tells a new refund after an admin's edit of the expiry from those
    refunded = sum(1 for cut in cuts if newest is None or cut.order > newest.order)
    key = None if newest is None else newest.key
    reference = refund_reference(sub.id, key, sub.expires, refunded)
    return Unused(RefundWorth.of(basis.recurring, target, time), reference)
