"""Complete a payment: the one place where paying changes state (D9, D12, D13, D23).

Two transactions: a read-only lookup of the payment, then the booking (once more, with the
region's lock taken first, when the booking finds a VM that must be placed again: a deleted
one, a never-paid order paid after its window, or a VM a paid Upgrade grows; likewise with
the IP spaces' locks when it must give an IP-range line item its range). The lookup
cannot join the booking: the booking must lock the payment's subscription FIRST (every
completion and lifecycle action locks the subscription before payment rows, so they queue
instead of deadlocking), and on MariaDB the first plain read of a transaction fixes its
snapshot, so reading the payment there before the lock would price the payment at a snapshot
older than the lock (D23). A card webhook reuses the payment its lookup found, and asks the
provider between the two (a network call never runs inside a transaction).

The booking transaction holds the money and everything it changes in storage: the flip
`is_paid 0 → 1` (the exactly-once gate), the subscription extended through
`domain.subscription`, revived VMs (or, when a deleted VM cannot be restored, or a late-paid
order's or a paid upgrade's room is gone, the payment's value booked as account credit
instead), IP ranges given or turned back on (`app.billing.ip_allocation`; none free: the
value as credit too), rival Upgrade and Purchase invoices expired, the products' records
(`ProductRecords`: VM history, an Upgrade applied) and the `on_booked` effects. After the commit a
`PaymentCompleted` event goes to its subscribers (`app.billing.payment_completed`), which
never undo the payment.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import attrs

from app.billing.address_room import why_no_address
from app.billing.booked_records import ProductRecords, overpaid_text
from app.billing.credit_overpayment import (
    credit_excess,
    credit_uncounted,
    credit_unrestorable,
)
from app.billing.credit_quote import CreditChanged, paid_by_credit_alone
from app.billing.credit_release import respend_released
from app.billing.errors import (
    CreditBuysNothing,
    PaymentNotFound,
    RenewalNoLongerDue,
    ShortSettlement,
    VmDeleted,
)
from app.billing.invoicing import issue_invoice
from app.billing.ip_allocation import PAYER_NOTE, RangePlan, apply_plan, plan_ranges
from app.billing.old_orders import old_order_refused
from app.billing.order_locks import under_region_lock, under_space_locks
from app.billing.order_refs import order_payment
from app.billing.paid_after_admin import card_paid_after_admin
from app.billing.payment_completed import Reactions, Subscriber, default_subscribers, publish
from app.billing.price_in_force import price_in_force_or_none
from app.billing.rails import PaymentRails
from app.billing.reserved import order_lapsed
from app.billing.restorable import Placing, in_locked_region, move_vm, placing
from app.billing.unrestorable import unrestorable, with_credit
from app.billing.upgrades import (
    UpgradeUnplaced,
    paid_upgrade_plan,
    why_deleted_vm_not_upgraded,
    why_paid_upgrade_does_not_fit,
)
from app.billing.wallet_claims import (
    OVERTAKEN_NOTE,
    credit_alone_claim,
    end_claims,
    overtaken_why,
)
from domain.account_credit import credit_applied, credit_taken, unpaid_charged
from domain.admin_completion import ADMIN_COMPLETION_KEY, AdminCompletion
from domain.credit import Credit, credit_payment, payment_meta
from domain.enums import PaymentMethod, SubscriptionPaymentType
from domain.events import PaymentCompleted
from domain.lifecycle import vm_changed
from domain.model import IpRangeSubscription, LineItem, Subscription, SubscriptionPayment, Vm
from domain.money import Currency, lightning_invoice_msat
from domain.overpayment import OVERPAID_KEY, Overpaid
from domain.subscription import apply_paid_payment, mark_paid
from domain.switch_off import is_switched_off
from domain.wallet_claim import claim_overtaken
from ports.clock import Clock
from ports.queue import Job, WorkQueue
from ports.storage import PendingOf, StorageBusy, UnitOfWork, UnitOfWorkFactory

log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class CompletedPayment:
    """What a booking changed, inside its transaction (the `on_booked` effects get it).

    `cancelled_upgrades` are competing pending Upgrade payments expired in the booking (D13);
    `cancelled_purchases` the subscription's other pending Purchase invoices (another
    method's invoice for the same order), expired when a Purchase is booked: the order and
    its setup fee are paid once. `credit` says how much time a Purchase/Renewal really
    bought and why (None for an Upgrade, unless its host had no room for it and the payment
    became account credit); `payment` carries that time as its `time_value`.
    """

    payment: SubscriptionPayment
    subscription_before: Subscription
    subscription: Subscription
    line_items: list[LineItem]
    revived_vms: int
    cancelled_upgrades: list[SubscriptionPayment]
    credit: Credit | None = None
    cancelled_purchases: list[SubscriptionPayment] = attrs.field(factory=list)
    #: what the booking could not settle itself and reported (an operator's matter)
    problems: tuple[str, ...] = ()
    #: what a Lightning payer sent beyond the total, and the credit booked for it
    overpaid: Overpaid | None = None
    #: the credit booked for a payment that bought nothing (`CreditMode.UNRESTORABLE`), in
    #: smallest units of the currency it was credited in; 0 when none could be booked
    credited: int = 0
    #: the IP ranges of new blocks this booking gave its IP-range line items
    ranges_given: tuple[IpRangeSubscription, ...] = ()
    #: pending invoices an automatic renewal had claimed for the period this booking renewed,
    #: expired with it (`app.billing.wallet_claims.end_claims`), to cancel at their node
    ended_claims: list[SubscriptionPayment] = attrs.field(factory=list)

    @property
    def is_upgrade(self) -> bool:
        return self.payment.payment_type == SubscriptionPaymentType.UPGRADE

    @property
    def is_first_payment(self) -> bool:
        """The subscription was never set up before: a product must now be provisioned."""
        return not self.subscription_before.is_setup and self.subscription.is_setup


#: An effect written inside the booking transaction, just before its commit: what it writes
#: exists exactly when the payment is booked, and it raising leaves the payment unpaid.
OnBooked = Callable[[UnitOfWork, CompletedPayment], Awaitable[None]]


async def _issue_invoice(uow: UnitOfWork, done: CompletedPayment) -> None:
    """The payment's invoice, numbered in the booking transaction (gapless, issue 13)."""
    await issue_invoice(uow, done)


