"""What refunds to credit gave back of an invoice's time: credit notes never take it back again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.credit_note import creditable_parts
from domain.invoice import Invoice
from ports.storage import UnitOfWork

#: the VM history metadata key of a refund's record (`app.admin.refund_record`)
REFUND_RECORD_KEY = "refund"
#: the key, in a refund to credit's record, of what it gave back of each invoice it valued:
#: `[[invoice id, net in the invoice's smallest units], ...]`, the net null for an invoice
#: in another currency than the refund's, given back whole (records written before it have
#: none: nothing is known to have been given back)
REFUNDED_INVOICES = "refunded_invoices"


def refunded_invoices_field(parts: Mapping[int, int | None]) -> dict[str, Any]:
    """The refund record's field of what a refund to credit gave back of each invoice (the
    net it credited of that invoice's payment's time; None: the whole invoice)."""
    return {REFUNDED_INVOICES: [[invoice_id, net] for invoice_id, net in parts.items()]}


def _refunded_in(record: object, invoice: Invoice) -> int:
    """The net a refund record says it gave back of `invoice` (0: none, or a record it
    cannot read; all a note could take back of one given back whole)."""
    rows = record.get(REFUNDED_INVOICES) if isinstance(record, dict) else None
    total = 0
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, list) or len(row) != 2 or row[0] != invoice.id:
            continue
        net = row[1]
        if net is None:  # what notes could take back of it: not `invoice.net`, which the
            # lines of VAT-free credit lower by the VAT they declare (review r22)
            total += max(0, creditable_parts(invoice)[0])
        elif isinstance(net, int) and not isinstance(net, bool) and net > 0:
            total += net
    return total


async def refunded_to_credit(uow: UnitOfWork, invoice: Invoice) -> int:
    """The net of `invoice` its VM's refunds to credit gave back as account credit (read
    from the refund records in the VM's history, deleted VM included); 0 for an invoice
    whose payment is gone or whose subscription has no VM.

    Call it under the invoice's row lock (`invoicing.lock_for_notes`): a refund to credit
    takes the locks of the invoices it values before it records what it gave back of them,
    so what is read after the lock is every such refund committed before."""
    payment = await uow.payments.get(invoice.payment_id)
    vm = None if payment is None else await uow.vms.get_by_subscription(payment.subscription_id)
    if vm is None:
        return 0
    total = 0
    for entry in await uow.vm_history.list_all_by_vm(vm.id):
        meta = entry.metadata
        if isinstance(meta, dict):
            total += _refunded_in(meta.get(REFUND_RECORD_KEY), invoice)
    return total
