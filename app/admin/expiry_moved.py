"""An admin moved a subscription's expiry: the pending invoices priced to the old one end."""

from __future__ import annotations

from datetime import datetime

from app.billing.ip_allocation import give_back_lapsed
from app.billing.price_in_force import UPGRADES, expire_stale_quotes
from app.billing.wallet_claims import end_claims
from domain.model import Subscription, SubscriptionPayment
from domain.switch_off import winds_down
from ports.storage import UnitOfWork

#: no payment of the admin's own: every claimed invoice of the old period is ended
_NONE_PAYING = b""


def expiry_moved(before: datetime | None, after: datetime | None) -> bool:
    """Whether an expiry moved to another second (a quote records its expiry in whole
    seconds, `domain.upgrade.quote_outdated`, and SQL storage keeps no more)."""
    if before is None or after is None:
        return before is not after
    return int(before.timestamp()) != int(after.timestamp())


async def end_quotes_of_old_expiry(
    uow: UnitOfWork, before: Subscription, now: datetime
) -> list[SubscriptionPayment]:
    """In the transaction, holding `before`'s lock, in which an admin moves its expiry (a
    PATCH of `expires`, an extend, a refund that cuts the paid time): the pending invoices
    whose price or period was set by the old expiry are expired, and returned as they were
    for `cancel_quietly` after the commit.

    - Upgrade quotes: an upgrade is charged per second up to the expiry it was quoted to
      (D7), so after the move its amount is wrong; paid anyway, it is not applied but
      credited at completion (`upgrades._outdated`), which nobody asked for.
    - Renewal invoices an automatic renewal claimed for the period ending at the old expiry
      (`wallet_claims.end_claims`): that period is gone, and paid anyway such an invoice
      buys nothing (`domain.wallet_claim.claim_overtaken`, credit). The worker claims the
      new period on its own.

    Other renewal (and LNURL) quotes stay payable: a renewal buys its N intervals from the
    expiry it finds when it completes (D6, D23), so the expiry it was quoted at does not
    enter its price or its time."""
    expired = await expire_stale_quotes(uow, before.id, now, UPGRADES)
    return expired + await end_claims(uow, before, _NONE_PAYING, now)


async def ranges_back_on(
    uow: UnitOfWork,
    before: Subscription,
    after: Subscription,
    now: datetime,
    locked: frozenset[int],
) -> None:
    """In the transaction in which an admin moves `before`'s expiry to `after`'s (a PATCH of
    `expires`, an extend), holding its lock and the IP spaces `locked`: when the move gives it
    paid time it runs (active, or switched off and winding down to its new expiry), its IP
    ranges ended at the lapse come back on (`give_back_lapsed`: a block someone else holds
    now is replaced by a free one; none free, `NoIpRangeLeft`, 422, nothing changed).
    Without this the ranges stayed ended while paid, and their blocks were free for others.
    `SpacesToLock` when the IP spaces to lock are others (the caller runs again)."""
    if not expiry_moved(before.expires, after.expires) or after.expires is None:
        return
    if after.expires > now and (after.is_active or winds_down(after)):
        await give_back_lapsed(uow, after, now, locked)