#: THE HOOK POINT for what every completion writes with the money: today the payment's
#: invoice. They run in order, after the products' records; a caller's explicit
#: `on_booked` replaces them (tests).
DEFAULT_ON_BOOKED: tuple[OnBooked, ...] = (_issue_invoice,)


@attrs.frozen(kw_only=True)
class CompletionReport:
    """What completing a payment did. `completed` False: it was already paid, nothing ran.

    `problems` lists follow-up steps that failed after the money was booked; they are logged
    and never undo the payment (the worker's checks or an operator pick them up).
    `event` is what the subscribers were given (None when nothing was booked).
    """

    payment_id: bytes
    completed: bool
    jobs: tuple[Job, ...] = ()
    cancelled: tuple[bytes, ...] = ()
    problems: tuple[str, ...] = ()
    event: PaymentCompleted | None = None


async def _lookup(uow_factory: UnitOfWorkFactory, payment_id: bytes) -> SubscriptionPayment | None:
    async with uow_factory() as uow:
        return await uow.payments.get(payment_id)


async def apply_payment(
    uow_factory: UnitOfWorkFactory,
    payment_id: bytes,
    clock: Clock,
    on_booked: Sequence[OnBooked] | None = None,
) -> CompletedPayment | None:
    """Look the payment up, then book it (`book_payment`) with `on_booked` (default
    `DEFAULT_ON_BOOKED`); None when nothing was booked."""
    found = await _lookup(uow_factory, payment_id)
    if found is None or found.is_paid:
        return None
    effects = DEFAULT_ON_BOOKED if on_booked is None else on_booked
    return await book_payment(uow_factory, found, clock, effects)


