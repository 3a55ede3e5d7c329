"""Money that arrives for a payment an admin had already completed: credited once, or reported."""

from __future__ import annotations

import logging
from datetime import datetime

from app.billing.admin_notices import claim_notice, tell_admins
from app.billing.booked_records import money_text
from app.billing.credit_overpayment import credit_settled_after_admin
from domain.admin_completion import (
    RACE_MARGIN,
    AdminCompletion,
    SettledLater,
    admin_completion_of,
)
from domain.credit import payment_meta
from domain.enums import PaymentMethod
from domain.model import SubscriptionPayment
from domain.overpayment import Overpaid
from ports.clock import Clock
from ports.jobs import SendAdminNotification
from ports.lightning import SettledInvoice
from ports.queue import WorkQueue
from ports.storage import UnitOfWorkFactory

log = logging.getLogger("lnvps.settlement")

#: the notice key of a card order reported paid after an admin completed its payment.
PAID_AFTER_ADMIN_NOTICE = "webhook:paid-after-admin"


async def settled_after_admin(
    uow_factory: UnitOfWorkFactory, clock: Clock, queue: WorkQueue, settled: SettledInvoice
) -> bool:
    """A Lightning settlement whose payment was already paid (`complete_payment` booked
    nothing); True when this call credited it.

    Paid by that settlement (no admin completion recorded: a replay, the stream and a
    reconciliation racing): nothing happens (D9). Completed by an admin while the node had
    no settlement of the invoice (`NodeSettlement.NONE`), and settled surely after that
    completion was booked (`SettledLater.NOT_COUNTED`: stamped more than `RACE_MARGIN`
    after it): this money bought nothing, so all of it is booked as the user's account
    credit, valued as an overpayment's excess is, once per payment (a keyed ledger entry,
    `credit_settled_after_admin`), and the admins are told and an OPERATOR warning logged
    by the call that booked it. Completed by an admin who counted the node's settlement
    (`COUNTED`): the same money, nothing happens. Completed by an admin who could not ask
    the node (`UNKNOWN`), or settled within the race window of a `NONE` completion (it may
    have settled between the node's answer and the booking: the money the admin gave the
    service for), or met by a `NONE` record kept before its booking time was: nobody can
    tell whether the admin counted this money, so nothing is credited and the admins are
    told to check (again each time the settlement is met, which the stream does once past
    its cursor)."""
    async with uow_factory() as uow:
        found = await uow.payments.get(settled.payment_hash)
    admin = None if found is None else admin_completion_of(payment_meta(found))
    if found is None or not found.is_paid or admin is None:
        return False
    seen = admin.settled_later(settled.settled_at)
    if seen is SettledLater.SAME_MONEY:
        log.info("payment %s: its admin completion counted this settlement", _hex(found))
        return False
    if seen is not SettledLater.NOT_COUNTED:
        _report(found, admin, settled, None)
        await _notify(queue, found, admin, settled, seen, None)
        return False
    async with uow_factory() as uow:
        # the subscription lock first, as completion takes it, then the balance's (book_in)
        sub = await uow.subscriptions.get_for_update(found.subscription_id)
        if sub is None:  # impossible with the foreign key
            raise LookupError(f"payment {_hex(found)} has no subscription")
        payment = await uow.payments.get(found.id) or found
        credit, replayed = await credit_settled_after_admin(
            uow, payment, sub.currency, settled.amount_paid_msat, clock.now()
        )
        await uow.commit()
    if replayed:
        return False
    _report(found, admin, settled, credit)
    await _notify(queue, found, admin, settled, seen, credit)
    return credit.credited > 0


def _hex(payment: SubscriptionPayment) -> str:
    return payment.id.hex()


def _credited(credit: Overpaid | None) -> str:
    """What became account credit, in words."""
    if credit is None:
        return "nothing was credited: check whether the admin counted this money"
    if not credit.credited:
        return "it could not be valued, so nothing was credited: settle it with the user"
    amount = money_text(credit.currency, credit.credited)
    added = f"{amount} was added to the user's account credit"
    if credit.vat_free:  # an untaxed upgrade's money: no VAT is due on it until it is spent
        return f"{added} as VAT-free credit (no VAT to declare now)"
    if credit.tax_rate is None or not credit.tax:
        return added
    # the payment's invoice was issued at the admin's completion: none declares this VAT
    received = money_text(credit.currency, credit.received)
    tax = money_text(credit.currency, credit.tax)
    return (
        f"{added}, net of VAT: the {received} received is a prepayment whose VAT, {tax} at "
        f"{credit.tax_rate}%, is on no invoice, so invoice it (or declare it) by hand"
    )


