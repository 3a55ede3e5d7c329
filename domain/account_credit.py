"""An account's credit balance: append-only ledger entries per currency, never below zero."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from enum import IntEnum
from typing import Any

import attrs

from domain.errors import DomainError, InvalidInput
from domain.money import Currency

#: `metadata` key of a payment part of which was paid from the account balance.
CREDIT_APPLIED_KEY = "credit_applied"
#: longest reference and note a ledger entry keeps (the SQL column widths).
MAX_REFERENCE = 100
MAX_NOTE = 255
#: the largest single entry (|amount|) accepted: far above any real balance, inside BIGINT.
MAX_ENTRY = 10**15


class CreditReason(IntEnum):
    """Why an entry moved the balance; the codes are stored, the names are on the wire."""

    OVERPAYMENT = 0  # a payment for a service that can no longer be delivered
    DOWNGRADE_CREDIT = 1  # reserved: downgrades are refused today (D8)
    REFUND_TO_CREDIT = 2  # an admin refund of unused time, kept as credit
    ADMIN_ADJUSTMENT = 3  # an admin's correction, either sign, with a note
    SPENT = 4  # applied to a renewal or upgrade quote
    RELEASED = 5  # a quote that used credit ended unpaid or bought nothing: it comes back

    @property
    def wire_name(self) -> str:
        return self.name.lower()

    @classmethod
    def from_wire(cls, text: str) -> CreditReason:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise InvalidInput(f"unknown credit reason: {text}") from None


class InsufficientCredit(DomainError):
    """The entry would take the balance below zero."""

    kind = "unprocessable"


@attrs.frozen(kw_only=True)
class CreditEntry:
    """One movement of a user's balance in one currency (`amount` signed, smallest units).

    `reference` ties the entry to what caused it (a payment id in hex, a VM id); the same
    (user, currency, reason, reference) is booked at most once, which makes replays harmless.
    `admin_id` is the admin who made an adjustment or refund (None for the system).
    """

    id: int
    user_id: int
    currency: str
    amount: int
    reason: CreditReason
    reference: str | None
    note: str | None
    created: datetime
    admin_id: int | None = None
    payment_id: bytes | None = None  # the quote a SPENT entry paid (its release is found by it)
    #: the part of `amount` (same sign, never larger) that is VAT-free credit: money that
    #: bore no VAT when it was paid (`CreditParts`); 0 for ordinary credit
    vat_free: int = 0

    def to_json(self) -> dict[str, Any]:
        """The wire form; `vat_free` only when the entry moved VAT-free credit."""
        out: dict[str, Any] = {
            "id": self.id,
            "currency": self.currency,
            "amount": self.amount,
            "reason": self.reason.wire_name,
            "reference": self.reference,
            "note": self.note,
            "created": self.created.isoformat(),
        }
        if self.vat_free:
            out["vat_free"] = self.vat_free
        return out


def checked_entry(
    *,
    user_id: int,
    currency: str,
    amount: int,
    reason: CreditReason,
    reference: str | None,
    note: str | None,
    created: datetime,
    admin_id: int | None = None,
    payment_id: bytes | None = None,
    vat_free: int = 0,
) -> CreditEntry:
    """A new entry (id 0) after checking its shape: a known currency, a non-zero integer
    amount within bounds, the sign its reason implies, bounded texts, a VAT-free part of
    the amount's sign and at most its size."""
    code = Currency.parse(currency).value
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInput("amount must be an integer in smallest units")
    if amount == 0 or abs(amount) > MAX_ENTRY:
        raise InvalidInput(f"amount must be non-zero and at most {MAX_ENTRY} in size")
    if reason is CreditReason.SPENT and amount > 0:
        raise InvalidInput("spending credit must be a negative amount")
    if reason not in (CreditReason.SPENT, CreditReason.ADMIN_ADJUSTMENT) and amount < 0:
        raise InvalidInput(f"a {reason.wire_name} entry must be a positive amount")
    if reference is not None and not 0 < len(reference) <= MAX_REFERENCE:
        raise InvalidInput(f"reference must be 1..{MAX_REFERENCE} characters")
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"note must be at most {MAX_NOTE} characters")
    if isinstance(vat_free, bool) or not isinstance(vat_free, int):
        raise InvalidInput("the VAT-free part must be an integer in smallest units")
    if vat_free * amount < 0 or abs(vat_free) > abs(amount):
        raise InvalidInput("the VAT-free part must have the amount's sign and be at most it")
    return CreditEntry(
        id=0,
        user_id=user_id,
        currency=code,
        amount=amount,
        reason=reason,
        reference=reference,
        note=note,
        created=created,
        admin_id=admin_id,
        payment_id=payment_id,
        vat_free=vat_free,
    )