async def book_payment(
    uow_factory: UnitOfWorkFactory,
    found: SubscriptionPayment,
    clock: Clock,
    on_booked: Sequence[OnBooked] = (),
    excess_msat: int = 0,
    by_admin: AdminCompletion | None = None,
) -> CompletedPayment | None:
    """Mark the payment paid and apply it to its subscription, in one transaction (D9).

    The flip `is_paid 0 → 1` is the gate: when it changes no row (already paid, or another
    worker won the race) nothing else happens and the result is None, so replayed
    settlements, duplicate webhooks and admin double clicks extend a subscription once.

    Soft-deleted VMs of the subscription are brought back (lifecycle.md D20 step 2, D24),
    except for an Upgrade payment: it never re-activates a lapsed subscription (D12), so it
    does not resurrect its VM either. A VM whose own host cannot take it back (disabled, or
    no room left) is first moved to another host of its region that has room. A
    Purchase/Renewal for a deleted VM that cannot be restored (`app.billing.restorable`:
    host row, template or pricing gone, offer withdrawn, or no room left in its region), or
    for a never-paid order paid after its window with no room left for it (D25), or for a
    subscription an admin switched off (`domain.switch_off`: its invoice was issued before
    the switch-off and paid anyway), or for an invoice an automatic renewal's wallet was
    asked to pay for a period another renewal bought first (`domain.wallet_claim`: one
    period is bought once), buys no time and leaves the subscription and VM as they
    are: its value becomes account credit (`credit_unrestorable`, issue 13) and the admins
    are told (`CreditMode.UNRESTORABLE`). A Purchase/Renewal that moves the expiry expires
    the subscription's other invoices claimed by an automatic renewal, cancelled at their
    node after the commit, so a wallet that has not paid yet cannot (`end_claims`).
    So does an Upgrade whose growth no longer fits its VM's host (an unpaid upgrade invoice
    holds no room): it is not applied, and its value is credited in the subscription's
    currency, the one its renewals spend, converted from the one it was priced or paid in
    at its quote's own rates (`credit_unrestorable`; without them nothing is booked and the
    admins are told); so does an Upgrade pro-rated to an expiry the subscription no longer has (a
    renewal was paid after its quote), and one the prices in force would charge another
    amount (a price it was computed from changed after its quote, D23), and one whose VM
    was deleted before it was paid (D24's race; D12: it revives nothing). One paid from
    account credit alone (no outside money) is not booked at all: `NoRoomToUpgrade`,
    `UpgradeQuoteOutdated`, `UpgradeRepriced` or `VmDeleted`, and its quote's caller gives
    the credit back (`app.billing.credit_quote.settle_covered`); so is the worker's
    automatic renewal of credit alone (`credit_alone_claim`) that would buy no time for any
    reason above (`VmDeleted` for its VM, `CreditBuysNothing` otherwise) or whose period was
    renewed otherwise since it was stored (`RenewalNoLongerDue`): the credit it spent buys
    its period, or is given back. The room is judged under
    the host's region lock, as orders judge it, so a late payment or a paid upgrade never
    takes room an order or another upgrade was just given. A Purchase/Renewal whose IP-range
    line item can be given no range (its lapse's range now someone else's and no free block
    left, or a new sale from a space no longer offered) is booked as credit the same way
    (`plan_ranges`); the ranges are judged under the locks of their IP spaces, so two
    payments never get the same block. Locks: the subscription, then (with a region or IP
    spaces) the user, then the region, then the spaces by ascending id.

    A Purchase/Renewal credited by value past its cap (`domain.credit`: 120 intervals for an
    LNURL payment, 1 200 for others; a price cut after its quote) gets that many intervals,
    and the value it received beyond them is booked as account credit of its user (the
    subscription's owner) in the same transaction, once (`credit_uncounted`).

    `excess_msat`: what a Lightning payer sent beyond the payment's total; it is booked as
    the user's account credit in the same transaction and recorded on the payment
    (`credit_excess`, metadata `overpaid`), so exactly once with the booking.

    `by_admin`: the admin who completed it by hand, kept on the paid row (metadata
    `completed_by_admin`, which its VM history entries copy) in the same transaction, so
    a completion is never booked without saying who made it, nor when (`booked_at`, read
    from the clock under the booking's locks).

    Each `on_booked` effect runs last, in the same transaction (a process killed between two
    transactions would otherwise leave a booked payment without its records for good, since
    a replay finds it paid and does nothing: tests/e2e kill -9).
    """
    now = clock.now()

    # one booking under the locks it finds it needs: run again with the IP spaces' locks
    # first when it gives ranges from spaces it has not locked (`under_space_locks`), and
    # with its region's lock when it finds a VM to place in a region it has not locked
    # (`under_region_lock`); when either keeps moving (an admin at work), `StorageBusy`:
    # the caller retries later
    async def in_region(region: int | None) -> CompletedPayment | None:
        return await under_space_locks(
            frozenset(),
            lambda spaces: _book(
                uow_factory, found, clock, now, on_booked, region, spaces, excess_msat, by_admin
            ),
        )

    return await under_region_lock(
        await _upgraded_region(uow_factory, found), in_region, exhausted=StorageBusy
    )


