"""Storage ports for payments: subscription payments and the legacy vm_payment rows."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Protocol

import attrs

from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.model import Json, LegacyVmPayment, SubscriptionPayment
from ports.storage.common import Page


@attrs.frozen
class PendingOf:
    """A subscription's pending payments (unpaid, `expires > now`) of `types`, all but the
    one whose id is `except_id`; with `method`, only those of that payment method."""

    subscription_id: int
    types: Collection[SubscriptionPaymentType]
    except_id: bytes | None = attrs.field(default=None, kw_only=True)
    method: PaymentMethod | None = attrs.field(default=None, kw_only=True)


@attrs.frozen
class PendingKind:
    """A subscription's pending payments of one method and payment type."""

    subscription_id: int
    method: PaymentMethod
    payment_type: SubscriptionPaymentType


#: whether a pending payment's `metadata` is the one a caller wants (D10 count, D25 amount)
MetadataTest = Callable[[Json], bool]


@attrs.frozen
class MetadataKey:
    """What a `MetadataTest` accepts at most: JSON whose top-level `name` is the integer
    `value`, or JSON without `name` (a test may read a default then), so that a store may
    skip other rows before they reach Python. It only narrows: the test still decides, so a
    store may ignore it, and one that uses it must keep every row it cannot judge exactly as
    Python would (escapes, duplicate names …)."""

    name: str
    value: int


@attrs.frozen
class NewestPending:
    """Asks a read of a subscription for, alongside, its newest pending payment (unpaid,
    `expires > now`) of `method` whose metadata `narrow` keeps, whatever its type: the first
    that `Payments.newest_pending` (same method and narrowing) would test, in its order.
    With `quotes`, `Payments.count_live_quotes` at `now` too (`PricedItems.live_quotes`):
    it reads every live quote of the subscription, which the live-quote cap bounds."""

    method: PaymentMethod
    now: datetime
    narrow: MetadataKey
    quotes: bool = attrs.field(default=False, kw_only=True)


@attrs.frozen
class PendingCount:
    """Asks a read of a subscription to count, alongside, its pending payments (unpaid,
    `expires > now`) that `narrow` keeps, whatever their method and type: none means the
    reuse lookup (`Payments.newest_pending` with the same `narrow`) would find none. With
    `quotes`, `Payments.count_live_quotes` at `now` too (`PricedItems.live_quotes`)."""

    now: datetime
    narrow: MetadataKey
    quotes: bool = attrs.field(default=False, kw_only=True)


@attrs.frozen
class PaidTally:
    """A subscription's paid payments, oldest first (by `created`, then id), and how many of
    its payments are unpaid (pending or expired)."""

    paid: tuple[SubscriptionPayment, ...]
    unpaid: int


class Payments(Protocol):
    """Subscription payments, keyed by their 32-byte id."""

    async def add(self, payment: SubscriptionPayment) -> SubscriptionPayment: ...

    async def get(self, payment_id: bytes) -> SubscriptionPayment | None: ...

    async def get_by_external_id(self, external_id: str) -> SubscriptionPayment | None: ...

    async def update(self, payment: SubscriptionPayment) -> None:
        """Overwrite every column except id and paid_at (lifecycle.md D18)."""
        ...

    async def list_by_subscription(
        self, subscription_id: int, limit: int, offset: int = 0
    ) -> Page[SubscriptionPayment]:
        """Newest first (created DESC)."""
        ...

    async def paid_tally(self, subscription_id: int) -> PaidTally:
        """Its paid payments and its count of unpaid ones, in one statement (what an admin
        delete and the worker's admin delete read of its payments)."""
        ...

    async def list_by_vm(
        self, vm_id: int, limit: int, offset: int = 0
    ) -> Page[SubscriptionPayment]:
        """All payments of the VM's subscription (vm → line item → subscription), newest first."""
        ...

    async def list_pending_for_subscription(
        self, subscription_id: int, now: datetime
    ) -> list[SubscriptionPayment]:
        """Unpaid payments with `expires > now`, newest first (D10 deduplication)."""
        ...

    async def with_pending(self, subscription_ids: Collection[int], now: datetime) -> set[int]:
        """Those of these subscriptions that have a pending payment (unpaid, `expires > now`).

        A fixed number of statements whatever the number of ids (SQL: one per 1 000 ids):
        the VM check's never-paid test of every candidate at once (D17, §9.5).
        """
        ...

    async def count_live_quotes(self, subscription_id: int, now: datetime) -> int:
        """How many of the subscription's pending payments (unpaid, `expires > now`) the
        live-quote cap counts (`domain.credit.is_capped_quote`), in one statement."""
        ...

    async def newest_pending(
        self,
        kind: PendingKind,
        now: datetime,
        wanted: MetadataTest,
        narrow: MetadataKey | None = None,
    ) -> SubscriptionPayment | None:
        """The first of `list_pending_for_subscription` of that method and type whose
        `metadata` is `wanted` (the D10/D25 reuse lookup), in one statement; `narrow`, when
        given, never rejects a `metadata` that `wanted` accepts.

        A renewal's cost must not grow with the pending invoices a subscription piles up (up
        to one per interval count, and an attacker can make them), so the others are only
        looked at, never mapped or decrypted.
        """
        ...

    async def mark_paid(self, payment_id: bytes, now: datetime) -> bool:
        """`SET is_paid = 1, paid_at = now WHERE id = ? AND is_paid = 0`; True if a row flipped.

        This is the exactly-once gate of payment completion (D9).
        """
        ...

    async def expire_pending(self, which: PendingOf, now: datetime) -> list[SubscriptionPayment]:
        """Set `expires = now` on those pending payments (D13 rival upgrades, D23, D24).

        Returns them as they were before, newest first, so the caller can cancel each at its
        own provider.
        """
        ...

    async def last_paid_invoiced(self, method: PaymentMethod) -> SubscriptionPayment | None:
        """The paid payment of `method` that its rail invoiced, with the greatest `created`
        (lifecycle.md D19 restricted to one rail): its total (`amount + tax +
        processing_fee`) above 0, so not a quote paid from account credit alone, which keeps
        its method but was never invoiced."""
        ...

    async def list_unpaid_by_method(
        self, method: PaymentMethod, since: datetime, limit: int
    ) -> list[SubscriptionPayment]:
        """Unpaid payments of `method` with `created >= since`, newest first, at most `limit`.

        Expired ones are included: a settlement may have been missed until after expiry.
        """
        ...

    async def unpaid_of_method(
        self, method: PaymentMethod, expires_after: datetime, *, company_id: int | None = None
    ) -> list[SubscriptionPayment]:
        """Unpaid payments of `method` with `expires > expires_after` (with `company_id`, only
        those of that company's subscriptions), by subscription id then id: what a
        payment-method config's disable or delete expires, and what could still be settled
        when its webhook secret goes."""
        ...

    async def list_lapsed_unpaid(
        self, methods: Collection[PaymentMethod], after: datetime, until: datetime, limit: int
    ) -> list[SubscriptionPayment]:
        """Unpaid payments of `methods` that reached a provider (`external_id` set) and
        lapsed in `after < expires <= until`, oldest expiry first (then by id), at most
        `limit`: the card orders the lapsed-order sweep cancels at their provider."""
        ...


class LegacyPayments(Protocol):
    """Rows of the legacy `vm_payment` table (read by the billing backfill)."""

    async def add(self, payment: LegacyVmPayment) -> LegacyVmPayment: ...

    async def list_by_vm(self, vm_id: int) -> list[LegacyVmPayment]:
        """Oldest first (created ASC)."""
        ...
