"""The HTML invoice of a paid payment without an issued invoice (booked before invoices were
issued), drawn live: seller, buyer, lines, tax, totals; every value escaped; and the helpers
both invoice pages share."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html import escape

import attrs

from domain.model import Company, User
from domain.money import MSAT_PER_BTC
from domain.nip19 import npub


def format_amount(amount: int, currency: str) -> str:
    """`EUR 8.55` for fiat cents; `BTC 0.00001320` for millisatoshi (api.md §5.4)."""
    if currency.upper() == "BTC":
        return f"BTC {Decimal(amount) / MSAT_PER_BTC:.8f}"
    return f"{currency.upper()} {Decimal(amount) / 100:.2f}"


def format_duration(seconds: int) -> str:
    """Whole days, hours and minutes of service, e.g. `30 days` or `1 day 2 h` (`-` for none)."""
    if seconds <= 0:
        return "-"
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if days:
        parts.append(f"{days} day" + ("s" if days != 1 else ""))
    for value, unit in ((hours, "h"), (minutes, "min"), (secs, "s")):
        if value:
            parts.append(f"{value} {unit}")
    return " ".join(parts)


@attrs.frozen(kw_only=True)
class InvoiceLine:
    description: str
    amount: int
    tax: int
    processing_fee: int
    seconds: int
    details: tuple[str, ...] = ()


@attrs.frozen(kw_only=True)
class Invoice:
    number: str
    issued: datetime
    #: when the payment completed: the status line reads "PAID on" it (to the minute, UTC),
    #: or "UNPAID" when None
    paid_at: datetime | None
    currency: str
    seller: Company | None
    buyer: User
    lines: tuple[InvoiceLine, ...]
    method: str

    @property
    def total(self) -> int:
        return sum(line.amount + line.tax + line.processing_fee for line in self.lines)


def address_block(*parts: str | None) -> str:
    """One `<div>` per given part, escaped; empty parts left out."""
    return "".join(f"<div>{escape(p)}</div>" for p in parts if p)


#: the attributes a party's postal block is read from: name, two address lines, postcode,
#: city, state, country and tax id
_POSTAL = ("name", "address_1", "address_2", "postcode", "city", "state")
_SELLER_FIELDS = (*_POSTAL, "country_code", "tax_id")
_BUYER_FIELDS = (*(f"billing_{n}" for n in _POSTAL), "country_code", "billing_tax_id")


def _postal(party: Company | User, fields: tuple[str, ...]) -> list[str | None]:
    """The postal block's lines: postcode and city on one line, the tax id labelled."""
    name, line_1, line_2, postcode, city, state, country, tax_id = (
        getattr(party, f) for f in fields
    )
    town = " ".join(p for p in (postcode, city) if p) or None
    return [name, line_1, line_2, town, state, country, f"Tax ID: {tax_id}" if tax_id else None]


def _seller(company: Company | None) -> str:
    if company is None:
        return "<div>-</div>"
    return address_block(*_postal(company, _SELLER_FIELDS), company.email or None, company.phone)


def _buyer(user: User) -> str:
    return (
        address_block(*_postal(user, _BUYER_FIELDS))
        + f'<div class="npub">{escape(npub(user.pubkey))}</div>'
    )


def _line(line: InvoiceLine, currency: str) -> str:
    details = "".join(f"<div class='detail'>{escape(d)}</div>" for d in line.details)
    cells = (
        f"{escape(line.description)}{details}",
        escape(format_duration(line.seconds)),
        escape(format_amount(line.amount, currency)),
        escape(format_amount(line.tax, currency)),
        escape(format_amount(line.processing_fee, currency)),
        escape(format_amount(line.amount + line.tax + line.processing_fee, currency)),
    )
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


#: the page style both invoice pages use
PAGE_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:860px;margin:2em auto;color:#222}"
    "table{width:100%;border-collapse:collapse;margin-top:1.5em}"
    "th,td{text-align:left;padding:.4em;border-bottom:1px solid #ddd;vertical-align:top}"
    ".parties{display:flex;justify-content:space-between;gap:2em}"
    ".status{font-weight:bold;color:#176f2c}.npub{font-family:monospace;font-size:.8em;"
    "word-break:break-all}.detail{font-size:.85em;color:#555}.totals td{font-weight:bold}"
)


def render_invoice(invoice: Invoice) -> str:
    """A complete HTML page; every stored or user-controlled string goes through `escape`."""
    cur = invoice.currency
    tax = sum(line.tax for line in invoice.lines)
    fee = sum(line.processing_fee for line in invoice.lines)
    net = sum(line.amount for line in invoice.lines)
    paid = invoice.paid_at.strftime("%Y-%m-%d %H:%M UTC") if invoice.paid_at else None
    status = f"PAID on {paid}" if paid else "UNPAID"
    rows = "".join(_line(line, cur) for line in invoice.lines)
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Invoice {escape(invoice.number[:16])}</title><style>{PAGE_STYLE}</style></head>"
        "<body><h1>Invoice</h1>"
        f"<div>Invoice number: <code>{escape(invoice.number)}</code></div>"
        f"<div>Date: {escape(invoice.issued.strftime('%Y-%m-%d'))}</div>"
        f"<div>Payment method: {escape(invoice.method)}</div>"
        f"<div class='status'>Status: {escape(status)}</div>"
        "<div class='parties'>"
        f"<div class='seller'><h2>Seller</h2>{_seller(invoice.seller)}</div>"
        f"<div class='buyer'><h2>Bill to</h2>{_buyer(invoice.buyer)}</div></div>"
        "<table><thead><tr><th>Description</th><th>Period</th><th>Amount</th><th>Tax</th>"
        f"<th>Processing fee</th><th>Total</th></tr></thead><tbody>{rows}</tbody></table>"
        "<table class='totals'><tbody>"
        f"<tr><td>Subtotal</td><td>{escape(format_amount(net, cur))}</td></tr>"
        f"<tr><td>Tax</td><td>{escape(format_amount(tax, cur))}</td></tr>"
        f"<tr><td>Processing fee</td><td>{escape(format_amount(fee, cur))}</td></tr>"
        f"<tr><td>Total</td><td>{escape(format_amount(invoice.total, cur))}</td></tr>"
        "</tbody></table></body></html>"
    )