async def _upgraded_region(
    uow_factory: UnitOfWorkFactory, found: SubscriptionPayment
) -> int | None:
    """For an Upgrade, the region of its VM's host, read beforehand: its booking always judges
    the room there under that region's lock, so it takes the lock on its first run instead of
    learning the region and running again (`RegionMoved` still covers a host moved since).
    None for other payments: only a late one needs a region, and most never do."""
    if found.payment_type is not SubscriptionPaymentType.UPGRADE:
        return None
    async with uow_factory() as uow:
        vm = await uow.vms.get_by_subscription(found.subscription_id)
        host = None if vm is None else await uow.hosts.get(vm.host_id)
    return None if host is None else host.region_id


async def _book(
    uow_factory: UnitOfWorkFactory,
    found: SubscriptionPayment,
    clock: Clock,
    now: datetime,
    on_booked: Sequence[OnBooked],
    region: int | None,
    spaces: frozenset[int] = frozenset(),
    excess_msat: int = 0,
    by_admin: AdminCompletion | None = None,
) -> CompletedPayment | None:
    async with uow_factory() as uow:
        # the subscription lock first, as this transaction's first statement: what it reads
        # next (the payment, the price in force) is what was committed before the lock
        before = await uow.subscriptions.get_for_update(found.subscription_id)
        if before is None:  # impossible with the foreign key
            raise LookupError(f"payment {found.id.hex()} has no subscription")
        if region is not None or spaces:
            # the user first: a credit booked below locks the user's row, and orders take
            # user then region (or IP space), so subscription → user → region → spaces
            # keeps every path one way
            await uow.users.lock(before.user_id)
        if region is not None:  # then its VM's region, before any plain read (as orders do)
            await uow.regions.lock(region)
        for space_id in sorted(spaces):  # then the IP spaces it gives ranges from
            await uow.ip_spaces.lock(space_id)
        payment = await uow.payments.get(found.id)
        if payment is None or payment.is_paid:
            return None
        if not await uow.payments.mark_paid(payment.id, now):
            return None
        # account credit given back when the quote lapsed is taken again now it is paid;
        # what can no longer be taken is not counted as paid below
        respent = await respend_released(uow, mark_paid(payment, now))
        short = None if by_admin is None else by_admin.short_received_msat
        done = await _apply(
            uow,
            before,
            payment,
            now,
            region,
            spaces,
            respent.unpaid,
            short,
            unpaid_vat_free=respent.unpaid_vat_free,
        )
        if respent.problem is not None:
            log.warning("payment %s: %s", payment.id.hex(), respent.problem)
            done = attrs.evolve(done, problems=(*done.problems, respent.problem))
        if by_admin is not None:
            # stamped now, under the locks, moments before the commit (not at `now`, read
            # before them): a settlement is judged against it (`AdminCompletion.booked_at`)
            stamped = attrs.evolve(by_admin, booked_at=clock.now())
            done = await _completed_by(uow, done, stamped)
        if excess_msat > 0:
            done = await _overpaid(uow, done, excess_msat)
        for effect in on_booked:
            await effect(uow, done)
        await uow.commit()
    return done


async def _completed_by(
    uow: UnitOfWork, done: CompletedPayment, admin: AdminCompletion
) -> CompletedPayment:
    """The admin's completion kept in the paid row's `metadata` (its VM history entries copy
    it from there); reported when the metadata is not a JSON object and cannot hold it."""
    paid = done.payment
    if paid.metadata is not None and not payment_meta(paid):
        note = (
            f"completed by admin {admin.admin_id}: its metadata is not a JSON object, so "
            "the admin is not recorded on it"
        )
        log.warning("payment %s: %s", paid.id.hex(), note)
        return attrs.evolve(done, problems=(*done.problems, note))
    meta = {**payment_meta(paid), ADMIN_COMPLETION_KEY: admin.to_json()}
    paid = attrs.evolve(paid, metadata=meta)
    await uow.payments.update(paid)
    return attrs.evolve(done, payment=paid)


async def _overpaid(uow: UnitOfWork, done: CompletedPayment, msat: int) -> CompletedPayment:
    """The excess booked as credit in the subscription's currency and kept in the paid row's
    `metadata` (the invoice, the VM's history and the admins read it there)."""
    paid = done.payment
    excess = await credit_excess(uow, paid, done.subscription_before.currency, msat)
    if paid.metadata is not None and not payment_meta(paid):
        note = "its metadata is not a JSON object, so the overpayment is not kept on it"
        done = attrs.evolve(done, problems=(*done.problems, note))
    else:
        paid = attrs.evolve(paid, metadata={**payment_meta(paid), OVERPAID_KEY: excess.to_json()})
        await uow.payments.update(paid)
    log.warning("payment %s: %s", paid.id.hex(), overpaid_text(excess))
    problems = done.problems
    if excess.credited == 0:
        problems = (*problems, f"{overpaid_text(excess)}: nothing could be credited for it")
    return attrs.evolve(done, payment=paid, problems=problems, overpaid=excess)


