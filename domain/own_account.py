"""No admin moves money or paid time to their own account: the refusal, whose, what moves money."""

from __future__ import annotations

from collections.abc import Collection

from domain.errors import DomainError
from domain.model import Subscription, User, Vm
from domain.tax import country_alpha3

#: what a refused subscription PATCH says the admin cannot do
SUBSCRIPTION_EDIT = "move a subscription's expiry or change its price"
#: what a refused subscription creation says the admin cannot do
SUBSCRIPTION_CREATE = "create a subscription"
#: what a refused line-item PATCH says the admin cannot do
LINE_ITEM_EDIT = "change a subscription's price"
#: what a refused line-item delete says the admin cannot do
LINE_ITEM_DELETE = "delete a subscription's line item"
#: what a refused credit note says the admin cannot do
CREDIT_NOTE = "issue a credit note"
#: what a refused user PATCH says the admin cannot do
TAX_DETAILS_EDIT = "validate a VAT id, nor change a validated one's VAT id or country,"


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


def user_edit_moves_tax(before: User, after: User) -> bool:
    """Whether an admin's edit of a user `before → after` changes the tax the user's quotes
    charge in a way the user's own edit cannot: `billing_vat_validated` set or cleared (a
    validated EU VAT id is reverse charged: no VAT), or the VAT id or country of a validated
    user changed (the user's own edit clears the validation then; an admin's keeps it). A
    country or VAT id changed on a user not validated is what the user may do themselves."""
    if before.billing_vat_validated != after.billing_vat_validated:
        return True
    if not after.billing_vat_validated:
        return False
    was = (before.billing_tax_id, country_alpha3(before.country_code))
    return was != (after.billing_tax_id, country_alpha3(after.country_code))
