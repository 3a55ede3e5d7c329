"""SQLAlchemy Core repositories for subscriptions, line items and payments."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

import orjson
from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    type_coerce,
    update,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.dml import ReturningUpdate
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import NullType

from adapters.mysql import tables as t
from adapters.mysql.compiled_cache import keep
from adapters.mysql.in_lists import id_chunks
from adapters.mysql.inline import FALSE, const
from adapters.mysql.interval_column import interval_count_column
from adapters.mysql.mapping import (
    Mapper,
    Part,
    evolve,
    joined_records,
    part_at,
    result_processors,
)
from adapters.mysql.never_paid import never_paid_ip_range, none_of
from adapters.mysql.repositories import Connect, SqlRecords, SqlRepo, prebuilt
from domain.enums import PaymentMethod, SubscriptionPaymentType, SubscriptionType, SwitchedOff
from domain.model import (
    Company,
    CostPlan,
    LegacyVmPayment,
    LineItem,
    Subscription,
    SubscriptionPayment,
    User,
    Vm,
    VmTemplate,
)
from domain.money import currency_code
from domain.subscription import INTERVALS_KEY
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
    VmOnPlan,
)

_sub = t.subscription.c
_li = t.subscription_line_item.c
#: the label of `list_shown`'s custom pricing currency column
_SHOWN_CURRENCY = "shown_amount_currency"
_pay = t.subscription_payment.c
#: built once: executing the same statement object reuses its cache key and compiled form
_INSERT_PAYMENT = keep(insert(t.subscription_payment))
_TOUCH_SUBSCRIPTION = (
    update(t.subscription).where(_sub.id == bindparam("subscription_id")).values(id=_sub.id)
)
#: every payment column as the driver gives it (no type processing): the reuse lookup walks
#: every pending payment of a subscription and maps only the one it keeps
_RAW = NullType()
_RAW_PAYMENT: list[ColumnElement[Any]] = [
    type_coerce(c, _RAW).label(c.name) for c in t.subscription_payment.columns
]


def _live_unpaid(
    payment: Any, subscription_id: Any, now: Any = None
) -> tuple[ColumnElement[bool], ...]:
    """A subscription's pending payments: unpaid and `expires > now` (`:now` by default);
    `payment` is the columns of `subscription_payment` or of an alias of it."""
    return (payment.subscription_id == subscription_id, *_pending_at(payment, now))


def _pending_at(payment: Any, now: Any = None) -> tuple[ColumnElement[bool], ...]:
    """Pending payments of any subscription: unpaid and `expires > now` (`:now` by default)."""
    now = bindparam("now") if now is None else now
    return (payment.is_paid == FALSE, payment.expires > now)


#: method and type are compared in Python: in SQL they draw SQLite to the (payment_method,
#: is_paid, created) index, a walk over every unpaid payment of that method
_PENDING_RAW = (
    select(*_RAW_PAYMENT)
    .where(*_live_unpaid(_pay, bindparam("subscription_id")))
    .order_by(_pay.created.desc(), _pay.id.desc())
)
#: which of the subscriptions `:ids` have a pending payment at `:now` (on the pending index)
_WITH_PENDING = (
    select(_pay.subscription_id)
    .distinct()
    .where(_pay.subscription_id.in_(bindparam("ids", expanding=True)), *_pending_at(_pay))
)


def _live_quotes(subscription_id: ColumnElement[int]) -> Select[Any]:
    """How many of the subscription's pending payments at `:now` the live-quote cap counts
    (`is_capped_quote`: an upgrade, or a row whose interval count is set), on the pending
    index."""
    return (
        select(func.count())
        .select_from(t.subscription_payment)
        .where(
            *_live_unpaid(_pay, subscription_id),
            or_(
                # the code written into the SQL: one parameter less on every renewal read
                type_coerce(_pay.payment_type, Integer)
                == const(int(SubscriptionPaymentType.UPGRADE)),
                _pay.interval_count.is_not(None),
            ),
        )
    )


_LIVE_QUOTES = _live_quotes(bindparam("subscription_id"))
_RAW_INDEX = {c.name: n for n, c in enumerate(t.subscription_payment.columns)}


#: characters that continue a JSON number (an integer ends at anything else) and JSON's
#: whitespace, each a string to find a character in (`instr`; an `IN` list would be expanded
#: into the SQL text on every execution)
_NUMBER_GOES_ON = "0123456789.eE"
_JSON_SPACE = " \t\n\r"


def _may_have(metadata: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """SQL that keeps every row whose metadata a `MetadataKey` may accept as Python reads it,
    by text alone (a JSON parser in SQL cost more than the rows it saved): what this service
    writes, `{"name":n,…}` (compact, the name first), is judged by the digits after the name,
    `:digits`; any other text is kept (NULL, the name elsewhere or missing, whitespace after
    the colon), and so is any with a backslash (an escaped name) or the name again after the
    first (Python keeps the last duplicate). SQLite and MariaDB alike (the metadata column's
    collation there is binary: `INTERVALS` is another name)."""
    meta = type_coerce(metadata, _RAW)
    prefix = f'{{"{name}":'
    at, one, zero = const(len(prefix) + 1), const(1), const(0)
    digits: BindParameter[str] = bindparam("digits")
    return or_(
        meta.is_(None),
        func.substr(meta, one, const(len(prefix))) != const(prefix),
        func.instr(meta, const("\\")) > zero,
        func.instr(func.substr(meta, at), const(f'"{name}"')) > zero,
        func.instr(const(_JSON_SPACE), func.substr(meta, at, one)) > zero,
        and_(
            func.substr(meta, at, func.length(digits)) == digits,
            func.instr(const(_NUMBER_GOES_ON), func.substr(meta, at + func.length(digits), one))
            == zero,
        ),
    )


def _narrowed(payment: Any, name: str) -> ColumnElement[bool]:
    """SQL that keeps every payment (columns of `subscription_payment` or an alias) whose
    metadata a `MetadataKey(name, …)` may accept: for the interval count, a row whose
    `interval_count` is `:interval_count`, or NULL and kept by `_may_have` (a row of another
    count is passed over on the `(subscription_id, is_paid, interval_count, expires)` index,
    its table row never read); for any other name `_may_have` alone."""
    if name != INTERVALS_KEY:
        return _may_have(payment.metadata, name)
    count = payment.interval_count
    wanted = bindparam("interval_count", type_=Integer)
    return or_(count == wanted, and_(count.is_(None), _may_have(payment.metadata, name)))


def _narrowing_params(narrow: MetadataKey) -> dict[str, Any]:
    """The parameters `_narrowed` binds for `narrow`."""
    return {"digits": str(narrow.value), "interval_count": narrow.value}


def _pending_count(subscription_id: ColumnElement[int], name: str) -> ColumnElement[int]:
    """How many of the subscription's pending payments at `:now` `_narrowed(name)` keeps."""
    return (
        select(func.count())
        .select_from(t.subscription_payment)
        .where(*_live_unpaid(_pay, subscription_id), _narrowed(_pay, name))
        .scalar_subquery()
    )