async def _placing(
    uow: UnitOfWork,
    sub: Subscription,
    payment: SubscriptionPayment,
    vm: Vm,
    now: datetime,
    region: int | None,
) -> Placing:
    """Where this payment puts its VM: where it is (the VM holds its room already, as every
    renewal of a live VM does, or its host takes it again), on another host of its region,
    or nowhere and why (`app.billing.restorable.placing`). Only a VM that holds no room
    today is judged: a deleted one (D24: re-created, if it still can be) and a never-paid
    order paid after its window (D25: its room was freed for others). Judged under the
    region's lock: without it (`region` another), `RegionMoved` asks for the booking to
    start again with that lock taken first.

    The region's IPv4 pool is judged for the payments that start a VM's service, never for
    a renewal (`app.billing.address_room.why_no_address`): a first payment in its window
    without the lock (its order held its address: only a pool shrunk since fails it), a
    late first payment or a revival under the lock, after its room."""
    held = payment.expires > now  # pending until now: it held the room, within the hold
    if not vm.deleted and not await order_lapsed(uow, sub, now, held_until_now=held):
        if sub.in_service or vm.is_provisioned:
            return Placing()  # a renewal of a live VM: its room and address are counted
        return Placing(why=await why_no_address(uow, vm, now))
    await in_locked_region(uow, vm, region)
    placed = await placing(uow, vm, now, deleted=vm.deleted, region=region)
    if placed.why is None and (why := await why_no_address(uow, vm, now)) is not None:
        return Placing(why=why)
    return placed


async def _why_upgrade_unplaced(
    uow: UnitOfWork,
    payment: SubscriptionPayment,
    vm: Vm,
    sub: Subscription,
    now: datetime,
    region: int | None,
) -> UpgradeUnplaced | None:
    """Why this paid Upgrade is not applied to its VM (None: it is): the first reason
    of `paid_upgrade_plan`, which plans it once, else its host has no room for it now. An
    unpaid upgrade invoice holds no room, so the growth is judged again here, under the
    region's lock like `_placing`. A deleted VM's upgrade is never applied: an Upgrade
    revives nothing (D12), so its value becomes credit like any other not applied."""
    if vm.deleted:
        return why_deleted_vm_not_upgraded(vm)
    planned = await paid_upgrade_plan(uow, vm, payment, sub, now)
    if isinstance(planned, UpgradeUnplaced):
        return planned
    await in_locked_region(uow, vm, region)
    return await why_paid_upgrade_does_not_fit(uow, vm, planned, now)


