"""How much time a completed Purchase or Renewal buys: calendar or by value (D6, D23)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from typing import Any

import attrs

from domain.account_credit import charged_credit
from domain.enums import SubscriptionPaymentType
from domain.errors import DomainError, InvalidInterval
from domain.intervals import MAX_INTERVALS, renewal_base, require_utc, whole_seconds
from domain.model import Subscription, SubscriptionPayment
from domain.money import Currency
from domain.price_basis import (
    PRICE_KEY,
    RATES_KEY,
    PriceBasis,
    exact_value,
    intervals_bought,
    rates_from_json,
)
from domain.subscription import INTERVALS_KEY, payment_interval_count
from domain.upgrade_prices import QUOTED_PRICES_KEY, UpgradePrices
from domain.value_grid import extend_by

#: a stale payment credited by value never buys more than this many intervals at once (a
#: price cut to nearly nothing must not push an expiry past the calendar); what it received
#: beyond them is booked as account credit (`Credit.uncounted`) and the operator is told.
MAX_CREDIT_INTERVALS = 1200
#: a pay-what-you-want (LNURL) payment never buys more than D6's 120 intervals: its callback
#: refuses an amount worth more, and at completion (a price cut since its invoice) the time is
#: capped there too, the rest booked as account credit
MAX_BY_AMOUNT_INTERVALS = MAX_INTERVALS


#: what changed for a late payment whose released credit was spent before it came
UNPAID_CREDIT_CHANGE = "part of the credit it applied was released and spent before it"


class CreditMode(Enum):
    """How the time was counted."""

    CALENDAR = "calendar"  # N intervals quoted at the price still in force: N calendar intervals
    BY_VALUE = "by_value"  # price changed, unknown, or pay-what-you-want: what the money buys
    UNVALUED = "unvalued"  # the money cannot be valued at the current price: nothing added
    UNPRICED = "unpriced"  # the current price cannot be computed: what was quoted
    #: what was paid for cannot be given (a deleted VM that cannot come back, a late order or
    #: an upgrade its host has no room for): no time, the value becomes account credit
    UNRESTORABLE = "unrestorable"


@attrs.frozen(kw_only=True)
class Credit:
    """The new expiry a payment gives, the seconds really added, and why.

    `changes` lists what changed between the quote and completion (stale quote, D23).
    """

    mode: CreditMode
    base: datetime
    new_expiry: datetime
    intervals: Fraction | None = None
    changes: tuple[str, ...] = ()
    capped: bool = False
    #: the intervals a capped payment was capped at (`MAX_CREDIT_INTERVALS`, or
    #: `MAX_BY_AMOUNT_INTERVALS` for a pay-what-you-want one)
    cap: int = MAX_CREDIT_INTERVALS
    #: what a capped payment received beyond the time it was given, in smallest units of the
    #: payment's currency, net of tax, floored: booked as account credit at completion
    uncounted: int = 0
    #: the account credit booked for `uncounted`, as text (`EUR 8.50`); "" when none could be
    rest_credited: str = ""
    #: why an UNRESTORABLE payment bought nothing, in plain words for its payer, where the
    #: default for its kind does not say it (not stored)
    payer_note: str = ""
    #: the account credit an UNRESTORABLE payment had applied, given back in its own
    #: currency apart from its value (another one than the value's), e.g. `EUR 1.00`, for
    #: the notices; "" when none was (not stored)
    given_back: str = ""
    #: the time paid for would end past the calendar (year 9999): none was added, and all
    #: the payment received is `uncounted` (a capped payment with `cap` 0)
    past_calendar: bool = False
    #: whether an UNRESTORABLE payment's value was booked as account credit: False when it
    #: could not be (no rate to value it) or must not be (a credit note took part of its
    #: invoice back first), so its notices say no credit was added (not stored)
    value_credited: bool = True

    @property
    def seconds(self) -> int:
        return whole_seconds(self.new_expiry - self.base)

    @property
    def needs_operator(self) -> bool:
        """A stale quote was paid, or the payment could not be valued: tell the admins."""
        return (
            bool(self.changes)
            or self.capped
            or self.mode
            in (
                CreditMode.UNVALUED,
                CreditMode.UNPRICED,
                CreditMode.UNRESTORABLE,
            )
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode.value, "seconds": self.seconds}
        if self.intervals is not None:
            out["intervals"] = str(self.intervals)
        if self.changes:
            out["changes"] = list(self.changes)
        if self.capped:
            out["capped_at_intervals"] = self.cap
        if self.past_calendar:
            out["past_calendar"] = True
        if self.uncounted:
            out["uncounted"] = self.uncounted
        if self.rest_credited:
            out["rest_credited"] = self.rest_credited
        return out


def value_anchor(subscription: Subscription) -> datetime:
    """The anchor of the grid time bought by value is measured on (`value_grid`): when the
    subscription was created. It never moves as the expiry does (that is what makes split
    payments add up), every quote and completion of the subscription knows it, and its
    first interval ends near a grid edge, so a whole interval's worth paid at an expiry no
    clamping moved buys the calendar interval a renewal would."""
    return subscription.created


def payment_meta(payment: SubscriptionPayment) -> dict[str, Any]:
    """The payment's `metadata` as a dict ({} when absent or not a JSON object)."""
    return metadata_dict(payment.metadata)


