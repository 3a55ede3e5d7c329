"""Subscription, VM and payment queries: pagination, pending payments, lifecycle candidates."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from adapters.mysql import billing_repos, tables
from app.billing.persist import FirstPending, Reuse, pending_match, reuse_narrowing
from domain.account_credit import CreditReason, checked_entry
from domain.enums import PaymentMethod, SubscriptionPaymentType, SubscriptionType
from domain.model import LineItem, Subscription, SubscriptionPayment
from domain.subscription import INTERVALS_KEY, metadata_interval_count
from ports.storage import (
    DueWindow,
    LockedPriced,
    MetadataKey,
    NewestPending,
    OwnedPriced,
    PaidTally,
    PendingCount,
    PendingKind,
    PendingOf,
    PricedItems,
    UnitOfWork,
    UnitOfWorkFactory,
    VmOnPlan,
)
from tests.contract import storage_backends
from tests.contract.storage_backends import (
    Backend,
    World,
    at,
    new_payment,
    new_subscription,
    stored_world,
)
from tests.http.test_statement_budgets import counting

# pytest fixtures: every test here runs on memory, SQLite and MariaDB
database = storage_backends.database
backend = storage_backends.backend
uow_factory = storage_backends.uow_factory


def evolve(record: Any, **changes: Any) -> Any:
    return attrs.evolve(record, **changes)


async def _subscriptions(
    uow: UnitOfWork, w: World, count: int, **fields: Any
) -> list[Subscription]:
    added = []
    for _ in range(count):
        sub, _ = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, w.company.id, **fields), []
        )
        added.append(sub)
    return added


async def test_add_with_line_items_links_items_in_order(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    items = [
        LineItem(
            id=0,
            subscription_id=0,
            subscription_type=kind,
            name=kind.name,
            amount=n,
            setup_amount=n * 10,
            description="d",
            configuration={"k": [n]},
        )
        for n, kind in enumerate([SubscriptionType.IP_RANGE, SubscriptionType.DNS_HOSTING])
    ]
    async with uow_factory() as uow:
        sub, stored = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, w.company.id), items
        )
        await uow.commit()
    assert [i.subscription_id for i in stored] == [sub.id, sub.id]
    assert stored[0].id < stored[1].id
    async with uow_factory() as uow:
        assert await uow.line_items.list_by_subscription(sub.id) == stored
        assert await uow.subscriptions.get_by_line_item(stored[1].id) == sub
        assert await uow.subscriptions.get_by_line_item(stored[1].id + 99) is None
        changed = evolve(stored[0], amount=999, configuration=None)
        await uow.line_items.update(changed)
        assert await uow.line_items.get(stored[0].id) == changed


async def test_subscriptions_page_newest_first_with_totals(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        subs = [w.subscription, *await _subscriptions(uow, w, 4)]
        await uow.commit()
    async with uow_factory() as uow:
        first = await uow.subscriptions.list_by_user(w.user.id, limit=2)
        last = await uow.subscriptions.list_by_user(w.user.id, limit=2, offset=4)
        none = await uow.subscriptions.list_by_user(w.user.id + 1, limit=2)
    ids = sorted((s.id for s in subs), reverse=True)
    assert (first.total, [s.id for s in first.items]) == (5, ids[:2])
    assert (last.total, [s.id for s in last.items]) == (5, ids[4:])
    assert (none.total, none.items) == (0, [])


async def test_subscription_update_rewrites_all_but_created(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    changed = evolve(
        w.subscription,
        name="renamed",
        expires=at(20),
        is_active=True,
        is_setup=True,
        created=at(9),
        setup_fee=100,
        auto_renewal_enabled=True,
        external_id="x",
        description="d",
    )
    async with uow_factory() as uow:
        await uow.subscriptions.update(changed)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.subscriptions.get_for_update(w.subscription.id) == evolve(
            changed, created=w.subscription.created
        )


async def test_list_due_is_active_with_expiry_before_the_horizon_soonest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        late = (await _subscriptions(uow, w, 1, is_active=True, expires=at(12)))[0]
        past = (await _subscriptions(uow, w, 1, is_active=True, expires=at(2)))[0]
        soon = (await _subscriptions(uow, w, 1, is_active=True, expires=at(11)))[0]
        await _subscriptions(uow, w, 1, is_active=False, expires=at(2))  # inactive
        await _subscriptions(uow, w, 1, is_active=True, expires=None)  # never paid
        await _subscriptions(uow, w, 1, is_active=True, expires=at(20))  # beyond horizon
        await uow.commit()
    async with uow_factory() as uow:
        due = await uow.subscriptions.list_due(DueWindow(at(10), timedelta(days=3)), limit=10)
        assert due == [past, soon, late]
        assert await uow.subscriptions.list_due(DueWindow(at(10), timedelta(days=3)), limit=2) == [
            past,
            soon,
        ]
        assert await uow.subscriptions.list_due(DueWindow(at(10), timedelta(0)), limit=10) == [past]


async def test_priced_items_read_items_vms_plans_user_and_company_at_once(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Pricing's read: every line item, each with its lowest-id VM not deleted (on its
    template and plan), the subscription's user (decrypted) and company; None for an unknown
    subscription."""
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        [empty] = await _subscriptions(uow, w, 1)
        later = await uow.vms.add(evolve(w.vm, id=0, ref_code="later"))
        await uow.commit()
    sub, user, company = w.subscription.id, w.user, w.company
    async with uow_factory() as uow:
        items = uow.line_items
        on_plan = VmOnPlan(w.vm, w.template, w.plan)
        assert await items.list_priced(sub) == PricedItems(
            (w.line_item,), {w.line_item.id: on_plan}, user, company
        )
        assert await items.list_priced(empty.id) == PricedItems((), {}, user, company)
        assert await items.list_priced(sub + 99) is None
        no_template = evolve(w.vm, template_id=None)  # a custom VM: priced without a plan
        await uow.vms.update(no_template)
        priced = await items.list_priced(sub)
        assert priced is not None
        assert priced.vms == {w.line_item.id: VmOnPlan(no_template, None, None)}
        await uow.vms.delete(w.vm.id)
        priced = await items.list_priced(sub)
        assert priced is not None
        assert priced.vms == {w.line_item.id: VmOnPlan(later, w.template, w.plan)}
        await uow.vms.delete(later.id)
        assert await items.list_priced(sub) == PricedItems((w.line_item,), {}, user, company)