async def _apply(
    uow: UnitOfWork,
    before: Subscription,
    payment: SubscriptionPayment,
    now: datetime,
    region: int | None,
    spaces: frozenset[int] = frozenset(),
    unpaid: int = 0,
    short: int | None = None,
    *,
    unpaid_vat_free: int = 0,
) -> CompletedPayment:
    """The booking's changes after the flip, through the domain's own rules: the payment
    (`mark_paid`), the subscription (`apply_paid_payment`) and its VM (`vm_changed`) move
    only along the lifecycle's transition tables. `unpaid`: the part of the credit the
    payment applied that was released and spent elsewhere before it came (balance units,
    `unpaid_vat_free` of them VAT-free): not counted as paid, so an Upgrade so short is not
    applied. A Purchase or Renewal gives
    its IP-range line items their ranges (`plan_ranges`, under the locks of `spaces`); one
    that cannot is booked as credit, as one whose VM cannot be placed. `short`: the msat an
    admin counts as paid though less than the total arrived
    (`AdminCompletion.short_received_msat`, recorded on the row after this): what a value
    kept as credit is worth."""
    paid = mark_paid(payment, now)
    upgrade = payment.payment_type == SubscriptionPaymentType.UPGRADE
    vm_before = await uow.vms.get_by_subscription(before.id)
    why: str | None = None
    note = ""
    if upgrade and vm_before is not None:
        unplaced = _short_upgrade(payment, unpaid) or await _why_upgrade_unplaced(
            uow, payment, vm_before, before, now, region
        )
        if unplaced is not None and paid_by_credit_alone(payment):
            # no outside money came: nothing is booked (the caller gives the credit back)
            raise unplaced.refused
        if unplaced is not None:  # credited in the subscription's currency, its renewals'
            why, note = unplaced.why, unplaced.payer_note
    elif not upgrade and is_switched_off(before):  # a payment never switches it on again
        why, note = _switched_off_why(before), SWITCHED_OFF_NOTE
    elif not upgrade and (overtaken := claim_overtaken(payment, before)) is not None:
        if credit_alone_claim(payment):
            # an automatic renewal paid from credit alone, its period renewed otherwise
            # since it was stored: nothing is booked (the caller gives the credit back)
            raise RenewalNoLongerDue("The period was renewed meanwhile; no credit was spent")
        # the wallet's payment of a period another renewal bought first: one period is
        # bought once, the second payment for it is account credit (`domain.wallet_claim`)
        why, note = overtaken_why(before, overtaken), OVERTAKEN_NOTE
    elif vm_before is not None:
        placed = await _placing(uow, before, payment, vm_before, now, region)
        why = placed.why
        if placed.moved_to is not None:
            vm_before = await move_vm(uow, vm_before, placed.moved_to, now)
    items = await uow.line_items.list_by_subscription(before.id)
    ranges = RangePlan()
    if not upgrade and why is None:
        held = payment.expires > now  # pending until now: its order's room was held
        ranges = await plan_ranges(
            uow, before, items, now, spaces, paying=payment.id, held_until_now=held
        )
        if ranges.why is not None:  # no block for an IP range: its value becomes credit
            why, note = ranges.why, PAYER_NOTE
    if why is not None and not upgrade and credit_alone_claim(payment):
        # the worker's renewal from credit alone would buy nothing: nothing is booked, and
        # its caller gives the credit back (`settle_covered`), as for an upgrade (no
        # invoice, no credit "added", no "Auto-Renewed" for time it did not buy)
        log.info("payment %s of credit alone not booked: %s", payment.id.hex(), why)
        if vm_before is not None and vm_before.deleted:
            raise VmDeleted("The VM was deleted and cannot be restored; no credit was spent")
        raise CreditBuysNothing("This cannot be provided now; no credit was spent")
    revived = 0 if upgrade or why else await uow.vms.undelete_for_subscription(before.id)
    credit, booked = None, 0
    given: list[IpRangeSubscription] = []
    if why is not None:
        # the money arrived but what it paid for cannot be given (the VM cannot come back, or
        # its host has no room for it or its upgrade): no time, its value as account credit
        after = before
        booked, back, on_balance = await credit_unrestorable(
            uow,
            paid,
            before.currency,  # the one its renewals spend, an upgrade's value too
            why,
            unpaid,
            short_msat=short,
            unpaid_vat_free=unpaid_vat_free,
        )
        credit = unrestorable(now, why, on_balance, note, back)
        paid = with_credit(_taken(paid, unpaid, unpaid_vat_free), credit)
        await uow.payments.update(paid)
    elif upgrade:
        after = apply_paid_payment(before, payment, now)
    else:
        # the price in force NOW, read under the subscription lock: a quote made at another
        # price buys by value, never its old time (D23)
        purchase = payment.payment_type == SubscriptionPaymentType.PURCHASE
        current = await price_in_force_or_none(
            uow, before, purchase=purchase and not before.is_setup
        )
        unpaid_worth = unpaid_charged(payment_meta(payment), unpaid, unpaid_vat_free)
        credit = credit_payment(payment, before, current, now, unpaid_credit=unpaid_worth)
        # capped (or past the calendar): what the time not given was worth is credit
        if credit.uncounted > 0:
            rest = await credit_uncounted(
                uow,
                paid,
                before.currency,
                credit.uncounted,
                credit.cap,
                past_calendar=credit.past_calendar,
            )
            credit = attrs.evolve(credit, rest_credited=rest.text)
        after = apply_paid_payment(before, payment, now, new_expiry=credit.new_expiry)
        paid = with_credit(_taken(paid, unpaid, unpaid_vat_free), credit)
        await uow.payments.update(paid)
        given = await apply_plan(uow, ranges, now)
    if vm_before is not None:
        vm_after = attrs.evolve(vm_before, deleted=vm_before.deleted and not revived)
        vm_changed((vm_before, before), (vm_after, after), now)
    if after != before:
        await uow.subscriptions.update(after)
    claims: list[SubscriptionPayment] = []
    if not upgrade and after.expires != before.expires:  # the wallet's claims lost their period
        claims = await end_claims(uow, before, payment.id, now)
    cancelled: list[SubscriptionPayment] = []
    # a payment that changed nothing leaves the other upgrade quotes valid, unless its VM is
    # deleted: none of them can ever be applied (D13, D24)
    if why is None or (upgrade and vm_before is not None and vm_before.deleted):
        upgrades = PendingOf(before.id, (SubscriptionPaymentType.UPGRADE,), except_id=payment.id)
        cancelled = await uow.payments.expire_pending(upgrades, now)
    rivals: list[SubscriptionPayment] = []
    if payment.payment_type == SubscriptionPaymentType.PURCHASE:
        # the order is paid: another method's Purchase invoice for it must not stay payable,
        # or the setup fee (and the first interval) would be charged twice
        purchases = (SubscriptionPaymentType.PURCHASE,)
        rivals = await uow.payments.expire_pending(
            PendingOf(before.id, purchases, except_id=payment.id), now
        )
    return CompletedPayment(
        payment=paid,
        subscription_before=before,
        subscription=after,
        line_items=items,
        revived_vms=revived,
        cancelled_upgrades=cancelled,
        credit=credit,
        cancelled_purchases=rivals,
        problems=ranges.problems,
        credited=booked,
        ranges_given=tuple(given),
        ended_claims=claims,
    )


