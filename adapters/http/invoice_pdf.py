"""The PDF of an issued invoice, drawn with fpdf2 from the snapshot taken at issue."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.http.invoice_html import format_amount
from adapters.http.invoice_text import payment_notes, totals
from domain.invoice import OUTSIDE_EU_TEXT, REVERSE_CHARGE_TEXT, Invoice, InvoiceContent, Party

if TYPE_CHECKING:
    from fpdf.enums import XPos, YPos

_LINE = 5.0
_COLUMNS = (
    ("Description", 80.0, "L"),
    ("Net", 28.0, "R"),
    ("Tax rate", 20.0, "R"),
    ("Tax", 26.0, "R"),
    ("Gross", 28.0, "R"),
)


#: where a Unicode TrueType font (DejaVu Sans, Debian's `fonts-dejavu-core`) is looked for
FONT_DIRS: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/dejavu"),
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/local/share/fonts/dejavu"),
)
_REGULAR, _BOLD = "DejaVuSans.ttf", "DejaVuSans-Bold.ttf"
#: a font for the Chinese, Japanese and Korean scripts DejaVu Sans lacks (Debian's
#: `fonts-wqy-microhei`), drawn where DejaVu has no glyph
CJK_FONT_FILES: tuple[Path, ...] = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),
    Path("/usr/share/fonts/wqy-microhei/wqy-microhei.ttc"),
)
#: code point ranges of those scripts: radicals, kana, CJK symbols and ideographs, Hangul,
#: compatibility ideographs, full-width forms, the supplementary ideograph planes
_CJK_RANGES = (
    (0x2E80, 0x9FFF),
    (0xAC00, 0xD7AF),
    (0xF900, 0xFAFF),
    (0xFF00, 0xFFEF),
    (0x20000, 0x3FFFF),
)


def unicode_font_dir(dirs: tuple[Path, ...] = FONT_DIRS) -> Path | None:
    """The first folder holding DejaVu Sans regular and bold, or None."""
    for folder in dirs:
        if (folder / _REGULAR).is_file() and (folder / _BOLD).is_file():
            return folder
    return None


def cjk_font_file(files: tuple[Path, ...] = CJK_FONT_FILES) -> Path | None:
    """The first of `files` that exists, or None."""
    return next((f for f in files if f.is_file()), None)


def _needs_cjk(text: str) -> bool:
    return any(low <= ord(ch) <= high for ch in text for low, high in _CJK_RANGES)


def _latin1(text: str) -> str:
    """The core PDF fonts speak Latin-1: anything else prints as `?` instead of failing."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _day(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d")


class _Page:
    """A thin writer over one FPDF document: text lines, a party block, table rows."""

    def __init__(self, font_dir: Path | None, cjk_font: Path | None = None) -> None:
        # fpdf2 (with fontTools) costs ~0.3 s to import: the first invoice drawn pays it, not
        # every `lnvps` process start
        from fpdf import FPDF
        from fpdf.enums import XPos, YPos

        self.x_pos: type[XPos] = XPos
        self.y_pos: type[YPos] = YPos
        self.pdf = FPDF(format="A4")
        self.pdf.set_auto_page_break(auto=True, margin=15)
        self.family = "Helvetica"
        self.text = _latin1
        self._cjk_font = cjk_font
        if font_dir is not None:  # names and addresses in any script the font covers
            self.pdf.add_font("DejaVu", "", str(font_dir / _REGULAR))
            self.pdf.add_font("DejaVu", "B", str(font_dir / _BOLD))
            self.family, self.text = "DejaVu", self._unicode
        self.pdf.add_page()
        self.pdf.set_title("Invoice")

    def _unicode(self, text: str) -> str:
        """`text` as is; the CJK font becomes the fallback for DejaVu's missing glyphs the
        first time a text needs it (loading that font costs ~0.2 s: only when used)."""
        if self._cjk_font is not None and _needs_cjk(text):
            self.pdf.add_font("CJK", "", str(self._cjk_font))
            self.pdf.set_fallback_fonts(["CJK"], exact_match=False)
            self._cjk_font = None
        return text

    def font(self, size: float, bold: bool = False) -> None:
        self.pdf.set_font(self.family, "B" if bold else "", size)

    def line(self, text: str, width: float = 0, align: str = "L") -> None:
        self.pdf.cell(
            width,
            _LINE,
            self.text(text),
            align=align,
            new_x=self.x_pos.LMARGIN,
            new_y=self.y_pos.NEXT,
        )

    def wrapped(self, text: str) -> None:
        self.pdf.multi_cell(
            0, _LINE, self.text(text), new_x=self.x_pos.LMARGIN, new_y=self.y_pos.NEXT
        )

    def party(self, title: str, party: Party, x: float, extra: tuple[str, ...] = ()) -> float:
        """Print a party block at column `x` from the current top; return where it ended."""
        top = self.pdf.get_y()
        rows = [
            party.name or "-",
            *party.address,
            party.country or "",
            f"VAT/Tax ID: {party.tax_id}" if party.tax_id else "",
            *extra,
        ]
        self.pdf.set_xy(x, top)
        self.font(10, bold=True)
        self.pdf.cell(90, _LINE, self.text(title), new_x=self.x_pos.LEFT, new_y=self.y_pos.NEXT)
        self.font(9)
        for row in (r for r in rows if r):
            self.pdf.multi_cell(
                90, _LINE, self.text(row), new_x=self.x_pos.LEFT, new_y=self.y_pos.NEXT
            )
        end = self.pdf.get_y()
        self.pdf.set_y(top)
        return end

    def row(self, cells: tuple[str, ...], bold: bool = False) -> None:
        self.font(9, bold)
        for text, (_, width, align) in zip(cells, _COLUMNS, strict=True):
            self.pdf.cell(width, 6, self.text(text), border="B", align=align)
        self.pdf.ln(6)


