"""The own-account rule judged again under the edited row's lock, on memory, SQLite and MariaDB:
an admin's edit of their own subscription that sends a price or expiry "as it is", checked
before another admin's change of it committed, is refused (403) instead of undoing that change;
an edit of no price still goes through. A rival's edit committed while the edit waited for the
lock is read, not overwritten; an invoice made while a line item's delete waited keeps it.
Nobody creates a subscription for their own user, deletes an item of their own subscription
or issues a credit note on their own invoice, even calling the use case directly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, cast

import pytest

from adapters.mysql.billing_repos import SqlSubscriptions
from app.admin.deletes import StillInUse, delete_line_item
from app.admin.subscriptions import (
    LineItemPatch,
    SubscriptionDraft,
    SubscriptionPatch,
    create_subscription,
    update_line_item,
    update_subscription,
)
from app.billing.invoicing import issue_admin_credit_note
from domain.enums import SubscriptionType
from domain.model import LineItem, Subscription, SubscriptionPayment
from domain.own_account import OwnAccountRefused
from tests.contract import lifecycle_world, storage_backends
from tests.unit.billing.world import ALICE, BOB, Shop

database = storage_backends.database
shop = lifecycle_world.shop
#: the admin whose own subscription it is (ALICE's VM) and another admin
OWNER, DEPUTY = ALICE, BOB


async def _paid(shop: Shop) -> tuple[Subscription, LineItem]:
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        item = await uow.line_items.get(vm.subscription_line_item_id)
    assert item is not None and sub.expires is not None
    return sub, item


def _after(rival: Callable[[], Awaitable[object]], fn: Any) -> Any:
    """`fn` run right after `rival`: the rival's change commits between the binding's
    check and the edit's own transaction, as a concurrent admin's would."""

    async def call(**kwargs: Any) -> Any:
        await rival()
        return await fn(**kwargs)

    return call


def _edit_item(shop: Shop) -> Any:
    async def call(**kwargs: Any) -> LineItem:
        return await update_line_item(shop.factory, clock=shop.clock, rails=None, **kwargs)

    return call


def _edit_sub(shop: Shop) -> Any:
    async def call(**kwargs: Any) -> Subscription:
        return await update_subscription(shop.factory, clock=shop.clock, rails=None, **kwargs)

    return call


async def _item(shop: Shop, item_id: int) -> LineItem:
    async with shop.factory() as uow:
        item = await uow.line_items.get(item_id)
    assert item is not None
    return item


async def _sub(shop: Shop, sub_id: int) -> Subscription:
    async with shop.factory() as uow:
        sub = await uow.subscriptions.get(sub_id)
    assert sub is not None
    return sub


async def test_an_unchanged_price_sent_after_a_rivals_raise_is_refused(shop: Shop) -> None:
    _, item = await _paid(shop)
    raised = item.amount + 100

    async def rival() -> None:
        patch = LineItemPatch(amount=raised)
        await _edit_item(shop)(line_item_id=item.id, patch=patch, admin_id=DEPUTY)

    edit = _after(rival, _edit_item(shop))
    mine = LineItemPatch(amount=item.amount, name="mine")
    with pytest.raises(OwnAccountRefused, match="another admin must do it"):
        await edit(line_item_id=item.id, patch=mine, admin_id=OWNER)

    after = await _item(shop, item.id)
    assert (after.amount, after.name) == (raised, item.name)
    # an edit of no price is no money: it goes through on the raised price
    renamed = await _edit_item(shop)(
        line_item_id=item.id, patch=LineItemPatch(name="mine"), admin_id=OWNER
    )
    assert (renamed.amount, renamed.name) == (raised, "mine")


@pytest.mark.parametrize("field", ["expires", "setup_fee", "currency"])
async def test_an_unchanged_expiry_or_price_sent_after_a_rivals_edit_is_refused(
    shop: Shop, field: str
) -> None:
    sub, _ = await _paid(shop)
    assert sub.expires is not None
    theirs: dict[str, Any] = {
        "expires": sub.expires + timedelta(days=1),
        "setup_fee": sub.setup_fee + 100,
        "currency": "USD" if sub.currency != "USD" else "EUR",
    }

    async def rival() -> None:
        patch = SubscriptionPatch(**{field: theirs[field]})
        await _edit_sub(shop)(subscription_id=sub.id, patch=patch, admin_id=DEPUTY)

    edit = _after(rival, _edit_sub(shop))
    mine = SubscriptionPatch(**{field: getattr(sub, field)}, name="mine")
    with pytest.raises(OwnAccountRefused, match="another admin must do it"):
        await edit(subscription_id=sub.id, patch=mine, admin_id=OWNER)

    after = await _sub(shop, sub.id)
    assert (getattr(after, field), after.name) == (theirs[field], sub.name)


async def test_a_rivals_edit_committed_while_the_edit_waited_is_kept(
    shop: Shop, database: storage_backends.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit's item is read after the subscription's lock, and is the latest committed:
    a rival's price and name committed while it waited for the lock stay (on MariaDB a read
    before the lock fixed the snapshot, so the item read after it was the old one, then
    written back whole), and the own-account check sees that price."""
    if database.kind == "memory":
        pytest.skip("one unit of work at a time: no rival can commit in between")
    _, item = await _paid(shop)
    raised = item.amount + 100
    locking = SqlSubscriptions.get_for_update
    fired: list[bool] = []

    async def rival_first(self: SqlSubscriptions, subscription_id: int) -> Subscription | None:
        if not fired:  # the rival's own edit takes the lock plainly
            fired.append(True)
            patch = LineItemPatch(amount=raised, name="theirs")
            await _edit_item(shop)(line_item_id=item.id, patch=patch, admin_id=DEPUTY)
        return await locking(self, subscription_id)

    monkeypatch.setattr(SqlSubscriptions, "get_for_update", rival_first)
    patch = LineItemPatch(description="a note")
    await _edit_item(shop)(line_item_id=item.id, patch=patch, admin_id=DEPUTY)

    after = await _item(shop, item.id)
    assert (after.amount, after.name, after.description) == (raised, "theirs", "a note")


