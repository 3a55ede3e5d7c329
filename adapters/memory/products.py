"""Memory repositories for IP space sales, payment-method configs and idempotency marks."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from adapters.memory.db import RecordRepo, Repo, evolve
from adapters.memory.never_paid import never_paid_ip_range
from domain.enums import PaymentMethod, SubscriptionType
from domain.errors import IP_SPACE_EXISTS, PRICING_EXISTS
from domain.model import (
    AvailableIpSpace,
    IpRangeSubscription,
    IpSpacePricing,
    LineItem,
    PaymentMethodConfig,
    Subscription,
)
from ports.storage import IdempotencyRecord


class MemoryIpSpaces(RecordRepo[AvailableIpSpace]):
    table = "available_ip_space"
    unique = (("cidr",),)
    duplicate_message = IP_SPACE_EXISTS

    async def lock(self, space_id: int) -> None:
        """Nothing to do: a memory unit of work already runs alone (one lock for all)."""


class MemoryIpSpacePrices(RecordRepo[IpSpacePricing]):
    table = "ip_space_pricing"
    unique = (("available_ip_space_id", "prefix_size"),)
    duplicate_message = PRICING_EXISTS

    async def list_by_space(self, space_id: int) -> list[IpSpacePricing]:
        rows = self._where(lambda p: p.available_ip_space_id == space_id)
        return sorted(rows, key=lambda p: p.prefix_size)


class MemoryIpRangeSubscriptions(RecordRepo[IpRangeSubscription]):
    table = "ip_range_subscription"

    async def list_by_line_item(self, line_item_id: int) -> list[IpRangeSubscription]:
        return self._where(lambda r: r.subscription_line_item_id == line_item_id)

    async def list_by_space(self, space_id: int) -> list[IpRangeSubscription]:
        return self._where(lambda r: r.available_ip_space_id == space_id)

    async def set_active(self, record_id: int, active: bool, now: datetime) -> None:
        rows = self._rows(self.table)
        if record_id in rows:
            rows[record_id] = evolve(
                rows[record_id], is_active=active, ended_at=None if active else now
            )

    async def deactivate_for_subscription(self, subscription_id: int, now: datetime) -> int:
        items = {
            li.id
            for li in self._rows("subscription_line_item").values()
            if li.subscription_id == subscription_id
        }
        open_ranges = self._where(
            lambda r: r.subscription_line_item_id in items and r.ended_at is None
        )
        for sold in open_ranges:
            await self.set_active(sold.id, False, now)
        return len(open_ranges)

    async def list_live_in_spaces(self, space_ids: Collection[int]) -> list[IpRangeSubscription]:
        items = self._rows("subscription_line_item")
        subs = self._rows("subscription")

        def live(r: IpRangeSubscription) -> bool:
            if r.available_ip_space_id not in space_ids:
                return False
            if r.is_active:
                return True
            item = items.get(r.subscription_line_item_id)
            sub = None if item is None else subs.get(item.subscription_id)
            return (
                sub is not None
                and sub.is_active
                and sub.expires is not None
                and r.ended_at is not None
                and r.ended_at >= sub.expires
            )

        return self._where(live)

    async def never_paid_orders(self, since: datetime) -> list[tuple[Subscription, list[LineItem]]]:
        subs = sorted(
            (
                s
                for s in self._rows("subscription").values()
                if s.created >= since and never_paid_ip_range(self._rows, s, vms_too=True)
            ),
            key=lambda s: (s.created, s.id),
        )
        items = [
            i
            for _, i in sorted(self._rows("subscription_line_item").items())
            if i.subscription_type is SubscriptionType.IP_RANGE
        ]
        return [(sub, [i for i in items if i.subscription_id == sub.id]) for sub in subs]

    async def items_of_active_subscriptions(self) -> list[LineItem]:
        subs = self._rows("subscription")
        return sorted(
            (
                i
                for i in self._rows("subscription_line_item").values()
                if i.subscription_type is SubscriptionType.IP_RANGE
                and (sub := subs.get(i.subscription_id)) is not None
                and sub.is_active
            ),
            key=lambda i: i.id,
        )


class MemoryPaymentMethods(RecordRepo[PaymentMethodConfig]):
    table = "payment_method_config"

    async def get_for_company(
        self, company_id: int, method: PaymentMethod
    ) -> PaymentMethodConfig | None:
        found = self._where(lambda c: c.company_id == company_id and c.payment_method == method)
        return min(found, key=lambda c: (not c.enabled, c.id), default=None)

    async def list_enabled_for_company(self, company_id: int) -> list[PaymentMethodConfig]:
        rows = self._where(lambda c: c.company_id == company_id and c.enabled)
        return sorted(rows, key=lambda c: (c.payment_method, c.name))

    async def delete(self, config_id: int) -> bool:
        return self._rows(self.table).pop(config_id, None) is not None


class MemoryLifecycleMarks(Repo):
    async def claim(
        self, subscription_id: int, action: int, period_expires: datetime, now: datetime
    ) -> bool:
        rows = self._rows("lifecycle_mark")
        key = (subscription_id, action, period_expires.replace(microsecond=0))
        if key in rows:
            return False
        rows[key] = now
        return True

    async def is_claimed(self, subscription_id: int, action: int, period_expires: datetime) -> bool:
        key = (subscription_id, action, period_expires.replace(microsecond=0))
        return key in self._rows("lifecycle_mark")

    async def claims(self, subscription_id: int, period_expires: datetime) -> dict[int, datetime]:
        period = period_expires.replace(microsecond=0)
        return {
            action: claimed_at
            for (sub_id, action, at), claimed_at in self._rows("lifecycle_mark").items()
            if sub_id == subscription_id and at == period
        }


class MemoryIdempotencyKeys(Repo):
    async def get(self, user_id: int, key: str) -> IdempotencyRecord | None:
        found: IdempotencyRecord | None = self._rows("idempotency_key").get((user_id, key))
        return found

    async def put(self, record: IdempotencyRecord) -> bool:
        rows = self._rows("idempotency_key")
        if (record.user_id, record.key) in rows:
            return False
        rows[(record.user_id, record.key)] = record
        return True
