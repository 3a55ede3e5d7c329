"""An automatic renewal's claim on the invoice its wallet pays: one period is bought once.

The worker's automatic renewal asks the user's wallet (NWC) to pay a renewal invoice for the
period ending at the subscription's expiry. The wallet is a network call, made with no lock
held, and it takes seconds; the user may pay a renewal of their own meanwhile. So, just
before the wallet is asked, the invoice is marked in its metadata with the period it pays
(`claimed`), under the subscription's lock, in a transaction that first checks that the
period is still unpaid. From then on the claim speaks for the wallet's payment wherever the
subscription's lock is taken:

- a renewal that completes while a claim is out ends the claimed invoice (expired, and
  cancelled at the node), so a wallet that has not paid yet cannot;
- the claimed invoice, should its payment land anyway once its period was renewed
  (`claim_overtaken`), buys no second period: its value becomes account credit;
- a pending invoice claimed for another period than the current one is not handed out
  again by a renewal request (D10 reuse).

Account credit that covers the interval pays the automatic renewal alone, with no wallet;
that payment is claimed for its period when it is stored (`app.billing.credit_quote.issue`),
and one whose period was renewed otherwise before its booking is not booked at all: its
credit comes back, no second period is bought from it.

The wallet paying the same invoice twice is impossible by construction: a Lightning invoice
is paid once, and the worker asks the wallet at most once per period (D15's mark, committed
before the wallet is asked), so a crash after the wallet paid never leads to a second ask.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from domain.credit import metadata_dict, payment_meta
from domain.intervals import require_utc
from domain.model import Subscription, SubscriptionPayment

#: the payment's metadata key holding the period (the subscription's expiry, ISO 8601 UTC,
#: whole seconds) the automatic renewal's wallet was asked to pay it for
CLAIM_KEY = "auto_renewal_period"


def claim_text(period: datetime) -> str:
    """The `CLAIM_KEY` value of a claim for the period ending at `period`."""
    return require_utc(period).replace(microsecond=0).isoformat()


def claimed_period_of(metadata: Any) -> datetime | None:
    """The period a payment's metadata was claimed for; None: no claim."""
    raw = metadata_dict(metadata).get(CLAIM_KEY)
    if not isinstance(raw, str):
        return None
    try:
        period = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return None if period.tzinfo is None else period


def claim_is_for(metadata: Any, expires: datetime | None) -> bool:
    """Whether a payment's metadata holds no claim, or one for the period ending `expires`."""
    period = claimed_period_of(metadata)
    if period is None:
        return True
    return expires is not None and int(period.timestamp()) == int(expires.timestamp())


def claimed(payment: SubscriptionPayment, period: datetime) -> SubscriptionPayment | None:
    """The payment claimed for the period ending `period`; None when its metadata is not a
    JSON object (it cannot carry the claim, so the wallet must not be asked to pay it)."""
    meta = payment_meta(payment)
    if not meta and payment.metadata not in (None, {}, "{}"):
        return None  # a JSON array, a number, text that is not JSON …
    return attrs.evolve(payment, metadata={**meta, CLAIM_KEY: claim_text(period)})


def claim_overtaken(payment: SubscriptionPayment, sub: Subscription) -> datetime | None:
    """The period the payment was claimed for when the subscription no longer ends then (a
    renewal completed first, or an admin moved the expiry): it must buy no time. None: not
    claimed, or claimed for the current period."""
    meta = payment.metadata
    if claim_is_for(meta, sub.expires):
        return None
    return claimed_period_of(meta)