def _switched_off_why(sub: Subscription) -> str:
    """For the admins: why a Purchase/Renewal of `sub` bought no time (`domain.switch_off`).
    Its invoice was issued before the switch-off, which expired it (and cancelled it at its
    rail where it could): the payment came anyway, a race or a slow settlement."""
    return (
        f"subscription {sub.id} was switched off by an administrator before this payment "
        "completed; it is not renewed (switch it on again and renew it, if that is wanted)"
    )


#: what the payer of a renewal of a subscription switched off meanwhile is told
SWITCHED_OFF_NOTE = (
    "arrived after the subscription was switched off by an administrator, so it was not "
    "renewed and no time was bought"
)


def _short_upgrade(payment: SubscriptionPayment, unpaid: int) -> UpgradeUnplaced | None:
    """An Upgrade that did not pay its whole quote: part of the credit it applied was given
    back when it lapsed and spent since. Not applied; what it did pay becomes credit."""
    applied = credit_applied(payment_meta(payment))
    if unpaid <= 0 or applied is None:
        return None
    amount, currency = applied
    return UpgradeUnplaced(
        why=(
            f"{unpaid} of the {amount} {currency} of credit it applied was released and spent "
            "before it was paid"
        ),
        payer_note=SHORT_UPGRADE_NOTE,
        refused=CreditChanged(
            "The account credit this upgrade was to use was given back and spent since; "
            "ask for a new quote"
        ),
    )


#: what the payer of an upgrade whose released credit was spent elsewhere is told
SHORT_UPGRADE_NOTE = (
    "arrived after the account credit it was to use had been given back (its invoice had "
    "expired) and spent on something else, so it no longer paid for the whole upgrade. The "
    "upgrade was not applied and your VM keeps its size; ask for a new upgrade quote"
)


def _taken(paid: SubscriptionPayment, unpaid: int, unpaid_vat_free: int) -> SubscriptionPayment:
    """The paid row with the credit it really took (`credit_taken`): its invoice's credit line
    and the service value it shows must not count credit that was never taken."""
    if unpaid <= 0:
        return paid
    meta = credit_taken(payment_meta(paid), unpaid, unpaid_vat_free)
    return attrs.evolve(paid, metadata=meta)


