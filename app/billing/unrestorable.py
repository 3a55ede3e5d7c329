"""A paid Purchase/Renewal whose VM cannot be given (back): no time, its value as credit."""

from __future__ import annotations

from datetime import datetime

import attrs

from domain.credit import Credit, CreditMode, payment_meta
from domain.model import SubscriptionPayment
from domain.price_basis import CREDIT_KEY


def unrestorable(
    now: datetime, why: str, credited: bool, note: str = "", given_back: str = ""
) -> Credit:
    """No time bought, and why; the admins are told (`needs_operator`). `credited`: its
    value is account credit (`Credited.on_balance`: booked, by this booking or an earlier
    one, or nothing to book, it having no money part); False: it could not be booked, and
    its notices say so (`Credit.value_credited`). `given_back`: the applied credit booked
    back apart from the value (`applied_elsewhere`), as text."""
    reasons = (why,) if credited else (why, "its value could not be booked as credit")
    return Credit(
        mode=CreditMode.UNRESTORABLE,
        base=now,
        new_expiry=now,
        changes=reasons,
        payer_note=note,
        given_back=given_back,
        value_credited=credited,
    )


def with_credit(paid: SubscriptionPayment, credit: Credit) -> SubscriptionPayment:
    """The paid row as stored: `time_value` = the seconds really added (it was the quote's
    estimate), and, unless it was plain calendar time, how it was counted in `metadata`."""
    evolved = attrs.evolve(paid, time_value=credit.seconds)
    if credit.mode is CreditMode.CALENDAR and not credit.changes:
        return evolved
    if paid.metadata is not None and not payment_meta(paid):
        return evolved  # metadata that is not a JSON object is kept as it was
    return attrs.evolve(evolved, metadata={**payment_meta(paid), CREDIT_KEY: credit.to_json()})