_CANDIDATE = t.subscription_payment.alias("candidate")
#: the payment `_newest_candidate` names, joined to the subscription's rows
_FIRST_PENDING = t.subscription_payment.alias("first_pending")


def _newest_candidate(subscription_id: ColumnElement[int], name: str) -> ColumnElement[Any]:
    """The id of the subscription's newest pending payment at `:now` of the method coded
    `:method_code` that `_narrowed(name)` keeps: the first row `newest_pending` would test
    with that method (same order: created, then id, descending)."""
    c = _CANDIDATE.c
    return (
        select(c.id)
        .where(
            *_live_unpaid(c, subscription_id),
            # `+ 0`: never the (method, is_paid, created) index, a walk over every unpaid
            # payment of the method, newest first, until one of this subscription
            type_coerce(c.payment_method, Integer) + const(0) == bindparam("method_code"),
            _narrowed(c, name),
        )
        .order_by(c.created.desc(), c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


@functools.cache
def _pending_narrowed(name: str) -> Select[Any]:
    """`_PENDING_RAW` without rows a `MetadataKey` rules out (built once per name)."""
    return _PENDING_RAW.where(_narrowed(_pay, name))


#: per dialect, each payment column's result processor (None: the value as it comes)
_PROCESSORS: WeakKeyDictionary[Dialect, list[Callable[[Any], Any] | None]] = WeakKeyDictionary()


def _processors(dialect: Dialect) -> list[Callable[[Any], Any] | None]:
    """What SQLAlchemy would run on each payment column's raw value on this dialect."""
    found = _PROCESSORS.get(dialect)
    if found is None:
        found = _PROCESSORS[dialect] = result_processors(t.subscription_payment.columns, dialect)
    return found


def _json_value(raw: str | bytes | None) -> Any:
    """`JsonText`'s decoding of a raw JSON column, by orjson where it reads the text (about
    3x faster), `json` for what it refuses (NaN, integers beyond 64 bits) or to raise."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


def _balance_of() -> Select[Any]:
    """A user's credit balance in one currency (no row: none)."""
    balance = t.user_credit_balance.c
    return select(balance.balance).where(
        balance.user_id == bindparam("user_id"), balance.currency == bindparam("currency")
    )


def _json_or_text(raw: str | bytes | None) -> Any:
    """A raw metadata column decoded, or left as its text when that is not JSON: such a
    payment is never reused (`metadata_interval_count` gives None), and one broken row must
    not make every renewal of its subscription fail."""
    try:
        return _json_value(raw)
    except ValueError:
        return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


#: the line item id beside each subscription row of `get_by_line_items`
_ITEM_LABEL = "owner__line_item_id"


class SqlSubscriptions(SqlRecords[Subscription]):
    frozen_columns = ("created",)

    def __init__(
        self,
        connection: Connect,
        mapper: Mapper[Subscription],
        items: Mapper[LineItem],
    ) -> None:
        super().__init__(connection, mapper)
        self.items = SqlRecords(connection, items)

    async def any_for_company(self, company_id: int) -> bool:
        c = t.subscription.c
        query = select(c.id).where(c.company_id == company_id).limit(1)
        return (await self.conn.execute(query)).first() is not None

    async def set_auto_renewal(self, subscription_id: int, enabled: bool) -> bool:
        return await self._set(subscription_id, auto_renewal_enabled=enabled)

    async def delete(self, subscription_id: int) -> bool:
        return await _delete_subscription(self.conn, subscription_id)

    async def add_with_line_items(
        self, subscription: Subscription, items: Sequence[LineItem]
    ) -> tuple[Subscription, list[LineItem]]:
        stored = await self.add(subscription)
        added = [await self.items.add(evolve(i, subscription_id=stored.id)) for i in items]
        return stored, added

    async def get_for_update(self, subscription_id: int) -> Subscription | None:
        params = {"subscription_id": subscription_id}
        if self.locks_rows:
            key = ("subscription for update", self.table, self.mapper.cls)
            return await self._first_with(self.mapper, prebuilt(key, self._locking), params)
        if await self._begin_write():  # the write transaction begun, then a plain read
            return await self.get(subscription_id)
        # SQLite's async engine has no row locks: a no-op write takes the database write lock,
        # so a concurrent read-modify-write waits here as it would on the row lock; the row
        # comes back with it (RETURNING, SQLite 3.35+), one statement instead of two.
        key = ("subscription touched", self.table, self.mapper.cls)
        touched = prebuilt(key, self._touching)
        row = (await self.conn.execute(touched, params)).mappings().first()
        return None if row is None else self.mapper.from_row(row)

    def _touching(self) -> ReturningUpdate[Any]:
        return _TOUCH_SUBSCRIPTION.returning(*self.mapper.columns)

    def _locking(self) -> Select[Any]:
        by_id = _sub.id == bindparam("subscription_id")
        return self._select().where(by_id).limit(1).with_for_update()

    async def get_by_line_item(self, line_item_id: int) -> Subscription | None:
        key = ("subscription by line item", self.table, self.mapper.cls)
        statement = prebuilt(key, self._owner)
        return await self._first_with(self.mapper, statement, {"line_item_id": line_item_id})

    async def get_by_line_items(self, line_item_ids: Collection[int]) -> dict[int, Subscription]:
        key = ("subscriptions by line items", self.table, self.mapper.cls)
        statement = prebuilt(key, self._owners)
        out: dict[int, Subscription] = {}
        for ids in id_chunks(line_item_ids):
            for row in (await self.conn.execute(statement, {"ids": ids})).mappings():
                out[int(row[_ITEM_LABEL])] = self.mapper.from_row(row)
        return out

    def _owners(self) -> Select[Any]:
        owns = t.subscription.join(t.subscription_line_item, _li.subscription_id == _sub.id)
        return (
            self._select()
            .add_columns(_li.id.label(_ITEM_LABEL))
            .select_from(owns)
            .where(_li.id.in_(bindparam("ids", expanding=True)))
        )

    def _owner(self) -> Select[Any]:
        owner = select(_li.subscription_id).where(_li.id == bindparam("line_item_id"))
        return self._select().where(_sub.id == owner.scalar_subquery()).limit(1)

    async def ids_with_pending_on(
        self, now: datetime, types: Collection[SubscriptionPaymentType], on: PricedBy
    ) -> list[int]:
        vm, tpl, custom = t.vm.c, t.vm_template.c, t.vm_custom_template.c
        priced: list[ColumnElement[bool]] = []
        if on.template_id is not None:
            priced.append(vm.template_id == on.template_id)
        if on.cost_plan_id is not None:
            plan_templates = select(tpl.id).where(tpl.cost_plan_id == on.cost_plan_id)
            priced.append(vm.template_id.in_(plan_templates))
        if on.custom_pricing_id is not None:
            customs = select(custom.id).where(custom.pricing_id == on.custom_pricing_id)
            priced.append(vm.custom_template_id.in_(customs))
        if on.template_region_id is not None:
            regional = select(tpl.id).where(tpl.region_id == on.template_region_id)
            priced.append(vm.template_id.in_(regional))
        if not priced or not types:
            return []
        query = (
            select(_li.subscription_id)
            .distinct()
            .select_from(t.vm)
            .join(t.subscription_line_item, _li.id == vm.subscription_line_item_id)
            .join(t.subscription_payment, _pay.subscription_id == _li.subscription_id)
            .where(
                or_(*priced),
                _pay.is_paid == False,  # noqa: E712
                _pay.expires > now,
                _pay.payment_type.in_(list(types)),
            )
            .order_by(_li.subscription_id)
        )
        return [int(row[0]) for row in (await self.conn.execute(query)).all()]

    async def list_by_user(self, user_id: int, limit: int, offset: int = 0) -> Page[Subscription]:
        return await self._page(
            self.mapper, _sub.user_id == user_id, [_sub.id.desc()], limit, offset
        )

    async def count_never_paid_ip_ranges(self, user_id: int, since: datetime) -> int:
        query = (
            select(func.count())
            .select_from(t.subscription)
            .where(_sub.user_id == user_id, _sub.created >= since, *never_paid_ip_range())
        )
        return int((await self.conn.execute(query)).scalar_one())

    async def list_never_paid_ip_ranges(
        self, window: NeverPaidWindow, limit: int
    ) -> list[Subscription]:
        payments = t.subscription_payment.alias("pending")
        sells_vm = select(_li.id).where(
            _li.subscription_id == _sub.id, _li.subscription_type == SubscriptionType.VPS
        )
        pending = select(payments.c.id).where(
            payments.c.subscription_id == _sub.id, *_pending_at(payments.c, window.now)
        )
        paid = select(payments.c.id).where(
            payments.c.subscription_id == _sub.id,
            payments.c.is_paid == True,  # noqa: E712
        )
        query = (
            self._select()
            .where(_sub.expires.is_(None), _sub.created >= window.since)
            .where(_sub.created < window.before, *never_paid_ip_range())
            .where(*(none_of(rows) for rows in (sells_vm, pending, paid)))
            .order_by(_sub.created, _sub.id)
            .limit(limit)
            # the (expires, created) range, whatever the statistics say: on a young table
            # MariaDB may rather walk the primary key, every subscription ever made
            .with_hint(t.subscription, f"FORCE INDEX ({t.NEVER_PAID_INDEX})", "mysql")
        )
        if window.after is not None:
            # one range from the last page's second on (the rows of that second up to its
            # id are passed over, no more)
            last, last_id = window.after
            query = query.where(_sub.created >= last, or_(_sub.created > last, _sub.id > last_id))
        return await self._all(self.mapper, query)

    async def list_due(self, window: DueWindow, limit: int) -> list[Subscription]:
        since, after = window.since, window.after
        # active, or switched off by an admin with its end to come (domain.switch_off):
        # a filter on the rows the expiry range reads, not another range
        handled = or_(
            _sub.is_active == True,  # noqa: E712
            _sub.switched_off == SwitchedOff.WINDING_DOWN,
        )
        query = (
            self._select()
            .where(handled, _sub.expires.is_not(None))
            .where(_sub.expires < window.now + window.horizon)
            .order_by(_sub.expires, _sub.id)
            # a range on the expiry, whatever the statistics say: on a small or mostly
            # active table MariaDB would rather read every active row via `is_active`
            .with_hint(t.subscription, "FORCE INDEX (idx_subscription_expires)", "mysql")
        )
        if since is not None:
            query = query.where(_sub.expires >= since)
        if after is None:
            return await self._all(self.mapper, query.limit(limit))
        # keyset (expires, id) > after as two index ranges: the rest of the last page's
        # second, then the later seconds (one `expires > a OR (…)` makes MariaDB scan the
        # whole active part of the index from its start)
        last, last_id = after
        rows = await self._all(
            self.mapper, query.where(_sub.expires == last, _sub.id > last_id).limit(limit)
        )
        if len(rows) < limit:
            rest = query.where(_sub.expires > last).limit(limit - len(rows))
            rows += await self._all(self.mapper, rest)
        return rows


async def _delete_subscription(conn: Any, subscription_id: int) -> bool:
    await conn.execute(
        delete(t.subscription_line_item).where(_li.subscription_id == subscription_id)
    )
    result = await conn.execute(delete(t.subscription).where(_sub.id == subscription_id))
    return bool(result.rowcount > 0)


#: the extra columns of the pricing reads (after every mapper's), read back by these names:
#: the credit balance, the code the owned-VM read read it in, the count of pending payments
_CREDIT_LABEL, _CODE_LABEL = "priced__credit", "priced__credit_in"
_PENDING_LABEL = "priced__pending"
#: the count of live quotes (`_LIVE_QUOTES`) the storing and the owned-VM reads hold
_QUOTES_LABEL = "priced__live_quotes"
#: the balance code the owned-VM read joins: the subscription's currency as SQL reads a code
#: (`Currency.parse` strips every kind of whitespace and reads any script's case: where the
#: two differ, the balance is read on its own)
_SUBSCRIPTION_CODE = func.upper(func.trim(_sub.currency))


def _owned_vm_subscription() -> ColumnElement[Any]:
    """The id of the subscription billing VM `:vm_id` through its line item, if the VM is not
    soft-deleted and the user with the public key `:pubkey` owns it (aliases: the pricing
    read joins these tables too, which a subquery on them would correlate to)."""
    vm, item, users = t.vm.alias("owned_vm"), t.subscription_line_item.alias("owned_item"), t.users
    owner = users.alias("owner")
    return (
        select(item.c.subscription_id)
        .select_from(item.join(vm, vm.c.subscription_line_item_id == item.c.id))
        .where(
            vm.c.id == bindparam("vm_id"),
            vm.c.deleted == FALSE,
            vm.c.user_id
            == select(owner.c.id).where(owner.c.pubkey == bindparam("pubkey")).scalar_subquery(),
        )
        .scalar_subquery()
    )


def _id_position(mapper: Mapper[Any]) -> int:
    """Where `id` is among the columns a mapper reads."""
    return [c.name for c in mapper.columns].index("id")


@functools.lru_cache(maxsize=64)
def _pricing_layout(
    parties: tuple[Mapper[User], Mapper[Company]],
    joined: tuple[Mapper[LineItem], Mapper[Vm], Mapper[VmTemplate], Mapper[CostPlan]],
) -> tuple[int, int, tuple[int, int, int], Part[LineItem]]:
    """Where the pricing read's parties' columns end and all the mappers' do (the width: its
    columns before any others), where the item's and the VM's ids are, and the item's
    `Part`: worked out once per set of mappers, not per unit of work (issue 10)."""
    skip = sum(len(m.columns) for m in parties)
    width = skip + sum(len(m.columns) for m in joined)
    item, vm = joined[0], joined[1]
    item_at = skip + _id_position(item)
    vm_at = skip + len(item.columns) + _id_position(vm)
    return skip, width, (item_at, vm_at, width), part_at(item, skip)


class SqlLineItems(SqlRecords[LineItem]):
    def __init__(
        self,
        connection: Connect,
        mapper: Mapper[LineItem],
        user: Mapper[User],
        company: Mapper[Company],
        vm: Mapper[Vm],
        template: Mapper[VmTemplate],
        cost_plan: Mapper[CostPlan],
        subscription: Mapper[Subscription],
        payment: Mapper[SubscriptionPayment],
        subscriptions: SqlSubscriptions,
    ) -> None:
        super().__init__(connection, mapper)
        self.parties = (user, company)
        self.joined = (mapper, vm, template, cost_plan)
        self.owned = (subscription, payment)  # the owned-VM read's subscription and payment
        self.subscriptions = subscriptions  # the same unit of work's, which locks them
        layout = _pricing_layout(self.parties, self.joined)
        self._parties_width, self._width, self._positions, self._item_part = layout

    async def list_priced(
        self,
        subscription_id: int,
        credit_in: str | None = None,
        pending: PendingCount | None = None,
        seen: PricedItems | None = None,
    ) -> PricedItems | None:
        """(`seen`: as `priced_for_update`'s.)"""
        params: dict[str, Any] = {"subscription_id": subscription_id}
        credit = credit_in is not None
        counted = None if pending is None else pending.narrow.name
        quotes = pending is not None and pending.quotes
        statement = self._prepared(
            f"priced items, credit {credit}, pending {counted}, quotes {quotes}",
            self.mapper,
            lambda: self._priced(credit=credit, pending=counted, quotes=quotes),
        )
        if credit_in is not None:
            params["credit_in"] = credit_in
        if pending is not None:
            params.update(now=pending.now, **_narrowing_params(pending.narrow))
        rows = (await self.conn.execute(statement, params)).all()
        if not rows:
            return None  # no such subscription or user
        extra = rows[0]._mapping
        found_credit = None if credit_in is None else int(extra[_CREDIT_LABEL] or 0)
        found_pending = None if pending is None else int(extra[_PENDING_LABEL])
        live = int(extra[_QUOTES_LABEL]) if quotes else None
        return self._priced_items(
            rows, subscription_id, found_credit, found_pending, live, seen=seen
        )

    async def priced_for_update(
        self,
        subscription_id: int,
        pending: PendingCount | None = None,
        seen: PricedItems | None = None,
    ) -> LockedPriced | None:
        if not await self._begin_write():
            # MariaDB: the row lock on its own (a locking read of the whole join would lock
            # the plans and templates every renewal reads); SQLite's async engine: its UPDATE
            sub = await self.subscriptions.get_for_update(subscription_id)
            if sub is None:
                return None
            priced = await self.list_priced(subscription_id, pending=pending, seen=seen)
            return LockedPriced(sub, priced)
        # the write transaction begun: one read, with the subscription's columns
        counted = None if pending is None else pending.narrow.name
        quotes = pending is not None and pending.quotes
        statement = self._prepared(
            f"priced items with their subscription, pending {counted}, quotes {quotes}",
            self.mapper,
            lambda: self._priced(credit=False, pending=counted, subscription=True, quotes=quotes),
        )
        params: dict[str, Any] = {"subscription_id": subscription_id}
        if pending is not None:
            params.update(now=pending.now, **_narrowing_params(pending.narrow))
        rows = (await self.conn.execute(statement, params)).all()
        if not rows:  # no such subscription, or its user is gone: which, read on its own
            found = await self.subscriptions.get(subscription_id)
            return None if found is None else LockedPriced(found, None)
        [sub] = joined_records(rows[0], self.owned[:1], start=self._width)
        extra = rows[0]._mapping
        counted_rows = None if pending is None else int(extra[_PENDING_LABEL])
        live = int(extra[_QUOTES_LABEL]) if quotes else None
        priced = self._priced_items(rows, subscription_id, None, counted_rows, live, seen=seen)
        return LockedPriced(sub, priced)

    async def priced_of_owned_vm(
        self, vm_id: int, pubkey: bytes, newest: NewestPending, *, credit: bool = False
    ) -> OwnedPriced | None:
        name = newest.narrow.name
        quotes = newest.quotes
        statement = self._prepared(
            f"priced of owned vm, credit {credit}, pending {name}, quotes {quotes}",
            self.mapper,
            lambda: self._owned_priced(credit=credit, pending=name, quotes=quotes),
        )
        params = {
            "vm_id": vm_id,
            "pubkey": pubkey,
            "now": newest.now,
            "method_code": int(newest.method),
            **_narrowing_params(newest.narrow),
        }
        rows = (await self.conn.execute(statement, params)).all()
        if not rows:
            return None  # no such VM of the key's, or no subscription or user
        # the subscription and the newest candidate: the same on every row, after the pricing
        subscription, payment = self.owned
        sub_part = part_at(subscription, self._width)
        sub = sub_part.read(rows[0])
        assert sub is not None  # joined, not outer-joined: every row has its subscription
        first_part = part_at(payment, sub_part.end)
        values: Sequence[Any] = rows[0]
        if values[first_part.id_at] is not None:
            # its metadata as stored: text that is not JSON stays text; decoded before the
            # record is built (as `evolve` after it would, without building it twice)
            at = first_part.start + first_part.names.index("metadata")
            values = [*values[:at], _json_or_text(values[at]), *values[at + 1 :]]
        first = first_part.read(values)
        balance = await self._credit(sub, rows[0]._mapping) if credit else None
        live = int(rows[0]._mapping[_QUOTES_LABEL]) if quotes else None
        items = self._items_of(rows)
        # the buyer, seller and VM records only once asked for: a reused invoice needs none
        build = functools.partial(self._priced_items, rows, sub.id, balance, None, live)
        return OwnedPriced(sub, build, first, items=items)

    def _items_of(self, rows: list[Any]) -> tuple[LineItem, ...]:
        """`_priced_items(rows, …).items` alone (`rows` sorted as it sorts them, in place)."""
        item_at, vm_at, _ = self._positions
        rows.sort(key=lambda row: (row[item_at] or 0, row[vm_at] or 0))
        part = self._item_part
        items: dict[int, LineItem] = {}
        for row in rows:
            item = part.read(row)
            if item is not None and item.id not in items:
                items[item.id] = item
        return tuple(items.values())

    async def _credit(self, sub: Subscription, extra: Any) -> int | None:
        """The balance the owned-VM read joined, if it is the one `Currency.parse` names."""
        code = currency_code(sub.currency)
        if code is None:
            return None
        if extra[_CODE_LABEL] == code:
            return int(extra[_CREDIT_LABEL] or 0)
        # a currency text SQL reads another way: its balance on its own (one more statement)
        balance = prebuilt(("credit balance of",), _balance_of)
        found = await self.conn.execute(balance, {"user_id": sub.user_id, "currency": code})
        return int(found.scalar() or 0)

    def _priced_items(
        self,
        rows: list[Any],
        subscription_id: int,
        credit: int | None,
        pending: int | None,
        quotes: int | None = None,
        *,
        seen: PricedItems | None = None,
    ) -> PricedItems:
        """The `PricedItems` of a pricing read's rows (sorted here, in place): `seen`'s
        records when `seen` was read from the same values (`priced_for_update`)."""
        item_at, vm_at, width = self._positions
        # by item, then VM id (a few rows): sorted here, as an ORDER BY across the joined
        # tables made MariaDB sort them in an on-disk temporary table (~100 µs a statement)
        rows.sort(key=lambda row: (row[item_at] or 0, row[vm_at] or 0))
        # every value the records below are built from, as read: equal values, equal records
        source = (subscription_id, [row[:width] for row in rows])
        if seen is not None and seen.source == source:
            kept = (seen.items, seen.vms, seen.user, seen.seller)
            return PricedItems(*kept, credit, pending, quotes, source=source)
        user, seller = joined_records(rows[0], self.parties)
        skip = self._parties_width  # the parties' columns, repeated on every row
        items: dict[int, LineItem] = {}
        vms: dict[int, VmOnPlan] = {}
        for row in rows:  # an item's first row holds its VM
            item, vm, template, plan = joined_records(row, self.joined, start=skip)
            if item is None or item.id in items:
                continue
            items[item.id] = item
            if vm is not None:
                vms[item.id] = VmOnPlan(vm, template, plan)
        found = tuple(items.values())
        return PricedItems(found, vms, user, seller, credit, pending, quotes, source=source)

    def _priced(
        self, *, credit: bool, pending: str | None, subscription: bool = False, quotes: bool = False
    ) -> Select[Any]:
        """The pricing read of subscription `:subscription_id`: `_priced_join`, with `credit`
        the balance in `:credit_in`; with `pending` (a metadata name), the count of its
        pending payments at `:now` that `_narrowed(pending)` keeps (`_PENDING_LABEL`); with
        `subscription`, the subscription's columns after the mappers' (`_width`); with
        `quotes`, the count of its live quotes at `:now` (`_QUOTES_LABEL`)."""
        joined, columns, extra = self._priced_join(bindparam("credit_in") if credit else None)
        if subscription:
            columns += self.owned[0].columns
        if pending is not None:
            extra.append(_pending_count(_sub.id, pending).label(_PENDING_LABEL))
        if quotes:
            extra.append(_live_quotes(_sub.id).scalar_subquery().label(_QUOTES_LABEL))
        query = select(*columns, *extra).select_from(joined)
        return query.where(_sub.id == bindparam("subscription_id"))

    def _owned_priced(self, *, credit: bool, pending: str, quotes: bool) -> Select[Any]:
        """The pricing read of the subscription `_owned_vm_subscription` names, with that
        subscription's columns and then those of the payment `_newest_candidate` names for
        the metadata name `pending` (outer-joined) after the mappers'; with `credit` the
        balance in `_SUBSCRIPTION_CODE` and that code (`_CODE_LABEL`); with `quotes` the
        count of its live quotes at `:now` (`_QUOTES_LABEL`)."""
        joined, columns, extra = self._priced_join(_SUBSCRIPTION_CODE if credit else None)
        if credit:
            extra.append(_SUBSCRIPTION_CODE.label(_CODE_LABEL))
        if quotes:
            extra.append(_live_quotes(_sub.id).scalar_subquery().label(_QUOTES_LABEL))
        first = _FIRST_PENDING.c
        # (the subscription named too: the id alone links the tables through a subquery)
        newest = (first.id == _newest_candidate(_sub.id, pending)) & (
            first.subscription_id == _sub.id
        )
        subscriptions, payments = self.owned
        columns += subscriptions.columns
        # its metadata as stored: decoded after the read, where text that is not JSON stays
        columns += [
            type_coerce(first.metadata, _RAW) if c.name == "metadata" else first[c.name]
            for c in payments.columns
        ]
        query = select(*columns, *extra).select_from(joined.outerjoin(_FIRST_PENDING, newest))
        return query.where(_sub.id == _owned_vm_subscription())

    def _priced_join(
        self, credit: ColumnElement[Any] | None
    ) -> tuple[Any, list[ColumnElement[Any]], list[ColumnElement[Any]]]:
        """A subscription joined to its user, outer-joined to its company and to each of its
        line items, each to its VM that is not deleted, the VM's template and plan; with
        `credit` (a currency code), to the user's balance in it too (NULL: none; one row at
        most by its key, so the rows stay as many). Returns the join, every mapper's columns
        (`parties`, then `joined`) and the balance column (`_CREDIT_LABEL`) if asked for."""
        users, company, vm, template, plan = t.users, t.company, t.vm, t.vm_template, t.vm_cost_plan
        joined = (
            t.subscription.join(users, users.c.id == _sub.user_id)
            .outerjoin(company, company.c.id == _sub.company_id)
            .outerjoin(t.subscription_line_item, _li.subscription_id == _sub.id)
            .outerjoin(
                vm,
                (vm.c.subscription_line_item_id == _li.id) & (vm.c.deleted == FALSE),
            )
            .outerjoin(template, template.c.id == vm.c.template_id)
            .outerjoin(plan, plan.c.id == template.c.cost_plan_id)
        )
        columns: list[ColumnElement[Any]] = [
            c for mapper in (*self.parties, *self.joined) for c in mapper.columns
        ]
        extra: list[ColumnElement[Any]] = []
        if credit is not None:
            balance = t.user_credit_balance.c
            of_user = (balance.user_id == _sub.user_id) & (balance.currency == credit)
            joined = joined.outerjoin(t.user_credit_balance, of_user)
            extra.append(balance.balance.label(_CREDIT_LABEL))
        return joined, columns, extra

    async def list_by_subscription(self, subscription_id: int) -> list[LineItem]:
        key = ("line items of", self.table, self.mapper.cls)
        statement = prebuilt(key, self._of_subscription)
        return await self._all_with(self.mapper, statement, {"subscription_id": subscription_id})

    def _of_subscription(self) -> Select[Any]:
        where = _li.subscription_id == bindparam("subscription_id")
        return self._select().where(where).order_by(self.table.c.id)

    async def list_by_subscriptions(
        self, subscription_ids: Collection[int]
    ) -> dict[int, list[LineItem]]:
        out: dict[int, list[LineItem]] = {}
        if not subscription_ids:
            return out
        for item in await self._where(_li.subscription_id.in_(sorted(set(subscription_ids)))):
            out.setdefault(item.subscription_id, []).append(item)
        return out

    async def list_shown(self, subscription_ids: Collection[int]) -> ShownItems:
        # the items with their VMs' custom pricings joined on: one statement, one row per
        # item and VM pointing at it (a standard VM's or a VM-less item's currency is NULL)
        items: dict[int, list[LineItem]] = {}
        currencies: dict[int, str] = {}
        if not subscription_ids:
            return ShownItems(items, currencies)
        vm, spec, pricing = t.vm.c, t.vm_custom_template.c, t.vm_custom_pricing.c
        joined = (
            t.subscription_line_item.outerjoin(t.vm, vm.subscription_line_item_id == _li.id)
            .outerjoin(t.vm_custom_template, spec.id == vm.custom_template_id)
            .outerjoin(t.vm_custom_pricing, pricing.id == spec.pricing_id)
        )
        query: Select[Any] = (
            select(*self.mapper.columns, pricing.currency.label(_SHOWN_CURRENCY))
            .select_from(joined)
            .where(_li.subscription_id.in_(sorted(set(subscription_ids))))
            .order_by(_li.id)
        )
        seen: set[int] = set()
        for row in (await self.conn.execute(query)).mappings():
            item = self.mapper.from_row(row)
            if item.id not in seen:
                seen.add(item.id)
                items.setdefault(item.subscription_id, []).append(item)
            if row[_SHOWN_CURRENCY] is not None:
                currencies.setdefault(item.id, row[_SHOWN_CURRENCY])
        return ShownItems(items, currencies)

    async def delete(self, line_item_id: int) -> bool:
        query = delete(t.subscription_line_item).where(_li.id == line_item_id)
        return (await self.conn.execute(query)).rowcount > 0


class SqlPayments(SqlRepo):
    def __init__(self, connection: Connect, mapper: Mapper[SubscriptionPayment]) -> None:
        super().__init__(connection)
        self.mapper = mapper

    async def add(self, payment: SubscriptionPayment) -> SubscriptionPayment:
        # the row as parameters: no statement building or cache-key walk over the values
        await self.conn.execute(_INSERT_PAYMENT, _with_interval_count(self.mapper, payment, ()))
        return payment

    async def get(self, payment_id: bytes) -> SubscriptionPayment | None:
        return await self._one(self.mapper, self._select().where(_pay.id == payment_id))

    async def get_by_external_id(self, external_id: str) -> SubscriptionPayment | None:
        query = self._select().where(_pay.external_id == external_id).order_by(_pay.created)
        return await self._one(self.mapper, query)

    async def update(self, payment: SubscriptionPayment) -> None:
        values = _with_interval_count(self.mapper, payment, ("id", "paid_at"))
        query = update(t.subscription_payment).where(_pay.id == payment.id).values(values)
        await self.conn.execute(query)

    async def list_by_subscription(
        self, subscription_id: int, limit: int, offset: int = 0
    ) -> Page[SubscriptionPayment]:
        where = _pay.subscription_id == subscription_id
        return await self._page(self.mapper, where, [_pay.created.desc()], limit, offset)

    async def paid_tally(self, subscription_id: int) -> PaidTally:
        # one row per paid payment, or one of NULLs when none is, each with the unpaid count
        unpaid = (
            select(func.count().label("unpaid"))
            .where(_pay.subscription_id == subscription_id, _pay.is_paid == False)  # noqa: E712
            .subquery("unpaid_count")
        )
        paid = and_(_pay.subscription_id == subscription_id, _pay.is_paid == True)  # noqa: E712
        query: Select[Any] = (
            select(unpaid.c.unpaid, *self.mapper.columns)
            .select_from(unpaid.outerjoin(t.subscription_payment, paid))
            .order_by(_pay.created, _pay.id)
        )
        rows = (await self.conn.execute(query)).mappings().all()
        found = tuple(self.mapper.from_row(row) for row in rows if row["id"] is not None)
        return PaidTally(paid=found, unpaid=int(rows[0]["unpaid"]))

    async def list_by_vm(
        self, vm_id: int, limit: int, offset: int = 0
    ) -> Page[SubscriptionPayment]:
        owner = (
            select(_li.subscription_id)
            .select_from(
                t.vm.join(t.subscription_line_item, t.vm.c.subscription_line_item_id == _li.id)
            )
            .where(t.vm.c.id == vm_id)
            .scalar_subquery()
        )
        where = _pay.subscription_id == owner
        return await self._page(self.mapper, where, [_pay.created.desc()], limit, offset)

    async def list_pending_for_subscription(
        self, subscription_id: int, now: datetime
    ) -> list[SubscriptionPayment]:
        # the renewal's reuse lookup (D10), on every renew request
        statement = self._prepared(
            "pending",
            self.mapper,
            lambda: self._pending(bindparam("subscription_id"), bindparam("now")),
        )
        params = {"subscription_id": subscription_id, "now": now}
        rows = await self.conn.execute(statement, params)
        return [self.mapper.from_row(row) for row in rows.mappings()]

    async def with_pending(self, subscription_ids: Collection[int], now: datetime) -> set[int]:
        found: set[int] = set()
        for ids in id_chunks(subscription_ids):
            rows = await self.conn.execute(_WITH_PENDING, {"ids": ids, "now": now})
            found.update(int(sub_id) for (sub_id,) in rows.all())
        return found

    async def count_live_quotes(self, subscription_id: int, now: datetime) -> int:
        found = await self.conn.execute(
            _LIVE_QUOTES, {"subscription_id": subscription_id, "now": now}
        )
        return int(found.scalar_one())

    async def newest_pending(
        self,
        kind: PendingKind,
        now: datetime,
        wanted: MetadataTest,
        narrow: MetadataKey | None = None,
    ) -> SubscriptionPayment | None:
        params: dict[str, Any] = {"subscription_id": kind.subscription_id, "now": now}
        conn = self.conn
        statement = _PENDING_RAW
        if narrow is not None:
            statement = _pending_narrowed(narrow.name)
            params.update(_narrowing_params(narrow))
        rows = await conn.execute(statement, params)
        method, kind_code = _RAW_INDEX["payment_method"], _RAW_INDEX["payment_type"]
        metadata = _RAW_INDEX["metadata"]
        codes = (int(kind.method), int(kind.payment_type))
        for row in rows:
            if (row[method], row[kind_code]) == codes and wanted(_json_or_text(row[metadata])):
                return self._from_raw(row, _processors(conn.dialect))
        return None

    def _from_raw(
        self, row: Sequence[Any], processors: list[Callable[[Any], Any] | None]
    ) -> SubscriptionPayment:
        columns = t.subscription_payment.columns
        values = {
            c.name: value if process is None else process(value)
            for c, value, process in zip(columns, row, processors, strict=True)
        }
        return self.mapper.from_values({c.name: values[c.name] for c in self.mapper.columns})

    async def mark_paid(self, payment_id: bytes, now: datetime) -> bool:
        query = (
            update(t.subscription_payment)
            .where(_pay.id == payment_id, _pay.is_paid == False)  # noqa: E712
            .values(is_paid=True, paid_at=now)
        )
        return (await self.conn.execute(query)).rowcount == 1

    async def expire_pending(self, which: PendingOf, now: datetime) -> list[SubscriptionPayment]:
        if not which.types:
            return []
        query = self._pending(which.subscription_id, now)
        query = query.where(_pay.payment_type.in_(list(which.types)))
        if which.except_id is not None:
            query = query.where(_pay.id != which.except_id)
        if which.method is not None:
            query = query.where(_pay.payment_method == which.method)
        if self.locks_rows:
            query = query.with_for_update()
        competing = await self._all(self.mapper, query)
        if competing:
            ids = [p.id for p in competing]
            await self.conn.execute(
                update(t.subscription_payment).where(_pay.id.in_(ids)).values(expires=now)
            )
        return competing

    async def last_paid_invoiced(self, method: PaymentMethod) -> SubscriptionPayment | None:
        total = _pay.amount + _pay.tax + _pay.processing_fee
        query = (
            self._select()
            .where(_pay.is_paid == True, _pay.payment_method == method, total > 0)  # noqa: E712
            .order_by(_pay.created.desc(), _pay.id.desc())
        )
        return await self._one(self.mapper, query)

    async def list_unpaid_by_method(
        self, method: PaymentMethod, since: datetime, limit: int
    ) -> list[SubscriptionPayment]:
        query = (
            self._select()
            .where(_pay.is_paid == False, _pay.payment_method == method)  # noqa: E712
            .where(_pay.created >= since)
            .order_by(_pay.created.desc())
            .limit(limit)
        )
        return await self._all(self.mapper, query)

    async def unpaid_of_method(
        self, method: PaymentMethod, expires_after: datetime, *, company_id: int | None = None
    ) -> list[SubscriptionPayment]:
        query = self._select().where(
            _pay.is_paid == FALSE, _pay.payment_method == method, _pay.expires > expires_after
        )
        if company_id is not None:
            query = query.where(
                _pay.subscription_id.in_(select(_sub.id).where(_sub.company_id == company_id))
            )
        return await self._all(self.mapper, query.order_by(_pay.subscription_id, _pay.id))

    async def list_lapsed_unpaid(
        self, methods: Collection[PaymentMethod], after: datetime, until: datetime, limit: int
    ) -> list[SubscriptionPayment]:
        if not methods:
            return []
        query = (
            self._select()
            .where(_pay.is_paid == False, _pay.payment_method.in_(list(methods)))  # noqa: E712
            .where(_pay.external_id.is_not(None), _pay.expires > after, _pay.expires <= until)
            .order_by(_pay.expires, _pay.id)
            .limit(limit)
        )
        return await self._all(self.mapper, query)

    def _select(self) -> Select[Any]:
        return select(*self.mapper.columns)

    def _pending(self, subscription_id: Any, now: Any) -> Select[Any]:
        return (
            self._select()
            .where(*_live_unpaid(_pay, subscription_id, now))
            .order_by(_pay.created.desc(), _pay.id.desc())  # as `newest_pending`
        )


def _with_interval_count(
    mapper: Mapper[SubscriptionPayment], payment: SubscriptionPayment, exclude: tuple[str, ...]
) -> dict[str, Any]:
    """The row of `payment` (`exclude` left out) with the `interval_count` of its metadata:
    every write of a payment's metadata writes the column too, so it never goes stale."""
    row = mapper.to_row(payment, exclude=exclude)
    row["interval_count"] = interval_count_column(payment.metadata)
    return row


class SqlLegacyPayments(SqlRepo):
    def __init__(self, connection: Connect, mapper: Mapper[LegacyVmPayment]) -> None:
        super().__init__(connection)
        self.mapper = mapper

    async def add(self, payment: LegacyVmPayment) -> LegacyVmPayment:
        await self.conn.execute(
            insert(t.vm_payment).values(self.mapper.to_row(payment, exclude=()))
        )
        return payment

    async def list_by_vm(self, vm_id: int) -> list[LegacyVmPayment]:
        c = t.vm_payment.c
        query = select(*self.mapper.columns).where(c.vm_id == vm_id).order_by(c.created)
        return await self._all(self.mapper, query)