async def test_an_invoice_made_while_a_line_item_delete_waited_keeps_the_item(
    shop: Shop, database: storage_backends.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A renewal invoice priced with the item, committed while its delete waited for the
    subscription's lock, is seen (422, the item kept, D23): the delete looks the item's
    subscription up before its transaction, so its reads after the lock are the latest."""
    if database.kind == "memory":
        pytest.skip("one unit of work at a time: no rival can commit in between")
    vm = await shop.order()
    await shop.complete(await shop.renew(vm))
    sub = await shop.subscription(vm)
    async with shop.factory() as uow:
        # the port adds line items only with their subscription; both stores' repos can
        dns = await cast(Any, uow.line_items).add(
            LineItem(
                id=0,
                subscription_id=sub.id,
                subscription_type=SubscriptionType.DNS_HOSTING,
                name="dns.example",
                amount=500,
            )
        )
        await uow.commit()
    locking = SqlSubscriptions.get_for_update
    invoices: list[SubscriptionPayment] = []

    async def invoice_first(self: SqlSubscriptions, subscription_id: int) -> Subscription | None:
        if not invoices:  # the renewal's own lock is taken plainly
            invoices.append(cast(SubscriptionPayment, None))
            invoices[0] = await shop.renew(vm)
        return await locking(self, subscription_id)

    monkeypatch.setattr(SqlSubscriptions, "get_for_update", invoice_first)
    with pytest.raises(StillInUse, match="pending payments"):
        await delete_line_item(shop.factory, shop.clock, dns.id, admin_id=DEPUTY)

    assert await _item(shop, dns.id) == dns
    assert not (await shop.payment(invoices[0].id)).is_paid


async def test_a_subscription_created_for_oneself_is_refused(shop: Shop) -> None:
    """Review: the admin creation of a subscription had no own-account check (a year of
    paid time and one's own setup fee and currency). Refused for one's own user, nothing
    stored; another admin creates the same one."""
    draft = SubscriptionDraft(
        user_id=OWNER,
        company_id=1,
        name="mine",
        is_active=True,
        currency="EUR",
        setup_fee=0,
        auto_renewal_enabled=False,
        expires=shop.clock.now() + timedelta(days=365),
    )
    with pytest.raises(OwnAccountRefused, match="create a subscription for their own"):
        await create_subscription(shop.factory, shop.clock, draft, admin_id=OWNER)
    async with shop.factory() as uow:
        assert (await uow.subscriptions.list_by_user(OWNER, 10, 0)).total == 0

    made = await create_subscription(shop.factory, shop.clock, draft, admin_id=DEPUTY)
    assert await _sub(shop, made.id) == made
    assert (made.user_id, made.expires) == (OWNER, draft.expires)


async def test_an_edit_that_names_no_admin_is_not_made(shop: Shop) -> None:
    """Review: `admin_id` was optional in both PATCH use cases, and a caller that left it
    out moved its owner's expiry or price with no own-account check. It is a required
    keyword now: a call without it fails before anything is read or written."""
    sub, item = await _paid(shop)
    assert sub.expires is not None
    later = SubscriptionPatch(expires=sub.expires + timedelta(days=365))
    with pytest.raises(TypeError, match="admin_id"):
        await update_subscription(  # type: ignore[call-arg]
            shop.factory, sub.id, later, clock=shop.clock, rails=None
        )
    with pytest.raises(TypeError, match="admin_id"):
        await update_line_item(  # type: ignore[call-arg]
            shop.factory, item.id, LineItemPatch(amount=1), clock=shop.clock, rails=None
        )
    assert await _sub(shop, sub.id) == sub
    assert await _item(shop, item.id) == item


async def _dns_item(shop: Shop, sub: Subscription) -> LineItem:
    async with shop.factory() as uow:
        # the port adds line items only with their subscription; both stores' repos can
        dns = await cast(Any, uow.line_items).add(
            LineItem(
                id=0,
                subscription_id=sub.id,
                subscription_type=SubscriptionType.DNS_HOSTING,
                name="dns.example",
                amount=500,
            )
        )
        await uow.commit()
    return cast(LineItem, dns)


async def test_a_line_item_delete_names_its_admin_and_refuses_ones_own(shop: Shop) -> None:
    """Review: `delete_line_item`'s `admin_id` was optional and only its binding judged it:
    a direct call deleted an item of the caller's own subscription (its renewal cheaper).
    It is a required keyword, judged by the delete on the subscription it locks: a call
    without it fails with nothing deleted, the owner is refused (403), another admin may."""
    sub, _ = await _paid(shop)
    dns = await _dns_item(shop, sub)
    with pytest.raises(TypeError, match="admin_id"):
        await delete_line_item(shop.factory, shop.clock, dns.id)  # type: ignore[call-arg]
    with pytest.raises(OwnAccountRefused, match="delete a subscription's line item"):
        await delete_line_item(shop.factory, shop.clock, dns.id, admin_id=OWNER)
    assert await _item(shop, dns.id) == dns

    await delete_line_item(shop.factory, shop.clock, dns.id, admin_id=DEPUTY)
    async with shop.factory() as uow:
        assert await uow.line_items.get(dns.id) is None


async def test_a_credit_note_names_its_admin_and_refuses_ones_own_invoice(shop: Shop) -> None:
    """Review: `issue_admin_credit_note` took `admin_id=None`, and only its binding refused a
    note on the admin's own invoice: a direct call gave the caller money back. Required now
    and judged under the invoice's lock: no call without it, the buyer is refused (403),
    nothing issued; another admin may."""
    vm = await shop.order()
    payment = await shop.renew(vm)
    await shop.complete(payment)
    invoice = await shop.invoice(payment)
    assert invoice.user_id == OWNER
    note = {"invoice_id": invoice.id, "amount": 10, "reason": "goodwill"}
    with pytest.raises(TypeError, match="admin_id"):
        await issue_admin_credit_note(shop.factory, shop.clock, **note)  # type: ignore[arg-type]
    with pytest.raises(OwnAccountRefused, match="issue a credit note"):
        await issue_admin_credit_note(shop.factory, shop.clock, **note, admin_id=OWNER)  # type: ignore[arg-type]
    assert await shop.credit_notes(invoice) == []

    issued = await issue_admin_credit_note(shop.factory, shop.clock, **note, admin_id=DEPUTY)  # type: ignore[arg-type]
    assert [n.amount for n in await shop.credit_notes(invoice)] == [issued.note.amount] == [10]
