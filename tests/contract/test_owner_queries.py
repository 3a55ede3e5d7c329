"""The owner's queries decide what the caller may see, the same for every adapter: whose payment
it is (the invoice page), and a VM history without the admin who completed a payment."""

from __future__ import annotations

import attrs
import pytest

from app.billing.errors import PaymentNotFound
from app.queries.payments import owned_subscription_payment
from app.queries.vm_records import vm_history_in
from domain.admin_completion import ADMIN_COMPLETION_KEY
from domain.enums import SubscriptionType, VmHistoryActionType
from domain.model import LineItem, Subscription, vm_event
from ports.storage import UnitOfWork, UnitOfWorkFactory
from tests.contract.storage_backends import (
    at,
    backend,
    database,
    new_payment,
    new_subscription,
    stored_world,
    uow_factory,
)

__all__ = ["backend", "database", "uow_factory"]


async def _subscription(
    uow: UnitOfWork, user_id: int, company_id: int, kind: SubscriptionType
) -> tuple[Subscription, int]:
    """A subscription of one line item of `kind`, and that item's id."""
    item = LineItem(id=0, subscription_id=0, subscription_type=kind, name="s", amount=500)
    sub, (added,) = await uow.subscriptions.add_with_line_items(
        new_subscription(user_id, company_id), [item]
    )
    return sub, added.id


async def test_a_payment_is_the_callers_only_when_they_own_it_its_subscription_and_its_vm(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    async with uow_factory() as uow:
        other = await uow.users.get_or_create_by_pubkey(b"\x02" * 32, at(1))
        ip_range, _ = await _subscription(uow, w.user.id, w.company.id, SubscriptionType.IP_RANGE)
        theirs, _ = await _subscription(uow, other.id, w.company.id, SubscriptionType.IP_RANGE)
        lent, item = await _subscription(uow, w.user.id, w.company.id, SubscriptionType.VPS)
        await uow.vms.add(
            attrs.evolve(w.vm, id=0, user_id=other.id, subscription_line_item_id=item)
        )
        of_vm = await uow.payments.add(new_payment(w.subscription))
        of_range = await uow.payments.add(new_payment(ip_range))
        on_theirs = await uow.payments.add(new_payment(theirs, user_id=w.user.id))
        on_their_vm = await uow.payments.add(new_payment(lent))
        await uow.commit()
    async with uow_factory() as uow:
        assert await owned_subscription_payment(uow, w.user.id, of_vm.id) == (
            of_vm,
            w.subscription,
        )
        assert await owned_subscription_payment(uow, w.user.id, of_range.id) == (
            of_range,
            ip_range,
        )
        refused = [
            (w.user.id, b"\x09" * 32),  # unknown
            (other.id, of_vm.id),  # another's payment
            (w.user.id, on_theirs.id),  # paid by the caller, another's subscription
            (w.user.id, on_their_vm.id),  # the caller's subscription, another's VM
        ]
        for user_id, payment_id in refused:
            with pytest.raises(PaymentNotFound):
                await owned_subscription_payment(uow, user_id, payment_id)


async def test_the_owners_history_has_no_admin_completion_and_the_stored_entry_keeps_it(
    uow_factory: UnitOfWorkFactory,
) -> None:
    w = await stored_world(uow_factory)
    completion = {"admin_id": 7, "node_settlement": "counted"}
    async with uow_factory() as uow:
        by_admin = await uow.vm_history.add(
            vm_event(
                w.vm.id,
                VmHistoryActionType.PAYMENT_RECEIVED,
                at(2),
                "paid",
                metadata={"amount": 500, ADMIN_COMPLETION_KEY: completion},
            )
        )
        plain = await uow.vm_history.add(
            vm_event(w.vm.id, VmHistoryActionType.STARTED, at(3), "up", metadata={"n": 1})
        )
        await uow.commit()
    async with uow_factory() as uow:
        whole = await vm_history_in(uow, w.user.id, w.vm.id)
        paged = await vm_history_in(uow, w.user.id, w.vm.id, limit=10, offset=0)
        stored = await uow.vm_history.list_all_by_vm(w.vm.id)
    for view in (whole, paged):
        assert view.owner_id == w.user.id
        shown = {e.id: e.metadata for e in view.entries}
        assert shown == {by_admin.id: {"amount": 500}, plain.id: {"n": 1}}
    kept = {e.id: e.metadata for e in stored}
    assert kept[by_admin.id] == {"amount": 500, ADMIN_COMPLETION_KEY: completion}
