"""`GET /api/v1/payment/{id}/invoice?auth=` (api.md §6.6): the invoice of a paid payment, HTML
(as the reference) or, with `?format=pdf`, the PDF of the invoice issued at completion."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from adapters.http.auth import Handler, authenticate_query
from adapters.http.context import services
from adapters.http.envelope import error_response
from adapters.http.invoice_html import Invoice, InvoiceLine, render_invoice
from adapters.http.invoice_issued_html import render_issued_invoice
from adapters.http.invoice_pdf import render_invoice_pdf
from adapters.http.nip98 import Nip98Error
from adapters.http.openapi import QueryParam, RouteTable
from adapters.http.pdf_cache import RenderedPdfs
from adapters.http.vm_params import is_payment_id_length
from app.billing.errors import PaymentNotFound
from app.queries.payments import owned_subscription_payment
from domain.enums import SubscriptionPaymentType
from domain.invoice import Invoice as IssuedInvoice
from domain.model import GIB, LineItem, SubscriptionPayment, User

log = logging.getLogger("lnvps.http")

INVOICE_PATH = "/api/v1/payment/{id}/invoice"


class _Refused(Exception):
    """A failure the reference reports as HTTP 200 plain text (§2.5)."""


def _text(message: str, status: int = 200) -> web.Response:
    return web.Response(text=message, status=status, content_type="text/plain")


def _upgrade_details(payment: SubscriptionPayment) -> tuple[str, ...]:
    meta = payment.metadata
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = None
    if not isinstance(meta, dict):
        return ()
    out = []
    for key, label, unit in (
        ("new_cpu", "CPU", 1),
        ("new_memory", "Memory", GIB),
        ("new_disk", "Disk", GIB),
    ):
        value = meta.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            shown = f"{value} cores" if unit == 1 else f"{value / unit:g} GiB"
            out.append(f"{label}: {shown}")
    return tuple(out)


def _line(payment: SubscriptionPayment, items: list[LineItem]) -> InvoiceLine:
    kind = {
        SubscriptionPaymentType.PURCHASE: "Purchase",
        SubscriptionPaymentType.RENEWAL: "Renewal",
        SubscriptionPaymentType.UPGRADE: "Upgrade",
    }[payment.payment_type]
    names = ", ".join(item.name for item in items) or f"Subscription {payment.subscription_id}"
    upgrade = payment.payment_type is SubscriptionPaymentType.UPGRADE
    return InvoiceLine(
        description=f"{kind}: {names}",
        amount=payment.amount,
        tax=payment.tax,
        processing_fee=payment.processing_fee,
        seconds=payment.time_value or 0,
        details=_upgrade_details(payment) if upgrade else (),
    )


async def _invoice(
    request: web.Request, user: User, raw_id: str
) -> tuple[Invoice, IssuedInvoice | None]:
    try:
        pid = bytes.fromhex(raw_id)
    except ValueError:
        raise _Refused("Invalid payment id") from None
    if not is_payment_id_length(pid):
        raise _Refused("Payment not found")
    async with services(request).uow_factory() as uow:
        try:
            payment, sub = await owned_subscription_payment(uow, user.id, pid)
        except PaymentNotFound as exc:  # D19: never reveal another user's payment
            raise _Refused("Payment not found") from exc
        if not payment.is_paid:
            raise _Refused("Payment is not paid, can't generate invoice")
        seller = None if sub is None else await uow.companies.get(sub.company_id)
        items = await uow.line_items.list_by_subscription(payment.subscription_id)
        issued = await uow.invoices.get_by_payment(payment.id)
    return Invoice(
        number=payment.id.hex(),  # a payment booked before invoices had numbers
        issued=payment.paid_at or payment.created,
        paid_at=payment.paid_at,
        currency=payment.currency,
        seller=seller,
        buyer=user,
        lines=(_line(payment, items),),
        method=payment.payment_method.display_name,
    ), issued


def invoice_handler(pdfs: RenderedPdfs) -> Handler:
    """The invoice page, its PDFs kept in `pdfs` (one `auth` token can be replayed for its
    whole window: each repeat would otherwise render the PDF again)."""

    async def invoice_page(request: web.Request) -> web.StreamResponse:
        return await _invoice_page(request, pdfs)

    return invoice_page


async def _invoice_page(request: web.Request, pdfs: RenderedPdfs) -> web.StreamResponse:
    """NIP-98 through `?auth=` (the `u` path is this page's); refusals are 200 plain text,
    a missing `auth` parameter a 400 `{"error"}`. `format=pdf`: the PDF of the invoice issued
    at completion (a payment booked before invoices existed has none: refused as text)."""
    if "auth" not in request.query:
        return error_response(400, "Missing auth param")
    wanted = request.query.get("format", "html")
    if wanted not in ("html", "pdf"):
        return error_response(400, "format must be html or pdf")
    try:
        user = await authenticate_query(request, request.rel_url.raw_path)
    except Nip98Error as exc:
        return _text(exc.text)
    try:
        invoice, issued = await _invoice(request, user, request.match_info["id"])
    except _Refused as exc:
        return _text(str(exc))
    if wanted == "pdf":
        if issued is None:
            return _text("No invoice was issued for this payment")
        # drawn once per issued invoice (its document is frozen), off the loop
        body = await pdfs.get(issued, render_invoice_pdf)
        return web.Response(
            body=body,
            content_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="invoice-{issued.number}.pdf"'},
        )
    # an issued invoice's page is drawn from its stored document, as its PDF is: a later edit
    # of the company or the account never changes what the number was issued for
    page = (
        render_invoice(invoice)
        if issued is None
        else render_issued_invoice(issued, invoice.paid_at, invoice.lines[0].details)
    )
    return web.Response(text=page, content_type="text/html", charset="utf-8")


def add_invoice_routes(table: RouteTable) -> None:
    """Register the invoice page (HTML, not enveloped)."""
    table.add(
        "GET",
        INVOICE_PATH,
        invoice_handler(RenderedPdfs()),
        summary="HTML invoice of a paid payment; failures are 200 text/plain",
        query=[
            QueryParam(
                "auth", required=True, description="base64 NIP-98 event: u = this URL, method GET"
            ),
            QueryParam(
                "format",
                schema={"type": "string", "enum": ["html", "pdf"]},
                description="html (default) or pdf",
            ),
        ],
        response={"type": "string"},
        enveloped=False,
        content_type="text/html",
        also_200=[
            ("text/plain", {"type": "string", "description": "why there is no invoice"}),
            ("application/pdf", {"type": "string", "format": "binary"}),
        ],
        tags=("payments",),
    )
