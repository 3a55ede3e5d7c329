"""No admin moves money or paid time to their own account: the refusal, whose, what moves money."""

from __future__ import annotations

from collections.abc import Collection

from domain.errors import DomainError
from domain.model import Subscription, Vm

#: what a refused subscription PATCH says the admin cannot do
SUBSCRIPTION_EDIT = "move a subscription's expiry or change its price"
#: what a refused line-item PATCH says the admin cannot do
LINE_ITEM_EDIT = "change a subscription's price"


class OwnAccountRefused(DomainError):
    """An admin's money action whose beneficiary is the admin's own user (403)."""

    kind = "forbidden"


def refuse_own(admin_id: int, beneficiaries: Collection[int], what: str) -> None:
    """`OwnAccountRefused` when `admin_id` is among those the action benefits."""
    if admin_id in beneficiaries:
        raise OwnAccountRefused(
            f"Admins cannot {what} for their own account: another admin must do it"
        )


def owners(sub: Subscription, vm: Vm | None) -> frozenset[int]:
    """Whose a subscription's paid time and price are: its owner and its VM's (`vm`)."""
    return frozenset({sub.user_id} if vm is None else {sub.user_id, vm.user_id})


def subscription_edit_moves_money(before: Subscription, after: Subscription) -> bool:
    """Whether an edit `before → after` moves paid time (`expires`) or changes the price:
    the `setup_fee`, or the `currency` (the items' amounts and setup fees are numbers in it,
    read in a new one unconverted: EUR 5.00 becomes JPY 5.00). `is_active` and
    `auto_renewal_enabled` move none: a switched-off subscription's paid time runs out as an
    unpaid one's, switching it on gives no time, and an automatic renewal is paid from the
    owner's own wallet."""
    return (before.expires, before.setup_fee, before.currency) != (
        after.expires,
        after.setup_fee,
        after.currency,
    )
