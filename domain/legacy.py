"""Pure rules mapping per-VM legacy billing onto subscriptions (legacy_migration.md §4–6, D18)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import attrs

from domain.enums import (
    IntervalType,
    LegacyPaymentType,
    PaymentMethod,
    SubscriptionPaymentType,
    SubscriptionType,
)
from domain.errors import DomainError, InvalidInterval
from domain.intervals import checked_interval, require_utc
from domain.upgrade import LEGACY_UPGRADE_PARAMS_KEY


class LegacyDataError(DomainError):
    """A legacy row the migration cannot map; it is reported, never silently dropped (D18)."""


class InvalidUpgradeParams(LegacyDataError):
    """`vm_payment.upgrade_params` is not valid JSON or not the upgrade shape (R3, D18)."""


#: legacy 0 Renewal → 1 Renewal, legacy 1 Upgrade → 2 Upgrade; never 0 Purchase (§5.2).
PAYMENT_TYPE_MAP: Mapping[LegacyPaymentType, SubscriptionPaymentType] = {
    LegacyPaymentType.RENEWAL: SubscriptionPaymentType.RENEWAL,
    LegacyPaymentType.UPGRADE: SubscriptionPaymentType.UPGRADE,
}

#: The only keys of an upgrade config and the largest value each may hold (u16 / u64 in Rust).
UPGRADE_PARAM_LIMITS: Mapping[str, int] = {
    "new_cpu": 2**16 - 1,
    "new_disk": 2**64 - 1,
    "new_memory": 2**64 - 1,
}

#: Seconds per interval unit, used only for the reference's per-VM log line (§4.3).
LOG_SECONDS: Mapping[IntervalType, int] = {
    IntervalType.DAY: 86_400,
    IntervalType.MONTH: 2_592_000,
    IntervalType.YEAR: 31_536_000,
}

CUSTOM_INTERVAL_AMOUNT = 1
CUSTOM_INTERVAL_TYPE = IntervalType.MONTH


def map_payment_type(code: int) -> SubscriptionPaymentType:
    """Map a stored legacy `payment_type` code; an unknown code is a reported error."""
    try:
        return PAYMENT_TYPE_MAP[LegacyPaymentType(code)]
    except ValueError:
        raise LegacyDataError(f"unknown legacy payment_type code {code}") from None


def check_payment_method(code: int) -> PaymentMethod:
    """The method code is copied as is (§5.2), but only a known code can be decoded later."""
    try:
        return PaymentMethod(code)
    except ValueError:
        raise LegacyDataError(f"unknown payment_method code {code}") from None


def map_time_value(time_value: int, payment_type: LegacyPaymentType, is_paid: bool) -> int | None:
    """`subscription_payment.time_value` for a legacy row.

    Reading of §5.2 + D18: a positive `time_value` is copied; a legacy row with 0 becomes NULL
    (§5.2) **except an unpaid Upgrade**, which keeps 0. NULL would make a late completion (Revolut
    webhook, admin "complete payment") extend the subscription by a whole interval (R4); 0
    extends by nothing, as the legacy upgrade did. "Pending" is read as `is_paid = 0` regardless
    of the invoice's own expiry, because R4's late completions hit expired invoices too and the
    result must not depend on the clock. A paid upgrade follows §5.2 (NULL): it is history.
    """
    if time_value < 0:
        raise LegacyDataError(f"negative time_value {time_value}")
    if time_value > 0:
        return time_value
    if payment_type is LegacyPaymentType.UPGRADE and not is_paid:
        return 0
    return None


def _reject_constant(name: str) -> Any:
    raise InvalidUpgradeParams(f"upgrade_params: {name} is not valid JSON")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidUpgradeParams(f"upgrade_params: duplicate key {key!r}")
        result[key] = value
    return result


def upgrade_params_to_metadata(text: str | None) -> str | None:
    """`upgrade_params` text → compact `metadata` JSON text with sorted keys (§5.2, R3).

    NULL stays NULL. Otherwise the text must be a JSON object whose keys are among
    `new_cpu`/`new_memory`/`new_disk`, each a non-negative integer in range or null. Anything
    else (bad JSON, another shape, fractional numbers, duplicate keys) raises
    `InvalidUpgradeParams`: the reference stored NULL silently, D18 says report it.
    """
    if text is None:
        return None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_object,
            parse_float=Decimal,
            parse_constant=_reject_constant,
        )
    except json.JSONDecodeError as exc:
        raise InvalidUpgradeParams(f"upgrade_params is not valid JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise InvalidUpgradeParams(
            f"upgrade_params must be a JSON object, got {type(value).__name__}"
        )
    for key, item in value.items():
        limit = UPGRADE_PARAM_LIMITS.get(key)
        if limit is None:
            raise InvalidUpgradeParams(f"upgrade_params has unknown key {key!r}")
        if item is None:
            continue
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= limit:
            raise InvalidUpgradeParams(
                f"upgrade_params.{key} must be an integer 0..{limit}, got {item!r}"
            )
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@attrs.frozen(kw_only=True)
class LegacyVm:
    """The NULL-tolerant projection of one unlinked VM and what it joins to (B6, §4.1–4.3)."""

    id: int
    user_id: int
    deleted: bool
    auto_renewal_enabled: bool
    expires: datetime | None
    created: datetime | None
    company_id: int | None
    company_base_currency: str | None
    template_id: int | None
    custom_template_id: int | None
    template_name: str | None = None
    plan_amount: int | None = None
    plan_currency: str | None = None
    plan_interval_amount: int | None = None
    plan_interval_type: int | None = None
    #: a `vm_payment` of the VM is paid; decides `is_setup` and whether an order is never-paid
    has_paid_payment: bool = False

    @property
    def never_paid_order(self) -> bool:
        """An order LNVPS never saw paid: it marks one with `expires == created` (its worker
        deleted such VMs as unpaid) and no payment of it is paid."""
        return (
            self.expires is not None and self.expires == self.created and not self.has_paid_payment
        )


@attrs.frozen(kw_only=True)
class PlannedSubscription:
    """The `subscription` row the backfill writes for one VM (§4.4 with D18)."""

    user_id: int
    company_id: int
    name: str
    description: str
    created: datetime
    #: None for a never-paid order (`LegacyVm.never_paid_order`): never paid, no lifecycle
    expires: datetime | None
    is_active: bool
    is_setup: bool
    currency: str
    interval_amount: int
    interval_type: IntervalType
    auto_renewal_enabled: bool
    setup_fee: int = 0
    external_id: str | None = None


@attrs.frozen(kw_only=True)
class PlannedLineItem:
    """The `subscription_line_item` row (§4.4): always type 3 Vps (B7), no setup amount."""

    name: str
    amount: int
    subscription_type: SubscriptionType = SubscriptionType.VPS
    description: str | None = None
    setup_amount: int = 0


@attrs.frozen(kw_only=True)
class VmPlan:
    """Everything Phase 1 writes for one VM, plus warnings worth telling the operator."""

    vm_id: int
    subscription: PlannedSubscription
    line_item: PlannedLineItem
    warnings: tuple[str, ...] = ()

    def log_line(self) -> str:
        """The reference's per-VM log line (§4.4), with its 30/365-day log-only time_value."""
        sub = self.subscription
        unit = {IntervalType.DAY: "day", IntervalType.MONTH: "month", IntervalType.YEAR: "year"}
        secs = LOG_SECONDS[sub.interval_type] * sub.interval_amount
        return (
            f"VM {self.vm_id} → subscription ({sub.interval_amount} "
            f"{unit[sub.interval_type]}(s), time_value={secs}s, amount={self.line_item.amount})"
        )


