"""Renew a subscription: reuse a pending payment, or price, invoice and store one (D6, D10, D11)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime

from app.billing.catalogue import owned_vm, subscription_of
from app.billing.credit_quote import (
    Settle,
    apply_balance,
    is_covered,
    issue,
    paid_by_credit_alone,
    settle_covered,
    spends_credit,
)
from app.billing.errors import (
    IdempotencyKeyRace,
    SubscriptionHasNoLineItems,
    SubscriptionNotFound,
    VmNotFound,
)
from app.billing.ip_allocation import refuse_without_room
from app.billing.persist import (
    FirstPending,
    Idempotency,
    Reuse,
    pending_match,
    refuse_lapsed_order,
    refuse_moved_period,
    refuse_over_cap,
    remember,
    replay,
    reuse_narrowing,
)
from app.billing.price_in_force import priced_items
from app.billing.quotes import price_subscription
from app.billing.rails import PaymentRails
from domain.credit import MAX_LIVE_QUOTES
from domain.enums import PaymentMethod
from domain.errors import InvalidInput
from domain.intervals import check_interval_count
from domain.model import LineItem, Subscription, SubscriptionPayment
from domain.money import currency_code
from domain.subscription import payment_type_for
from domain.switch_off import refuse_switched_off
from domain.tax import TaxRates
from ports.clock import Clock
from ports.rates import RateStore
from ports.storage import NewestPending, OwnedPriced, UnitOfWork, UnitOfWorkFactory


async def _resolve(
    uow: UnitOfWork,
    user_id: int | None,
    subscription_id: int | None,
    vm_id: int | None,
    owner_key: bytes | None,
    newest: NewestPending,
    credit: bool,
) -> tuple[Subscription, list[LineItem], FirstPending | None, OwnedPriced | None]:
    """The subscription renewed, its line items and, where read with them (an owner key),
    what `newest` asks for and the read that holds what it is priced from (`priced`, built
    when asked for; with `credit`, the balance too)."""
    if (subscription_id is None) == (vm_id is None):
        raise InvalidInput("Give exactly one of a subscription id or a VM id")
    if owner_key is not None:
        if vm_id is None:
            raise InvalidInput("An owner key names a VM, not a subscription")
        found = await uow.line_items.priced_of_owned_vm(vm_id, owner_key, newest, credit=credit)
        if found is not None:  # its pricing records built only if a new quote needs them
            return found.subscription, list(found.items), FirstPending(found.first_pending), found
        vm = await uow.vms.get_owned_by_key(vm_id, owner_key)  # which refusal it is
        if vm is None or vm.deleted:
            raise VmNotFound("VM not found")
        sub = await subscription_of(uow, vm)
    elif vm_id is not None:
        sub = await subscription_of(uow, await owned_vm(uow, vm_id, user_id))
    else:
        assert subscription_id is not None
        found_sub = await uow.subscriptions.get(subscription_id)
        if found_sub is None or (user_id is not None and found_sub.user_id != user_id):
            raise SubscriptionNotFound("Subscription not found")
        sub = found_sub
    return sub, await uow.line_items.list_by_subscription(sub.id), None, None


async def _lock_for_period(uow: UnitOfWork, subscription_id: int | None) -> None:
    """Lock the subscription an automatic renewal is for, before its first read.

    Read without it, the expiry a completion is moving (its transaction not committed yet)
    looks unchanged, and a reused pending invoice would be paid for a period already
    renewed. First, because MariaDB's plain reads see the snapshot of the transaction's first
    one: read after the lock, they see what the lock waited for."""
    if subscription_id is None:
        raise InvalidInput("An automatic renewal names its subscription")
    await uow.subscriptions.get_for_update(subscription_id)


async def renew(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    rates: RateStore,
    tax_rates: TaxRates,
    *,
    user_id: int | None,
    subscription_id: int | None = None,
    vm_id: int | None = None,
    method: PaymentMethod = PaymentMethod.LIGHTNING,
    intervals: int = 1,
    settle: Settle | None = None,
    idem: Idempotency | None = None,
    owner_key: bytes | None = None,
    before_credit: Callable[[], Awaitable[None]] | None = None,
    period: datetime | None = None,
    max_live_quotes: int = MAX_LIVE_QUOTES,
) -> SubscriptionPayment:
    """A payment for `intervals` (1..120, D6) of a subscription, given by its id or a VM's.

    Returns the newest pending payment of the same subscription, method, type (Purchase
    before the first payment, Renewal after) and interval count if there is one (D10);
    otherwise prices every line item (§13), creates the invoice or order and stores the
    payment with `metadata = {"intervals": n}`. `user_id` None is a system caller (NWC
    auto-renewal) and skips the ownership check; another user's VM or subscription is
    "not found". With `settle` (the completion use case) the user's credit balance pays
    first (`app.billing.credit_quote`); a quote it covers wholly is completed at once, and
    one found pending again (its completion failed: an outage) is completed then.
    `idem` (from `renew_idempotent`) replays the payment of an earlier request with the key.
    `owner_key` (with `vm_id`, `user_id` None) checks ownership by the owner's public key, so
    that an HTTP caller needs no user look-up first (issue 10). `before_credit` runs before
    a new quote spends account credit and may refuse it by raising (a GET request makes its
    signed event single-use there: a replayed one must not spend the balance again).
    `period` (the worker's automatic renewal, by `subscription_id`) renews the period ending
    then only: once the subscription's expiry is another (a renewal paid meanwhile) it is
    `RenewalNoLongerDue` and nothing is reused, invoiced or charged (`refuse_moved_period`).
    It is judged under the subscription's lock, taken before anything is read, which a
    completing payment holds too: a pending invoice is handed back for the wallet only if no
    renewal completed before it, the same rule `store_payment` applies to a new one.
    A subscription an admin switched off is not renewed (`SubscriptionSwitchedOff`, 422,
    `domain.switch_off`), here and again under its lock when an invoice is stored.
    A new invoice or order is refused (`TooManyOpenQuotes`, 422) while the subscription
    holds `max_live_quotes` live quotes (renewals and upgrades), before the rail is asked
    and again under the lock when it is stored. A new one is refused too (`NoIpRangeLeft`,
    422) when an IP-range line item could not be given its range now (`refuse_without_room`:
    a new sale with no free block left or from a space no longer offered); a holder whose
    block is still its own renews as ever.
    """
    rails.refuse_lightning(method)  # Lightning off: before the replay, the reuse, the credit
    now = clock.now()
    count = check_interval_count(intervals)
    async with uow_factory() as uow:
        if period is not None:
            await _lock_for_period(uow, subscription_id)
        replayed = await replay(uow, idem)
        if replayed is not None:
            return replayed
        # the reuse lookup's first payment comes with the subscription where it can (D10),
        # and by an owner key with what a new invoice is priced from too (one statement)
        # (and the live quotes, for the cap)
        newest = NewestPending(method, now, reuse_narrowing(count), quotes=True)
        credit = settle is not None
        resolved = await _resolve(uow, user_id, subscription_id, vm_id, owner_key, newest, credit)
        sub, items, first, owned = resolved
        if not items:
            raise SubscriptionHasNoLineItems("Subscription has no line items")
        refuse_moved_period(sub, period)
        refuse_switched_off(sub)  # an admin's switch-off: not even a pending one handed out
        rails.refuse_bitcoin_price(sub.currency)  # Lightning off: BTC cannot be charged
        payment_type = payment_type_for(sub)
        reuse = Reuse(
            subscription_id=sub.id,
            method=method,
            payment_type=payment_type,
            interval_count=count,
            expires=sub.expires,
        )
        existing = await pending_match(uow, reuse, now, first)
        if existing is not None:
            if idem is not None:  # nothing else was written: no commit round trip
                await remember(uow, idem, existing, now)
                await uow.commit()
        else:
            refuse_lapsed_order(sub, now)  # before the rail's invoice; again when stored
            await refuse_without_room(uow, sub, items, now)  # its IP ranges can be given
            if owned is not None:  # the credit-first quote's balance comes with it
                read = owned.priced
            else:
                credit_in = currency_code(sub.currency) if credit else None
                read = await priced_items(uow, sub, credit_in)
            priced = await price_subscription(
                uow,
                sub,
                items,
                read,
                method=method,
                count=count,
                payment_type=payment_type,
                rates=await rates.table(),
                tax_rates=tax_rates,
                now=now,
            )
            if settle is not None:  # the account balance pays first (issue 13)
                priced = await apply_balance(uow, priced, sub.currency, read.credit)
            if not (settle is not None and is_covered(priced)):  # no rail asked: no cap
                counted = read.live_quotes  # the owner-key read counted them (at `now`)
                await refuse_over_cap(uow, sub.id, now, max_live_quotes, counted)
            if before_credit is not None and spends_credit(priced):
                await before_credit()
    if existing is None:
        return await issue(
            uow_factory,
            rails,
            priced,
            now,
            settle,
            reuse=reuse,
            idem=idem,
            period=period,
            cap=max_live_quotes,
            priced_from=read,
        )
    if settle is not None and paid_by_credit_alone(existing):
        # a covered quote whose completion failed (an outage, a crash between its storing
        # and its booking): handing it out would show an invoice of nothing that no one
        # can pay (a wallet asked to pay it fails); complete it now instead, exactly once
        return await settle_covered(uow_factory, existing, settle, now)
    return existing


def request_fingerprint(
    subscription_id: int | None, vm_id: int | None, request_body_hash: bytes
) -> bytes:
    """What "the same request" means for D11: the same target and the same body."""
    target = f"vm:{vm_id}" if vm_id is not None else f"subscription:{subscription_id}"
    return hashlib.sha256(target.encode() + b"\n" + request_body_hash).digest()


async def renew_idempotent(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    rates: RateStore,
    tax_rates: TaxRates,
    *,
    user_id: int,
    idempotency_key: str,
    request_body_hash: bytes,
    subscription_id: int | None = None,
    vm_id: int | None = None,
    method: PaymentMethod = PaymentMethod.LIGHTNING,
    intervals: int = 1,
    settle: Settle | None = None,
    max_live_quotes: int = MAX_LIVE_QUOTES,
) -> SubscriptionPayment:
    """`renew` for a POST with an Idempotency-Key (D11).

    The same key with the same body (and target) returns the payment of the first request,
    even once it is paid or expired; the same key with another body or target is
    `IdempotencyKeyReused` (409). The key is stored in the transaction that stores or picks
    the payment, so it never points at nothing.

    Two requests with one key at once (a retry reaching another node): the one that stores
    the key second fails on it (`IdempotencyKeyRace`) and is asked again in a new
    transaction, which sees the first one's key: the same body gets the same payment, as
    D11 says, not a 409 (review r14: on MariaDB every such race answered 409 when a pending
    invoice was reused). Its own invoice, if it made one, was cancelled when storing failed.
    """
    if not idempotency_key:
        raise InvalidInput("Idempotency-Key must not be empty")
    idem = Idempotency(
        user_id=user_id,
        key=idempotency_key,
        fingerprint=request_fingerprint(subscription_id, vm_id, request_body_hash),
    )
    attempt = functools.partial(
        renew,
        uow_factory,
        clock,
        rails,
        rates,
        tax_rates,
        user_id=user_id,
        subscription_id=subscription_id,
        vm_id=vm_id,
        method=method,
        intervals=intervals,
        idem=idem,
        settle=settle,
        max_live_quotes=max_live_quotes,
    )
    try:
        return await attempt()
    except IdempotencyKeyRace:
        return await attempt()
