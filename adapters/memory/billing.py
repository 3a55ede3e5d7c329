"""Memory repositories for subscriptions, line items and payments."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from adapters.memory.db import RecordRepo, Repo, evolve, page_of
from adapters.memory.never_paid import never_paid_ip_range
from adapters.memory.vms import MemoryVms
from domain.credit import is_capped_quote
from domain.enums import PaymentMethod, SubscriptionPaymentType, SwitchedOff
from domain.model import LegacyVmPayment, LineItem, Subscription, SubscriptionPayment
from domain.money import currency_code
from ports.storage import (
    DueWindow,
    LockedPriced,
    MetadataKey,
    MetadataTest,
    NeverPaidWindow,
    NewestPending,
    OwnedPriced,
    Page,
    PaidTally,
    PendingCount,
    PendingKind,
    PendingOf,
    PricedBy,
    PricedItems,
    ShownItems,
)


class MemorySubscriptions(RecordRepo[Subscription]):
    table = "subscription"

    async def any_for_company(self, company_id: int) -> bool:
        return bool(self._where(lambda s: s.company_id == company_id))

    async def add_with_line_items(
        self, subscription: Subscription, items: Sequence[LineItem]
    ) -> tuple[Subscription, list[LineItem]]:
        stored = self._insert(self.table, subscription)
        added = [
            self._insert("subscription_line_item", evolve(item, subscription_id=stored.id))
            for item in items
        ]
        return stored, added

    async def get_for_update(self, subscription_id: int) -> Subscription | None:
        return await self.get(subscription_id)  # the unit of work's lock already serialises

    async def get_by_line_item(self, line_item_id: int) -> Subscription | None:
        item = self._rows("subscription_line_item").get(line_item_id)
        return None if item is None else await self.get(item.subscription_id)

    async def get_by_line_items(self, line_item_ids: Collection[int]) -> dict[int, Subscription]:
        items = self._rows("subscription_line_item")
        subs = self._rows(self.table)
        out: dict[int, Subscription] = {}
        for item_id in line_item_ids:
            item = items.get(item_id)
            sub = None if item is None else subs.get(item.subscription_id)
            if sub is not None:
                out[item_id] = sub
        return out

    async def ids_with_pending_on(
        self, now: datetime, types: Collection[SubscriptionPaymentType], on: PricedBy
    ) -> list[int]:
        if on == PricedBy():
            return []
        templates = {
            t.id
            for t in self._rows("vm_template").values()
            if t.cost_plan_id == on.cost_plan_id or t.region_id == on.template_region_id
        }
        customs = {
            c.id
            for c in self._rows("vm_custom_template").values()
            if c.pricing_id == on.custom_pricing_id
        }
        if on.template_id is not None:
            templates.add(on.template_id)
        items = self._rows("subscription_line_item")
        priced = {
            items[vm.subscription_line_item_id].subscription_id
            for vm in self._rows("vm").values()
            if (vm.template_id in templates or vm.custom_template_id in customs)
            and vm.subscription_line_item_id in items
        }
        pending = {
            p.subscription_id
            for p in self._rows("subscription_payment").values()
            if not p.is_paid and p.expires > now and p.payment_type in types
        }
        return sorted(priced & pending)

    async def list_by_user(self, user_id: int, limit: int, offset: int = 0) -> Page[Subscription]:
        rows = self._where(lambda s: s.user_id == user_id)
        rows.reverse()
        return Page(*page_of(rows, limit, offset))

    async def update(self, subscription: Subscription) -> None:
        old = await self.get(subscription.id)
        if old is not None:
            await super().update(evolve(subscription, created=old.created))

    async def set_auto_renewal(self, subscription_id: int, enabled: bool) -> bool:
        return self._set(subscription_id, auto_renewal_enabled=enabled)

    async def delete(self, subscription_id: int) -> bool:
        items = self._rows("subscription_line_item")
        for key, item in list(items.items()):
            if item.subscription_id == subscription_id:
                del items[key]
        return self._rows(self.table).pop(subscription_id, None) is not None

    async def count_never_paid_ip_ranges(self, user_id: int, since: datetime) -> int:
        return len(
            self._where(
                lambda s: (
                    s.user_id == user_id
                    and s.created >= since
                    and never_paid_ip_range(self._rows, s, vms_too=True)
                )
            )
        )

    async def list_never_paid_ip_ranges(
        self, window: NeverPaidWindow, limit: int
    ) -> list[Subscription]:
        payments = self._rows("subscription_payment").values()
        pending = {p.subscription_id for p in payments if p.is_pending(window.now)}
        paid = {p.subscription_id for p in payments if p.is_paid}
        after = window.after

        def wanted(s: Subscription) -> bool:
            if not window.since <= s.created < window.before:
                return False
            if s.id in pending or s.id in paid:
                return False
            if after is not None and (s.created, s.id) <= after:
                return False
            return never_paid_ip_range(self._rows, s, vms_too=False)

        rows = self._where(wanted)
        rows.sort(key=lambda s: (s.created, s.id))
        return rows[:limit]

    async def list_due(self, window: DueWindow, limit: int) -> list[Subscription]:
        until, since, after = window.now + window.horizon, window.since, window.after

        def due(s: Subscription) -> bool:
            handled = s.is_active or s.switched_off is SwitchedOff.WINDING_DOWN
            if not handled or s.expires is None or s.expires >= until:
                return False
            if since is not None and s.expires < since:
                return False
            return after is None or (s.expires, s.id) > after

        rows = self._where(due)
        rows.sort(key=lambda s: (s.expires, s.id))
        return rows[:limit]


class MemoryLineItems(RecordRepo[LineItem]):
    table = "subscription_line_item"

    async def list_by_subscription(self, subscription_id: int) -> list[LineItem]:
        return self._where(lambda li: li.subscription_id == subscription_id)

    async def list_priced(
        self,
        subscription_id: int,
        credit_in: str | None = None,
        pending: PendingCount | None = None,
    ) -> PricedItems | None:
        sub = self._rows("subscription").get(subscription_id)
        user = None if sub is None else self._rows("users").get(sub.user_id)
        if sub is None or user is None:
            return None
        items = await self.list_by_subscription(subscription_id)
        vms = MemoryVms(self._snapshot)
        on_plan = {item.id: await vms.get_on_plan_by_line_item(item.id) for item in items}
        found = {item_id: vm for item_id, vm in on_plan.items() if vm is not None}
        credit = None
        if credit_in is not None:
            credit = self._rows("user_credit_balance").get((user.id, credit_in), 0)
        seller = self._rows("company").get(sub.company_id)
        counted = quotes = None
        if pending is not None:  # every pending one: the narrowing is only ever a superset
            payments = MemoryPayments(self._snapshot)
            counted = len(await payments.list_pending_for_subscription(sub.id, pending.now))
            if pending.quotes:
                quotes = await payments.count_live_quotes(sub.id, pending.now)
        return PricedItems(
            tuple(items), found, user, seller, credit, counted, quotes, source=subscription_id
        )

    async def priced_for_update(
        self,
        subscription_id: int,
        pending: PendingCount | None = None,
        seen: PricedItems | None = None,
    ) -> LockedPriced | None:
        sub = self._rows("subscription").get(subscription_id)  # the snapshot is the lock
        if sub is None:
            return None
        priced = await self.list_priced(subscription_id, pending=pending)
        if priced is not None and seen is not None and seen.source == subscription_id:
            now_read = evolve(priced, credit=None, pending=None, live_quotes=None)
            if now_read == evolve(seen, credit=None, pending=None, live_quotes=None):
                priced = evolve(
                    seen, credit=None, pending=priced.pending, live_quotes=priced.live_quotes
                )
        return LockedPriced(sub, priced)

    async def priced_of_owned_vm(
        self, vm_id: int, pubkey: bytes, newest: NewestPending, *, credit: bool = False
    ) -> OwnedPriced | None:
        vm = self._rows("vm").get(vm_id)
        owner = None if vm is None else self._rows("users").get(vm.user_id)
        if vm is None or vm.deleted or owner is None or owner.pubkey != pubkey:
            return None
        item = self._rows(self.table).get(vm.subscription_line_item_id)
        sub = None if item is None else self._rows("subscription").get(item.subscription_id)
        if sub is None:
            return None
        priced = await self.list_priced(sub.id, currency_code(sub.currency) if credit else None)
        if priced is None:
            return None
        payments = MemoryPayments(self._snapshot)
        pending = await payments.list_pending_for_subscription(sub.id, newest.now)
        # nothing narrowed away: the memory reuse lookup tests every pending payment
        first = next((p for p in pending if p.payment_method is newest.method), None)
        if newest.quotes:
            priced = evolve(priced, live_quotes=_live_quotes(pending))
        return OwnedPriced(sub, priced, first)

    async def list_by_subscriptions(
        self, subscription_ids: Collection[int]
    ) -> dict[int, list[LineItem]]:
        wanted = set(subscription_ids)
        out: dict[int, list[LineItem]] = {}
        for item in self._where(lambda li: li.subscription_id in wanted):
            out.setdefault(item.subscription_id, []).append(item)
        return out

    async def list_shown(self, subscription_ids: Collection[int]) -> ShownItems:
        items = await self.list_by_subscriptions(subscription_ids)
        shown = {item.id for listed in items.values() for item in listed}
        specs, pricings = self._rows("vm_custom_template"), self._rows("vm_custom_pricing")
        currencies: dict[int, str] = {}
        for vm in self._rows("vm").values():
            spec = specs.get(vm.custom_template_id)
            pricing = None if spec is None else pricings.get(spec.pricing_id)
            if vm.subscription_line_item_id in shown and pricing is not None:
                currencies.setdefault(vm.subscription_line_item_id, pricing.currency)
        return ShownItems(items, currencies)

    async def delete(self, line_item_id: int) -> bool:
        return self._rows(self.table).pop(line_item_id, None) is not None


class MemoryPayments(Repo):
    table = "subscription_payment"

    async def add(self, payment: SubscriptionPayment) -> SubscriptionPayment:
        rows = self._rows(self.table)
        if payment.id in rows:
            raise ValueError(f"duplicate payment id {payment.id.hex()}")
        rows[payment.id] = payment
        return payment

    async def get(self, payment_id: bytes) -> SubscriptionPayment | None:
        found: SubscriptionPayment | None = self._rows(self.table).get(payment_id)
        return found

    async def get_by_external_id(self, external_id: str) -> SubscriptionPayment | None:
        found = [p for p in self._all() if p.external_id == external_id]
        return found[0] if found else None

    async def update(self, payment: SubscriptionPayment) -> None:
        old = await self.get(payment.id)
        if old is not None:
            self._rows(self.table)[payment.id] = evolve(payment, paid_at=old.paid_at)

    async def list_by_subscription(
        self, subscription_id: int, limit: int, offset: int = 0
    ) -> Page[SubscriptionPayment]:
        rows = [p for p in self._newest_first() if p.subscription_id == subscription_id]
        return Page(*page_of(rows, limit, offset))

    async def paid_tally(self, subscription_id: int) -> PaidTally:
        own = [p for p in self._all() if p.subscription_id == subscription_id]
        paid = sorted((p for p in own if p.is_paid), key=lambda p: (p.created, p.id))
        return PaidTally(paid=tuple(paid), unpaid=len(own) - len(paid))

    async def list_by_vm(
        self, vm_id: int, limit: int, offset: int = 0
    ) -> Page[SubscriptionPayment]:
        vm = self._rows("vm").get(vm_id)
        item = (
            None
            if vm is None
            else self._rows("subscription_line_item").get(vm.subscription_line_item_id)
        )
        rows = (
            []
            if item is None
            else [p for p in self._newest_first() if p.subscription_id == item.subscription_id]
        )
        return Page(*page_of(rows, limit, offset))

    async def list_pending_for_subscription(
        self, subscription_id: int, now: datetime
    ) -> list[SubscriptionPayment]:
        return [
            p
            for p in self._newest_first()
            if p.subscription_id == subscription_id and p.is_pending(now)
        ]

    async def with_pending(self, subscription_ids: Collection[int], now: datetime) -> set[int]:
        wanted = set(subscription_ids)
        return {
            p.subscription_id
            for p in self._all()
            if p.subscription_id in wanted and p.is_pending(now)
        }

    async def count_live_quotes(self, subscription_id: int, now: datetime) -> int:
        return _live_quotes(await self.list_pending_for_subscription(subscription_id, now))

    async def newest_pending(
        self,
        kind: PendingKind,
        now: datetime,
        wanted: MetadataTest,
        narrow: MetadataKey | None = None,  # nothing to skip: `wanted` sees every row
    ) -> SubscriptionPayment | None:
        pending = await self.list_pending_for_subscription(kind.subscription_id, now)
        of_kind = (
            p
            for p in pending
            if p.payment_method == kind.method and p.payment_type == kind.payment_type
        )
        return next((p for p in of_kind if wanted(p.metadata)), None)

    async def mark_paid(self, payment_id: bytes, now: datetime) -> bool:
        payment = await self.get(payment_id)
        if payment is None or payment.is_paid:
            return False
        self._rows(self.table)[payment_id] = evolve(payment, is_paid=True, paid_at=now)
        return True

    async def expire_pending(self, which: PendingOf, now: datetime) -> list[SubscriptionPayment]:
        competing = [
            p
            for p in await self.list_pending_for_subscription(which.subscription_id, now)
            if p.payment_type in which.types
            and p.id != which.except_id
            and which.method in (None, p.payment_method)
        ]
        for payment in competing:
            self._rows(self.table)[payment.id] = evolve(payment, expires=now)
        return competing

    async def last_paid_invoiced(self, method: PaymentMethod) -> SubscriptionPayment | None:
        paid = [
            p
            for p in self._newest_first()
            if p.is_paid and p.payment_method is method and p.total > 0
        ]
        return paid[0] if paid else None

    async def list_unpaid_by_method(
        self, method: PaymentMethod, since: datetime, limit: int
    ) -> list[SubscriptionPayment]:
        rows = [
            p
            for p in self._newest_first()
            if not p.is_paid and p.payment_method is method and p.created >= since
        ]
        return rows[:limit]

    async def unpaid_of_method(
        self, method: PaymentMethod, expires_after: datetime, *, company_id: int | None = None
    ) -> list[SubscriptionPayment]:
        subs = self._rows("subscription")

        def of_company(p: SubscriptionPayment) -> bool:
            sub = subs.get(p.subscription_id)
            return company_id is None or (sub is not None and sub.company_id == company_id)

        rows = [
            p
            for p in self._all()
            if not p.is_paid
            and p.payment_method is method
            and p.expires > expires_after
            and of_company(p)
        ]
        return sorted(rows, key=lambda p: (p.subscription_id, p.id))

    async def list_lapsed_unpaid(
        self, methods: Collection[PaymentMethod], after: datetime, until: datetime, limit: int
    ) -> list[SubscriptionPayment]:
        rows = [
            p
            for p in self._all()
            if not p.is_paid
            and p.payment_method in methods
            and p.external_id is not None
            and after < p.expires <= until
        ]
        return sorted(rows, key=lambda p: (p.expires, p.id))[:limit]

    def _all(self) -> list[SubscriptionPayment]:
        return list(self._rows(self.table).values())

    def _newest_first(self) -> list[SubscriptionPayment]:
        # insertion order breaks ties among equal `created`, newest insert first (the SQL
        # stores, which cannot know it, break them by id: either is a newest payment)
        return sorted(reversed(self._all()), key=lambda p: p.created, reverse=True)


class MemoryLegacyPayments(Repo):
    table = "vm_payment"

    async def add(self, payment: LegacyVmPayment) -> LegacyVmPayment:
        self._rows(self.table)[payment.id] = payment
        return payment

    async def list_by_vm(self, vm_id: int) -> list[LegacyVmPayment]:
        rows = [p for p in self._rows(self.table).values() if p.vm_id == vm_id]
        return sorted(rows, key=lambda p: p.created)


def _live_quotes(pending: Iterable[SubscriptionPayment]) -> int:
    """How many of a subscription's pending payments count in its live-quote cap."""
    return sum(1 for p in pending if is_capped_quote(p))
