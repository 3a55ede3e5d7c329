"""The invoices a refund to credit gives back time of: what their credit notes took back is not."""

from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction

import attrs

from app.billing.invoicing import NoteTarget, lock_for_notes
from domain.credit_note import service_left
from domain.prepayment import vat_free_refund_part
from ports.storage import UnitOfWork


@attrs.frozen
class InvoicesRefunded:
    """What a refund to credit gives back of each invoice it values (`parts`: invoice id →
    net, in the refund's currency; None for an invoice in another currency, which cannot be
    matched without a rate: taken as given back whole), and the part of its value it does
    not give back (`kept_off`): the time credit notes (or an earlier refund to credit) took
    back already. `vat_free`: the part of what it gives back that is VAT-free credit (an
    untaxed upgrade's unused share: `domain.prepayment.vat_free_refund_part`)."""

    parts: dict[int, int | None]
    kept_off: int
    vat_free: int = 0


def _left(target: NoteTarget, whole: Fraction | None) -> int | None:
    """The net of the invoice's payment's time not yet taken back: the larger of what the
    payment carried for all of it (`whole`: with the account credit it spent, which the
    invoice's net leaves out) and the service's net notes may take back of the invoice
    (with a Purchase's setup fee, which a note may take back first), less what its notes
    and refunds to credit took back of that service (`service_left`: notes take back the
    service with its VAT before the untaxed processing fee, as they are split, so a note
    never leaves the fee to be given back as time: r24 F1); None when nothing was taken
    back yet (all of it is left, whatever it was)."""
    parts = target.parts
    if sum(net for net, _ in parts) <= 0:
        return None
    service = service_left(target.invoice, [], credited=target.credited)[0]
    left = service_left(target.invoice, parts, credited=target.credited)[0]
    paid = service if whole is None else max(service, math.floor(whole))
    return max(0, paid - (service - left))


async def invoices_refunded(
    uow: UnitOfWork,
    subscription_id: int,
    *,
    currency: str,
    shares: Mapping[str, int],
    wholes: Mapping[str, Fraction | None],
    exact: Mapping[str, Fraction] | None = None,
) -> InvoicesRefunded:
    """Lock the subscription's invoices whose payments bought the refunded time (`shares`:
    each payment's part of the value, by payment id in hex, `Unused.split`) and take off
    each part what their credit notes took back already, in the caller's transaction, which
    holds the subscription's lock and books the credit after this (lock order: the
    subscription, the invoices, the balance).

    Credit notes of an invoice are taken to have taken back its payment's unused time last
    (as a refund by hand's cap does: what the invoice can still take back): the part left
    is at most what the payment carried for all its time (`wholes`) less the notes' net
    and what earlier refunds to credit gave back of it. An invoice in another currency
    than the refund's with any of that is not matched without a rate: its part is kept
    off (and one nothing took back is recorded as given back whole: no note can take it
    back after). An invoice nothing took back gives its whole part, whatever it charged:
    time paid with account credit (an invoice of 0) is given back as credit. What an
    untaxed upgrade's invoice gives back is VAT-free credit as far as its money and the
    VAT-free credit it spent paid it (`InvoicesRefunded.vat_free`).

    `exact`: the shares before rounding (`Unused.exact_split`). What is kept off is then
    at least the exact shares' excess over what their invoices had left, rounded up once
    (the value less it floored once), and the parts are lowered by what that adds, newest
    invoice first: a rounded share compared with what is left may hide a small note (a
    share of 131.81 rounded to 131 against 131 left, r24 F2)."""
    parts: dict[int, int | None] = {}
    kept_off = vat_free = 0
    over = Fraction(0)
    for invoice in await uow.invoices.of_subscription(subscription_id):
        own = shares.get(invoice.payment_id.hex(), 0)
        if own <= 0:
            continue
        target = await lock_for_notes(uow, invoice.id)
        assert target is not None  # invoices are never deleted
        left = _left(target, wholes.get(invoice.payment_id.hex()))
        other = invoice.currency != currency
        if left is not None and other:
            left = 0
        given = own if left is None else min(own, left)
        kept_off += own - given
        if left is not None and exact is not None:
            over += max(Fraction(0), exact.get(invoice.payment_id.hex(), Fraction(own)) - left)
        if given > 0:
            parts[invoice.id] = None if other else given
            payment = await uow.payments.get(invoice.payment_id)
            vat_free += 0 if payment is None else vat_free_refund_part(payment, given)
    short = max(0, math.ceil(over) - kept_off)
    kept_off += short
    for invoice_id, part in parts.items():
        if short <= 0:
            break
        if part is not None:
            less = min(part, short)
            parts[invoice_id], short = part - less, short - less
    return InvoicesRefunded(parts=parts, kept_off=kept_off, vat_free=vat_free)
