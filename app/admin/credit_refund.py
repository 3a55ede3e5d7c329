"""Admin refund of a VM's unused paid time to the owner's credit balance, exactly once."""

from __future__ import annotations

from datetime import datetime

import attrs

from app.admin.credit_refund_invoices import invoices_refunded
from app.admin.expiry_moved import end_quotes_of_old_expiry
from app.admin.refund_record import (
    CREDIT,
    NothingToRefund,
    refund_event,
    refund_figure,
    refuse_if_refunded,
)
from app.admin.unused_worth import NO_PAID_TIME, unused_worth
from app.admin.vms import locked_subscription_of, require_live
from app.billing.catalogue import subscription_of
from app.billing.credit_balance import Booked, book_in
from app.billing.price_in_force import cancel_quietly
from app.billing.rails import PaymentRails
from app.billing.refunded_credit import refunded_invoices_field
from app.lifecycle_codes import end_without_renewal
from domain.account_credit import CreditReason, checked_entry
from domain.credit_conversion import noted
from domain.model import SubscriptionPayment
from domain.money import Money
from ports.clock import Clock
from ports.rates import RateStore
from ports.storage import UnitOfWorkFactory

#: the refusal for a deleted VM
_DELETED = "VM is already deleted"
#: the refusal when credit notes took back all the time left
_TAKEN_BACK = (
    "Credit notes took back the invoices of the unused time already: nothing is left to "
    "refund to credit"
)