async def test_priced_for_update_is_the_locked_subscription_with_its_pricing_read(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The storing transaction's D23 re-check: the subscription, locked, and what
    `list_priced` reads for it (with the count of pending payments asked for), whatever the
    backend does to read both (SQLite: one statement); None for an unknown subscription."""
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        [empty] = await _subscriptions(uow, w, 1)
        await uow.payments.add(new_payment(w.subscription, created=at(2)))
        await uow.commit()
    counted = PendingCount(at(5), MetadataKey(INTERVALS_KEY, 1))
    for sub in (w.subscription, empty):
        async with uow_factory() as uow:
            found = await uow.line_items.priced_for_update(sub.id, counted)
            expected = await uow.line_items.list_priced(sub.id, pending=counted)
            plain = await uow.line_items.priced_for_update(sub.id)
            await uow.commit()
        assert found == LockedPriced(sub, expected)
        assert plain == LockedPriced(sub, await _listed(uow_factory, sub.id))
    assert expected is not None and expected.pending == 0  # `empty` has no payment
    async with uow_factory() as uow:
        found = await uow.line_items.priced_for_update(w.subscription.id, counted)
        assert found is not None and found.priced is not None
        assert found.priced.pending == 1  # `new_payment`: one interval, pending at day 5
        assert await uow.line_items.priced_for_update(empty.id + 99, counted) is None


async def _listed(uow_factory: UnitOfWorkFactory, subscription_id: int) -> PricedItems | None:
    async with uow_factory() as uow:
        return await uow.line_items.list_priced(subscription_id)


async def test_priced_items_hold_the_credit_balance_asked_for(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """With a currency, the pricing read holds the user's balance in it (0 without a row);
    without one, no balance (the D23 re-check); the rows and records are the same."""
    w = await stored_world(uow_factory)
    sub = w.subscription.id
    async with uow_factory() as uow:
        plain = await uow.line_items.list_priced(sub)
        assert plain is not None and plain.credit is None
        assert await uow.line_items.list_priced(sub, "EUR") == evolve(plain, credit=0)
        await _grant(uow, w.user.id, "EUR", 1234)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.line_items.list_priced(sub, "EUR") == evolve(plain, credit=1234)
        assert await uow.line_items.list_priced(sub, "USD") == evolve(plain, credit=0)
        assert await uow.line_items.list_priced(sub) == plain
        assert await uow.line_items.list_priced(sub + 99, "EUR") is None


async def test_priced_items_count_the_pending_payments_asked_for(
    backend: Backend, uow_factory: UnitOfWorkFactory
) -> None:
    """With a `PendingCount`, the pricing read counts the subscription's pending payments at
    `now` the narrowing keeps (at least those the reuse lookup would test); 0 when there is
    none, and the credit balance asked for alongside stays in its place."""
    w = await stored_world(uow_factory)
    sub = w.subscription.id
    three = PendingCount(at(5), MetadataKey(INTERVALS_KEY, 3))
    async with uow_factory() as uow:
        plain = await uow.line_items.list_priced(sub)
        assert plain is not None and plain.pending is None
        assert await uow.line_items.list_priced(sub, pending=three) == evolve(plain, pending=0)
        for n, paid in ((3, False), (3, True), (2, False)):
            metadata = {"intervals": n}
            await uow.payments.add(new_payment(w.subscription, metadata=metadata, is_paid=paid))
        await uow.commit()
    async with uow_factory() as uow:
        both = await uow.line_items.list_priced(sub, "EUR", three)
        assert both is not None and both.credit == 0
        # the pending 3; SQL narrows the 2 away (memory keeps it: narrowing is optional)
        assert both.pending == (2 if backend.kind == "memory" else 1)
        late = PendingCount(at(10), MetadataKey(INTERVALS_KEY, 3))  # expired by then
        assert await uow.line_items.list_priced(sub, pending=late) == evolve(plain, pending=0)


async def test_priced_items_come_in_item_order_each_with_its_lowest_vm(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """Items by id whatever order their VMs were made in; per item its lowest-id live VM."""
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        sub, stored = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, w.company.id),
            [evolve(w.line_item, id=0, subscription_id=0, name=f"i{n}") for n in range(3)],
        )
        vms: dict[int, Any] = {}
        for item in reversed(stored):  # VM ids fall as item ids rise
            for n in range(2):
                vm = evolve(w.vm, id=0, subscription_line_item_id=item.id, ref_code=f"{item.id}{n}")
                vms.setdefault(item.id, await uow.vms.add(vm))
        await uow.commit()
    async with uow_factory() as uow:
        priced = await uow.line_items.list_priced(sub.id)
    assert priced is not None
    assert priced.items == tuple(stored)
    assert {i: v.vm for i, v in priced.vms.items()} == vms


async def test_vm_lookups_and_soft_delete(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        other = await uow.vms.add(evolve(w.vm, id=0, ref_code="ref", disabled=True))
        await uow.vms.delete(w.vm.id)
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.vms.get_by_line_item(w.line_item.id) == other
        assert await uow.vms.get_any_by_line_item(w.line_item.id) == evolve(w.vm, deleted=True)
        assert await uow.vms.get_any_by_line_item(w.line_item.id + 99) is None
        assert await uow.vms.get_by_subscription(w.subscription.id) == evolve(w.vm, deleted=True)
        assert await uow.vms.list_active() == [other]
        page = await uow.vms.list_by_user(w.user.id, limit=10)
        assert (page.total, page.items) == (1, [other])
        assert await uow.vms.undelete_for_subscription(w.subscription.id) == 1
        assert await uow.vms.undelete_for_subscription(w.subscription.id) == 0
        assert [v.id for v in await uow.vms.list_active()] == [w.vm.id, other.id]
        moved = evolve(other, mac_address="aa:bb:cc:dd:ee:ff", image_id=w.image.id)
        await uow.vms.update(moved)
        assert await uow.vms.get(other.id) == moved
        await uow.vms.delete(other.id)
        await uow.vms.update(moved)  # a stale copy does not resurrect the VM
        assert await uow.vms.get(other.id) == evolve(moved, deleted=True)


async def test_payment_pages_newest_first_by_subscription_and_vm(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        pays = [
            await uow.payments.add(new_payment(w.subscription, created=at(d))) for d in (3, 5, 4)
        ]
        stranger = (await _subscriptions(uow, w, 1))[0]
        await uow.payments.add(new_payment(stranger, created=at(6)))
        await uow.commit()
    async with uow_factory() as uow:
        page = await uow.payments.list_by_subscription(w.subscription.id, limit=2)
        assert (page.total, page.items) == (3, [pays[1], pays[2]])
        by_vm = await uow.payments.list_by_vm(w.vm.id, limit=5, offset=2)
        assert (by_vm.total, by_vm.items) == (3, [pays[0]])
        assert (await uow.payments.list_by_vm(w.vm.id + 50, limit=5)).total == 0


async def test_pending_payments_exclude_paid_and_expired_newest_first(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    now = at(5)
    async with uow_factory() as uow:
        older = await uow.payments.add(new_payment(w.subscription, created=at(2)))
        newer = await uow.payments.add(new_payment(w.subscription, created=at(3)))
        await uow.payments.add(new_payment(w.subscription, created=at(4), is_paid=True))
        await uow.payments.add(new_payment(w.subscription, created=at(4), expires=now))
        await uow.commit()
    async with uow_factory() as uow:
        pending = await uow.payments.list_pending_for_subscription(w.subscription.id, now)
        assert pending == [newer, older]


async def test_subscriptions_by_line_items_key_each_found_item_by_its_id(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        other, (first, second) = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, w.company.id, name="two items"),
            [evolve(w.line_item, id=0), evolve(w.line_item, id=0, name="second")],
        )
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.subscriptions.get_by_line_items([]) == {}
        wanted = [second.id, w.line_item.id, first.id, second.id + 99, w.line_item.id]
        assert await uow.subscriptions.get_by_line_items(wanted) == {
            w.line_item.id: w.subscription,
            first.id: other,
            second.id: other,
        }


async def test_subscriptions_by_line_items_read_more_ids_than_one_in_list_holds(
    backend: Backend,
) -> None:
    """More ids than one statement's `IN` list takes (1 000): a statement per piece."""
    w = await stored_world(backend.factory)
    async with backend.factory() as uow:
        _, items = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, w.company.id),
            [evolve(w.line_item, id=0) for _ in range(3)],
        )
        await uow.commit()
    wanted = [*range(10_000, 12_500), *(i.id for i in items)]
    async with backend.factory() as uow:
        if backend.engine is None:
            found = await uow.subscriptions.get_by_line_items(wanted)
        else:
            with counting(backend.engine) as counter:
                found = await uow.subscriptions.get_by_line_items(wanted)
            assert counter.count == 3
    assert sorted(found) == [i.id for i in items]