def subscription_name(vm_id: int) -> str:
    """`"VM {id} Subscription"` (§4.4); unique per VM, the backfill uses it to map inserted ids."""
    return f"VM {vm_id} Subscription"


def plan_vm(vm: LegacyVm, now: datetime) -> VmPlan:
    """Phase 1 rows for one VM (§4.2–4.4, D18); raises `LegacyDataError` for a bad row (R8).

    * company = the company of the VM's host's region, currency = its base currency (§4.2).
    * standard VM (`template_id` set, wins over `custom_template_id`): interval from the cost
      plan; custom VM: 1 Month and amount 0; neither: linked like a custom VM with a
      warning. The reference counted it as an error (§4.3), which blocked start-up forever
      (R8) over a VM that can never be renewed anyway; linking it keeps "every VM linked"
      and the warning tells the operator to fix or delete it.
    * expires = vm.expires exactly and auto-renew copied (B2); NULL expires is an error (R8),
      never a subscription without lifecycle.
    * is_active = not deleted (B4); is_setup = 1 only with a paid payment (D18, fixes R5).
      The MySQL adapter looks payments up only for the VMs whose `expires == created` (see
      the next point); for the others it passes `has_paid_payment=False` and applies the
      same rule set-wise when it copies a paid payment (`legacy_payments.mark_setup`).
    * a never-paid order (`expires == created`, no paid payment: LNVPS's own mark of an
      unpaid VM) gets `expires = NULL`, like an order placed here: it is not in service, so
      D17's one-hour clean-up applies and it gets no expiry notices. Copying its expiry made
      it look like a VM given time (`Subscription.in_service`), told "Expired" and
      "Cancelled" although never paid. A VM with any paid payment keeps its expiry.
    * created = `vm.created` when known, else `now`. Deviation from §4.4 (which uses the
      migration time): D16 measures the grace period from the subscription's age and D17 the
      unpaid-VM deadline from when it was ordered, so a years-old VM must not look one day old.
    * R7: the line item amount is in the cost plan's currency; when that differs from the
      subscription's currency the amount is stored as 0 (price computed live, as for custom
      VMs) with a warning, so no row carries an amount in a currency it does not state.
    """
    now = require_utc(now)
    if vm.expires is None:
        raise LegacyDataError(f"VM {vm.id} has no expires (NULL or zero date)")
    if vm.company_id is None or vm.company_base_currency is None:
        raise LegacyDataError(f"VM {vm.id}: host → region → company lookup failed")
    warnings: list[str] = []
    if vm.template_id is not None:
        if (
            vm.template_name is None
            or vm.plan_amount is None
            or vm.plan_currency is None
            or vm.plan_interval_amount is None
            or vm.plan_interval_type is None
        ):
            raise LegacyDataError(f"VM {vm.id}: template {vm.template_id} or its cost plan missing")
        try:
            interval_type = IntervalType(vm.plan_interval_type)
        except ValueError:
            raise LegacyDataError(
                f"VM {vm.id}: cost plan interval_type code {vm.plan_interval_type} unknown"
            ) from None
        try:
            checked_interval(interval_type, vm.plan_interval_amount)
        except InvalidInterval as err:
            raise LegacyDataError(f"VM {vm.id}: cost plan {err.message}") from None
        interval_amount = vm.plan_interval_amount
        description = f"{vm.template_name} (VM {vm.id})"
        amount = vm.plan_amount
        if vm.plan_currency.strip().upper() != vm.company_base_currency.strip().upper():
            warnings.append(
                f"VM {vm.id}: cost plan currency {vm.plan_currency} differs from subscription "
                f"currency {vm.company_base_currency}; line item amount stored as 0 (R7)"
            )
            amount = 0
    elif vm.custom_template_id is not None:
        interval_amount, interval_type = CUSTOM_INTERVAL_AMOUNT, CUSTOM_INTERVAL_TYPE
        description = f"Custom VM {vm.id}"
        amount = 0
    else:
        interval_amount, interval_type = CUSTOM_INTERVAL_AMOUNT, CUSTOM_INTERVAL_TYPE
        description = f"VM {vm.id} (no template)"
        amount = 0
        warnings.append(
            f"VM {vm.id} has neither template_id nor custom_template_id; linked with no price "
            "(it cannot be renewed until it gets a template)"
        )
    subscription = PlannedSubscription(
        user_id=vm.user_id,
        company_id=vm.company_id,
        name=subscription_name(vm.id),
        description=description,
        created=now if vm.created is None else require_utc(vm.created),
        expires=None if vm.never_paid_order else require_utc(vm.expires),
        is_active=not vm.deleted,
        is_setup=vm.has_paid_payment,
        currency=vm.company_base_currency,
        interval_amount=interval_amount,
        interval_type=interval_type,
        auto_renewal_enabled=vm.auto_renewal_enabled,
    )
    line_item = PlannedLineItem(name=description, amount=amount)
    return VmPlan(
        vm_id=vm.id, subscription=subscription, line_item=line_item, warnings=tuple(warnings)
    )


