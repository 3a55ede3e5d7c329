"""Storage ports for subscriptions and their line items."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from typing import Protocol

import attrs

from domain.enums import SubscriptionPaymentType
from domain.model import Company, LineItem, Subscription, SubscriptionPayment, User
from ports.storage.common import Page
from ports.storage.payments import NewestPending, PendingCount
from ports.storage.vms import VmOnPlan


@attrs.frozen(kw_only=True)
class PricedBy:
    """The VMs whose price follows one catalogue row: on the template, on a template of the
    cost plan, or on a custom template of the pricing; or the VMs on a standard template of
    a region, whose upgrades are priced by that region's custom pricings (the one filter
    given)."""

    template_id: int | None = None
    cost_plan_id: int | None = None
    custom_pricing_id: int | None = None
    template_region_id: int | None = None


@attrs.frozen
class DueWindow:
    """Active subscriptions with `expires < now + horizon`; `since` keeps only
    `expires >= since`; `after` is a keyset cursor, the (expires, id) of the last row of the
    previous page: only rows after it come."""

    now: datetime
    horizon: timedelta
    since: datetime | None = attrs.field(default=None, kw_only=True)
    after: tuple[datetime, int] | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class NeverPaidWindow:
    """Subscriptions made from `since` to before `before` with no payment pending at `now`
    (unpaid, `expires > now`); `after` is a keyset cursor, the (created, id) of the last row
    of the previous page: only rows after it come. The read is one range on the
    (expires, created) index: its cost follows the rows made in the window, not the table."""

    since: datetime
    before: datetime
    now: datetime
    after: tuple[datetime, int] | None = attrs.field(default=None, kw_only=True)


class Subscriptions(Protocol):
    async def add_with_line_items(
        self, subscription: Subscription, items: Sequence[LineItem]
    ) -> tuple[Subscription, list[LineItem]]:
        """Insert the subscription, then each item pointing at it, in order (lifecycle.md D1)."""
        ...

    async def get(self, subscription_id: int) -> Subscription | None: ...

    async def get_for_update(self, subscription_id: int) -> Subscription | None:
        """Like `get`, and lock the row until the unit of work ends (money paths)."""
        ...

    async def get_by_line_item(self, line_item_id: int) -> Subscription | None: ...

    async def get_by_line_items(self, line_item_ids: Collection[int]) -> dict[int, Subscription]:
        """The subscription of each of these line items, keyed by line item id; an item not
        stored is absent. A fixed number of statements whatever the number of ids (SQL: one
        per 1 000 ids): the VM check reads every live VM's subscription with it (§9.5)."""
        ...

    async def ids_with_pending_on(
        self, now: datetime, types: Collection[SubscriptionPaymentType], on: PricedBy
    ) -> list[int]:
        """Subscriptions with a VM (soft-deleted too) priced by `on`, and a pending payment
        (unpaid, `expires > now`) of `types`; ascending id, no duplicates.

        One query, whatever the number of VMs: what a re-priced catalogue row must expire
        (D23). No filter given: empty.
        """
        ...

    async def any_for_company(self, company_id: int) -> bool:
        """Whether any subscription (ended ones too) was sold by the company."""
        ...

    async def list_by_user(self, user_id: int, limit: int, offset: int = 0) -> Page[Subscription]:
        """Newest first (id DESC)."""
        ...

    async def update(self, subscription: Subscription) -> None:
        """Overwrite every column except id and created (lifecycle.md D2).

        Only for a row read under `get_for_update` in the same transaction: a copy read
        without the lock writes back an `expires` a renewal may have moved meanwhile."""
        ...

    async def set_auto_renewal(self, subscription_id: int, enabled: bool) -> bool:
        """Write `auto_renewal_enabled` alone (the owner's toggle, review r5): a renewal,
        upgrade or stop committed since the caller read the row keeps what it wrote.
        False when there is no such subscription."""
        ...

    async def delete(self, subscription_id: int) -> bool:
        """Hard delete of the subscription and its line items; True when it existed.

        The caller makes sure nothing else points at them (VMs, payments, IP ranges).
        """
        ...

    async def count_never_paid_ip_ranges(self, user_id: int, since: datetime) -> int:
        """The user's never-paid (`is_setup = 0`, no expiry) subscriptions with an IP-range
        line item, made at or after `since` and not cleaned up (no `NEVER_PAID_CLEANUP`
        mark): one statement (`max-unpaid-subscriptions`)."""
        ...

    async def list_never_paid_ip_ranges(
        self, window: NeverPaidWindow, limit: int
    ) -> list[Subscription]:
        """Never-paid subscriptions that sell IP ranges and no VM, in the window, with no
        paid payment and no `NEVER_PAID_CLEANUP` mark; oldest first (created, id), at most
        `limit`, one statement. Exactly those the cleanup would cancel (a row it passes over
        would come first in every run): a pre-filter, decided again under the lock."""
        ...

    async def list_due(self, window: DueWindow, limit: int) -> list[Subscription]:
        """The subscriptions due in the window, by (expires, id) ascending.

        NULL expiry is never due. At most `limit` rows; the query runs on the expiry index so
        its cost follows the number of rows returned, not the size of the table or the pages
        before.
        """
        ...


@attrs.frozen
class ShownItems:
    """Line items as shown (`LineItems.list_shown`): `items` by subscription id (ascending
    id), and `currencies` by line item id: the currency of an item's `amount` where it is
    not its subscription's (a custom VM's: its custom pricing's)."""

    items: dict[int, list[LineItem]]
    currencies: dict[int, str]


