"""SQLAlchemy Core repositories for IP space, payment methods, lifecycle marks, idempotency."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import Insert, and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from adapters.mysql import tables as t
from adapters.mysql.mapping import Mapper, Part
from adapters.mysql.never_paid import never_paid_order, not_cleaned_up
from adapters.mysql.repositories import Connect, SqlRecords, SqlRepo, is_duplicate_key
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

_irs = t.ip_range_subscription.c
_pmc = t.payment_method_config.c
_li = t.subscription_line_item.c
_sub = t.subscription.c


class SqlIpSpaces(SqlRecords[AvailableIpSpace]):
    duplicate_message = IP_SPACE_EXISTS

    async def lock(self, space_id: int) -> None:
        await self._lock_row(space_id)


class SqlIpSpacePrices(SqlRecords[IpSpacePricing]):
    duplicate_message = PRICING_EXISTS

    async def list_by_space(self, space_id: int) -> list[IpSpacePricing]:
        c = t.ip_space_pricing.c
        query = self._select().where(c.available_ip_space_id == space_id).order_by(c.prefix_size)
        return await self._all(self.mapper, query)


class SqlIpRangeSubscriptions(SqlRecords[IpRangeSubscription]):
    def __init__(
        self,
        connection: Connect,
        mapper: Mapper[IpRangeSubscription],
        subscription: Mapper[Subscription],
        line_item: Mapper[LineItem],
    ) -> None:
        super().__init__(connection, mapper)
        self.subscription = subscription
        self.line_item = line_item

    async def list_by_line_item(self, line_item_id: int) -> list[IpRangeSubscription]:
        return await self._where(_irs.subscription_line_item_id == line_item_id)

    async def list_by_space(self, space_id: int) -> list[IpRangeSubscription]:
        return await self._where(_irs.available_ip_space_id == space_id)

    async def set_active(self, record_id: int, active: bool, now: datetime) -> None:
        values = {"is_active": active, "ended_at": None if active else now}
        await self.conn.execute(
            update(t.ip_range_subscription).where(_irs.id == record_id).values(values)
        )

    async def deactivate_for_subscription(self, subscription_id: int, now: datetime) -> int:
        li = t.subscription_line_item.c
        items = select(li.id).where(li.subscription_id == subscription_id)
        query = (
            update(t.ip_range_subscription)
            .where(_irs.subscription_line_item_id.in_(items), _irs.ended_at.is_(None))
            .values(is_active=False, ended_at=now)
        )
        return (await self.conn.execute(query)).rowcount

    async def list_live_in_spaces(self, space_ids: Collection[int]) -> list[IpRangeSubscription]:
        if not space_ids:
            return []
        ended_this_lapse = and_(
            _irs.ended_at.is_not(None),
            _sub.is_active == True,  # noqa: E712
            _sub.expires.is_not(None),
            _irs.ended_at >= _sub.expires,
        )
        query = (
            select(*self.mapper.columns)
            .select_from(
                t.ip_range_subscription.join(
                    t.subscription_line_item, _li.id == _irs.subscription_line_item_id
                ).join(t.subscription, _sub.id == _li.subscription_id)
            )
            .where(
                _irs.available_ip_space_id.in_(sorted(space_ids)),
                or_(_irs.is_active == True, ended_this_lapse),  # noqa: E712
            )
            .order_by(_irs.id)
        )
        return await self._all(self.mapper, query)

    async def never_paid_orders(self, since: datetime) -> list[tuple[Subscription, list[LineItem]]]:
        order = Part(self.subscription, 0)
        item = Part(self.line_item, order.end)
        query = (
            select(*order.columns(), *item.columns())
            .select_from(
                t.subscription.join(t.subscription_line_item, _li.subscription_id == _sub.id)
            )
            .where(*never_paid_order(), not_cleaned_up(), _sub.created >= since)
            # its IP-range items, joined: what `never_paid_ip_range` asks of the order
            .where(_li.subscription_type == SubscriptionType.IP_RANGE)
            .order_by(_sub.created, _sub.id, _li.id)
        )
        out: dict[int, tuple[Subscription, list[LineItem]]] = {}
        for row in (await self.conn.execute(query)).all():
            sub, line = order.read(row), item.read(row)
            assert sub is not None and line is not None  # inner joins
            out.setdefault(sub.id, (sub, []))[1].append(line)
        return list(out.values())

    async def items_of_active_subscriptions(self) -> list[LineItem]:
        query = (
            select(*self.line_item.columns)
            .select_from(
                t.subscription_line_item.join(t.subscription, _sub.id == _li.subscription_id)
            )
            .where(
                _li.subscription_type == SubscriptionType.IP_RANGE,
                _sub.is_active == True,  # noqa: E712
            )
            .order_by(_li.id)
        )
        return await self._all(self.line_item, query)


class SqlPaymentMethods(SqlRecords[PaymentMethodConfig]):
    async def get_for_company(
        self, company_id: int, method: PaymentMethod
    ) -> PaymentMethodConfig | None:
        query = self._select().where(_pmc.company_id == company_id, _pmc.payment_method == method)
        return await self._one(self.mapper, query.order_by(_pmc.enabled.desc(), _pmc.id))

    async def list_enabled_for_company(self, company_id: int) -> list[PaymentMethodConfig]:
        query = (
            self._select()
            .where(_pmc.company_id == company_id, _pmc.enabled == True)  # noqa: E712
            .order_by(_pmc.payment_method, _pmc.name)
        )
        return await self._all(self.mapper, query)

    async def delete(self, config_id: int) -> bool:
        query = delete(t.payment_method_config).where(_pmc.id == config_id)
        return (await self.conn.execute(query)).rowcount > 0


class SqlLifecycleMarks(SqlRepo):
    async def claim(
        self, subscription_id: int, action: int, period_expires: datetime, now: datetime
    ) -> bool:
        row = {
            "subscription_id": subscription_id,
            "action": action,
            "period_expires": period_expires,
            "claimed_at": now,
        }
        return await insert_unless_duplicate(self, insert(t.lifecycle_mark).values(row))

    async def is_claimed(self, subscription_id: int, action: int, period_expires: datetime) -> bool:
        c = t.lifecycle_mark.c
        query = select(c.id).where(
            c.subscription_id == subscription_id,
            c.action == action,
            c.period_expires == period_expires,
        )
        return (await self.conn.execute(query.limit(1))).first() is not None

    async def claims(self, subscription_id: int, period_expires: datetime) -> dict[int, datetime]:
        c = t.lifecycle_mark.c
        query = select(c.action, c.claimed_at).where(
            c.subscription_id == subscription_id, c.period_expires == period_expires
        )
        return {row.action: row.claimed_at for row in await self.conn.execute(query)}


class SqlIdempotencyKeys(SqlRepo):
    async def get(self, user_id: int, key: str) -> IdempotencyRecord | None:
        c = t.idempotency_key.c
        query = select(c.key, c.user_id, c.request_hash, c.payment_id, c.created).where(
            c.user_id == user_id, c.key == key
        )
        row = (await self.conn.execute(query)).mappings().first()
        return None if row is None else IdempotencyRecord(**row)

    async def put(self, record: IdempotencyRecord) -> bool:
        row = {
            "key": record.key,
            "user_id": record.user_id,
            "request_hash": record.request_hash,
            "payment_id": record.payment_id,
            "created": record.created,
        }
        return await insert_unless_duplicate(self, insert(t.idempotency_key).values(row))


async def insert_unless_duplicate(repo: SqlRepo, statement: Insert) -> bool:
    """Insert; a unique-key violation means someone else holds the row: False.

    MariaDB/InnoDB and SQLite undo only the failing statement, so the transaction goes on.
    A concurrent inserter of the same key waits for the first transaction to finish.
    Other integrity errors (an unknown subscription, say) are raised.
    """
    try:
        await repo.conn.execute(statement)
    except IntegrityError as error:
        if is_duplicate_key(error):
            return False
        raise
    return True