async def test_with_pending_names_the_subscriptions_with_an_unpaid_unexpired_payment(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    now = at(5)
    async with uow_factory() as uow:
        pending, paid, expired, none, unasked = await _subscriptions(uow, w, 5)
        await uow.payments.add(new_payment(pending, created=at(2)))
        await uow.payments.add(new_payment(pending, created=at(3), is_paid=True))
        await uow.payments.add(new_payment(paid, created=at(4), is_paid=True))
        await uow.payments.add(new_payment(expired, created=at(4), expires=now))
        await uow.payments.add(new_payment(unasked, created=at(4)))
        await uow.commit()
    asked = [pending.id, paid.id, expired.id, none.id, 99_999, *range(20_000, 21_500)]
    async with uow_factory() as uow:
        assert await uow.payments.with_pending([], now) == set()
        assert await uow.payments.with_pending(asked, now) == {pending.id}
        assert await uow.payments.with_pending(asked, at(1)) == {pending.id, expired.id}


async def test_newest_pending_picks_by_method_type_and_metadata_and_reads_it_whole(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The reuse lookup (D10, D25): newest first among the pending payments of one method and
    type, the first whose metadata is wanted, returned as stored (decrypted, typed)."""
    w = await stored_world(uow_factory)
    now = at(5)
    lightning, renewal = PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL
    async with uow_factory() as uow:
        older = await uow.payments.add(
            new_payment(w.subscription, created=at(2), external_id="a", tax=7, time_value=9)
        )
        newer = await uow.payments.add(
            new_payment(w.subscription, created=at(3), metadata={"intervals": 3})
        )
        await uow.payments.add(new_payment(w.subscription, created=at(4), is_paid=True))
        await uow.payments.add(new_payment(w.subscription, created=at(4), expires=now))
        await uow.payments.add(
            new_payment(w.subscription, created=at(4), payment_method=PaymentMethod.REVOLUT)
        )
        await uow.payments.add(
            new_payment(
                w.subscription, created=at(4), payment_type=SubscriptionPaymentType.PURCHASE
            )
        )
        await uow.commit()
    kind = PendingKind(w.subscription.id, lightning, renewal)
    seen: list[Any] = []

    def wanted(meta: Any) -> bool:
        seen.append(meta)
        return meta is None

    async with uow_factory() as uow:
        assert await uow.payments.newest_pending(kind, now, lambda meta: True) == newer
        assert await uow.payments.newest_pending(kind, now, wanted) == older
        assert seen == [{"intervals": 3}, None]  # only the method and type asked for
        assert await uow.payments.newest_pending(kind, now, lambda meta: False) is None
        assert await uow.payments.newest_pending(kind, at(10), lambda meta: True) is None
        other = PendingKind(w.subscription.id + 1, lightning, renewal)
        assert await uow.payments.newest_pending(other, now, lambda meta: True) is None


#: stored metadata texts the SQL narrowing must judge as Python does, or keep: as written
#: here (compact, `intervals` first) with the count asked for or another, absent, elsewhere,
#: duplicated either way, escaped, in a JSON string, spaced, upper case, not an integer, NaN
_METADATA_TEXTS = [
    None,
    '{"intervals":2}',
    '{"intervals":1,"price":{"amount":2}}',
    '{"intervals":3,"price":{"amount":2}}',
    '{"intervals":20}',
    '{"intervals":12}',
    "{}",
    '{"other":2}',
    '{"other":1,"intervals":2}',
    '{"intervals":2,"intervals":3}',
    '{"intervals":3,"intervals":2}',
    '{"intervals":3,"\\u0069ntervals":2}',
    '{"\\u0069ntervals":2}',
    '"{\\"intervals\\":2}"',
    '"{}"',
    '{"INTERVALS":2}',
    '{"intervals":2,"x":NaN}',
    '{"intervals":true}',
    '{"intervals":1.0}',
    '{"intervals":2e0}',
    '{"intervals":-2}',
    '{"intervals":"2"}',
    '{"intervals":null,"amount_msat":2}',
    '{"intervals": 2}',
    '{"intervals":2 }',
    ' {"intervals":3}',
    "[2]",
    "2",
]


async def test_newest_pending_narrowed_by_a_metadata_key_skips_only_what_the_test_rejects(
    backend: storage_backends.Backend,
) -> None:
    """`narrow` (the renewal's interval count) lets SQL skip rows, never one the Python test
    would accept: for each stored text and count, the same answer as without it (malformed
    JSON left out: unnarrowed, reading it fails; narrowed, it may be skipped)."""
    w = await stored_world(backend.factory)
    now = at(5)
    kind = PendingKind(w.subscription.id, PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL)
    async with backend.factory() as uow:
        payment = await uow.payments.add(new_payment(w.subscription, created=at(2)))
        await uow.commit()
    tried = 0
    for text in _METADATA_TEXTS:
        if backend.engine is not None:
            try:
                async with backend.engine.begin() as conn:
                    await conn.execute(
                        sa.update(tables.subscription_payment)
                        .where(tables.subscription_payment.c.id == payment.id)
                        .values(metadata=sa.type_coerce(sa.literal(text), sa.Text))
                    )
            except sa.exc.DBAPIError:  # MariaDB's JSON column refuses invalid JSON
                continue
        else:  # the memory store keeps the decoded value; a text it reads again as JSON
            await _store_metadata(backend.factory, payment, text)
        tried += 1
        for count in (1, 2, 3, 12, 20):
            narrow = MetadataKey(INTERVALS_KEY, count)

            def wanted(meta: Any, count: int = count) -> bool:
                return metadata_interval_count(meta) == count

            async with backend.factory() as uow:
                plain = await uow.payments.newest_pending(kind, now, wanted)
                narrowed = await uow.payments.newest_pending(kind, now, wanted, narrow)
            assert narrowed == plain, (text, count)
    assert tried >= len(_METADATA_TEXTS) - 1  # MariaDB refuses NaN


async def _store_metadata(
    uow_factory: UnitOfWorkFactory, payment: SubscriptionPayment, text: str | None
) -> None:
    try:
        value = None if text is None else json.loads(text)
    except ValueError:
        value = text
    async with uow_factory() as uow:
        await uow.payments.update(evolve(payment, metadata=value))
        await uow.commit()


async def test_the_narrowed_reuse_lookup_hands_python_only_candidates(
    backend: storage_backends.Backend,
) -> None:
    """On SQL, pending payments of other interval counts never reach the Python test."""
    if backend.engine is None:
        pytest.skip("the memory store has nothing to skip")
    w = await stored_world(backend.factory)
    kind = PendingKind(w.subscription.id, PaymentMethod.LIGHTNING, SubscriptionPaymentType.RENEWAL)
    async with backend.factory() as uow:
        for n in range(1, 6):
            await uow.payments.add(
                new_payment(w.subscription, created=at(2, n), metadata={"intervals": n})
            )
        await uow.commit()
    seen: list[Any] = []

    def wanted(meta: Any) -> bool:
        seen.append(meta)
        return metadata_interval_count(meta) == 3

    async with backend.factory() as uow:
        found = await uow.payments.newest_pending(
            kind, at(5), wanted, MetadataKey(INTERVALS_KEY, 3)
        )
    assert found is not None and found.metadata == {"intervals": 3}
    assert seen == [{"intervals": 3}]


async def test_the_owned_vm_read_brings_the_first_payment_the_reuse_lookup_tests(
    backend: Backend, uow_factory: UnitOfWorkFactory
) -> None:
    """`priced_of_owned_vm`: the subscription, and the newest pending payment of the method
    asked for that the narrowing keeps, whatever its type (None when there is none);
    `pending_match` returns it when it is the one wanted, nothing when there is none, else
    looks further (here: past a newer Purchase to the Renewal)."""
    w = await stored_world(uow_factory)
    now = at(5)
    lightning = PaymentMethod.LIGHTNING
    newest = NewestPending(lightning, now, reuse_narrowing(2))
    key = w.user.pubkey
    async with uow_factory() as uow:
        items = uow.line_items
        plain = await items.list_priced(w.subscription.id)
        assert plain is not None
        owned = OwnedPriced(w.subscription, plain, None)
        assert await items.priced_of_owned_vm(w.vm.id, key, newest) == owned
        two = {"intervals": 2}
        older = await uow.payments.add(new_payment(w.subscription, created=at(2), metadata=two))
        purchase = SubscriptionPaymentType.PURCHASE
        newer = await uow.payments.add(
            new_payment(w.subscription, created=at(3), metadata=two, payment_type=purchase)
        )
        for other in (
            {"payment_method": PaymentMethod.REVOLUT},
            {"is_paid": True},
            {"expires": now},
        ):
            await uow.payments.add(
                new_payment(w.subscription, created=at(4), metadata=two, **other)
            )
        # the newest of all, but for three intervals: SQL narrows it away, memory keeps it
        three = await uow.payments.add(
            new_payment(w.subscription, created=at(4, 18), metadata={"intervals": 3})
        )
        await uow.commit()
    renewal = Reuse(
        subscription_id=w.subscription.id,
        method=lightning,
        payment_type=SubscriptionPaymentType.RENEWAL,
        interval_count=2,
        expires=w.subscription.expires,
    )
    async with uow_factory() as uow:
        items = uow.line_items
        found = await items.priced_of_owned_vm(w.vm.id, key, newest)
        first = three if backend.kind == "memory" else newer
        assert found == attrs.evolve(owned, first_pending=first)
        assert await pending_match(uow, renewal, now, FirstPending(first)) == older
        bought = attrs.evolve(renewal, payment_type=purchase)
        assert await pending_match(uow, bought, now, FirstPending(newer)) == newer
        assert await pending_match(uow, renewal, now, FirstPending(None)) is None
        later = NewestPending(lightning, at(10), newest.narrow)
        assert await items.priced_of_owned_vm(w.vm.id, key, later) == owned
        other_method = NewestPending(PaymentMethod.REVOLUT, now, newest.narrow)
        found = await items.priced_of_owned_vm(w.vm.id, key, other_method)
        assert found is not None and found.first_pending is not None
        assert found.first_pending.payment_method is PaymentMethod.REVOLUT
        assert await items.priced_of_owned_vm(w.vm.id, b"\x09" * 32, newest) is None


async def test_the_owned_vm_read_prices_as_the_pricing_read_with_the_balance_asked_for(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """`priced_of_owned_vm` of a VM whose subscription has a VPS and an IP range item: the
    `PricedItems` `list_priced` reads (items by id, the VM on its template and plan, user,
    seller); with `credit`, the balance in the currency the subscription names however it
    is written (0 without a row, None when it names none); nothing for another user's key
    or a deleted VM."""
    w = await stored_world(uow_factory)
    other = evolve(w.user, id=0, pubkey=b"\x02" * 32)
    async with uow_factory() as uow:
        other = await uow.users.add(other)
        ip_range = evolve(
            w.line_item,
            id=0,
            subscription_id=0,
            subscription_type=SubscriptionType.IP_RANGE,
            name="ips",
            amount=300,
        )
        sub, [vps, ips] = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, w.company.id, currency="eur"),
            [evolve(w.line_item, id=0, subscription_id=0), ip_range],
        )
        vm = await uow.vms.add(evolve(w.vm, id=0, subscription_line_item_id=vps.id, ref_code="2"))
        await uow.commit()
    newest = NewestPending(PaymentMethod.LIGHTNING, at(5), reuse_narrowing(1))
    key = w.user.pubkey
    async with uow_factory() as uow:
        items = uow.line_items
        plain = await items.list_priced(sub.id)
        assert plain is not None and plain.items == (vps, ips)
        assert plain.vms == {vps.id: VmOnPlan(vm, w.template, w.plan)}
        assert (plain.user, plain.seller) == (w.user, w.company)
        assert await items.priced_of_owned_vm(vm.id, key, newest) == OwnedPriced(sub, plain, None)
        no_row = OwnedPriced(sub, evolve(plain, credit=0), None)
        assert await items.priced_of_owned_vm(vm.id, key, newest, credit=True) == no_row
        for currency, amount in (("EUR", 1234), ("USD", 99)):
            await _grant(uow, w.user.id, currency, amount)
        await uow.commit()

    async def credit_of(currency: str) -> int | None:
        async with uow_factory() as uow:
            await uow.subscriptions.update(evolve(sub, currency=currency))
            found = await uow.line_items.priced_of_owned_vm(vm.id, key, newest, credit=True)
            assert found is not None
            assert found.priced == evolve(plain, credit=found.priced.credit)
            assert found.subscription.currency == currency
            return found.priced.credit

    assert await credit_of("eur") == 1234
    assert await credit_of("EUR") == 1234
    assert await credit_of("usd") == 99
    assert await credit_of("GBP") == 0
    assert await credit_of("\teur") == 1234  # whitespace SQL's TRIM keeps: read on its own
    assert await credit_of("XYZ") is None
    async with uow_factory() as uow:
        items = uow.line_items
        assert await items.priced_of_owned_vm(vm.id, other.pubkey, newest) is None
        assert await items.priced_of_owned_vm(vm.id + 99, key, newest) is None
        await uow.vms.delete(vm.id)
        assert await items.priced_of_owned_vm(vm.id, key, newest) is None


async def test_a_pending_payment_with_broken_metadata_is_passed_over_not_raised(
    backend: Backend, uow_factory: UnitOfWorkFactory
) -> None:
    """Metadata text that is not JSON (SQLite has no JSON check) is never reused: the
    owned-VM read hands such a payment back with its text, and the lookup passes over it to
    an older one, instead of every renewal of the subscription failing."""
    if backend.kind != "sqlite":
        pytest.skip("MariaDB's JSON column refuses such text; memory stores no text")
    w = await stored_world(uow_factory)
    two = {"intervals": 2}
    upgrade = SubscriptionPaymentType.UPGRADE
    async with uow_factory() as uow:
        older = await uow.payments.add(new_payment(w.subscription, created=at(2), metadata=two))
        other = new_payment(w.subscription, created=at(3), metadata=two, payment_type=upgrade)
        await uow.payments.add(other)
        broken = await uow.payments.add(new_payment(w.subscription, created=at(4), metadata=two))
        await uow.commit()
    text = '{"intervals":2,}'  # kept by the narrowing (it reads `:2,`), refused by a parser
    assert backend.engine is not None
    stored_as_text: Any = sa.literal_column(f"'{text}'")  # past the JSON type's encoding
    async with backend.engine.begin() as conn:
        pay = tables.subscription_payment.c
        where = pay.id.in_([other.id, broken.id])
        await conn.execute(
            sa.update(tables.subscription_payment).where(where).values(metadata=stored_as_text)
        )
    renewal = Reuse(
        subscription_id=w.subscription.id,
        method=PaymentMethod.LIGHTNING,
        payment_type=SubscriptionPaymentType.RENEWAL,
        interval_count=2,
        expires=w.subscription.expires,
    )
    newest = NewestPending(PaymentMethod.LIGHTNING, at(5), reuse_narrowing(2))
    async with uow_factory() as uow:
        found = await uow.line_items.priced_of_owned_vm(w.vm.id, w.user.pubkey, newest)
        assert found is not None and found.first_pending is not None
        first = found.first_pending
        assert (first.id, first.metadata) == (broken.id, text)
        assert await pending_match(uow, renewal, at(5), FirstPending(first)) == older
        assert await pending_match(uow, renewal, at(5)) == older


async def test_the_owned_read_builds_its_pending_payment_once(
    backend: Backend, uow_factory: UnitOfWorkFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10: the payment the owned-VM read brings is built with its metadata decoded,
    not built and then copied with `evolve` (~2x a record's construction)."""
    if backend.kind == "memory":
        pytest.skip("the SQL adapter's mapping")
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        stored = await uow.payments.add(
            new_payment(w.subscription, created=at(2), metadata={"intervals": 2})
        )
        await uow.commit()

    def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a record built twice")

    monkeypatch.setattr(billing_repos, "evolve", refused)
    newest = NewestPending(PaymentMethod.LIGHTNING, at(5), reuse_narrowing(2))
    async with uow_factory() as uow:
        found = await uow.line_items.priced_of_owned_vm(w.vm.id, w.user.pubkey, newest)
    assert found is not None and found.first_pending == stored
    assert found.first_pending.metadata == {"intervals": 2}


async def test_mark_paid_flips_exactly_once(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        payment = await uow.payments.add(new_payment(w.subscription))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.mark_paid(payment.id, at(4))
        assert not await uow.payments.mark_paid(payment.id, at(5))
        assert not await uow.payments.mark_paid(b"\x00" * 32, at(5))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.get(payment.id) == evolve(payment, is_paid=True, paid_at=at(4))
        paid = evolve(payment, is_paid=True, paid_at=at(4))
        assert await uow.payments.last_paid_invoiced(PaymentMethod.LIGHTNING) == paid


async def test_the_last_paid_invoiced_payment_passes_over_those_no_rail_invoiced(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The settlement stream's first replay point: the newest paid payment of the method
    with a total above 0; a newer quote paid from account credit alone (total 0, no
    invoice), one of another method and an unpaid one do not count."""
    w = await stored_world(uow_factory)
    lightning = PaymentMethod.LIGHTNING

    def paid(day: int, **fields: Any) -> SubscriptionPayment:
        return new_payment(w.subscription, created=at(day), is_paid=True, **fields)

    async with uow_factory() as uow:
        assert await uow.payments.last_paid_invoiced(lightning) is None
        await uow.payments.add(paid(3))  # invoiced, but older
        invoiced = await uow.payments.add(paid(4, amount=0, processing_fee=1))
        await uow.payments.add(paid(5, amount=0, external_data=""))  # from credit alone
        card = await uow.payments.add(paid(6, payment_method=PaymentMethod.REVOLUT))
        await uow.payments.add(new_payment(w.subscription, created=at(7)))  # unpaid
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.last_paid_invoiced(lightning) == invoiced
        assert await uow.payments.last_paid_invoiced(PaymentMethod.REVOLUT) == card
        assert await uow.payments.last_paid_invoiced(PaymentMethod.STRIPE) is None


async def test_paid_tally_lists_the_paid_oldest_first_and_counts_the_unpaid(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        [other] = await _subscriptions(uow, w, 1)
        assert await uow.payments.paid_tally(w.subscription.id) == PaidTally(paid=(), unpaid=0)
        paid = [
            await uow.payments.add(new_payment(w.subscription, created=at(day), is_paid=True))
            for day in (5, 3, 4, 4)
        ]
        await uow.payments.add(new_payment(w.subscription))  # pending
        await uow.payments.add(new_payment(w.subscription, expires=at(1)))  # expired unpaid
        await uow.payments.add(new_payment(other, is_paid=True))
        await uow.payments.add(new_payment(other))
        await uow.commit()
    async with uow_factory() as uow:
        tally = await uow.payments.paid_tally(w.subscription.id)
    late, early, *twins = paid  # the twins (same `created`) by id
    assert tally == PaidTally(paid=(early, *sorted(twins, key=lambda p: p.id), late), unpaid=2)


async def test_payment_update_leaves_paid_at_alone(uow_factory: UnitOfWorkFactory) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        payment = await uow.payments.add(new_payment(w.subscription, paid_at=at(3)))
        changed = evolve(payment, amount=1, external_data="new", paid_at=None, expires=at(20))
        await uow.payments.update(changed)
        assert await uow.payments.get(payment.id) == evolve(changed, paid_at=at(3))
        assert await uow.payments.last_paid_invoiced(PaymentMethod.LIGHTNING) is None


async def test_expire_pending_upgrades_spares_the_winner_and_other_kinds(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    upgrade = SubscriptionPaymentType.UPGRADE
    now = at(5)
    async with uow_factory() as uow:
        winner = await uow.payments.add(new_payment(w.subscription, payment_type=upgrade))
        rival = await uow.payments.add(
            new_payment(w.subscription, payment_type=upgrade, payment_method=PaymentMethod.STRIPE)
        )
        renewal = await uow.payments.add(new_payment(w.subscription))
        stale = await uow.payments.add(
            new_payment(w.subscription, payment_type=upgrade, expires=at(4))
        )
        rivals = PendingOf(w.subscription.id, (upgrade,), except_id=winner.id)
        expired = await uow.payments.expire_pending(rivals, now)
        await uow.commit()
    assert expired == [rival]
    async with uow_factory() as uow:
        assert await uow.payments.get(rival.id) == evolve(rival, expires=now)
        for untouched in (winner, renewal, stale):
            assert await uow.payments.get(untouched.id) == untouched


async def test_expire_pending_takes_the_named_kinds_and_spares_the_rest(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    renewal_type, upgrade = SubscriptionPaymentType.RENEWAL, SubscriptionPaymentType.UPGRADE
    now = at(5)
    async with uow_factory() as uow:
        renewal = await uow.payments.add(new_payment(w.subscription, created=at(1)))
        card = await uow.payments.add(
            new_payment(w.subscription, created=at(2), payment_method=PaymentMethod.STRIPE)
        )
        kept = await uow.payments.add(new_payment(w.subscription, created=at(3)))
        upgrade_payment = await uow.payments.add(new_payment(w.subscription, payment_type=upgrade))
        paid = await uow.payments.add(new_payment(w.subscription, is_paid=True))
        lapsed = await uow.payments.add(new_payment(w.subscription, expires=at(4)))
        expired = await uow.payments.expire_pending(
            PendingOf(w.subscription.id, (renewal_type,), except_id=kept.id), now
        )
        none = await uow.payments.expire_pending(PendingOf(w.subscription.id, ()), now)
        await uow.commit()
    assert expired == [card, renewal]
    assert none == []
    async with uow_factory() as uow:
        for gone in (renewal, card):
            assert await uow.payments.get(gone.id) == evolve(gone, expires=now)
        for untouched in (kept, upgrade_payment, paid, lapsed):
            assert await uow.payments.get(untouched.id) == untouched


async def test_unpaid_by_method_since_newest_first_and_limited(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    lightning, revolut = PaymentMethod.LIGHTNING, PaymentMethod.REVOLUT
    async with uow_factory() as uow:
        too_old = await uow.payments.add(new_payment(w.subscription, created=at(2, hour=11)))
        on_the_edge = await uow.payments.add(new_payment(w.subscription, created=at(2)))
        expired = await uow.payments.add(
            new_payment(w.subscription, created=at(3), expires=at(3, hour=13))
        )
        await uow.payments.add(new_payment(w.subscription, created=at(4), is_paid=True))
        await uow.payments.add(new_payment(w.subscription, created=at(5), payment_method=revolut))
        newest = await uow.payments.add(new_payment(w.subscription, created=at(6)))
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.payments.list_unpaid_by_method(lightning, at(2), limit=10)
        assert found == [newest, expired, on_the_edge]  # expired ones too: settled late
        assert too_old not in found
        assert await uow.payments.list_unpaid_by_method(lightning, at(2), limit=2) == [
            newest,
            expired,
        ]
        assert await uow.payments.list_unpaid_by_method(lightning, at(7), limit=10) == []
        [fiat] = await uow.payments.list_unpaid_by_method(revolut, at(1), limit=10)
        assert fiat.created == at(5)


async def test_unpaid_of_method_by_expiry_and_company_and_expired_by_method(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """What a payment-method config's disable or delete reads (a company's unpaid payments of
    one method expiring after a moment) and expires (a subscription's, of that method)."""
    w = await stored_world(uow_factory)
    revolut, stripe = PaymentMethod.REVOLUT, PaymentMethod.STRIPE
    async with uow_factory() as uow:
        other = await uow.companies.add(evolve(w.company, id=0, name="Other"))
        theirs, _ = await uow.subscriptions.add_with_line_items(
            new_subscription(w.user.id, other.id), []
        )
        pending = await uow.payments.add(new_payment(w.subscription, payment_method=revolut))
        lapsed = await uow.payments.add(
            new_payment(w.subscription, payment_method=revolut, expires=at(4))
        )
        card = await uow.payments.add(new_payment(w.subscription, payment_method=stripe))
        await uow.payments.add(new_payment(w.subscription, payment_method=revolut, is_paid=True))
        await uow.payments.add(new_payment(w.subscription, payment_method=revolut, expires=at(3)))
        elsewhere = await uow.payments.add(new_payment(theirs, payment_method=revolut))
        await uow.commit()
    async with uow_factory() as uow:
        found = await uow.payments.unpaid_of_method(revolut, at(3))
        assert {p.id for p in found} == {pending.id, lapsed.id, elsewhere.id}
        assert [p.subscription_id for p in found] == sorted(p.subscription_id for p in found)
        mine = await uow.payments.unpaid_of_method(revolut, at(5), company_id=w.company.id)
        assert mine == [pending]
        which = PendingOf(w.subscription.id, tuple(SubscriptionPaymentType), method=revolut)
        assert await uow.payments.expire_pending(which, at(5)) == [pending]
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.get(pending.id) == evolve(pending, expires=at(5))
        for untouched in (card, lapsed, elsewhere):
            assert await uow.payments.get(untouched.id) == untouched


async def _grant(uow: UnitOfWork, user_id: int, currency: str, amount: int) -> None:
    """An admin's credit of `amount` to the user's balance in `currency` (not committed)."""
    entry = checked_entry(
        user_id=user_id,
        currency=currency,
        amount=amount,
        reason=CreditReason.ADMIN_ADJUSTMENT,
        reference=None,
        note="n",
        created=at(1),
    )
    await uow.credit_ledger.book(entry)


async def test_count_live_quotes_counts_upgrades_and_interval_quotes_only(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The live-quote cap's count, in one statement: pending renewals and purchases asked
    for a number of intervals and pending upgrades; not LNURL invoices (`intervals` null:
    anyone may ask for them, and they have a cap of their own), nor paid or expired ones."""
    w = await stored_world(uow_factory)
    sub = w.subscription
    upgrade = SubscriptionPaymentType.UPGRADE
    async with uow_factory() as uow:
        assert await uow.payments.count_live_quotes(sub.id, at(5)) == 0
        for fields in (
            {"metadata": {"intervals": 1}},
            {"metadata": {"intervals": 7}, "payment_method": PaymentMethod.REVOLUT},
            {"metadata": {"intervals": 2}, "payment_type": SubscriptionPaymentType.PURCHASE},
            {"metadata": {"new_cpu": 4}, "payment_type": upgrade},
            {"metadata": {"intervals": None, "amount_msat": 5000}},  # LNURL
            {"metadata": {"intervals": 1}, "is_paid": True},
            {"metadata": {"intervals": 1}, "expires": at(5)},
            {"metadata": {"new_cpu": 6}, "payment_type": upgrade, "expires": at(4)},
        ):
            await uow.payments.add(new_payment(sub, **fields))
        await uow.commit()
    async with uow_factory() as uow:
        assert await uow.payments.count_live_quotes(sub.id, at(5)) == 4
        assert await uow.payments.count_live_quotes(sub.id, at(3)) == 6
        assert await uow.payments.count_live_quotes(sub.id + 1, at(5)) == 0
        assert await uow.payments.count_live_quotes(sub.id, at(10)) == 0
        # the same count alongside the storing read and the owner-key read, when asked for
        one = MetadataKey(INTERVALS_KEY, 1)
        priced = await uow.line_items.list_priced(sub.id, pending=PendingCount(at(5), one))
        assert priced is not None and priced.live_quotes is None
        asked = PendingCount(at(5), one, quotes=True)
        priced = await uow.line_items.list_priced(sub.id, pending=asked)
        assert priced is not None and priced.live_quotes == 4
        newest = NewestPending(PaymentMethod.LIGHTNING, at(5), one, quotes=True)
        owned = await uow.line_items.priced_of_owned_vm(w.vm.id, w.user.pubkey, newest)
        assert owned is not None and owned.priced.live_quotes == 4
        locked = await uow.line_items.priced_for_update(sub.id, asked)
        assert locked is not None and locked.priced is not None
        assert locked.priced.live_quotes == 4