@attrs.frozen
class PricedItems:
    """What a subscription is priced from (§13, D23): its line items (ascending id), each VPS
    item's VM on its template and plan (its lowest-id VM not deleted; absent where none),
    the buyer and the seller (None where the company is gone); `credit`, when asked for, the
    buyer's credit balance in one currency (0 without a balance row); `pending`, when asked
    for (`PendingCount`), how many pending payments it counts; `live_quotes`, when a
    `PendingCount` or `NewestPending` asks for it, `Payments.count_live_quotes` at its `now`.
    `source`: what the storage read it from, for `LineItems.priced_for_update(seen=…)` only
    (opaque; not part of equality)."""

    items: tuple[LineItem, ...]
    vms: dict[int, VmOnPlan]
    user: User
    seller: Company | None
    credit: int | None = None
    pending: int | None = None
    live_quotes: int | None = None
    source: object = attrs.field(default=None, eq=False, repr=False, kw_only=True)


@attrs.frozen(eq=False)
class OwnedPriced:
    """An owned VM's subscription as its renewal reads it (issue 10): the subscription, what
    it is priced from, and the payment a `NewestPending` asked for (None: there is none).

    `priced` may be given as a function that builds it from what was read, called once, when
    `priced` is first asked for, with `items` (its line items) given beside it: a renewal that
    hands back a pending invoice needs the items only, not the buyer, seller and VM records
    (the SQL adapter). Equal when the subscription, `priced` and the payment are."""

    subscription: Subscription
    _priced: PricedItems | Callable[[], PricedItems] = attrs.field(alias="priced")
    first_pending: SubscriptionPayment | None
    _items: tuple[LineItem, ...] | None = attrs.field(default=None, alias="items", kw_only=True)

    @property
    def priced(self) -> PricedItems:
        found = self._priced
        if not isinstance(found, PricedItems):
            found = found()
            object.__setattr__(self, "_priced", found)
        return found

    @property
    def items(self) -> tuple[LineItem, ...]:
        """`priced.items`, without building the rest of `priced` where it was given apart."""
        return self.priced.items if self._items is None else self._items

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OwnedPriced):
            return NotImplemented
        mine = (self.subscription, self.priced, self.first_pending)
        return mine == (other.subscription, other.priced, other.first_pending)

    __hash__ = None  # type: ignore[assignment]  # as an attrs class that compares by value


@attrs.frozen
class LockedPriced:
    """A subscription locked as `Subscriptions.get_for_update` locks it, and what it is priced
    from (`LineItems.list_priced`), read after the lock in the same transaction; `priced`
    None: its user is gone."""

    subscription: Subscription
    priced: PricedItems | None


class LineItems(Protocol):
    async def get(self, line_item_id: int) -> LineItem | None: ...

    async def list_by_subscription(self, subscription_id: int) -> list[LineItem]:
        """Ascending id."""
        ...

    async def list_by_subscriptions(
        self, subscription_ids: Collection[int]
    ) -> dict[int, list[LineItem]]:
        """The line items of each subscription (ascending id), in one query; a subscription
        without items is absent."""
        ...

    async def list_shown(self, subscription_ids: Collection[int]) -> ShownItems:
        """`list_by_subscriptions` with the currency each item's amount is in where it is not
        its subscription's, in one query: a custom VM's item is priced in its custom
        pricing's currency (its order or upgrade wrote the amount in it), which a
        subscription billing other items beside it does not take (`app.billing.upgrades`).
        A standard VM's and every other item's amount is in the subscription's currency."""
        ...

    async def list_priced(
        self,
        subscription_id: int,
        credit_in: str | None = None,
        pending: PendingCount | None = None,
    ) -> PricedItems | None:
        """The subscription's `PricedItems` with its user and company, in one read (None: no
        such subscription or user): a new quote is priced from it, and priced again under
        the subscription lock before it is stored (D23). With `credit_in` (a currency code)
        the same read holds the user's credit balance in it (the renewal's credit-first
        quote), read but not locked; with `pending`, the count it asks for (the storing
        transaction's rival check, which a count of 0 spares)."""
        ...

    async def priced_for_update(
        self,
        subscription_id: int,
        pending: PendingCount | None = None,
        seen: PricedItems | None = None,
    ) -> LockedPriced | None:
        """`Subscriptions.get_for_update` then `list_priced` (with `pending`), in as few
        statements as the backend allows (issue 10: on SQLite, whose lock is the write
        transaction, one); None: no such subscription. A storing transaction's D23 re-check.

        `seen`: what an earlier read of this subscription's pricing (`list_priced`,
        `priced_of_owned_vm`) returned. When what is read now is the same (every line item,
        VM, template, plan, user and company as read then), the `PricedItems` returned holds
        `seen`'s records, not new ones (issue 10: the quote's records are not built twice);
        its `credit` is None and its counts are read now, as always."""
        ...

    async def priced_of_owned_vm(
        self, vm_id: int, pubkey: bytes, newest: NewestPending, *, credit: bool = False
    ) -> OwnedPriced | None:
        """The subscription billing VM `vm_id` (through its line item), if the VM is not
        soft-deleted and the user with this public key owns it, with its `PricedItems` (as
        `list_priced` reads them) and the payment `newest` asks for, in one read (issue 10):
        a renewal's reuse lookup (D10) needs no read of its own when that payment is the one
        it wants or when there is none, and a new invoice is priced from the same read.

        With `credit`, `PricedItems.credit` is the buyer's balance in the currency the
        subscription's `currency` names, read as `Currency.parse` reads a code (0 without a
        balance row; None when it names no currency). None: no such VM of the key's, or its
        subscription or that subscription's user is gone (the caller finds out which).
        """
        ...

    async def update(self, item: LineItem) -> None: ...

    async def delete(self, line_item_id: int) -> bool:
        """Hard delete; True when a row was removed (nothing may point at it)."""
        ...
