"""Renewals and upgrades pay from the account balance first; the rest is invoiced outside.

When credit is debited: at quote time, in the transaction that stores the payment (a SPENT
entry whose reference is the payment id, under the subscription lock and then the balance
lock). That keeps the balance exact at every moment: two quotes can never both count on the
same credit, and the payment carries `credit_applied` from birth. A quote that expires unpaid
gives its credit back (`app.billing.credit_release`: a RELEASED entry with the same
reference, booked once). A quote the balance covers fully is stored with amount 0, no
external invoice (no provider id), the requested method kept, and completed at once through
the normal completion use case (exactly once, D9).
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

import attrs

from app.billing.credit_balance import book_in
from app.billing.credit_release import withdraw_covered
from app.billing.errors import PaymentMethodNotConfigured
from app.billing.persist import (
    Idempotency,
    Reuse,
    UnderLock,
    at_provider,
    quote_cap,
    same_period,
    store_payment,
)
from app.billing.rails import PaymentRails, PricedPayment
from domain.account_credit import (
    CREDIT_APPLIED_KEY,
    CreditParts,
    CreditReason,
    CreditSplit,
    InsufficientCredit,
    applied_json,
    checked_entry,
    credit_applied,
    vat_free_applied,
)
from domain.credit import metadata_dict, payment_meta
from domain.errors import DomainError
from domain.exchange import fiat_to_msat, msat_to_fiat
from domain.model import SubscriptionPayment
from domain.money import Currency, currency_code
from domain.price_basis import quote_btc_rate
from domain.tax import recorded_tax_rate
from domain.vat_free_credit import split_with_vat_free
from domain.wallet_claim import claimed
from ports.storage import PricedItems, UnitOfWork, UnitOfWorkFactory

#: completes a payment by id (the HTTP layer passes the completion use case).
Settle = Callable[[bytes], Awaitable[object]]
#: a fully covered quote is "payable" (already settled) for as long as a Lightning invoice.
COVERED_EXPIRY = timedelta(minutes=10)
PAYMENT_ID_BYTES = 32


class CreditChanged(DomainError):
    """The balance changed while the quote was made; nothing was stored (409)."""

    kind = "conflict"


def _converters(
    balance_currency: Currency, priced: PricedPayment
) -> tuple[Callable[[int], int], Callable[[int], int]] | None:
    """Balance units → charged units and back, at the balance currency's own BTC rate as the
    quote saw it (not the quote's `rate`, which is its price currency's: the two differ
    once a plan is re-priced in another currency than its subscription's, and is 1 for a
    BTC price). None without that rate: the credit is not applied and the price is charged
    whole (a quote that saw no fresh rate stores none, `rates: {}`)."""
    charged = priced.currency
    if charged is balance_currency:
        return (lambda n: n), (lambda n: n)
    if charged is not Currency.BTC or not balance_currency.is_fiat:
        return None
    meta = metadata_dict(priced.metadata)
    rate = quote_btc_rate(meta, balance_currency)
    if rate is None:
        return None
    return (lambda n: fiat_to_msat(n, rate)), (lambda n: msat_to_fiat(n, rate))


async def apply_balance(
    uow: UnitOfWork, priced: PricedPayment, list_currency: str, balance: int | None = None
) -> PricedPayment:
    """`priced` paid from the user's balance in the subscription's currency first (read, not
    locked: `spend_in` checks it again under the lock when the payment is stored); `balance`:
    that balance when the caller read it already (in `currency_code(list_currency)`).

    Its VAT-free part (`domain.vat_free_credit`) counts whole towards an untaxed quote and
    VAT-inclusive towards one that charges a rate (the `tax_rate` the quote records: a
    renewal's; an upgrade records none, it charges no tax)."""
    code = currency_code(list_currency)
    if code is None:
        return priced
    currency = Currency(code)
    convert = _converters(currency, priced)
    if convert is None:
        return priced
    if balance is None:
        balance = (await uow.credit_ledger.balances(priced.user_id)).get(code, 0)
    vat_free = 0
    if balance > 0:  # a second look only for an account that has credit
        vat_free = (await uow.credit_ledger.vat_free_balances(priced.user_id)).get(code, 0)
    split = split_with_vat_free(
        parts=CreditParts(balance, vat_free),
        amount=priced.amount,
        levy=priced.levy,
        to_charged=convert[0],
        to_balance=convert[1],
        tax_rate=recorded_tax_rate(metadata_dict(priced.metadata)),
    )
    if split is None:
        return priced
    return _with_split(priced, split, currency)


def _with_split(priced: PricedPayment, split: CreditSplit, currency: Currency) -> PricedPayment:
    meta = dict(priced.metadata) if isinstance(priced.metadata, dict) else {}
    meta[CREDIT_APPLIED_KEY] = applied_json(
        split.credit,
        currency.value,
        split.charged_credit,
        vat_free=split.vat_free,
        vat_free_net=split.vat_free_net,
        vat=split.vat,
    )
    return attrs.evolve(
        priced,
        amount=split.amount,
        tax=split.tax,
        processing_fee=split.processing_fee,
        metadata=meta,
    )


def spends_credit(priced: PricedPayment) -> bool:
    """The quote pays some of itself from the account balance."""
    meta = metadata_dict(priced.metadata)
    return credit_applied(meta) is not None


def is_covered(priced: PricedPayment) -> bool:
    """Paid wholly from the balance: nothing to invoice outside."""
    applied = credit_applied(metadata_dict(priced.metadata))
    return applied is not None and priced.amount + priced.tax + priced.processing_fee == 0


def paid_by_credit_alone(payment: SubscriptionPayment) -> bool:
    """A stored payment no outside money pays: a covered quote (`covered_payment`)."""
    covered = payment.amount + payment.tax + payment.processing_fee == 0
    applied = credit_applied(payment_meta(payment)) is not None
    return covered and payment.external_id is None and applied


def covered_payment(priced: PricedPayment, now: datetime) -> SubscriptionPayment:
    """The stored record of a fully covered quote: no invoice, no provider id, amount 0."""
    return SubscriptionPayment(
        id=secrets.token_bytes(PAYMENT_ID_BYTES),
        subscription_id=priced.subscription_id,
        user_id=priced.user_id,
        created=now,
        expires=now + COVERED_EXPIRY,
        amount=0,
        currency=priced.currency.value,
        payment_method=priced.method,
        payment_type=priced.payment_type,
        external_data="",
        rate=priced.rate,
        tax=0,
        processing_fee=0,
        external_id=None,
        time_value=priced.time_value,
        metadata=priced.metadata,
    )


async def spend_in(uow: UnitOfWork, payment: SubscriptionPayment) -> None:
    """Debit the credit `payment` applies, once (reference: its id), in the storing
    transaction; call it before the payment row is inserted (lock order). A balance that
    no longer covers it is `CreditChanged` (409): the caller stores nothing."""
    applied = credit_applied(payment_meta(payment))
    if applied is None:
        return
    amount, currency = applied
    entry = checked_entry(
        user_id=payment.user_id,
        currency=currency,
        amount=-amount,
        reason=CreditReason.SPENT,
        reference=payment.id.hex(),
        note=f"{payment.payment_type.name.lower()} of subscription {payment.subscription_id}",
        created=payment.created,
        payment_id=payment.id,
        vat_free=-vat_free_applied(payment_meta(payment)).amount,
    )
    try:
        await book_in(uow, entry)
    except InsufficientCredit:
        raise CreditChanged(
            "The credit balance changed while the quote was made; ask again"
        ) from None


async def settle_covered(
    uow_factory: UnitOfWorkFactory, payment: SubscriptionPayment, settle: Settle, now: datetime
) -> SubscriptionPayment:
    """Complete a fully covered payment now and return it as stored (paid). A booking that
    refuses it (an upgrade whose room went in the moments since its quote, 422, or whose
    subscription's expiry or prices moved meanwhile, 409) books nothing: the quote is
    withdrawn and its credit given back before the error goes on, so the user is charged
    nothing and the answer says why. (Withdrawing leaves a payment found paid as it is.)"""
    try:
        await settle(payment.id)
    except DomainError as refused:
        await withdraw_covered(uow_factory, payment, now, f"not booked: {refused.message}")
        raise
    async with uow_factory() as uow:
        stored = await uow.payments.get(payment.id)
    return stored or payment


async def issue(
    uow_factory: UnitOfWorkFactory,
    rails: PaymentRails,
    priced: PricedPayment,
    now: datetime,
    settle: Settle | None,
    *,
    reuse: Reuse | None,
    idem: Idempotency | None,
    period: datetime | None = None,
    cap: int | None = None,
    priced_from: PricedItems | None = None,
    checks: Sequence[UnderLock] = (),
) -> SubscriptionPayment:
    """Store the quote: one the balance covers (with `settle` given) as a covered payment,
    completed at once through `settle`; any other as an invoice or order on its rail. The
    credit it applies is spent in the storing transaction; a rival request's payment that
    `store_payment` returns instead is returned as it is. `period`: a renewal for the
    period ending then only (`same_period`); `cap`: the live-quote cap (`quote_cap`),
    judged for a payment made at a provider only (no rail: nothing to flood); `checks`:
    the caller's own. All are judged under the subscription's lock as the payment is
    stored, before the credit is spent. `priced_from`: what the quote was priced from
    (see `store_payment`). A covered quote for a `period` (the worker's automatic renewal)
    carries its claim on that period from birth (`domain.wallet_claim`): booked once the
    period was renewed otherwise, it would buy a second one from credit nobody asked to
    spend, so its booking refuses it (`RenewalNoLongerDue`) and the credit comes back."""
    covered = settle is not None and is_covered(priced)
    if not covered and priced.withdrawn:
        # an admin disabled the method (its pending invoices were expired with it): no new
        # invoice or order of it; a quote the balance pays whole asks no rail and may go on
        raise PaymentMethodNotConfigured(
            f"{priced.method.display_name} is not offered for this service any more"
        )
    payment = covered_payment(priced, now) if covered else await rails.create(priced, now)
    if covered and period is not None:
        payment = claimed(payment, period) or payment
    stored = await store_payment(
        uow_factory,
        rails,
        payment,
        now,
        reuse=reuse,
        idem=idem,
        checks=[
            *([] if period is None else [same_period(period)]),
            *([] if cap is None or not at_provider(payment) else [quote_cap(cap)]),
            *checks,
            UnderLock(lambda at: spend_in(at.uow, at.payment)),
        ],
        priced_from=priced_from,
    )
    if covered and settle is not None and stored.id == payment.id:
        return await settle_covered(uow_factory, stored, settle, now)
    return stored
