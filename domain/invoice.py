"""Invoices and credit notes: numbers, the EU content snapshot, reverse charge (issue 13)."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import attrs

from domain.errors import InvalidInput
from domain.overpayment import Overpaid

#: EU member states (alpha-3): reverse charge applies between two of them (Art. 196 VAT Dir.)
_EU = "AUT BEL BGR HRV CYP CZE DNK EST FIN FRA DEU GRC HUN IRL ITA LVA LTU LUX MLT NLD POL PRT"
EU_COUNTRIES = frozenset((_EU + " ROU SVK SVN ESP SWE").split(" "))
REVERSE_CHARGE_TEXT = (
    "Reverse charge: VAT to be accounted for by the recipient "
    "(Article 196, Council Directive 2006/112/EC)."
)
#: why an invoice to a buyer outside the EU charges no VAT: the place of supply of services
#: (electronically supplied ones to consumers, any to businesses) is where the customer is
OUTSIDE_EU_TEXT = (
    "Not subject to VAT: supply of services outside the EU (the customer is established "
    "outside the EU, Articles 44 and 58, Council Directive 2006/112/EC)."
)
#: the invoice line of a card processor's fee, untaxed (never part of the service bought)
FEE_LINE = "Payment processing fee"
#: the payment metadata key the credit balance writes when credit paid part of a payment
CREDIT_APPLIED_KEY = "credit_applied"
#: the invoice line of VAT-free account credit that paid part of a supply, taken off whole
VAT_FREE_CREDIT_LINE = "VAT-free account credit applied"
#: what ends the description of the part of a supply VAT-free credit paid (its VAT declared)
VAT_FREE_SUPPLY_SUFFIX = " (paid from VAT-free account credit, VAT included)"
_CENT = Decimal("0.01")


class InvoiceImmutable(InvalidInput):
    """An issued invoice or credit note is never edited: corrections are credit notes."""


def invoice_series(issued_at: datetime) -> str:
    """Invoices are numbered per company and calendar year of issue: series `2026`."""
    return f"{issued_at.year:04d}"


def credit_note_series(issued_at: datetime) -> str:
    """Credit notes have their own series per company and year: `CN-2026`."""
    return f"CN-{issued_at.year:04d}"


def document_number(series: str, seq: int) -> str:
    """`2026-000123`: the series, a dash and the sequence number, zero-padded to six digits."""
    if seq < 1:
        raise ValueError(f"sequence numbers start at 1, got {seq}")
    return f"{series}-{seq:06d}"


def effective_tax_rate(net: int, tax: int) -> Decimal:
    """The rate (percent, at most two decimals) a charged tax stands for.

    The quote floored `net × rate / 100`, so the rate lies in [tax/net, (tax+1)/net) × 100;
    the answer is the number with the fewest decimals in that interval: the configured rate
    for any real amount (the interval is narrower than 0.01 from 10 000 units up), and for a
    tiny one a rate that gives the same tax.
    """
    if net <= 0 or tax <= 0:
        return Decimal(0)
    low, high = Fraction(tax * 100, net), Fraction((tax + 1) * 100, net)
    for places in (0, 1, 2):
        scale = 10**places
        candidate = Fraction(-((-low.numerator * scale) // low.denominator), scale)  # ceil
        if candidate < high:
            return Decimal(candidate.numerator) / Decimal(candidate.denominator)
    return (Decimal(tax) * 100 / Decimal(net)).quantize(_CENT, rounding=ROUND_HALF_UP)


def is_reverse_charge(
    seller_country: str | None,
    buyer_country: str | None,
    buyer_tax_id: str | None,
    buyer_vat_validated: bool,
) -> bool:
    """B2B inside the EU across a border, to a buyer whose VAT id was validated (a flag set by
    an operator; no network lookup): the buyer accounts for the VAT."""
    return (
        buyer_vat_validated
        and bool(buyer_tax_id)
        and seller_country in EU_COUNTRIES
        and buyer_country in EU_COUNTRIES
        and seller_country != buyer_country
    )


def is_outside_eu_supply(seller_country: str | None, buyer_country: str | None) -> bool:
    """A seller in the EU supplying a buyer whose country (alpha-3) is known and outside it:
    no EU VAT is due, and an invoice charging none says why (`OUTSIDE_EU_TEXT`). A buyer
    without a country is not known to be outside the EU."""
    return (
        seller_country in EU_COUNTRIES
        and buyer_country is not None
        and buyer_country not in EU_COUNTRIES
    )


@attrs.frozen(kw_only=True)
class Party:
    """Seller or buyer as printed: name, address lines, country (alpha-3) and tax id."""

    name: str
    address: tuple[str, ...] = ()
    country: str | None = None
    tax_id: str | None = None
    email: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": list(self.address),
            "country": self.country,
            "tax_id": self.tax_id,
            "email": self.email,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Party:
        return cls(
            name=str(raw["name"]),
            address=tuple(str(a) for a in raw["address"]),
            country=raw.get("country"),
            tax_id=raw.get("tax_id"),
            email=raw.get("email"),
        )


@attrs.frozen(kw_only=True)
class InvoiceLine:
    """One line: net amount, tax rate (percent) and tax amount, in the invoice's currency."""

    description: str
    net: int
    tax_rate: Decimal
    tax: int

    @property
    def gross(self) -> int:
        return self.net + self.tax

    def to_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "net": self.net,
            "tax_rate": str(self.tax_rate),
            "tax": self.tax,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> InvoiceLine:
        return cls(
            description=str(raw["description"]),
            net=int(raw["net"]),
            tax_rate=Decimal(str(raw["tax_rate"])),
            tax=int(raw["tax"]),
        )