@attrs.frozen(kw_only=True)
class LegacyPaymentRow:
    """The columns of a `vm_payment` row that the mapping looks at (the rest is copied raw)."""

    id: bytes
    vm_id: int
    payment_type: int
    payment_method: int
    time_value: int
    is_paid: bool
    upgrade_params: str | None


@attrs.frozen(kw_only=True)
class PaymentMapping:
    """The mapped columns of the `subscription_payment` copy of one legacy row (§5.2, D18)."""

    payment_type: SubscriptionPaymentType
    time_value: int | None
    metadata: str | None
    #: Why `upgrade_params` could not become `metadata` (then it keeps the text verbatim,
    #: `legacy_params_metadata`); reported as a warning.
    metadata_problem: str | None = None


def legacy_params_metadata(text: str) -> str:
    """`metadata` keeping unreadable `upgrade_params` verbatim: `{"legacy_upgrade_params": …}`.

    Finalization drops `vm_payment`, so this is the text's only copy afterwards (D18: reported,
    not silently dropped). Reading it as an upgrade config is refused like a NULL one was
    (`UpgradeConfig.from_json`), so a late completion still reports "paid but not applied".
    """
    return json.dumps({LEGACY_UPGRADE_PARAMS_KEY: text}, separators=(",", ":"))