def listed_rate(payment: SubscriptionPayment, listed: str) -> Decimal | None:
    """The BTC rate of fiat currency `listed` a payment was quoted at (`row_rates`), to
    show or count its msat in that currency; None for a currency that is not fiat or that
    the quote has no rate for (its `rate` column of 1 is BTC passing through). A row from
    before quotes stored their rates has its `rate` column as the rate of its list
    currency only: when its stored price names that currency, never as another's; when it
    names none (adopted, reference era), `listed` is taken to be it (an invoice or report
    figure; credit is booked at stored rates only, `quote_btc_rate`)."""
    try:
        currency = Currency.parse(listed)
    except DomainError:
        return None
    if not currency.is_fiat:
        return None
    rate = row_rates(payment, assumed=(currency,)).get(currency)
    return None if rate is None or rate <= 1 else rate


def row_rates(
    payment: SubscriptionPayment, assumed: Iterable[Currency] = ()
) -> dict[Currency, Decimal]:
    """The BTC rates `payment` was quoted at: the ones its quote stored (`RATES_KEY`).

    A row from before quotes stored them has one: its `rate` column, the BTC rate of its
    list currency (R1.20; 1 for a passthrough or a BTC price, no rate at all), and of no
    other. Its list currency is the single fiat its own stored price names (`PRICE_KEY`,
    or an upgrade's quoted prices); a row that names none (adopted, reference era) is
    taken to be listed in the single fiat of `assumed`, the caller's best knowledge (the
    price's list currency now); otherwise nothing. Read as another currency's rate the
    column converts at a wrong rate (a EUR-listed row's EUR rate valuing GBP, or one rate
    given to two fiats, which converts them at par): the caller gets no rate for it and
    values nothing, and says so."""
    meta = payment_meta(payment)
    stored = rates_from_json(meta.get(RATES_KEY))
    if stored:
        return stored
    rate = payment.rate
    if not (isinstance(rate, Decimal) and rate.is_finite() and rate > 1):
        return {}
    named = _named_fiat(meta)
    if named is None and not _names_a_price(meta):
        named = _single_fiat(assumed)
    return {} if named is None else {named: rate}


def _names_a_price(meta: dict[str, Any]) -> bool:
    return PRICE_KEY in meta or QUOTED_PRICES_KEY in meta


def _named_fiat(meta: dict[str, Any]) -> Currency | None:
    """The single fiat currency the payment's own stored price is listed in (its basis's
    items and setup fees, or an upgrade's new price, the one its `rate` is for); None when
    it stored none, or more than one fiat."""
    basis = PriceBasis.from_json(meta.get(PRICE_KEY))
    if basis is not None:
        return _single_fiat(c for c, _ in (*basis.recurring, *basis.setup))
    prices = UpgradePrices.from_json(meta.get(QUOTED_PRICES_KEY))
    if prices is not None and prices.new.currency.is_fiat:
        return prices.new.currency
    return None


def _single_fiat(currencies: Iterable[Currency]) -> Currency | None:
    fiat = {c for c in currencies if c.is_fiat}
    return fiat.pop() if len(fiat) == 1 else None


def metadata_dict(metadata: Any) -> dict[str, Any]:
    """A payment `metadata` value as a dict ({} when absent or not a JSON object)."""
    meta: Any = metadata
    if isinstance(meta, str | bytes | bytearray):
        try:
            meta = json.loads(meta)
        except ValueError:
            return {}
    return dict(meta) if isinstance(meta, dict) else {}


