"""VM upgrades: quote (D7, D8), the Upgrade payment, and applying a paid upgrade (§8, §11)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from app.billing.catalogue import (
    VmPrice,
    charging_for,
    owned_vm,
    subscription_of,
    vm_price,
)
from app.billing.credit_quote import Settle, apply_balance, is_covered, issue
from app.billing.errors import (
    NoRoomToUpgrade,
    NothingToUpgrade,
    OfferUnavailable,
    PriceChanged,
    TemplateNotFound,
    UpgradeNoLongerPossible,
    UpgradeOfSharedSubscription,
    UpgradeQuoteOutdated,
    UpgradeRepriced,
    UpgradeWouldRebill,
)
from app.billing.persist import Locked, UnderLock, refuse_over_cap
from app.billing.placement import has_room_to_grow
from app.billing.price_in_force import expire_stale_quotes, fresh_rates
from app.billing.rails import PaymentRails, PricedPayment
from domain.credit import MAX_LIVE_QUOTES, payment_meta
from domain.enums import (
    PaymentMethod,
    SubscriptionPaymentType,
    SubscriptionType,
    VmHistoryActionType,
)
from domain.errors import DomainError
from domain.exchange import RateTable
from domain.intervals import MONTHLY
from domain.lifecycle import subscription_changed
from domain.model import (
    CustomPricing,
    CustomPricingDisk,
    CustomTemplate,
    LineItem,
    Subscription,
    SubscriptionPayment,
    Vm,
    VmHistory,
    vm_event,
)
from domain.money import Money
from domain.price_basis import RATES_KEY, rates_json
from domain.pricing import custom_price
from domain.switch_off import UPGRADE_REFUSED, refuse_switched_off
from domain.tax import CREDIT_TAX_RATE_KEY, NO_TAX, REVERSE_CHARGE_KEY, TaxRates
from domain.upgrade import (
    QUOTED_EXPIRY_KEY,
    UpgradeConfig,
    UpgradeQuote,
    VmDeleted,
    build_upgrade_spec,
    check_no_downgrade,
    check_upgrade_limits,
    check_whole_gib,
    choose_upgrade_pricing,
    quote_outdated,
    quoted_for,
    upgrade_quote,
)
from domain.upgrade_prices import QUOTED_PRICES_KEY, UpgradePrices, quote_repriced
from ports.clock import Clock
from ports.rates import RateStore
from ports.storage import UnitOfWork, UnitOfWorkFactory


@attrs.frozen(kw_only=True)
class UpgradePlan:
    """Where an upgrade leads: the target custom spec, its pricing and its monthly price."""

    current: VmPrice
    pricing: CustomPricing
    disks: tuple[CustomPricingDisk, ...]
    target: CustomTemplate
    new_price: Money
    #: the subscription's line items as the plan read them (ascending id)
    items: tuple[LineItem, ...]

    @property
    def prices(self) -> UpgradePrices:
        """The list prices its charge is computed from (stored with its quote)."""
        return UpgradePrices(
            old=self.current.list_price, old_interval=self.current.interval, new=self.new_price
        )


async def _plan(
    uow: UnitOfWork, vm: Vm, sub: Subscription, cfg: UpgradeConfig, now: datetime
) -> UpgradePlan:
    """The target spec of an upgrade of `vm` (billed by `sub`) at `now`, judged before
    anything is charged.

    A downgrade is refused here (D8), as is a changed value outside the pricing's limits
    (D21), a request that changes nothing, a custom VM's growth on a pricing no longer on
    sale (`_refuse_withdrawn`), and an upgrade the subscription's other line items would
    make charge wrongly (`_refuse_shared_billing`). A standard VM moves to the first
    enabled, CPU-compatible custom pricing of its region with its disk type and interface
    (R11.1); the same choice is used when the paid upgrade is applied, so the buyer gets
    what was quoted (the reference's provisioner skipped the CPU match).
    """
    current = await vm_price(uow, vm)
    check_no_downgrade(current.spec, cfg)
    if current.template is not None:
        candidates = await uow.custom_pricing.list_by_region(current.template.region_id)
        disks: list[CustomPricingDisk] = []
        for candidate in candidates:
            disks += await uow.custom_pricing.list_disks(candidate.id)
        pricing = choose_upgrade_pricing(current.template, candidates, disks)
        disks = [d for d in disks if d.pricing_id == pricing.id]
    else:
        assert current.pricing is not None
        pricing, disks = current.pricing, list(current.disks)
    target = build_upgrade_spec(current.spec, cfg, pricing)
    spec = current.spec
    if (target.cpu, target.memory, target.disk_size) == (spec.cpu, spec.memory, spec.disk_size):
        raise NothingToUpgrade("The upgrade changes nothing")
    if current.template is None:  # after "nothing": an applied upgrade's replay stays a no-op
        _refuse_withdrawn(pricing, now)
    check_upgrade_limits(target, cfg, pricing, disks)
    items = tuple(await uow.line_items.list_by_subscription(sub.id))
    _refuse_shared_billing(_others(items, vm), current)
    ips = await uow.ip_assignments.list_by_vm(vm.id)
    return UpgradePlan(
        current=current,
        pricing=pricing,
        disks=tuple(disks),
        target=target,
        new_price=custom_price(target, pricing, disks, ips).total,
        items=items,
    )


def _refuse_withdrawn(pricing: CustomPricing, now: datetime) -> None:
    """Refuse growing a custom VM on its pricing (`OfferUnavailable`, 422) once the operator
    disabled it or it expired: growth is a sale at its rates, which a new order on it is
    refused (the reference's R11.2 does not check). Judged when quoted, so no invoice is
    made; one quoted before and paid after is not applied and becomes credit
    (`_cannot_be_made`). The VM itself keeps renewing on it."""
    if not pricing.enabled:
        why = "was disabled"
    elif pricing.expires is not None and pricing.expires < now:
        why = "has expired"
    else:
        return
    raise OfferUnavailable(
        f"This VM's custom pricing {why} and sells no upgrades any more; ask the operator"
    )


def _refuse_shared_billing(others: Sequence[LineItem], current: VmPrice) -> None:
    """Refuse an upgrade of a VM (priced `current`) that the other line items of its
    subscription (`others`) would make charge wrongly (422; the operator can move the
    items apart).

    Another VM on the subscription (`UpgradeOfSharedSubscription`): an Upgrade is paid and
    booked per subscription, judged against its lowest-id VM and applied to every VM it
    bills, so one upgrade paid would grow each of them (or be judged on the wrong one).

    A standard VM billed per an interval other than a month (`current.interval`, its plan's:
    the one a renewal prices the whole subscription by) moves to monthly custom pricing,
    and its subscription with it (`UpgradeWouldRebill`), while the subscription bills an
    item with a recurring amount: that amount is per interval, so billed monthly an IP
    range at EUR 6.00 a year would cost EUR 6.00 a month. Rescaling it is not exact in
    general (601 cents a year is no whole number of cents a month, a day no fixed part of
    a month), so the upgrade is refused instead, never silently re-billed. An item of
    amount 0 costs nothing per any interval and does not count; nor does a setup amount
    (charged once, with the first payment). A VM already billed monthly changes no
    interval and is upgraded; its subscription keeps its currency then (`upgrade_in`).

    Judged when quoted and again when a paid one is applied: one that can no longer be
    made becomes credit (`_cannot_be_made`)."""
    vms = [item for item in others if item.subscription_type is SubscriptionType.VPS]
    if vms:
        raise UpgradeOfSharedSubscription(
            f"This VM's subscription also bills {len(vms)} other VM(s); an upgrade paid for "
            "it would be applied to each of them, so it is refused: ask the operator"
        )
    interval = current.interval
    if current.template is None or interval == MONTHLY:
        return
    billed = [item for item in others if item.amount > 0]
    if billed:
        raise UpgradeWouldRebill(
            f"This VM's subscription also bills {len(billed)} other item(s) per "
            f"{interval.text}; the upgrade would bill them monthly, so it is refused: ask "
            "the operator"
        )


def _others(items: Sequence[LineItem], vm: Vm) -> list[LineItem]:
    """The line items of `items` other than `vm`'s own."""
    return [item for item in items if item.id != vm.subscription_line_item_id]


def _terms(items: Sequence[LineItem]) -> list[tuple[int, SubscriptionType, int]]:
    """What of a subscription's line items an upgrade is judged by (`_refuse_shared_billing`):
    which items, of which kind, at which amount."""
    return [(item.id, item.subscription_type, item.amount) for item in items]


def _same_items(seen: Sequence[LineItem]) -> UnderLock:
    """Refuse storing an upgrade quote (`PriceChanged`, 409) when the subscription's line
    items, read under its lock, differ from what the quote was judged by (`seen`): an edit
    of them committed while its invoice was made, and the sweep that ends upgrade quotes
    at such an edit could not see this one yet (`update_line_item`)."""

    async def check(at: Locked) -> None:
        items = await at.uow.line_items.list_by_subscription(at.payment.subscription_id)
        if _terms(items) != _terms(seen):
            raise PriceChanged(
                "The subscription's line items changed while the invoice was made; please ask again"
            )

    return UnderLock(check)


def _still_as_quoted(vm_id: int, cfg: UpgradeConfig) -> UnderLock:
    """Refuse storing an upgrade quote that is outdated already (409, "quote again"; nothing
    stored, its new invoice or order cancelled): read under the subscription's lock, the
    VM was deleted meanwhile (`UpgradeNoLongerPossible`), the subscription now expires at
    another second than the quote was pro-rated to (`UpgradeQuoteOutdated`: a renewal or
    a stranger's LNURL payment completed while the rail made the invoice), the upgrade
    can no longer be planned (`UpgradeNoLongerPossible`: its pricing withdrawn, the VM
    grown by another upgrade paid meanwhile), or its charge at the prices in force is
    another amount (`UpgradeRepriced`, judged as the booking judges it: `quote_repriced`).

    What ended pending upgrade quotes on such a change (a renewal's D13 sweep, a
    re-pricing's or a deletion's) ran before this row existed; stored, it would be handed
    out payable, and paid it would not be applied but credited. Deleting a VM and
    completing a payment take this lock first, so what they committed is seen here."""

    async def check(at: Locked) -> None:
        meta = payment_meta(at.payment)
        vm = await at.uow.vms.get(vm_id)
        if at.sub is None or vm is None or vm.deleted:
            raise UpgradeNoLongerPossible(
                "The VM was deleted while the upgrade's invoice was made; it cannot be upgraded"
            )
        if quote_outdated(meta, at.sub.expires) is not None:
            raise UpgradeQuoteOutdated(
                "The subscription's expiry changed while the upgrade's invoice was made; "
                "quote again"
            )
        try:
            plan = await _plan(at.uow, vm, at.sub, cfg, at.now)
        except DomainError as err:
            raise UpgradeNoLongerPossible(
                f"This upgrade can no longer be made ({err.message}); quote again"
            ) from None
        method, created = at.payment.payment_method, at.payment.created
        if quote_repriced(meta, plan.prices, method, created) is not None:
            raise UpgradeRepriced(
                "The upgrade's prices changed while its invoice was made; quote again"
            )

    return UnderLock(check)


async def _quote(
    uow: UnitOfWork,
    vm: Vm,
    sub: Subscription,
    cfg: UpgradeConfig,
    method: PaymentMethod,
    rates: RateTable,
    now: datetime,
) -> tuple[UpgradeQuote, UpgradePlan]:
    """The quote of upgrading `vm` (of subscription `sub`) to `cfg`, and its plan; refused,
    among others, for a subscription without an expiry (`upgrade_quote`) and, first, for one
    an admin switched off (`SubscriptionSwitchedOff`, 422): before any rail is asked, so
    no invoice or order is made only to be cancelled when it is stored. A paid upgrade of
    one quoted before the switch-off is still applied (`paid_upgrade_plan` plans it)."""
    refuse_switched_off(sub, UPGRADE_REFUSED)
    plan = await _plan(uow, vm, sub, cfg, now)
    check_whole_gib(cfg)  # new requests only: a paid upgrade is applied as it was quoted
    prices = plan.prices
    quote = upgrade_quote(
        prices.old,
        prices.old_interval,
        prices.new,
        sub.expires,
        now,
        method,
        rates,
        deleted=vm.deleted,
    )
    # last: a VM that cannot be upgraded at all says why, not that its host is full
    if not await _fits(uow, vm, plan, now):
        raise NoRoomToUpgrade("The VM's host has no room for this upgrade")
    return quote, plan


async def _fits(uow: UnitOfWork, vm: Vm, plan: UpgradePlan, now: datetime) -> bool:
    """Whether the VM's host and disk can take it growing to the plan's target beside what
    they hold now; a deleted VM is not judged (it holds no room until a payment restores it)."""
    return vm.deleted or await has_room_to_grow(uow, vm, plan.current.spec, plan.target, now)


@attrs.frozen
class UpgradeUnplaced:
    """Why a paid upgrade is not applied: for the admins (`why`) and in plain words for its
    payer (`payer_note`), and the error a quote paid from account credit alone answers
    instead of being booked (`refused`). Its value is credited in its subscription's
    currency, whatever currency it was priced in (`app.billing.completion`)."""

    why: str
    payer_note: str
    refused: DomainError = attrs.field(eq=False)


async def paid_upgrade_plan(
    uow: UnitOfWork, vm: Vm, payment: SubscriptionPayment, sub: Subscription, now: datetime
) -> UpgradePlan | UpgradeUnplaced:
    """The plan a paid Upgrade of a live VM is applied by, planned once, or the first reason
    it is not applied, in this order: it can no longer be made, its quote is outdated, or it
    is repriced (each reason's function below says why). Whether it still fits its host is
    judged after, under the region lock (`why_paid_upgrade_does_not_fit`). A deleted VM is
    not planned: its upgrade is not applied (`why_deleted_vm_not_upgraded`)."""
    try:
        plan = await _plan(uow, vm, sub, UpgradeConfig.from_json(payment.metadata), now)
    except DomainError as err:
        return _cannot_be_made(vm, err)
    return _outdated(vm, payment, sub, plan) or _repriced(vm, payment, plan) or plan


def _cannot_be_made(vm: Vm, err: DomainError) -> UpgradeUnplaced:
    """A paid Upgrade that cannot be applied at all any more (`err`, from planning it): its
    pricing was disabled (or, a custom VM's, expired) or lost the disk it needs, its VM was
    grown past it by another upgrade paid first (now a downgrade, D8) or to it (nothing left
    to do), or its config cannot be read. Such a payment is booked, not applied, and its
    value becomes credit like the other reasons here: a refusal raised from the booking
    would roll the booking back at every retry, and with it the settlement intake behind it
    (every later payment of every user waiting on this one)."""
    return UpgradeUnplaced(
        why=f"the upgrade of VM {vm.id} can no longer be made: {err.message}",
        payer_note=IMPOSSIBLE_UPGRADE_NOTE,
        refused=UpgradeNoLongerPossible(
            f"This upgrade can no longer be made ({err.message}); quote again"
        ),
    )


#: what the payer of an upgrade that can no longer be made is told
IMPOSSIBLE_UPGRADE_NOTE = (
    "arrived when the upgrade you asked for could no longer be made as quoted (its pricing "
    "was changed or withdrawn, or your VM was changed by another upgrade first). The "
    "upgrade was not applied and your VM keeps its size; ask for a new upgrade quote"
)


def _outdated(
    vm: Vm, payment: SubscriptionPayment, sub: Subscription, plan: UpgradePlan
) -> UpgradeUnplaced | None:
    """Why a paid Upgrade is not applied because its price no longer fits the subscription
    (None: it does, or there is nothing to judge): it was pro-rated to the expiry of its
    quote, and the subscription now expires at another time (a renewal paid meanwhile, D13's
    cancel of the upgrade invoice being too late)."""
    quoted = quote_outdated(payment_meta(payment), sub.expires)
    if quoted is None:
        return None
    now_expires = "none" if sub.expires is None else sub.expires.isoformat()
    return UpgradeUnplaced(
        why=(
            f"the upgrade of VM {vm.id} was priced to the expiry {quoted.isoformat()}, and "
            f"the subscription now expires {now_expires}"
        ),
        payer_note=OUTDATED_UPGRADE_NOTE,
        refused=UpgradeQuoteOutdated(
            "The subscription's expiry changed since the upgrade was quoted; quote again"
        ),
    )


#: what the payer of an upgrade paid after its subscription's expiry moved is told
OUTDATED_UPGRADE_NOTE = (
    "arrived after the subscription's expiry had changed (a renewal was paid after the "
    "upgrade was quoted), so it no longer pays for the upgrade up to the new expiry. The "
    "upgrade was not applied and your VM keeps its size; ask for a new upgrade quote"
)


def _repriced(vm: Vm, payment: SubscriptionPayment, plan: UpgradePlan) -> UpgradeUnplaced | None:
    """Why a paid Upgrade is not applied because it would now be charged another amount
    (None: the same, or there is nothing to judge): a price it was computed from changed
    since its quote (its VM's plan, template or custom pricing, or the pricing it grows
    into, re-priced; the pricing chosen for it or its VM's addresses changed), and the
    re-pricing's cancel of its invoice came too late (D23). The charge is computed again at
    the quote's moment, expiry and rates with the prices in force (`quote_repriced`), so
    only a price change can make it differ. A payment that did not store its prices (an
    older quote) is not judged."""
    meta = payment_meta(payment)
    if QUOTED_PRICES_KEY not in meta:
        return None
    in_force = plan.prices
    quoted = quote_repriced(meta, in_force, payment.payment_method, payment.created)
    if quoted is None:
        return None
    return UpgradeUnplaced(
        why=(
            f"the upgrade of VM {vm.id} was quoted at {_prices_text(quoted)}, and the prices "
            f"in force are {_prices_text(in_force)}, which charge another amount"
        ),
        payer_note=REPRICED_UPGRADE_NOTE,
        refused=UpgradeRepriced(
            "The price of this upgrade changed since it was quoted; quote again"
        ),
    )


def _prices_text(prices: UpgradePrices) -> str:
    return (
        f"{prices.old} per {prices.old_interval.text} as it is and {prices.new} per month upgraded"
    )


#: what the payer of an upgrade paid after a price it was computed from changed is told
REPRICED_UPGRADE_NOTE = (
    "arrived after the prices of the upgrade you asked for had changed (a price was changed "
    "after your quote), so it no longer pays the upgrade's cost at the prices in force. The "
    "upgrade was not applied and your VM keeps its size; ask for a new upgrade quote"
)


async def why_paid_upgrade_does_not_fit(
    uow: UnitOfWork, vm: Vm, plan: UpgradePlan, now: datetime
) -> UpgradeUnplaced | None:
    """Why a paid Upgrade (planned by `paid_upgrade_plan`) can no longer grow its VM on its
    host (None: it fits). Judged again in the booking because an unpaid upgrade invoice holds
    no room: two quoted at once for VMs of one host, or an order placed meanwhile, may not
    both fit once paid. The caller holds the host's region lock, as orders do."""
    if await _fits(uow, vm, plan, now):
        return None
    return UpgradeUnplaced(
        why=f"host {vm.host_id} has no room left for the upgrade of VM {vm.id}",
        payer_note=NO_ROOM_UPGRADE_NOTE,
        refused=NoRoomToUpgrade("The VM's host has no room left for this upgrade"),
    )


def why_deleted_vm_not_upgraded(vm: Vm) -> UpgradeUnplaced:
    """Why a paid Upgrade of a deleted VM is not applied: deleting it expired the upgrade's
    invoice (D24), but a settlement, a card capture or an admin's completion may still come.
    An Upgrade revives nothing (D12), so what it paid for cannot be given: like every other
    upgrade not applied, its value becomes credit in its subscription's currency."""
    return UpgradeUnplaced(
        why=f"VM {vm.id} was deleted before its upgrade was paid",
        payer_note=DELETED_VM_UPGRADE_NOTE,
        refused=VmDeleted("Can't upgrade deleted VM"),  # what its quote answers now
    )


#: what the payer of an upgrade of a VM deleted before it was paid is told
DELETED_VM_UPGRADE_NOTE = (
    "arrived after the VM it was to upgrade had been deleted. Paying an upgrade does not "
    "bring a deleted VM back, so the upgrade was not applied"
)


#: what the payer of an upgrade its VM's host no longer has room for is told
NO_ROOM_UPGRADE_NOTE = (
    "arrived when its VM's host no longer had room for the upgrade you asked for (another "
    "order or upgrade took it first). The upgrade was not applied and your VM keeps its size"
)


async def quote_upgrade(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rates: RateStore,
    *,
    user_id: int | None,
    vm_id: int,
    cfg: UpgradeConfig,
    method: PaymentMethod = PaymentMethod.LIGHTNING,
) -> UpgradeQuote:
    """What upgrading the VM to `cfg` costs now (§8.1 with D7 calendar pro-rating and D8).

    Refused for another user's VM (not found), a subscription an admin switched off
    (before anything else), a deleted, never-paid or expired VM, a downgrade, a spec outside
    the pricing's limits, a request that changes nothing, one the subscription's other line
    items would make charge wrongly (`_refuse_shared_billing`), or a growth the VM's host
    has no room for (`NoRoomToUpgrade`, 422; a deleted VM is not judged: it holds no room
    until a payment restores it). The room is judged as held now: an unpaid upgrade invoice
    holds none, so the booking judges it again under the region lock
    (`why_paid_upgrade_does_not_fit`): one that no longer fits is not applied and its
    payment becomes account credit.
    """
    now = clock.now()
    async with uow_factory() as uow:
        vm = await owned_vm(uow, vm_id, user_id, allow_deleted=True)
        sub = await subscription_of(uow, vm)
        quote, _ = await _quote(uow, vm, sub, cfg, method, await rates.table(), now)
    return quote


async def create_upgrade_payment(
    uow_factory: UnitOfWorkFactory,
    clock: Clock,
    rails: PaymentRails,
    rates: RateStore,
    *,
    user_id: int | None,
    vm_id: int,
    cfg: UpgradeConfig,
    method: PaymentMethod = PaymentMethod.LIGHTNING,
    settle: Settle | None = None,
    tax_rates: TaxRates | None = None,
    max_live_quotes: int = MAX_LIVE_QUOTES,
) -> SubscriptionPayment:
    """A new Upgrade payment for the quoted amount (§8.2): never reused (D10), no tax, no fee,
    `time_value = 0` (paying changes no expiry, D12) and `metadata` = the UpgradeConfig JSON.
    The VM is not touched until the payment completes. With `settle` the user's credit
    balance pays first (`app.billing.credit_quote`); an upgrade it covers wholly is
    completed at once.

    With `tax_rates` the quote records the buyer's rate for taxed supplies as a renewal
    would charge it (`CREDIT_TAX_RATE_KEY`; 0 under reverse charge or in an untaxed
    country), for the record: a Lightning excess on it is kept whole as VAT-free credit
    (`app.billing.credit_overpayment.credit_excess`), whose VAT the taxed supply it pays
    declares, so no excess bears this rate any more (it once did). It records no `tax_rate`:
    the upgrade charges none.

    Each one counts in the subscription's live-quote cap: one more is refused
    (`TooManyOpenQuotes`, 422) while the subscription holds `max_live_quotes` live quotes,
    renewals included, before the rail is asked and again under the lock when it is stored
    (one the balance covers wholly asks no rail and is not refused).

    Refused as `quote_upgrade` is, before any rail is asked (a switched-off subscription
    included); and when it is stored, its new invoice or order cancelled, if the
    subscription's line items changed since they were judged (`_same_items`, 409), or the
    quote is outdated already (`_still_as_quoted`, 409: the VM deleted, the expiry moved,
    the upgrade no longer possible or re-priced meanwhile).
    """
    rails.refuse_lightning(method)  # Lightning off: refused before anything is read
    now = clock.now()
    async with uow_factory() as uow:
        vm = await owned_vm(uow, vm_id, user_id, allow_deleted=True)
        sub = await subscription_of(uow, vm)
        rails.refuse_bitcoin_price(sub.currency)  # Lightning off: BTC cannot be charged
        table = await rates.table()
        quote, plan = await _quote(uow, vm, sub, cfg, method, table, now)
        assert sub.expires is not None  # `upgrade_quote` refused a subscription without one
        # how a renewal would charge this buyer: the upgrade itself charges no tax
        charging = await charging_for(
            uow,
            method=method,
            rates=table,
            tax_rates=tax_rates or NO_TAX,
            user_id=sub.user_id,
            company_id=sub.company_id,
        )
        credit_rate = {} if tax_rates is None else {CREDIT_TAX_RATE_KEY: str(charging.tax_rate)}
        priced = PricedPayment(
            subscription_id=sub.id,
            user_id=vm.user_id,
            method=method,
            payment_type=SubscriptionPaymentType.UPGRADE,
            amount=quote.upgrade.money.amount,
            currency=quote.upgrade.money.currency,
            rate=quote.upgrade.rate,
            tax=0,
            processing_fee=0,
            time_value=0,
            # the expiry its price runs to and the prices it was computed from (a booking at
            # another expiry, or at prices that charge another amount, does not apply it) and
            # the rates it saw, for credit and invoices in any currency (its `rate` is for
            # the new pricing's currency only)
            metadata={
                **_config_json(cfg),
                QUOTED_EXPIRY_KEY: quoted_for(sub.expires),
                QUOTED_PRICES_KEY: plan.prices.to_json(),
                RATES_KEY: rates_json(fresh_rates(table, now)),
                # no tax either way; the invoice states reverse charge as quoted
                REVERSE_CHARGE_KEY: charging.reverse_charge,
                **credit_rate,
            },
            memo=f"VM upgrade {vm.id}",
            withdrawn=charging.withdrawn,
        )
        if settle is not None:  # the account balance pays first (issue 13), in the currency
            # the upgrade is priced in (the quote's rate is for it; the plan's may differ)
            priced = await apply_balance(uow, priced, plan.new_price.currency.value)
        if not (settle is not None and is_covered(priced)):  # no rail asked: no cap
            await refuse_over_cap(uow, sub.id, now, max_live_quotes)
    return await issue(
        uow_factory,
        rails,
        priced,
        now,
        settle,
        reuse=None,
        idem=None,
        cap=max_live_quotes,
        checks=[_same_items(plan.items), _still_as_quoted(vm.id, cfg)],
    )


@attrs.frozen(kw_only=True)
class AppliedUpgrade:
    """The ConfigurationChanged entry of an applied upgrade and the renewal quotes it made
    stale: expired in the same transaction, to be cancelled at their provider (D23)."""

    entry: VmHistory
    expired: list[SubscriptionPayment]


def _config_json(cfg: UpgradeConfig) -> dict[str, Any]:
    return {"new_cpu": cfg.new_cpu, "new_memory": cfg.new_memory, "new_disk": cfg.new_disk}


def _specs(spec: CustomTemplate | Any) -> dict[str, int]:
    return {"cpu": spec.cpu, "memory": spec.memory, "disk_size": spec.disk_size}


async def apply_upgrade(
    uow_factory: UnitOfWorkFactory, clock: Clock, *, vm_id: int, cfg: UpgradeConfig
) -> VmHistory | None:
    """Apply a paid upgrade to the VM's records in one transaction (§8.4 step 1, §8.5).

    A custom VM gets its custom template updated; a standard VM is converted: a new custom
    template, the VM switched to it, the subscription billed 1 × Month in the pricing's
    currency (the reference kept the plan's, which then disagreed with the price; one that
    bills other line items keeps its own, theirs: `_currency_after`), the line
    item's amount = the new monthly price and its configuration = the UpgradeConfig JSON.
    The line item amount follows the new spec in both cases. Downgrades are refused (D8 again: the
    config could be stale). Running it again with the same config changes nothing and
    returns None, so a redelivered job or a second caller is harmless; otherwise the
    ConfigurationChanged history entry is returned. The host is not touched here.

    The VM's new price makes every pending renewal quote stale: they are expired here (D23);
    this caller has no rails, so they are not cancelled at their provider (completion's
    own call does that); one paid anyway is credited by value.
    """
    applied = await upgrade_records(uow_factory, clock.now(), vm_id=vm_id, cfg=cfg)
    return None if applied is None else applied.entry


async def upgrade_records(
    uow_factory: UnitOfWorkFactory, now: datetime, *, vm_id: int, cfg: UpgradeConfig
) -> AppliedUpgrade | None:
    """`apply_upgrade` at a given moment, for callers that already read the clock; also
    returns the pending Purchase/Renewal payments it expired (their price just changed)."""
    async with uow_factory() as uow:  # which subscription: read before its lock is taken
        found = await subscription_of(uow, await owned_vm(uow, vm_id, None, allow_deleted=True))
    async with uow_factory() as uow:
        # the subscription lock first (as completion takes it), as the transaction's first
        # statement: on MariaDB the first plain read fixes the snapshot, so the VM, its
        # templates and line item read after it are what a booking of the same upgrade (a
        # second delivery of the job) committed while this waited, and it is not applied twice
        # nor the VM's row written back as it was before (review r5)
        sub = await uow.subscriptions.get_for_update(found.id) or found
        vm = await owned_vm(uow, vm_id, None, allow_deleted=True)
        applied = await upgrade_in(uow, sub, vm, cfg, now)
        if applied is None:
            return None
        await uow.commit()
    return applied


async def upgrade_in(
    uow: UnitOfWork, sub: Subscription, vm: Vm, cfg: UpgradeConfig, now: datetime
) -> AppliedUpgrade | None:
    """Apply a paid upgrade to the VM's records inside the caller's transaction, which
    holds `sub`'s lock already (completion's booking transaction, or `upgrade_records`).

    None when the config is applied already (nothing to upgrade): so a booked upgrade is
    applied once, however often this runs. An applied upgrade marks the VM
    `resize_requested` in the same transaction, so a resize job lost after the commit is
    sent again by the worker's VM check. Nothing is committed here.
    """
    try:
        plan = await _plan(uow, vm, sub, cfg, now)
    except NothingToUpgrade:
        return None
    item = await uow.line_items.get(vm.subscription_line_item_id)
    if item is None:
        raise TemplateNotFound("VM line item not found")
    before = plan.current.spec
    if plan.current.template is not None:
        stored = await uow.custom_templates.add(plan.target)
        after = attrs.evolve(vm, template_id=None, custom_template_id=stored.id)
        await uow.vms.update(after)
        monthly = attrs.evolve(
            sub,
            interval_amount=MONTHLY.amount,
            interval_type=MONTHLY.unit,
            currency=_currency_after(vm, sub, plan),
        )
        await uow.subscriptions.update(subscription_changed(sub, monthly, now))
        configuration: Any = _config_json(cfg)
        metadata: dict[str, Any] = {
            "upgrade_type": "standard_to_custom_conversion",
            "changes": {"cpu": cfg.new_cpu, "memory": cfg.new_memory, "disk": cfg.new_disk},
            "converted_from_template_id": vm.template_id,
            "new_custom_template_id": stored.id,
        }
    else:
        await uow.custom_templates.update(plan.target)
        after, configuration = vm, item.configuration
        metadata = {
            "upgrade_type": "custom_template_update",
            "old_specs": _specs(before),
            "new_specs": _specs(plan.target),
        }
    await uow.line_items.update(
        attrs.evolve(item, amount=plan.new_price.amount, configuration=configuration)
    )
    # with the records: the host owes the new size until the worker resizes it (vmcheck)
    await uow.vms.request_resize(vm.id, now)
    entry = await uow.vm_history.add(
        vm_event(
            vm.id,
            VmHistoryActionType.CONFIGURATION_CHANGED,
            now,
            f"VM {vm.id} configuration was changed",
            before=_vm_fields(vm),
            after=_vm_fields(after),
            metadata=metadata,
        )
    )
    expired = await expire_stale_quotes(uow, sub.id, now)
    return AppliedUpgrade(entry=entry, expired=expired)


def _currency_after(vm: Vm, sub: Subscription, plan: UpgradePlan) -> str:
    """The currency of a subscription whose standard VM was converted to custom pricing: the
    pricing's, unless the subscription bills other line items, whose amounts are in its
    currency and stay so (relabelling EUR 6.00 as USD 6.00 would re-bill them); renewals
    then convert them into the VM's price currency at the quote's rates (`quotes`).

    So too while it owes a setup fee (not set up: a migrated VM given time without a paid
    payment, D18), the VM's own included: a fee is a number in the subscription's currency,
    and EUR 5.00 read as USD 5.00 would be charged short at the next Purchase."""
    owed = not sub.is_setup and any(item.setup_amount > 0 for item in plan.items)
    if _others(plan.items, vm) or owed:
        return sub.currency
    return plan.new_price.currency.value


def _vm_fields(vm: Vm) -> dict[str, Any]:
    return {"template_id": vm.template_id, "custom_template_id": vm.custom_template_id}
