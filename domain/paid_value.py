"""What a payment carried for the time it bought, in the currency a refund is valued in."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from domain.account_credit import charged_credit
from domain.credit import payment_meta, row_rates
from domain.enums import SubscriptionPaymentType
from domain.errors import DomainError
from domain.kept_invoice import kept_credit
from domain.model import SubscriptionPayment
from domain.money import Currency
from domain.price_basis import CREDIT_KEY, PRICE_KEY, PriceBasis, exact_value
from domain.shortfall import short_received_msat


def _rates(
    payment: SubscriptionPayment, charged: Currency, target: Currency
) -> dict[Currency, Decimal]:
    """The BTC rates the payment was quoted at (`row_rates`). A row from before they were
    stored has its `rate` column for its list currency only: a card's is what it charged,
    a Lightning row naming none is taken to be listed in `target` (the subscription's
    currency); never one rate for two fiats, which would convert them at par."""
    return row_rates(payment, assumed=(charged if charged.is_fiat else target,))


def _fraction(raw: object) -> Fraction | None:
    """A stored exact count (`"200"`, `"1234/5"`, an int), None when it is not one."""
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        return None
    try:
        return Fraction(raw)
    except (ValueError, ZeroDivisionError):
        return None


def _credited_rest(meta: dict[str, object]) -> tuple[Fraction, int]:
    """How much of a payment credited by value bought its time, as the share of its value
    (`Credit.to_json` as completion stored it): 1, or for a capped payment the intervals it
    was given over those its value bought (`cap / intervals`, exact: the rest, booked as
    account credit, `Credit.uncounted`, bought none), 0 past the calendar; and, when that
    share cannot be read, the `uncounted` units to take off instead, one more than stored
    (it was floored: the rest was less than one unit more), so what is counted is never
    more than what bought time."""
    credit = meta.get(CREDIT_KEY)
    if not isinstance(credit, dict) or "capped_at_intervals" not in credit:
        return Fraction(1), 0
    if credit.get("past_calendar") is True:
        return Fraction(0), 0
    cap, bought = _fraction(credit["capped_at_intervals"]), _fraction(credit.get("intervals"))
    if cap is not None and bought is not None and 0 <= cap < bought:
        return cap / bought, 0
    uncounted = credit.get("uncounted")
    rest = uncounted if isinstance(uncounted, int) and not isinstance(uncounted, bool) else 0
    return Fraction(1), rest + 1 if rest > 0 else 0


def paid_for_time(payment: SubscriptionPayment, target: Currency) -> Fraction | None:
    """The net value `payment` carried, exactly, in smallest units of `target`: its amount
    (tax and processing fee excluded) plus the account credit it applied (its worth in the
    payment's units), converted at the payment's own rates, less a Purchase's setup fees as
    its quote recorded them (setup is not time). None when it cannot be known: an unknown
    currency, or a rate the conversion needs that the payment did not record.

    A short Lightning settlement an admin completed as paid, the rest waived
    (`short_received_msat`), carried what arrived, not its amount: the net of what arrived
    (`kept_credit`: less the fee and the VAT in it, as its invoice states it), so a refund
    of its time never turns the waived shortfall into credit or money.

    A payment capped at completion (by value worth more intervals than it could buy, or its
    end past the calendar) had the rest booked as account credit (`Credit.uncounted`,
    `credit_overpayment.CAPPED_SUFFIX`): only the share that bought time counts
    (`_credited_rest`), so a refund of its time never pays back the credited rest again
    (review r23)."""
    meta = payment_meta(payment)
    try:
        currency = Currency.parse(payment.currency)
    except DomainError:
        return None
    setup: tuple[tuple[Currency, int], ...] = ()
    if payment.payment_type is SubscriptionPaymentType.PURCHASE:
        basis = PriceBasis.from_json(meta.get(PRICE_KEY))
        setup = () if basis is None else basis.setup
    rates = _rates(payment, currency, target)
    short = short_received_msat(payment)
    amount = payment.amount if short is None else kept_credit(payment, "BTC", None, short)
    share, rest = _credited_rest(meta)
    carried = amount + charged_credit(meta) - rest
    whole = exact_value(((currency, carried),), target, rates)
    fees = exact_value(setup, target, rates)
    if whole is None or fees is None:
        return None
    return max(Fraction(0), whole - fees) * share