@attrs.frozen
class CreditParts:
    """A balance (`total`) and the part of it that is VAT-free credit (`vat_free`).

    VAT-free credit is money kept as credit that bore no VAT when it was paid (an upgrade
    paid but not applied: upgrades charge none). It counts whole towards an untaxed
    purchase (an upgrade) and as VAT-inclusive towards a taxed one (a renewal: it pays the
    net and the VAT on it, which that invoice declares). The rest (`ordinary`) is net value,
    as all credit was before: money whose VAT was declared, refunds, adjustments."""

    total: int
    vat_free: int = 0

    @property
    def ordinary(self) -> int:
        return self.total - self.vat_free


def parts_after(parts: CreditParts, entry: CreditEntry) -> CreditParts:
    """The balance once `entry` is booked: its `vat_free` part moves the VAT-free credit,
    the rest the ordinary credit; `InsufficientCredit` if either would go below zero (a
    debit never takes one kind of credit for the other)."""
    after = CreditParts(parts.total + entry.amount, parts.vat_free + entry.vat_free)
    if after.total < 0:
        raise InsufficientCredit(
            f"Not enough credit: the balance is {parts.total} {entry.currency} (smallest units)"
        )
    if after.vat_free < 0 or after.ordinary < 0:
        raise InsufficientCredit(
            f"Not enough credit of that kind: the balance is {parts.total} {entry.currency} "
            f"(smallest units), {parts.vat_free} of it VAT-free"
        )
    return after


def balance_after(balance: int, entry: CreditEntry) -> int:
    """The balance once `entry` (no VAT-free part) is booked on an ordinary balance;
    `InsufficientCredit` if it would go below zero."""
    return parts_after(CreditParts(balance), entry).total


def debit_split(parts: CreditParts, amount: int) -> int:
    """The VAT-free part of a debit of `amount` (> 0) that takes ordinary credit first and
    VAT-free credit only for what the ordinary does not cover (an admin's debit): the
    customer keeps the credit worth more (ordinary credit is net value everywhere)."""
    return -min(parts.vat_free, max(0, amount - parts.ordinary))


def credit_applied(meta: dict[str, Any]) -> tuple[int, str] | None:
    """The (amount, currency) of balance a payment's metadata says was applied, if any."""
    value = meta.get(CREDIT_APPLIED_KEY)
    if not isinstance(value, dict):
        return None
    amount, currency = value.get("amount"), value.get("currency")
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        return None
    return (amount, currency) if isinstance(currency, str) else None


def applied_json(
    amount: int,
    currency: str,
    charged: int,
    *,
    vat_free: int = 0,
    vat_free_net: int = 0,
    vat: int = 0,
) -> dict[str, Any]:
    """The `credit_applied` metadata value the invoice renders as its credit line; `charged`
    is its net worth in the payment's own currency (msat for Lightning). With VAT-free
    credit in it (`vat_free`, balance units, part of `amount`): `vat_free_net`, the net
    worth of that part (in `charged`), and `vat`, the VAT it paid (charged units), which
    the payment's invoice declares (`domain.vat_free_credit`)."""
    out: dict[str, Any] = {"amount": amount, "currency": currency, "charged": charged}
    if vat_free:
        out.update({VAT_FREE_KEY: vat_free, VAT_FREE_NET_KEY: vat_free_net, VAT_KEY: vat})
    return out


#: `credit_applied` keys of the VAT-free credit in it (`applied_json`)
VAT_FREE_KEY = "vat_free"
VAT_FREE_NET_KEY = "vat_free_net"
VAT_KEY = "vat"


@attrs.frozen
class VatFreeApplied:
    """The VAT-free part of the credit a payment applied: `amount` (balance units), its net
    worth `net` and the VAT it paid `vat` (charged units); all 0: none."""

    amount: int = 0
    net: int = 0
    vat: int = 0


def vat_free_applied(meta: dict[str, Any]) -> VatFreeApplied:
    """The VAT-free part of the credit a payment's metadata says was applied."""
    value = meta.get(CREDIT_APPLIED_KEY)
    if not isinstance(value, dict):
        return VatFreeApplied()
    got = [value.get(key, 0) for key in (VAT_FREE_KEY, VAT_FREE_NET_KEY, VAT_KEY)]
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 0 for n in got):
        return VatFreeApplied()
    return VatFreeApplied(*got)


@attrs.frozen(kw_only=True)
class CreditSplit:
    """How a quote is paid: `credit` from the balance (its currency's smallest units),
    worth `charged_credit` in the quote's charged units; the rest is charged outside."""

    credit: int
    charged_credit: int
    amount: int
    tax: int
    processing_fee: int
    #: the VAT-free part of `credit`, its net worth (part of `charged_credit`) and the VAT it
    #: pays (charged units, not in `tax`: `domain.vat_free_credit`)
    vat_free: int = 0
    vat_free_net: int = 0
    vat: int = 0

    @property
    def fully_covered(self) -> bool:
        return self.amount == 0 and self.tax == 0 and self.processing_fee == 0