def is_by_amount(payment: SubscriptionPayment) -> bool:
    """A pay-what-you-want (LNURL) payment: `{"intervals": null}`; its time is always by value."""
    meta = payment_meta(payment)
    return INTERVALS_KEY in meta and meta[INTERVALS_KEY] is None


def _rates(payment: SubscriptionPayment, current: PriceBasis) -> dict[Currency, Decimal]:
    """The quote's own BTC rates (`row_rates`); a row from before they were stored, its
    `rate` column as the rate of its list currency only: the one its stored basis names,
    else its (single) fiat list currency now. A basis it stored in another currency than
    the price's now leaves that price without a rate: the payment is not valued (UNVALUED,
    the operator told), never valued at another currency's rate."""
    return row_rates(payment, assumed=(c for c, _ in (*current.recurring, *current.setup)))


def _unpriced(
    payment: SubscriptionPayment,
    subscription: Subscription,
    quoted: PriceBasis | None,
    count: int | None,
    base: datetime,
) -> datetime:
    """Without a current price, credit what was quoted: N calendar intervals when the count
    is known, else the quoted seconds (the reference's rule), else one interval."""
    if count is not None and (quoted is not None or payment.time_value is None):
        interval = quoted.interval if quoted is not None else subscription.interval
        return interval.add_to(base, count)
    if payment.time_value is not None and payment.time_value >= 0:
        return base + timedelta(seconds=payment.time_value)
    return subscription.interval.add_to(base)


def credit_payment(
    payment: SubscriptionPayment,
    subscription: Subscription,
    current: PriceBasis | None,
    now: datetime,
    *,
    unpaid_credit: int = 0,
) -> Credit:
    """What completing `payment` at `now` adds to `subscription` (`_time_bought`, D23); a
    payment whose time would end past the calendar (year 9999) is booked as account credit
    instead (`_past_calendar`): the money came, so it must be booked, never raise and be
    retried for ever (review r18)."""
    now = require_utc(now)
    try:
        return _time_bought(payment, subscription, current, now, unpaid_credit)
    except InvalidInterval:
        return _past_calendar(payment, subscription, now, unpaid_credit)


def _past_calendar(
    payment: SubscriptionPayment, subscription: Subscription, now: datetime, unpaid_credit: int
) -> Credit:
    """No time (the end would fall past the calendar), and all the payment received, net of
    tax, plus the account credit it applied and that was paid (`Credit.uncounted`, in its
    own currency) for the booking to credit, as a capped payment's rest is."""
    base = renewal_base(subscription.expires, now)
    received = payment.amount + charged_credit(payment_meta(payment)) - unpaid_credit
    return Credit(
        mode=CreditMode.BY_VALUE,
        base=base,
        new_expiry=base,
        capped=True,
        cap=0,
        uncounted=max(0, received),
        past_calendar=True,
    )


