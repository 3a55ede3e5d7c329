"""IP range sales, payment-method configs, lifecycle marks (D15) and idempotency keys (D11)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from domain.enums import InternetRegistry, PaymentMethod
from domain.model import AvailableIpSpace, IpRangeSubscription, PaymentMethodConfig
from ports.storage import DueWindow, IdempotencyRecord, UnitOfWork, UnitOfWorkFactory
from tests.contract import storage_backends
from tests.contract.storage_backends import (
    Backend,
    World,
    at,
    new_subscription,
    seed_world,
    stored_world,
)
from tests.sql_events import listening

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


async def _sell_range(uow: UnitOfWork, w: World, cidr: str) -> IpRangeSubscription:
    spaces = await uow.ip_spaces.list_all()
    space = (
        spaces[0]
        if spaces
        else await uow.ip_spaces.add(
            AvailableIpSpace(
                id=0,
                company_id=w.company.id,
                cidr="192.0.2.0/24",
                min_prefix_size=28,
                max_prefix_size=24,
                registry=InternetRegistry.ARIN,
                created=at(1),
                updated=at(1),
            )
        )
    )
    return await uow.ip_range_subscriptions.add(
        IpRangeSubscription(
            id=0,
            subscription_line_item_id=w.line_item.id,
            available_ip_space_id=space.id,
            created=at(1),
            cidr=cidr,
            started_at=at(1),
        )
    )


async def test_ip_ranges_end_with_their_subscription_and_can_be_reactivated(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        first = await _sell_range(uow, w, "192.0.2.0/28")
        second = await _sell_range(uow, w, "192.0.2.16/28")
        await uow.ip_range_subscriptions.set_active(second.id, False, at(3))
        ended = await uow.ip_range_subscriptions.deactivate_for_subscription(
            w.subscription.id, at(5)
        )
        await uow.commit()
    assert ended == 1  # the second had ended already
    async with uow_factory() as uow:
        rows = await uow.ip_range_subscriptions.list_by_line_item(w.line_item.id)
        assert [(r.id, r.is_active, r.ended_at) for r in rows] == [
            (first.id, False, at(5)),
            (second.id, False, at(3)),
        ]
        await uow.ip_range_subscriptions.set_active(first.id, True, at(6))
        again = await uow.ip_range_subscriptions.get(first.id)
        assert again is not None and again.is_active and again.ended_at is None


async def test_payment_method_configs_per_company(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)

    def config(method: PaymentMethod, name: str, enabled: bool = True) -> PaymentMethodConfig:
        return PaymentMethodConfig(
            id=0,
            company_id=w.company.id,
            payment_method=method,
            name=name,
            enabled=enabled,
            provider_type=method.api_name,
            config={"type": method.api_name},
            created=at(1),
            modified=at(1),
            processing_fee_rate=Decimal("2.9"),
        )

    async with uow_factory() as uow:
        stripe_b = await uow.payment_methods.add(config(PaymentMethod.STRIPE, "b"))
        stripe_a = await uow.payment_methods.add(config(PaymentMethod.STRIPE, "a"))
        off = await uow.payment_methods.add(config(PaymentMethod.LIGHTNING, "ln", enabled=False))
        # a company's disabled row before its enabled one: the enabled one is its config
        await uow.payment_methods.add(config(PaymentMethod.REVOLUT, "old", enabled=False))
        revolut = await uow.payment_methods.add(config(PaymentMethod.REVOLUT, "new"))
        await uow.commit()
    async with uow_factory() as uow:
        methods = uow.payment_methods
        assert await methods.get_for_company(w.company.id, PaymentMethod.STRIPE) == stripe_b
        assert await methods.get_for_company(w.company.id, PaymentMethod.LIGHTNING) == off
        assert await methods.get_for_company(w.company.id, PaymentMethod.PAYPAL) is None
        assert await methods.get_for_company(w.company.id, PaymentMethod.REVOLUT) == revolut
        assert await methods.list_enabled_for_company(w.company.id) == [
            revolut,
            stripe_a,
            stripe_b,
        ]
        assert await methods.list_enabled_for_company(w.company.id + 1) == []


async def test_a_lifecycle_action_is_claimed_once_per_period(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    sub, period = w.subscription.id, at(10)
    async with uow_factory() as uow:
        assert await uow.lifecycle_marks.claim(sub, 1, period, at(9))
        assert not await uow.lifecycle_marks.claim(sub, 1, period, at(9))
        assert await uow.lifecycle_marks.claim(sub, 2, period, at(9))  # another action
        assert await uow.lifecycle_marks.claim(sub, 1, at(11), at(9))  # the next period
        await uow.commit()
    async with uow_factory() as uow:
        assert not await uow.lifecycle_marks.claim(sub, 1, period, at(12))
        # the transaction is still usable after a refused claim
        assert await uow.lifecycle_marks.claim(sub, 3, period, at(12))
    async with uow_factory() as uow:  # ...and that claim was rolled back
        assert await uow.lifecycle_marks.claim(sub, 3, period, at(12))


async def test_an_idempotency_key_is_stored_once_per_user(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    record = IdempotencyRecord(
        key="k-1",
        user_id=w.user.id,
        request_hash=b"\x05" * 32,
        payment_id=b"\x06" * 32,
        created=at(3),
    )
    async with uow_factory() as uow:
        assert await uow.idempotency_keys.get(w.user.id, "k-1") is None
        assert await uow.idempotency_keys.put(record)
        other = IdempotencyRecord(
            key="k-1", user_id=w.user.id, request_hash=b"\x00" * 32, payment_id=None, created=at(4)
        )
        assert not await uow.idempotency_keys.put(other)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.idempotency_keys.get(w.user.id, "k-1") == record


@storage_backends.only("mysql")
async def test_lifecycle_scan_runs_on_an_index(backend: Backend) -> None:
    """MariaDB's plan for `list_due` uses an expiry index, not a full table scan."""
    assert backend.engine is not None
    async with backend.factory() as uow:
        w = await seed_world(uow)
        for n in range(300):
            await uow.subscriptions.add_with_line_items(
                new_subscription(
                    w.user.id,
                    w.company.id,
                    is_active=True,
                    expires=at(1, month=4) + timedelta(hours=n),
                ),
                [],
            )
        await uow.commit()
    async with backend.engine.connect() as conn:
        await conn.execute(text("ANALYZE TABLE subscription"))
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        if "FROM subscription" in statement and "LIMIT" in statement:
            seen.append((statement, params))

    with listening(backend.engine, "before_cursor_execute", capture):
        async with backend.factory() as uow:
            due = await uow.subscriptions.list_due(DueWindow(at(5), timedelta(days=1)), limit=100)
            # a later page of a backlog: the keyset cursor stays a range on the same index
            page = await uow.subscriptions.list_due(
                DueWindow(at(5, month=4), timedelta(0), after=(at(2, month=4), 1)), limit=100
            )
    assert due == [] and page
    for statement, params in seen[-3:]:
        async with backend.engine.connect() as conn:
            result = await conn.exec_driver_sql("EXPLAIN " + statement, params)
            plan = dict(result.mappings().one())
        assert plan["key"] in ("idx_subscription_lifecycle", "idx_subscription_expires"), plan
        assert plan["type"] == "range", plan