def map_payment(row: LegacyPaymentRow) -> PaymentMapping:
    """Map one legacy payment; raises `LegacyDataError` (the row is then reported, not copied).

    `upgrade_params` that are not the upgrade shape (R3) do not hold the payment back: it is
    a money record, so it is copied (the reference stored NULL metadata) with the text kept
    verbatim in its metadata (`legacy_params_metadata`), and the problem comes back in
    `metadata_problem` to be reported (D18: reported, not silently dropped).
    """
    new_type = map_payment_type(row.payment_type)
    check_payment_method(row.payment_method)
    legacy_type = LegacyPaymentType(row.payment_type)
    time_value = map_time_value(row.time_value, legacy_type, row.is_paid)
    try:
        metadata, problem = upgrade_params_to_metadata(row.upgrade_params), None
    except InvalidUpgradeParams as exc:
        assert row.upgrade_params is not None  # NULL is valid (no params)
        metadata, problem = legacy_params_metadata(row.upgrade_params), exc.message
    return PaymentMapping(
        payment_type=new_type, time_value=time_value, metadata=metadata, metadata_problem=problem
    )


@attrs.frozen
class Problem:
    """One error or warning of a run: which phase, which VM / payment, what went wrong."""

    phase: str
    message: str
    vm_id: int | None = None
    payment_id: str | None = None

    def __str__(self) -> str:
        where = "".join(
            [
                f" VM {self.vm_id}" if self.vm_id is not None else "",
                f" payment {self.payment_id}" if self.payment_id is not None else "",
            ]
        )
        return f"[{self.phase}{where}] {self.message}"


#: Problems kept verbatim per list; beyond this only the count grows (bounded memory).
MAX_KEPT_PROBLEMS = 1000


@attrs.define(kw_only=True)
class BackfillReport:
    """What a run did or (dry run) would do; `ok` is False on any error (D18: exit non-zero)."""

    dry_run: bool
    vms_linked: int = 0
    #: of `vms_linked`, never-paid orders adopted without an expiry (`LegacyVm.never_paid_order`)
    vms_never_paid: int = 0
    vms_skipped: int = 0
    vms_failed: int = 0
    payments_copied: int = 0
    payments_skipped: int = 0
    payments_failed: int = 0
    error_count: int = 0
    warning_count: int = 0
    errors: list[Problem] = attrs.field(factory=list)
    warnings: list[Problem] = attrs.field(factory=list)
    notes: list[str] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add_error(self, problem: Problem) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_KEPT_PROBLEMS:
            self.errors.append(problem)

    def add_warning(self, problem: Problem) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_KEPT_PROBLEMS:
            self.warnings.append(problem)

    def summary(self) -> str:
        """A short human summary, errors listed first-come (capped at `MAX_KEPT_PROBLEMS`)."""
        verb = ("would link", "would copy") if self.dry_run else ("linked", "copied")
        head = (
            "Legacy billing backfill (DRY RUN, nothing written)"
            if self.dry_run
            else "Legacy billing backfill"
        )
        lines = [
            f"{head}: {'OK' if self.ok else 'FAILED'}",
            f"  Phase 1: {self.vms_linked} VMs {verb[0]}"
            + (
                f" ({self.vms_never_paid} of them never-paid orders, without expiry)"
                if self.vms_never_paid
                else ""
            )
            + f", {self.vms_skipped} already linked, {self.vms_failed} failed",
            f"  Phase 2: {self.payments_copied} payments {verb[1]}, {self.payments_skipped} "
            f"already copied, {self.payments_failed} failed",
            f"  {self.error_count} errors, {self.warning_count} warnings",
        ]
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  error {problem}" for problem in self.errors]
        if self.error_count > len(self.errors):
            lines.append(f"  … {self.error_count - len(self.errors)} more errors not shown")
        lines += [f"  warning {problem}" for problem in self.warnings]
        if self.warning_count > len(self.warnings):
            lines.append(f"  … {self.warning_count - len(self.warnings)} more warnings not shown")
        return "\n".join(lines)