def _rate(rate: Decimal) -> str:
    return f"{rate.normalize():f} %"


def render_invoice_pdf(
    invoice: Invoice,
    font_dirs: tuple[Path, ...] = FONT_DIRS,
    cjk_files: tuple[Path, ...] = CJK_FONT_FILES,
) -> bytes:
    """A one-page A4 invoice with every field an EU invoice needs, from the issue snapshot.

    Drawn in DejaVu Sans when one of `font_dirs` holds it (names and addresses in Latin,
    Greek or Cyrillic script print as written; Chinese, Japanese and Korean ones too when
    one of `cjk_files` exists), else in the core Helvetica (Latin-1 only; other characters
    print as `?`)."""
    doc: InvoiceContent = invoice.document
    cur = doc.currency
    page = _Page(unicode_font_dir(font_dirs), cjk_font_file(cjk_files))
    page.font(18, bold=True)
    page.line("Invoice")
    page.font(10)
    page.line(f"Invoice number: {invoice.number}")
    page.line(f"Date of issue: {_day(doc.issued_at)}")
    page.line(
        f"Date of supply: {_day(doc.supply_from)} to {_day(doc.supply_to)}"
        if doc.supply_from
        else f"Date of supply: {_day(doc.issued_at)}"
    )
    page.wrapped(f"Payment: {doc.payment_id} ({doc.payment_method}), paid")
    page.pdf.ln(4)
    left = page.party(
        "Seller", doc.seller, page.pdf.l_margin, (doc.seller.email,) if doc.seller.email else ()
    )
    right = page.party("Bill to", doc.buyer, 110, (doc.buyer_npub[:32], doc.buyer_npub[32:]))
    page.pdf.set_y(max(left, right) + 6)
    page.row(tuple(name for name, _, _ in _COLUMNS), bold=True)
    for item in doc.lines:
        page.row(
            (
                item.description[:48],
                format_amount(item.net, cur),
                _rate(item.tax_rate),
                format_amount(item.tax, cur),
                format_amount(item.gross, cur),
            )
        )
    page.pdf.ln(3)
    page.font(10)
    for label, amount in totals(doc):
        sign = "-" if amount < 0 else ""
        page.font(10, bold=label in ("Total", "Amount charged"))
        page.pdf.cell(130, _LINE, label, align="R")
        page.line(sign + format_amount(abs(amount), cur), width=52, align="R")
    page.pdf.ln(4)
    page.font(9)
    for note in payment_notes(doc):
        page.wrapped(note)
    if doc.reverse_charge:
        page.font(9, bold=True)
        page.wrapped(REVERSE_CHARGE_TEXT)
    if doc.outside_eu:
        page.font(9, bold=True)
        page.wrapped(OUTSIDE_EU_TEXT)
    return bytes(page.pdf.output())