def _time(raw: str | None) -> datetime | None:
    return None if raw is None else datetime.fromisoformat(raw)


@attrs.frozen(kw_only=True)
class InvoiceContent:
    """Everything printed on an invoice, frozen at issue (later edits of the company or the
    account never change it). Amounts are integers in the minor units of `currency`; for a
    Lightning payment `btc_msat` and `btc_rate` (`currency` per BTC) say what was paid."""

    seller: Party
    buyer: Party
    buyer_npub: str
    issued_at: datetime
    supply_from: datetime | None
    supply_to: datetime | None
    currency: str
    lines: tuple[InvoiceLine, ...]
    payment_id: str
    payment_method: str
    #: account credit applied, in `currency`: a document with `credit_line` shows it as a line
    #: (credit is net value: the line takes its net and the tax it bore off the full value,
    #: so `total` is what was charged); an older one showed the full value and subtracted it
    #: from its total below the lines (`charged`)
    credit_applied: int = 0
    credit_line: bool = False
    btc_msat: int | None = None
    btc_rate: Decimal | None = None
    reverse_charge: bool = False
    #: what a Lightning payer sent beyond this invoice (account credit, not invoiced)
    overpaid: Overpaid | None = None
    #: msat a Lightning payment brought less than its total, completed as paid by an admin
    #: (its shortfall line takes that off); None: paid in full (every older document)
    short_msat: int | None = None
    #: no VAT because the buyer is outside the EU (`OUTSIDE_EU_TEXT` is printed); a document
    #: issued before this was recorded has none and prints as it was issued
    outside_eu: bool = False

    @property
    def net(self) -> int:
        return sum(line.net for line in self.lines)

    @property
    def tax(self) -> int:
        return sum(line.tax for line in self.lines)

    @property
    def total(self) -> int:
        return self.net + self.tax

    @property
    def charged(self) -> int:
        """What the payment itself brought: the total (less the account credit applied, on a
        document that did not put it in a line)."""
        return self.total if self.credit_line else self.total - self.credit_applied

    def to_json(self) -> dict[str, Any]:
        """The stored snapshot; the keys added later (`short_msat`, `outside_eu`) only when
        set, so a document without them is written as it always was."""
        out: dict[str, Any] = {
            "seller": self.seller.to_json(),
            "buyer": self.buyer.to_json(),
            "buyer_npub": self.buyer_npub,
            "issued_at": self.issued_at.isoformat(),
            "supply_from": None if self.supply_from is None else self.supply_from.isoformat(),
            "supply_to": None if self.supply_to is None else self.supply_to.isoformat(),
            "currency": self.currency,
            "lines": [line.to_json() for line in self.lines],
            "payment_id": self.payment_id,
            "payment_method": self.payment_method,
            "credit_applied": self.credit_applied,
            "credit_line": self.credit_line,
            "btc_msat": self.btc_msat,
            "btc_rate": None if self.btc_rate is None else str(self.btc_rate),
            "reverse_charge": self.reverse_charge,
            "overpaid": None if self.overpaid is None else self.overpaid.to_json(),
        }
        if self.short_msat is not None:
            out["short_msat"] = self.short_msat
        if self.outside_eu:
            out["outside_eu"] = True
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> InvoiceContent:
        issued = _time(raw["issued_at"])
        assert issued is not None
        rate = raw.get("btc_rate")
        return cls(
            seller=Party.from_json(raw["seller"]),
            buyer=Party.from_json(raw["buyer"]),
            buyer_npub=str(raw["buyer_npub"]),
            issued_at=issued,
            supply_from=_time(raw.get("supply_from")),
            supply_to=_time(raw.get("supply_to")),
            currency=str(raw["currency"]),
            lines=tuple(InvoiceLine.from_json(line) for line in raw["lines"]),
            payment_id=str(raw["payment_id"]),
            payment_method=str(raw["payment_method"]),
            credit_applied=int(raw.get("credit_applied") or 0),
            credit_line=bool(raw.get("credit_line")),
            btc_msat=None if raw.get("btc_msat") is None else int(raw["btc_msat"]),
            btc_rate=None if rate is None else Decimal(str(rate)),
            reverse_charge=bool(raw.get("reverse_charge")),
            overpaid=Overpaid.from_json(raw.get("overpaid")),
            short_msat=None if raw.get("short_msat") is None else int(raw["short_msat"]),
            outside_eu=bool(raw.get("outside_eu")),
        )


