"""What a payment changes besides the money, written inside its booking transaction (D9)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app.billing.upgrades import upgrade_in
from domain.admin_completion import ADMIN_COMPLETION_KEY, admin_completion_of
from domain.credit import CreditMode, payment_meta
from domain.enums import SubscriptionType, VmHistoryActionType
from domain.errors import DomainError, DowngradeRefused, SpecOutOfLimits
from domain.events import VmUpgradeBought
from domain.intervals import require_utc
from domain.model import SubscriptionPayment, Vm, VmHistory, vm_event
from domain.money import Currency, Money
from domain.overpayment import OVERPAID_KEY, Overpaid, overpaid_of
from domain.paid_periods import PaidPeriod
from domain.upgrade import InvalidUpgradeConfig, UpgradeConfig
from ports.storage import UnitOfWork

if TYPE_CHECKING:
    from app.billing.completion import CompletedPayment

log = logging.getLogger(__name__)

#: refusals no retry can overcome: the config is malformed, or is a downgrade of (or outside
#: the limits next to) what the VM has now
_NEVER_APPLICABLE = (InvalidUpgradeConfig, DowngradeRefused, SpecOutOfLimits)


def formatted(payment: SubscriptionPayment) -> str:
    """The payment's amount as text (`EUR 5.00`), raw when its currency is unknown."""
    try:
        return str(Money(Currency.parse(payment.currency), payment.total))
    except DomainError:
        return f"{payment.currency} {payment.total}"


def money_text(currency: str, amount: int) -> str:
    """`EUR 0.01`; raw when the currency is unknown."""
    try:
        return str(Money(Currency.parse(currency), amount))
    except DomainError:
        return f"{currency} {amount}"


def overpaid_text(excess: Overpaid) -> str:
    """`paid 2000 msat more than its invoice, credited EUR 0.01 to the account` (and, for
    a taxed prepayment, `net of EUR 0.01 VAT at 23%`)."""
    what = f"paid {excess.msat} msat more than its invoice"
    if not excess.credited:
        return what
    text = f"{what}, credited {money_text(excess.currency, excess.credited)} to the account"
    if excess.vat_free:
        return f"{text} as VAT-free credit"
    if excess.tax_rate is not None and excess.tax:
        text += f" net of {money_text(excess.currency, excess.tax)} VAT at {excess.tax_rate}%"
    return text


def _by_admin(payment: SubscriptionPayment) -> dict[str, object]:
    """The admin who completed the payment by hand, as its history entries record it."""
    admin = admin_completion_of(payment_meta(payment))
    return {} if admin is None else {ADMIN_COMPLETION_KEY: admin.to_json()}


def _received(vm_id: int, payment: SubscriptionPayment, now: datetime) -> VmHistory:
    seconds = payment.time_value or 0
    text = f"VM {vm_id} received payment of {formatted(payment)} ({seconds} seconds added)"
    metadata: dict[str, object] = {
        "payment_id": payment.id.hex(),
        "payment_method": payment.payment_method.display_name,
        "payment_amount": payment.total,
        "payment_currency": payment.currency,
        "time_added_seconds": seconds,
        **_by_admin(payment),
    }
    excess = overpaid_of(payment_meta(payment))
    if excess is not None:  # the payer sent more than the invoice: the rest is account credit
        text += f"; {overpaid_text(excess)}"
        metadata[OVERPAID_KEY] = excess.to_json()
    return vm_event(vm_id, VmHistoryActionType.PAYMENT_RECEIVED, now, text, metadata=metadata)


def _renewed(vm_id: int, done: CompletedPayment, now: datetime) -> VmHistory:
    """The Renewed entry with the real old and new expiry (the reference logged new twice)."""
    payment, old, new = done.payment, done.subscription_before.expires, done.subscription.expires
    assert new is not None
    metadata: dict[str, object] = {
        "time_added_seconds": payment.time_value,
        "payment_id": payment.id.hex(),
        "payment_amount": payment.total,
        "payment_currency": payment.currency,
        **_by_admin(payment),
    }
    if done.credit is not None and done.credit.mode is not CreditMode.CALENDAR:
        metadata["credit"] = done.credit.to_json()
    return vm_event(
        vm_id,
        VmHistoryActionType.RENEWED,
        now,
        f"VM {vm_id} was renewed until {new:%Y-%m-%d %H:%M} UTC",
        before={"expires": None if old is None else old.isoformat()},
        after={"expires": new.isoformat()},
        metadata=metadata,
    )


