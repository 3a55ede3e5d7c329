"""Account credit that bore no VAT: whole on untaxed purchases, VAT-inclusive on taxed ones."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import attrs

from domain.account_credit import CreditParts, CreditSplit, Levy, split_quote
from domain.overpayment import prepayment_split
from domain.tax import tax_on


def split_with_vat_free(
    *,
    parts: CreditParts,
    amount: int,
    levy: Levy,
    to_charged: Callable[[int], int],
    to_balance: Callable[[int], int],
    tax_rate: Decimal | None,
) -> CreditSplit | None:
    """Pay a quote's net `amount` from a balance with a VAT-free part (`parts`) first; None:
    nothing to apply. `tax_rate`: the percent the quote charges (None or 0: untaxed).

    VAT-free credit (money kept as credit that bore no VAT: `CreditParts`) counts:
    - whole towards an untaxed quote (an upgrade, or any quote of a buyer charged no VAT),
      like ordinary credit; it is spent FIRST there, so the credit left is the ordinary
      kind, which is worth as much on a later renewal as on an upgrade;
    - VAT-inclusive towards a taxed one (a renewal), spent AFTER the ordinary credit (which
      is net value and lowers the taxable base, `split_quote`): of what it covers it pays
      the net and the VAT on it, which the quote's invoice declares (`CreditSplit.vat`).
      Paying the rest whole costs `rest + tax_on(rest)` of it (what that rest would cost in
      money, D3); a smaller one is spent whole and split as a prepayment is (net rounded
      down, the VAT the rest, `prepayment_split`), the rest charged outside with the quote's
      own tax and fee (`levy`). Its VAT is never below D3's floor on the net it paid, and
      the customer never gets more net than `vat_free × 100 / (100 + rate)`.
    """
    taxed = tax_rate is not None and tax_rate > 0
    vat_free = min(max(parts.vat_free, 0), parts.total)
    if not vat_free or not taxed or tax_rate is None:
        return _all_whole(parts.total, vat_free, amount, levy, to_charged, to_balance)
    first = split_quote(
        balance=parts.total - vat_free,
        amount=amount,
        levy=levy,
        to_charged=to_charged,
        to_balance=to_balance,
    )
    if first is not None and first.fully_covered:
        return first
    used, worth = (0, 0) if first is None else (first.credit, first.charged_credit)
    rest = amount - worth
    gross_worth = to_charged(vat_free)
    if rest <= 0 or gross_worth <= 0:
        return first
    vat = tax_on(rest, tax_rate)
    if gross_worth >= rest + vat:
        needed = min(_least_worth(rest + vat, to_charged, to_balance), vat_free)
        return CreditSplit(
            credit=used + needed,
            charged_credit=amount,
            amount=0,
            tax=0,
            processing_fee=0,
            vat_free=needed,
            vat_free_net=rest,
            vat=vat,
        )
    net, vat = prepayment_split(gross_worth, tax_rate)
    left = rest - net  # at least 1: a net of `rest` would be worth `rest + vat` at least
    tax, fee = levy(left)
    return CreditSplit(
        credit=used + vat_free,
        charged_credit=worth + net,
        amount=left,
        tax=tax,
        processing_fee=fee,
        vat_free=vat_free,
        vat_free_net=net,
        vat=vat,
    )


def _all_whole(
    balance: int,
    vat_free: int,
    amount: int,
    levy: Levy,
    to_charged: Callable[[int], int],
    to_balance: Callable[[int], int],
) -> CreditSplit | None:
    """Every unit of credit counts whole (an untaxed quote): `split_quote` on the balance,
    the VAT-free part spent first, its net worth its share of the credit's worth."""
    split = split_quote(
        balance=balance, amount=amount, levy=levy, to_charged=to_charged, to_balance=to_balance
    )
    if split is None or not vat_free:
        return split
    used = min(vat_free, split.credit)
    net = min(split.charged_credit, to_charged(used))
    return attrs.evolve(split, vat_free=used, vat_free_net=net)


def _least_worth(
    worth: int, to_charged: Callable[[int], int], to_balance: Callable[[int], int]
) -> int:
    """The least balance units worth at least `worth` charged units (never less than 1)."""
    needed = max(1, to_balance(worth))
    while to_charged(needed) < worth:
        needed += 1
    while needed > 1 and to_charged(needed - 1) >= worth:
        needed -= 1
    return needed