def _report(
    payment: SubscriptionPayment,
    admin: AdminCompletion,
    settled: SettledInvoice,
    credit: Overpaid | None,
) -> None:
    log.warning(
        "OPERATOR: Lightning payment %s of user %d was completed by admin %d (booked at %s), "
        "then its invoice was paid (%d msat, settle index %d, settled at %s): %s",
        _hex(payment),
        payment.user_id,
        admin.admin_id,
        _when(admin.booked_at),
        settled.amount_paid_msat,
        settled.settle_index,
        _when(settled.settled_at),
        _credited(credit),
    )


def _when(moment: datetime | None) -> str:
    return "an unrecorded time" if moment is None else moment.isoformat()


def _known(admin: AdminCompletion, settled: SettledInvoice, seen: SettledLater) -> str:
    """Why this settlement was credited or not, in words."""
    if seen is SettledLater.NOT_COUNTED:
        return (
            "The node had no settlement of it then, so this is money the completion did not count"
        )
    if seen is SettledLater.IN_RACE_WINDOW:
        minutes = int(RACE_MARGIN.total_seconds() // 60)
        return (
            f"The node had no settlement of it when asked, but this one is stamped "
            f"{_when(settled.settled_at)} by the node, not clearly after the completion was "
            f"booked ({_when(admin.booked_at)}, {minutes} minutes allowed for the clocks): the "
            "settlement came within the race window, so it may be the money the admin "
            "completed the payment for"
        )
    if seen is SettledLater.UNTIMED:
        return (
            "The node had no settlement of it then, but the completion was recorded without "
            "its time, so it is not known whether this settlement came while the admin "
            "completed it"
        )
    return (
        "The node could not be asked then, so it is not known whether the admin counted this money"
    )


async def _notify(
    queue: WorkQueue,
    payment: SubscriptionPayment,
    admin: AdminCompletion,
    settled: SettledInvoice,
    seen: SettledLater,
    credit: Overpaid | None,
) -> None:
    """The admins' notice; best effort (the credit, if any, is booked already)."""
    hex_id = _hex(payment)
    message = (
        f"Admin {admin.admin_id} completed Lightning payment {hex_id} of user "
        f"{payment.user_id} by hand; its invoice was paid afterwards "
        f"({settled.amount_paid_msat} msat, settle index {settled.settle_index}). "
        f"{_known(admin, settled, seen)}: {_credited(credit)}."
    )
    title = f"Lightning payment {hex_id[:16]}… paid after an admin completed it"
    try:
        await queue.send(SendAdminNotification(title=title, message=message))
    except Exception:  # the credit is booked; the notice is a courtesy
        log.exception("could not queue the admins' notice about payment %s", hex_id)


async def card_paid_after_admin(
    uow_factory: UnitOfWorkFactory, queue: WorkQueue, method: PaymentMethod, external_id: str
) -> bool:
    """A card provider says an order is paid whose payment was already paid; True when an
    admin had completed it (then it is reported).

    Nothing is credited: the provider's word does not say whether the card was charged
    before the admin's completion (the admin completed it because its webhook was lost: the
    same money) or after (a second payment), so the admins are told to check, and an
    OPERATOR warning is logged, once per payment (`claim_notice`): the provider retries its
    webhook, and each duplicate delivery says nothing new."""
    async with uow_factory() as uow:
        payment = await uow.payments.get_by_external_id(external_id)
    admin = None if payment is None else admin_completion_of(payment_meta(payment))
    if payment is None or admin is None:
        return False
    hex_id, name = _hex(payment), method.display_name
    if not await claim_notice(uow_factory, payment, {"key": PAID_AFTER_ADMIN_NOTICE}):
        log.info("%s order %r paid after admin %d: told already", name, external_id, admin.admin_id)
        return True
    log.warning(
        "OPERATOR: %s order %r (payment %s of user %d, %s %d) was completed by admin %d and "
        "is reported paid by %s: nothing was credited; check whether it was charged twice",
        name,
        external_id,
        hex_id,
        payment.user_id,
        payment.currency,
        payment.total,
        admin.admin_id,
        name,
    )
    message = (
        f"Admin {admin.admin_id} completed {name} payment {hex_id} of user {payment.user_id} "
        f"by hand; {name} now reports its order {external_id} paid. If the admin completed "
        "it because this payment's webhook was lost, nothing is to be done. Otherwise the "
        "user paid twice: refund the card payment at "
        f"{name} or credit the user's account. Nothing was credited automatically."
    )
    title = f"{name} payment {hex_id[:16]}… paid after an admin completed it"
    await tell_admins(queue, payment, title, message)
    return True