async def complete_payment(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails | None,
    queue: WorkQueue,
    *,
    payment_id: bytes,
    found: SubscriptionPayment | None = None,
    on_booked: Sequence[OnBooked] | None = None,
    subscribers: Sequence[Subscriber] | None = None,
    received_msat: int | None = None,
    by_admin: AdminCompletion | None = None,
) -> CompletionReport:
    """Complete a payment by id (or `found`, the payment as the caller already read it): unknown
    → `PaymentNotFound` (404, D14); already paid (a replayed settlement, a duplicate webhook, a
    concurrent caller won) → `completed` False and nothing else happens; else booked with its
    products' records and `on_booked` (default `DEFAULT_ON_BOOKED`) in one transaction, then
    `PaymentCompleted` published to `subscribers` (default: `default_subscribers`).

    `received_msat`: what the Lightning node says arrived for it (None: not known, e.g. an
    admin's completion). Less than the payment's total → `ShortSettlement` and nothing is
    booked (only amount invoices are issued, so the node must not report it); more → the
    excess becomes account credit in the booking (`book_payment`). `by_admin`: the admin
    completing it by hand, recorded in the booking (`book_payment`)."""
    if found is None:
        found = await _lookup(uow_factory, payment_id)
    elif found.id != payment_id:
        raise ValueError("complete_payment: `found` is another payment than `payment_id`")
    if found is None:
        raise PaymentNotFound("Payment not found")
    if found.is_paid:
        return CompletionReport(payment_id=found.id, completed=False)
    excess = _excess(found, received_msat)
    records = ProductRecords()
    effects = DEFAULT_ON_BOOKED if on_booked is None else on_booked
    done = await book_payment(uow_factory, found, clock, [records, *effects], excess, by_admin)
    if done is None:
        return CompletionReport(payment_id=found.id, completed=False)
    event = PaymentCompleted(
        payment=done.payment,
        subscription=done.subscription,
        paid_vm_ids=tuple(records.paid_vm_ids),
        upgrades=tuple(records.upgrades),
        expired_payments=(
            *done.cancelled_upgrades,
            *done.cancelled_purchases,
            *records.stale,
            *done.ended_claims,
        ),
        credit=done.credit,
    )
    chosen = default_subscribers(rails, queue) if subscribers is None else subscribers
    problems = [*done.problems, *records.problems]
    reactions = await publish(event, chosen, Reactions(problems=problems))
    return CompletionReport(
        payment_id=found.id,
        completed=True,
        jobs=tuple(reactions.jobs),
        cancelled=tuple(reactions.cancelled),
        problems=tuple(reactions.problems),
        event=event,
    )


def _excess(payment: SubscriptionPayment, received_msat: int | None) -> int:
    """The msat received beyond what a Lightning payment's invoice asked (0: exact, or not
    known). The invoice asks whole sats, at least one; a payment stored before its total
    was the invoice's amount (up to 999 msat under it, see `PaymentRails`) is measured
    against its invoice too, so paying it exactly is no overpayment."""
    if received_msat is None or payment.currency.upper() != Currency.BTC.value:
        return 0
    if received_msat < payment.total:
        raise ShortSettlement(
            f"Payment {payment.id.hex()}: the Lightning node reports {received_msat} msat "
            f"received, less than its total of {payment.total} msat; it was not completed"
        )
    invoiced = lightning_invoice_msat(payment.total)
    return max(0, received_msat - invoiced)


async def complete_card_payment(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    queue: WorkQueue,
    *,
    method: PaymentMethod,
    external_id: str,
    on_booked: Sequence[OnBooked] | None = None,
) -> CompletionReport | None:
    """A signed card webhook's completion (§7.5): the payment `external_id` names
    (`order_payment`: its order, or a Stripe PaymentIntent resolved to its Checkout Session);
    none of ours, or one of another payment method than the webhook's → `PaymentNotFound`
    (D14); then the provider's own word on the order decides, as the reference's
    `try_complete`: an order it does not call paid changes nothing (None). Without that rail
    here, the signature alone decides (logged). An unpaid order whose quote lapsed more than
    `COMPLETE_WITHIN` ago is not booked (`old_order_refused`), as the lapsed-order sweep
    refuses it. Two transactions: the lookup, then the booking. An order an admin had
    completed by hand is reported to the admins once, nothing credited
    (`card_paid_after_admin`)."""
    payment = await order_payment(uow_factory, rails, method, external_id)
    if payment is None:
        raise PaymentNotFound("Payment not found")
    order_id = payment.external_id or external_id
    confirmed = await rails.provider_says_paid(method, order_id)
    if confirmed is False:
        log.warning("%s order %r is not paid at the provider", method.display_name, order_id)
        return None
    if confirmed is None:
        log.warning(
            "%s order %r completed on its webhook signature alone (no rail here)",
            method.display_name,
            order_id,
        )
    if await old_order_refused(uow_factory, clock, queue, payment):
        return None
    report = await complete_payment(
        uow_factory, clock, rails, queue, payment_id=payment.id, found=payment, on_booked=on_booked
    )
    if not report.completed:  # paid already: by this order's webhook, or by an admin
        await card_paid_after_admin(uow_factory, queue, method, order_id)
    return report