#: the tax and processing fee a quote charges on a net amount of its charged units (D3, D4)
Levy = Callable[[int], tuple[int, int]]


def no_levy(amount: int) -> tuple[int, int]:
    """No tax and no fee on any amount: an upgrade's charge (§8.2)."""
    return 0, 0


def split_quote(
    *,
    balance: int,
    amount: int,
    levy: Levy,
    to_charged: Callable[[int], int],
    to_balance: Callable[[int], int],
) -> CreditSplit | None:
    """Pay a quote's net `amount` from `balance` first (None: nothing to apply).

    Credit is net value (a refund of unused time carries no tax, R10.4): it reduces the
    taxable base, so the rest charged outside bears the quote's own tax and fee rule on
    the rest alone (`levy`: floor(rest × rate) by D3, the D4 gross-up with one base fee),
    not a share of the whole quote's. `to_charged` converts balance units into the quote's
    charged units and `to_balance` back (identity when both are one currency; the quote's
    own BTC rate for a Lightning quote of a fiat balance). A balance worth the whole amount
    pays all of it with the least credit that is worth it; a smaller one is used whole.
    """
    if balance <= 0 or amount <= 0:
        return None
    if to_charged(balance) >= amount:
        needed = max(1, to_balance(amount))
        while to_charged(needed) < amount:
            needed += 1
        needed = min(needed, balance)
        return CreditSplit(credit=needed, charged_credit=amount, amount=0, tax=0, processing_fee=0)
    worth = to_charged(balance)
    if worth <= 0:
        return None
    rest = amount - worth
    tax, fee = levy(rest)
    return CreditSplit(
        credit=balance, charged_credit=worth, amount=rest, tax=tax, processing_fee=fee
    )


def _share_up(whole: int, part: int, of: int) -> int:
    """ceil(whole × part / of): a share of `whole` never undercounted (0 when `of` ≤ 0)."""
    return -(-whole * part // of) if of > 0 and part > 0 else 0


def unpaid_charged(meta: dict[str, Any], unpaid: int, unpaid_vat_free: int = 0) -> int:
    """The charged-units worth of `unpaid` of the credit a payment's metadata says it applied
    (its balance units; `unpaid_vat_free` of them VAT-free), rounded up: what the payer did
    not pay is never undercounted. Each kind is valued at its own worth in the quote (a
    VAT-free unit paid less net than an ordinary one on a taxed quote)."""
    applied, charged = credit_applied(meta), charged_credit(meta)
    if unpaid <= 0 or applied is None:
        return 0
    vat_free = vat_free_applied(meta)
    ordinary = _share_up(
        charged - vat_free.net, unpaid - unpaid_vat_free, applied[0] - vat_free.amount
    )
    return min(charged, ordinary + _share_up(vat_free.net, unpaid_vat_free, vat_free.amount))


#: the part of `credit_applied` a late payment could not take back (its `amount`, `currency`)
CREDIT_UNPAID_KEY = "credit_unpaid"


def credit_taken(meta: dict[str, Any], unpaid: int, unpaid_vat_free: int = 0) -> dict[str, Any]:
    """The metadata of a payment whose applied credit was `unpaid` short when it was paid
    (`unpaid_vat_free` of it VAT-free): `credit_applied` says what was really taken (the
    invoice's credit line), the shortfall kept as `credit_unpaid`. The VAT-free credit
    taken keeps its share of the net it paid (rounded down) and of its VAT (rounded up)."""
    applied = credit_applied(meta)
    if unpaid <= 0 or applied is None:
        return meta
    amount, currency = applied
    out = {k: v for k, v in meta.items() if k != CREDIT_APPLIED_KEY}
    if amount > unpaid:
        charged = charged_credit(meta) - unpaid_charged(meta, unpaid, unpaid_vat_free)
        vat_free = vat_free_applied(meta)
        kept = vat_free.amount - unpaid_vat_free
        out[CREDIT_APPLIED_KEY] = applied_json(
            amount - unpaid,
            currency,
            charged,
            vat_free=kept,
            vat_free_net=vat_free.net - _share_up(vat_free.net, unpaid_vat_free, vat_free.amount),
            vat=_share_up(vat_free.vat, kept, vat_free.amount),
        )
    out[CREDIT_UNPAID_KEY] = {"amount": min(unpaid, amount), "currency": currency}
    if unpaid_vat_free:
        out[CREDIT_UNPAID_KEY][VAT_FREE_KEY] = unpaid_vat_free
    return out


def charged_credit(meta: dict[str, Any]) -> int:
    """The charged-units worth of the credit a payment's metadata says was applied (0: none)."""
    value = meta.get(CREDIT_APPLIED_KEY)
    worth = value.get("charged") if isinstance(value, dict) else None
    return worth if isinstance(worth, int) and not isinstance(worth, bool) and worth > 0 else 0