async def refund_to_credit(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rates: RateStore,
    *,
    vm_id: int,
    admin_id: int,
    reason: str | None,
    rails: PaymentRails | None = None,
) -> Booked:
    """Turn the VM's unused paid time into credit in its subscription's currency, in one
    transaction.

    The value is exact (R10, `unused_worth`, as a refund by hand values the time): the
    subscription's whole price per interval as it is in force now (`price_in_force`: the
    VM's list price plus every other line item, such as an IP range billed with it) times
    the unused share of the periods its payments bought, each counted from its real start
    (a month bought on 31 Jan and refunded at once is the whole price), floored in each list
    currency, and limited to what those payments and the upgrades since carried for the time
    (the note says so when it is). It is the figure GET /vms/{id}/refund shows for a card
    refund in the subscription's currency.

    The credit is booked in the subscription's currency, the one renewals spend credit in
    (`credit_quote.apply_balance`): a refund booked in a plan's new currency after the
    operator re-priced it would sit in a balance nothing of this subscription spends. A part
    priced in another currency is converted exactly at today's BTC rates (fiat to fiat
    through both) and the sum is floored once; the entry's note says what was converted at
    which rates. Without a fresh rate it is refused (`NoExchangeRate`, 503) and nothing
    changes.

    The whole subscription's expiry is cut to now in the same transaction, so no item's time
    is both kept and refunded, and the VM's history records the refund (`refund_record`): a
    second refund of that time, to credit or by hand, finds nothing left and the record
    that cut it (409), and the ledger entry's reference (`refund_reference`: the
    subscription, the last payment's period and the expiry it refunded) books it once even
    if two requests race; a renewal paid after the refund is another period, refunded under
    another reference even if it ends on the same second. The subscription lock is taken first, as
    completion does, then the balance lock. The cut period is closed to renewal
    (`end_without_renewal`): a worker run whose clock was read just before the cut would
    otherwise see it expiring soon and auto-renew the time just refunded. The cut ends, in
    that transaction, the pending upgrade quotes (priced to the old expiry) and any renewal
    invoice an automatic renewal claimed for the cut period; they are cancelled at `rails`
    after the commit (`end_quotes_of_old_expiry`).

    No credit note is issued (a refund by hand issues them: `refund_notes`): no money goes
    back, the invoice's payment stays with the seller as the customer's prepayment. The
    credit is net value, and the invoice that later spends it puts it in a line of its own
    that takes it and the VAT it spares off that invoice's taxable base
    (`invoice_content._service_lines`): revenue and output VAT come down there, once. A
    credit note here too would take them down twice. So time VAT-free credit paid for comes
    back as ordinary net credit too: its invoice declared its VAT, and no note takes that
    back. Only an untaxed upgrade's unused share, whose money (or the VAT-free credit it
    spent) bore no VAT, comes back as VAT-free credit (the entry's `vat_free`:
    `domain.prepayment.vat_free_refund_part`), as that money would were the upgrade not
    applied; as net credit it would pay a renewal's net whole, its VAT never declared.

    So credit notes and this refund never give the same time back twice, under the
    invoices' locks (taken after the subscription's, before the balance's:
    `invoices_refunded`): each paid invoice's part of the value (`Unused.split`) is less
    what its credit notes took back already (refused, `NothingToRefund`, when nothing is
    left), and what it gave back of each invoice is recorded with the refund
    (`refunded_invoices_field`), which every later credit note on that invoice reads under
    its lock and takes off what it may take back (`NoteTarget.room`).
    """
    now = clock.now()
    async with uow_factory() as uow:  # which subscription: read before its lock is taken
        found = await subscription_of(uow, require_live(await uow.vms.get(vm_id), _DELETED))
    async with uow_factory() as uow:
        # locked first: the price below is read as committed before the lock
        sub, vm = await locked_subscription_of(uow, found.id, vm_id, _DELETED)
        if sub.expires is not None and sub.expires <= now:
            await refuse_if_refunded(uow, vm.id, sub.expires)  # 409 when a refund cut it
        if sub.expires is None or sub.expires <= now:
            raise NothingToRefund("No paid time is left to refund")
        expires: datetime = sub.expires
        # credit is spent in the subscription's currency (renewals): booked in it, the parts
        # priced in another (a plan re-priced since) converted at today's BTC rates, floored
        unused = await unused_worth(uow, sub, vm.id, now)
        table = await rates.table() if unused.needs_rates else None  # read only if needed
        converted = unused.valued(table, now)  # 503 without a rate
        if converted.money.amount <= 0:
            raise NothingToRefund(NO_PAID_TIME)
        # the invoices of that time locked (before the balance's lock), less their notes
        invoices = await invoices_refunded(
            uow,
            sub.id,
            currency=converted.money.currency.value,
            shares=unused.split(converted.money.amount, table, now),
            wholes=unused.wholes(),
            exact=unused.exact_split(converted.money.amount, table, now),
        )
        amount = converted.money.amount - invoices.kept_off
        if amount <= 0:
            raise NothingToRefund(_TAKEN_BACK)
        said = reason or f"unused time of VM {vm_id}"
        if invoices.kept_off:
            said = f"{said} (less {invoices.kept_off} its invoices' credit notes took back)"
        entry = checked_entry(
            user_id=sub.user_id,
            currency=converted.money.currency.value,
            amount=amount,
            reason=CreditReason.REFUND_TO_CREDIT,
            reference=unused.reference,
            note=noted(said, converted),
            created=now,
            admin_id=admin_id,
            # an untaxed upgrade's unused share bore no VAT: VAT-free credit
            vat_free=min(invoices.vat_free, amount),
        )
        booked = await book_in(uow, entry)
        expired: list[SubscriptionPayment] = []
        if not booked.replayed:
            await uow.subscriptions.update(attrs.evolve(sub, expires=now))
            expired = await end_quotes_of_old_expiry(uow, sub, now)
            # no renewal of the cut period, even by a worker run that read its clock before
            await end_without_renewal(uow, sub.id, now, now)
            figure = refund_figure(Money(converted.money.currency, amount))
            await uow.vm_history.add(
                refund_event(
                    vm_id=vm.id,
                    kind=CREDIT,
                    reference=unused.reference,
                    admin_id=admin_id,
                    expires=expires,
                    cut_to=now,
                    figure=figure,
                    now=now,
                    reason=reason,
                    extra=refunded_invoices_field(invoices.parts),
                )
            )
        await uow.commit()
    await cancel_quietly(rails, expired)
    return booked
