"""Domain events: facts that happened, for the subscribers that react to them after commit."""

from __future__ import annotations

import attrs

from domain.credit import Credit
from domain.enums import SubscriptionPaymentType
from domain.model import Subscription, SubscriptionPayment


@attrs.frozen(kw_only=True)
class VmUpgradeBought:
    """A paid Upgrade's target size for one VM (its records already carry it, D12)."""

    vm_id: int
    new_cpu: int | None
    new_memory: int | None
    new_disk: int | None


@attrs.frozen(kw_only=True)
class PaymentCompleted:
    """A payment was booked, exactly once (D9), with everything it changes in storage.

    Published after the booking transaction committed; nothing in it is undone by a
    subscriber failing. `paid_vm_ids`: the live VMs a Purchase/Renewal paid for (to be spawned
    or started); `upgrades`: the VMs a paid Upgrade resized in the records (to be resized on
    their host); `expired_payments`: the rival and stale invoices expired in the booking
    transaction (D13, D23), to be cancelled at their OWN provider; `credit`: how much time a
    Purchase/Renewal bought and why (None for an Upgrade, unless it became account credit).
    """

    payment: SubscriptionPayment
    subscription: Subscription
    paid_vm_ids: tuple[int, ...] = ()
    upgrades: tuple[VmUpgradeBought, ...] = ()
    expired_payments: tuple[SubscriptionPayment, ...] = ()
    credit: Credit | None = None

    @property
    def is_upgrade(self) -> bool:
        return self.payment.payment_type is SubscriptionPaymentType.UPGRADE

    @property
    def needs_operator(self) -> bool:
        """The payment was not credited as quoted: the admins are told (D23)."""
        return self.credit is not None and self.credit.needs_operator