def paid_period(entry: VmHistory) -> PaidPeriod | None:
    """The period a Purchase or Renewal added, read back from its Renewed entry (`_renewed`):
    from the expiry it left less the seconds it added, to that expiry (the reference writes
    the same keys and a correct new expiry), marked bought by value when its entry's
    `credit` says so. None for any other entry (an admin's extend, one that added nothing,
    one it cannot read)."""
    meta, after = entry.metadata, entry.new_state
    if entry.action_type is not VmHistoryActionType.RENEWED or not isinstance(meta, dict):
        return None
    key, seconds = meta.get("payment_id"), meta.get("time_added_seconds")
    expires = after.get("expires") if isinstance(after, dict) else None
    if not isinstance(key, str) or not isinstance(expires, str):
        return None
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds <= 0:
        return None
    try:
        end = require_utc(datetime.fromisoformat(expires))
    except (ValueError, DomainError):
        return None
    credit = meta.get("credit")
    by_value = isinstance(credit, dict) and credit.get("mode") == CreditMode.BY_VALUE.value
    start = end - timedelta(seconds=seconds)
    return PaidPeriod(key=key, order=entry.id, start=start, end=end, by_value=by_value)


class ProductRecords:
    """The products' records of one booking, run in its transaction; what it found is kept
    for the `PaymentCompleted` event published after the commit.

    Each VM's PaymentReceived, and Renewed when time was bought (D9: one row each); a paid
    Upgrade applied to the VM's records (D12: expiry untouched), expiring the
    subscription's now stale Purchase/Renewal quotes (D23), kept in `stale`. A failure to
    apply the upgrade raises: the payment stays unbooked and the webhook retry or
    reconciliation completes it later. An upgrade the VM cannot take (a downgrade next to
    what it has now, outside the pricing's limits: a rival upgrade paid anyway) is booked
    without being applied and reported (`problems`): the money came in, an operator settles
    it. A VPS line item without a live VM is reported too. A payment booked as account
    credit because its VM cannot be restored or placed (`CreditMode.UNRESTORABLE`) bought
    no time and touches no product: no history. (IP ranges are given, or turned back on,
    by the booking itself, `app.billing.ip_allocation`, which must know first whether it
    can.)
    """

    def __init__(self) -> None:
        self.stale: list[SubscriptionPayment] = []
        self.problems: list[str] = []
        self.paid_vm_ids: list[int] = []
        self.upgrades: list[VmUpgradeBought] = []

    async def __call__(self, uow: UnitOfWork, done: CompletedPayment) -> None:
        self.stale, self.problems, self.paid_vm_ids, self.upgrades = [], [], [], []
        payment = done.payment
        now = payment.paid_at
        assert now is not None
        if done.credit is not None and done.credit.mode is CreditMode.UNRESTORABLE:
            return  # no time bought: nothing of it comes back; the money became credit
        for item in done.line_items:
            if item.subscription_type is SubscriptionType.IP_RANGE:
                continue  # given its range by the booking itself (`ip_allocation`)
            if item.subscription_type is not SubscriptionType.VPS:
                log.warning("no handler for line item type %s", item.subscription_type.name)
                continue
            vm = await uow.vms.get_by_line_item(item.id)
            if vm is None:
                self.problems.append(f"line item {item.id}: no live VM on line item {item.id}")
                continue
            await uow.vm_history.add(_received(vm.id, payment, now))
            if done.is_upgrade:
                await self._upgrade(uow, done, vm, now)
            else:
                self.paid_vm_ids.append(vm.id)
                if (payment.time_value or 0) > 0:
                    await uow.vm_history.add(_renewed(vm.id, done, now))

    async def _upgrade(
        self, uow: UnitOfWork, done: CompletedPayment, vm: Vm, now: datetime
    ) -> None:
        # the booking transaction holds the subscription lock; re-read it for what the
        # booking wrote (an Upgrade changes no expiry, D12)
        sub = await uow.subscriptions.get(done.subscription.id) or done.subscription
        try:
            cfg = UpgradeConfig.from_json(done.payment.metadata)
        except InvalidUpgradeConfig as err:
            self._not_applied(vm, done, err)
            return
        # the host is resized to what was bought even when the records refuse it below
        # (`process_vm_upgrade` refuses it again and reports it)
        self.upgrades.append(
            VmUpgradeBought(
                vm_id=vm.id, new_cpu=cfg.new_cpu, new_memory=cfg.new_memory, new_disk=cfg.new_disk
            )
        )
        try:
            applied = await upgrade_in(uow, sub, vm, cfg, now)
        except _NEVER_APPLICABLE as err:
            self._not_applied(vm, done, err)
            return
        if applied is not None:
            self.stale += applied.expired

    def _not_applied(self, vm: Vm, done: CompletedPayment, err: DomainError) -> None:
        text = f"upgrade of VM {vm.id} paid but not applied: {err.message}"
        log.error("%s (payment %s)", text, done.payment.id.hex())
        self.problems.append(text)