@attrs.frozen(kw_only=True)
class Invoice:
    """An issued invoice: its number, the payment it is for, totals, and the content snapshot."""

    id: int
    company_id: int
    series: str
    seq: int
    number: str
    payment_id: bytes
    user_id: int
    issued_at: datetime
    currency: str
    net: int
    tax: int
    total: int
    content: Any

    @property
    def document(self) -> InvoiceContent:
        return InvoiceContent.from_json(self.content)


@attrs.frozen(kw_only=True)
class CreditNote:
    """A refund or correction of an invoice, in its own series; `amount` is gross, > 0.
    `net` and `tax` (adding up to `amount`) are fixed at issue (`domain.credit_note`); a note
    issued before notes stored them has None in both."""

    id: int
    company_id: int
    series: str
    seq: int
    number: str
    invoice_id: int
    issued_at: datetime
    currency: str
    amount: int
    reason: str
    net: int | None = None
    tax: int | None = None
    #: the issuing admin's request reference: a repeat of it issues no second note (None: none
    #: given, or a refund's note)
    reference: str | None = None


def credit_note_parts(amount: int, invoice: Invoice) -> tuple[int, int] | None:
    """An old credit note's (net, tax), where the invoice alone determines them: a note of
    the whole total takes back the invoice's own net and tax, and on an invoice that charged
    no tax all of a note is net. Notes issued before they stored their split (`net`, `tax`)
    have none for part of a taxed invoice (None): none is made up here."""
    if amount == invoice.total:
        return invoice.net, invoice.tax
    if invoice.tax == 0:
        return amount, 0
    return None


def stored_note_parts(note: CreditNote, invoice: Invoice | None) -> tuple[int, int] | None:
    """The note's (net, tax) as issued; for an old note without them, `credit_note_parts`
    of its invoice (None when the invoice is not given)."""
    if note.net is not None and note.tax is not None:
        return note.net, note.tax
    return None if invoice is None else credit_note_parts(note.amount, invoice)