def _time_bought(
    payment: SubscriptionPayment,
    subscription: Subscription,
    current: PriceBasis | None,
    now: datetime,
    unpaid_credit: int,
) -> Credit:
    """What completing `payment` (Purchase or Renewal) at `now` adds to `subscription` (D23).

    The base is `max(expires, now)` at completion, never at quote time. An N-interval quote
    whose price basis equals the price in force `current` adds N calendar intervals (D6)
    from the expiry it finds at completion (D23: whatever invoices are outstanding and in
    whatever order they are paid). Each invoice counts its own months from that expiry and
    clamps to a month's end on its own, so invoices stacked from a month end need not make
    the calendar sum of one larger invoice, and their order can matter: from 31 Jan a
    1-month then a 2-month invoice end 28 Apr (31 Jan → 28 Feb → 28 Apr), a 2-month then a
    1-month one 30 Apr (31 Jan → 31 Mar → 30 Apr), as one 3-month invoice does.

    Otherwise — the price changed since the quote, the quote recorded no price (made before
    this rule, or by the reference), or it is pay-what-you-want — the time is what the
    amount received (tax and fee excluded, at the quote's own exchange rates) buys at
    `current`, exactly, floored to whole seconds, spent on the subscription's fixed grid of
    calendar intervals (`value_grid.extend_by`, anchored at `value_anchor`), so payments
    split in two buy what they buy at once. A payment that cannot be valued (a rate
    missing, a free price) adds nothing; one whose current price cannot be computed adds
    what was quoted. Both are for the operator to look at. By value, a payment never buys
    more than `MAX_CREDIT_INTERVALS` (a pay-what-you-want one: `MAX_BY_AMOUNT_INTERVALS`,
    D6's 120); what it received beyond them (`Credit.uncounted`, net, in its own currency)
    is for the booking to credit.

    `unpaid_credit` (charged units): the part of the account credit the quote applied that
    was given back when it lapsed and could not be taken again (spent since). The payment
    then did not pay its whole quote: it buys by value, that part not counted, and the
    operator is told.
    """
    base = renewal_base(subscription.expires, now)
    meta = payment_meta(payment)
    quoted = PriceBasis.from_json(meta.get(PRICE_KEY))
    count = None if is_by_amount(payment) else payment_interval_count(payment)
    if current is None:
        new_expiry = _unpriced(payment, subscription, quoted, count, base)
        if unpaid_credit > 0:  # what was quoted, cut to the share of it that was paid
            whole = payment.amount + charged_credit(meta)
            paid = max(0, whole - unpaid_credit)
            seconds = whole_seconds(new_expiry - base) * paid // whole if whole > 0 else 0
            new_expiry = base + timedelta(seconds=seconds)
            return Credit(
                mode=CreditMode.UNPRICED,
                base=base,
                new_expiry=new_expiry,
                changes=(UNPAID_CREDIT_CHANGE,),
            )
        return Credit(mode=CreditMode.UNPRICED, base=base, new_expiry=new_expiry)
    changes = current.changes_since(quoted) if quoted is not None else ()
    if unpaid_credit > 0:
        changes = (*changes, UNPAID_CREDIT_CHANGE)
    if (
        count is not None
        and quoted is not None
        and quoted.same_price(current)
        and not unpaid_credit
    ):
        new_expiry = current.interval.add_to(base, count)
        return Credit(
            mode=CreditMode.CALENDAR,
            base=base,
            new_expiry=new_expiry,
            intervals=Fraction(count),
            changes=changes,
        )
    try:
        currency = Currency.parse(payment.currency)
    except DomainError:
        return Credit(mode=CreditMode.UNVALUED, base=base, new_expiry=base, changes=changes)
    # the amount received plus what the account balance paid of this quote (its worth in
    # the payment's currency): the credit bought time as much as the money did
    received = payment.amount + charged_credit(meta) - unpaid_credit
    bought = intervals_bought(received, currency, current, _rates(payment, current))
    if bought is None:
        return Credit(mode=CreditMode.UNVALUED, base=base, new_expiry=base, changes=changes)
    cap = MAX_BY_AMOUNT_INTERVALS if is_by_amount(payment) else MAX_CREDIT_INTERVALS
    capped = bought > cap
    counted = min(bought, Fraction(cap))
    uncounted = 0
    if capped:  # what the intervals not given were worth: account credit, not lost
        price = exact_value(current.recurring, currency, _rates(payment, current))
        if price is not None:
            rest = (bought - counted) * price
            uncounted = rest.numerator // rest.denominator
    return Credit(
        mode=CreditMode.BY_VALUE,
        base=base,
        new_expiry=extend_by(current.interval, value_anchor(subscription), base, counted),
        intervals=bought,
        changes=changes,
        capped=capped,
        cap=cap,
        uncounted=uncounted,
    )


#: live quotes (`is_capped_quote`, unpaid and unexpired) one subscription may hold at once:
#: each one more is an invoice at a Lightning node or an order at a card provider, made for
#: free, so a request past the cap is refused before the rail is asked (`max-live-quotes`)
MAX_LIVE_QUOTES = 5


def is_capped_quote(payment: SubscriptionPayment) -> bool:
    """A payment the live-quote cap counts: an upgrade, or a purchase or renewal asked for a
    number of intervals (what `renew` writes). LNURL invoices (`{"intervals": null}`), which
    anyone may ask for a VM, are left out: they have a cap of their own (D25), and counting
    them would let a stranger lock the owner out of renewing. (SQL: an upgrade, or a row
    whose `interval_count` column is set.)"""
    if payment.payment_type is SubscriptionPaymentType.UPGRADE:
        return True
    count = metadata_dict(payment.metadata).get(INTERVALS_KEY)
    return isinstance(count, int) and not isinstance(count, bool)
