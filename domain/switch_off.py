"""An admin's switch-off of a subscription: no more renewals, its paid time runs out (ours).

An admin switches a subscription off with `is_active = false` (the admin API's PATCH, or its
UI's "Active" box). Like a cancellation at the end of the period, it ends renewals at once:
pending invoices are expired and cancelled at their rails, a new renewal is refused (422),
no automatic renewal or "expiring soon" notice comes, and a payment that still arrives for
an invoice issued before it is booked as account credit, never as time. The service itself
runs to its paid expiry and then ends as an unpaid one does: the VM is stopped and IP ranges
are ended at the expiry, and the VM is deleted after the grace period, with the usual notices.

The system's own inactive states are not a switch-off and keep their own rules: a never-paid
order (inactive until paid), a subscription cancelled after its grace period or by its VM's
deletion (a payment pending at the deletion still brings it back, D24). Only the change
`true → false` switches off (the admin UI sends `is_active` with every edit, so an unchanged
`false` on a cancelled one changes nothing), and setting `is_active = true` switches it on
again: normal renewals and lifecycle from then on.
"""

from __future__ import annotations

import attrs

from domain.enums import SwitchedOff
from domain.errors import SubscriptionSwitchedOff
from domain.model import Subscription

#: what a renewal of a switched-off subscription is refused with
REFUSED = (
    "This subscription was switched off by an administrator: it cannot be renewed; "
    "please contact support"
)
#: what an upgrade of a VM of a switched-off subscription is refused with
UPGRADE_REFUSED = (
    "This subscription was switched off by an administrator: its VM cannot be upgraded; "
    "please contact support"
)


def is_switched_off(sub: Subscription) -> bool:
    """Whether an admin switched it off (and did not switch it on again), ended or not."""
    return sub.switched_off is not None


def winds_down(sub: Subscription) -> bool:
    """Switched off, and its end (stop at expiry, deletion after grace) still to come."""
    return not sub.is_active and sub.switched_off is SwitchedOff.WINDING_DOWN


def refuse_switched_off(sub: Subscription | None, message: str = REFUSED) -> None:
    """`SubscriptionSwitchedOff` (422, `message`) for a switched-off subscription: no quote,
    no invoice."""
    if sub is not None and is_switched_off(sub):
        raise SubscriptionSwitchedOff(message)


def admin_edited(before: Subscription, after: Subscription) -> Subscription:
    """`after`, an admin's raw edit of `before`, with the switch-off it means: active → inactive
    switches off (WINDING_DOWN); active switches on (None); inactive → inactive keeps what
    `before` had (a cancelled one is not switched off by an edit of its name)."""
    if after.is_active:
        return attrs.evolve(after, switched_off=None)
    if before.is_active:
        return attrs.evolve(after, switched_off=SwitchedOff.WINDING_DOWN)
    return attrs.evolve(after, switched_off=before.switched_off)


def switched_off_now(before: Subscription, after: Subscription) -> bool:
    """Whether the change `before → after` is the switch-off itself (pending invoices end)."""
    return winds_down(after) and not is_switched_off(before)


def ended(sub: Subscription) -> Subscription:
    """`sub` with its switch-off's end recorded (WINDING_DOWN → ENDED): the lifecycle has no
    more to do for it; anything else unchanged."""
    if sub.switched_off is SwitchedOff.WINDING_DOWN:
        return attrs.evolve(sub, switched_off=SwitchedOff.ENDED)
    return sub
