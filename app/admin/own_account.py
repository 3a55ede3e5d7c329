"""No admin moves money to their own account: the one rule, and who each money action benefits.

An admin is often a customer too. Completing their own unpaid invoice by hand, crediting
their own balance, refunding or extending their own VM, moving their own subscription's
expiry, changing its price (a setup fee, its currency, a line item's price, or deleting a
line item), issuing a credit note on their own invoice, or validating their own VAT id
(reverse charge: no VAT) is money (or paid time) given to themselves; another admin must do
it. The VAT id is judged by the user PATCH itself, on the row it locks
(`app.admin.users.apply_user_changes`). The rule is applied where the admin API binds its use
cases (`app.bound.admin`), so every money action is guarded the same way, whichever module
implements it; the subscription and line-item PATCH judge it themselves, on the row they lock
(whether an edit moves money depends on that row: `domain.own_account`), and so do the delete
of a line item (on the subscription it locks), a credit note (on the invoice it locks) and the
creation of a subscription (it sets a price and may give paid time: refused for one's own user
whatever it sets). Those five take `admin_id` as a required keyword.

Left free on one's own subscription, because they move no money: `is_active` (switching it
off ends renewals but its paid time runs out and its VM is stopped and deleted as an unpaid
one's, `domain.switch_off`; switching it on again gives no time: `expires` stays, and the
lifecycle then treats it as any active one), `auto_renewal_enabled` (an automatic renewal is
paid from the owner's own wallet), the name, description and external id.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import ParamSpec, TypeVar

from domain.own_account import refuse_own
from ports.storage import UnitOfWork, UnitOfWorkFactory

P = ParamSpec("P")
R = TypeVar("R")

#: who an action's money or paid time goes to, from its keyword arguments (empty: unknown
#: target, left to the action's own 404)
Beneficiaries = Callable[[UnitOfWork, Mapping[str, object]], Awaitable[Collection[int]]]


def not_for_own(
    fn: Callable[P, Awaitable[R]],
    uow_factory: UnitOfWorkFactory,
    beneficiaries: Beneficiaries,
    what: str,
) -> Callable[P, Awaitable[R]]:
    """`fn` (called with keyword `admin_id`) refused (`domain.own_account.OwnAccountRefused`,
    403), nothing done, when its beneficiaries include the admin. Who benefits is read before
    `fn` runs, in a unit of work of its own: no endpoint changes whose a VM, subscription,
    line item, payment or invoice is. What depends on stored values as well (an edit that
    leaves a price as it is benefits nobody) is judged again by the edit under its row lock
    (`update_subscription`, `update_line_item`), so a rival's change committed in between
    is not undone by one's own "unchanged" value."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        admin_id = kwargs.get("admin_id")
        if not isinstance(admin_id, int):
            raise TypeError(f"{what}: an admin's money action names its admin (admin_id=)")
        async with uow_factory() as uow:
            found = await beneficiaries(uow, kwargs)
        refuse_own(admin_id, found, what)
        return await fn(*args, **kwargs)

    return call


def _int(kwargs: Mapping[str, object], name: str) -> int:
    value = kwargs[name]
    assert isinstance(value, int), name
    return value


async def of_user(uow: UnitOfWork, kwargs: Mapping[str, object]) -> Collection[int]:
    """A credit adjustment: the user whose balance it is."""
    return {_int(kwargs, "user_id")}


async def of_payment(uow: UnitOfWork, kwargs: Mapping[str, object]) -> Collection[int]:
    """A payment completed by hand: its payer (whose subscription it extends)."""
    payment_id = kwargs["payment_id"]
    assert isinstance(payment_id, bytes)
    payment = await uow.payments.get(payment_id)
    return set() if payment is None else {payment.user_id}


async def of_transfer(uow: UnitOfWork, kwargs: Mapping[str, object]) -> Collection[int]:
    """A bank transfer seen arriving: the payer of the payment with its reference."""
    reference = kwargs["reference"]
    assert isinstance(reference, str)
    payment = await uow.payments.get_by_external_id(reference) if reference else None
    return set() if payment is None else {payment.user_id}


async def of_vm(uow: UnitOfWork, kwargs: Mapping[str, object]) -> Collection[int]:
    """An extend or a refund of a VM: its owner and its subscription's (who is credited)."""
    vm = await uow.vms.get(_int(kwargs, "vm_id"))
    if vm is None:
        return set()
    sub = await uow.subscriptions.get_by_line_item(vm.subscription_line_item_id)
    return {vm.user_id} if sub is None else {vm.user_id, sub.user_id}
