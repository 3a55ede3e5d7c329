"""Revenue reports (api.md §9.16): each paid payment of a company in a window, and its invoice."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import attrs

from app.admin.invoices import every_credit_note
from domain.credit import listed_rate
from domain.exchange import msat_to_fiat
from domain.invoice import CreditNote, Invoice, stored_note_parts
from domain.invoice_figures import InvoicedFigures, invoiced_figures
from domain.model import Company, SubscriptionPayment, Vm
from ports.storage import InvoiceWindow, PaidRecord, PaidWindow, UnitOfWorkFactory


@attrs.frozen(kw_only=True)
class ReportLine:
    """One paid payment with what it belongs to; money as stored (smallest units)."""

    payment: SubscriptionPayment
    company: Company
    vm: Vm | None
    host_name: str
    region_id: int
    region_name: str
    base_amount: int | None
    base_tax: int | None
    #: the payment's invoice (None: paid before invoices were issued) and what it billed, by
    #: kind: the payment row above leaves out a prepayment to account credit (an overpaid
    #: excess), which only its invoice carries
    invoice_number: str | None = None
    invoiced: InvoicedFigures | None = None


def window(start: date, end: date) -> tuple[datetime, datetime]:
    """`[start 00:00Z, the day after end 00:00Z)`: both days whole, so consecutive reports
    (June, then July) share no instant and miss none (the reference ends at `end 23:59:59`,
    exclusive, which loses each period's last second)."""
    return (
        datetime.combine(start, time(), UTC),
        datetime.combine(end + timedelta(days=1), time(), UTC),
    )


def base_value(
    amount: int, payment: SubscriptionPayment, list_currency: str, base_currency: str
) -> int | None:
    """The amount in the company's base currency, exactly (half-up to its minor unit).

    Same currency: the amount itself. A Lightning payment (msat) whose list currency is the
    base currency: msat at the quote's own rate of it (`listed_rate`: the rates the quote
    stored, else its `rate` column), the inverse of how it was charged. Any other case has
    no stored rate to the base currency, so it is `None` rather than a guess.
    """
    if payment.currency.upper() == base_currency.upper():
        return amount
    if payment.currency.upper() == "BTC" and list_currency.upper() == base_currency.upper():
        rate = listed_rate(payment, base_currency)
        return None if rate is None else msat_to_fiat(amount, rate)
    return None


def _line(found: PaidRecord, company: Company) -> ReportLine:
    payment, invoice, base = found.payment, found.invoice, company.base_currency
    return ReportLine(
        payment=payment,
        company=company,
        vm=found.vm,
        host_name="" if found.host is None else found.host.name,
        region_id=0 if found.region is None else found.region.id,
        region_name="" if found.region is None else found.region.name,
        base_amount=base_value(payment.amount, payment, found.list_currency, base),
        base_tax=base_value(payment.tax, payment, found.list_currency, base),
        invoice_number=None if invoice is None else invoice.number,
        invoiced=None if invoice is None else invoiced_figures(invoice),
    )


async def revenue(
    uow_factory: UnitOfWorkFactory,
    *,
    start: date,
    end: date,
    company_id: int,
    currency: str | None,
) -> list[ReportLine]:
    """Paid payments paid in the window (`SubscriptionPayment.paid_time`: when their invoice
    is issued) whose subscription belongs to the company (`subscription.company_id`, not the
    reference's user-id join), optionally in one currency; in the order paid; each with its
    invoice's figures (`invoiced_figures`). A fixed number of statements (`ReportReads`)."""
    lo, hi = window(start, end)
    async with uow_factory() as uow:
        company = await uow.companies.get(company_id)
        if company is None:
            return []
        found = await uow.report_reads.paid(PaidWindow(since=lo, until=hi), company_id, currency)
    return [_line(record, company) for record in found]


@attrs.frozen(kw_only=True)
class NoteLine:
    """A credit note issued in a report's window and the invoice it corrects; `parts` its
    (net, tax) as issued (`stored_note_parts`; None: an old note that has none)."""

    note: CreditNote
    invoice: Invoice
    parts: tuple[int, int] | None


def paid_currency(invoice: Invoice) -> str:
    """The currency the invoiced payment was paid in: BTC when the invoice records the msat
    a Lightning payment brought (it is then issued in the subscription's fiat), else the
    invoice's own currency (`invoice_content.invoice_currency`)."""
    return "BTC" if invoice.document.btc_msat is not None else invoice.currency.upper()


async def credit_notes(
    uow_factory: UnitOfWorkFactory,
    *,
    start: date,
    end: date,
    company_id: int,
    currency: str | None,
) -> list[NoteLine]:
    """The credit notes the company issued in the window (by their own issue time, whatever
    window their invoice was in), in issue order, each with the invoice it corrects;
    `currency` keeps those of invoices of payments paid in it, as `revenue` filters its
    payments. They take back what the report's invoices (or earlier ones) billed."""
    lo, hi = window(start, end)
    out: list[NoteLine] = []
    async for note, invoice in every_credit_note(uow_factory, InvoiceWindow(lo, hi, company_id)):
        if currency is None or paid_currency(invoice) == currency:
            out.append(NoteLine(note=note, invoice=invoice, parts=stored_note_parts(note, invoice)))
    return out


@attrs.frozen(kw_only=True)
class ReferralLine:
    vm_id: int
    ref_code: str
    payment: SubscriptionPayment
    base_currency: str


async def referral_usage(
    uow_factory: UnitOfWorkFactory,
    *,
    start: date,
    end: date,
    company_id: int,
    ref_code: str | None,
) -> list[ReferralLine]:
    """The first paid payment of each VM ordered with a referral code, when that payment was
    paid in the window (`revenue`'s basis) and the VM's host region belongs to the company;
    the latest paid first. Read from the window's paid payments, so a VM deleted since (its
    row kept, soft-deleted) still counts: a past report does not change when a VM goes."""
    lo, hi = window(start, end)
    async with uow_factory() as uow:
        company = await uow.companies.get(company_id)
        if company is None:
            return []
        found = await uow.report_reads.first_paid_referred(PaidWindow(since=lo, until=hi), ref_code)
    return [
        ReferralLine(
            vm_id=record.vm.id,
            ref_code=record.vm.ref_code,
            payment=record.payment,
            base_currency=company.base_currency,
        )
        for record in reversed(found)
        if record.vm is not None
        and record.vm.ref_code
        and record.region is not None
        and record.region.company_id == company_id
    ]
