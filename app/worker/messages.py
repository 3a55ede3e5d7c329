"""Notification texts N1–N11 (lifecycle.md §12.1): what happened, to what, when, what to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from urllib.parse import urlsplit

import attrs

from domain.enums import IntervalType, SubscriptionType
from domain.errors import DomainError
from domain.model import GIB, LineItem, Subscription
from domain.money import Currency, Money
from domain.switch_off import is_switched_off

_UNITS = {IntervalType.DAY: "day", IntervalType.MONTH: "month", IntervalType.YEAR: "year"}


@attrs.frozen
class Notice:
    """A title and a body, ready for `Notifier.notify_user` / `notify_admins`."""

    title: str
    message: str


def when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def expiry(sub: Subscription) -> str:
    """The expiry of a subscription these notices speak of (one that has an expiry), printed."""
    assert sub.expires is not None
    return when(sub.expires)


def subject_of(sub: Subscription, items: Sequence[LineItem], vm_id: int | None) -> str:
    """`VM{id}` when every line item is a VPS and the VM is known, else `Sub #{id}` (§12.1)."""
    only_vps = bool(items) and all(i.subscription_type is SubscriptionType.VPS for i in items)
    return f"VM{vm_id}" if only_vps and vm_id is not None else f"Sub #{sub.id}"


def _amount(amount: int, currency: str) -> str:
    try:
        return str(Money(Currency.parse(currency), amount))
    except DomainError:
        return str(amount)


def _interval(sub: Subscription) -> str:
    unit = _UNITS[sub.interval_type]
    n = sub.interval_amount
    return f"per {unit}" if n == 1 else f"every {n} {unit}s"


def describe(
    sub: Subscription, items: Sequence[LineItem], currencies: Mapping[int, str] | None = None
) -> str:
    """The §12.1 description block: subscription name, services with prices, note. Each
    item's amount is in the subscription's currency, but for an item named in `currencies`
    (by line item id): a custom VM's, whose amount is in its pricing's currency, which a
    subscription billing other items beside it does not take
    (`LineItems.list_shown`)."""
    lines = [f"Subscription: {sub.name}", "", "Services:"]
    for item in items:
        currency = (currencies or {}).get(item.id, sub.currency)
        line = f"- {item.name} — {_amount(item.amount, currency)} {_interval(sub)}"
        if item.setup_amount:
            line += f" + {_amount(item.setup_amount, sub.currency)} setup fee"
        lines.append(line)
        if item.description:
            lines.append(f"  {item.description}")
    if sub.description:
        lines += ["", f"Note: {sub.description}"]
    return "\n".join(lines)


def renew_hint(
    public_url: str, sub: Subscription, vm_id: int | None, *, lightning_address: bool = True
) -> str:
    """How to pay: the renew endpoint (api.md §6.6/§6.9) and, for a VM, its Lightning address
    (not where Lightning is off: that address takes no payment)."""
    base = public_url.rstrip("/")
    if vm_id is not None and not lightning_address:
        return f"renew from your account (a signed GET {base}/api/v1/vm/{vm_id}/renew)"
    if vm_id is None:
        return (
            f"renew from your account, or request an invoice with a signed "
            f"GET {base}/api/v1/subscriptions/{sub.id}/renew"
        )
    host = urlsplit(base).hostname or base
    return (
        f"renew from your account (a signed GET {base}/api/v1/vm/{vm_id}/renew), "
        f"or top up any amount by paying the Lightning address {vm_id}@{host}"
    )


def expiring_soon(
    subject: str, sub: Subscription, descr: str, hint: str, failure: str | None = None
) -> Notice:
    """N1, or N3 when an automatic renewal was tried and failed with `failure`."""
    head = f"Your subscription expires on {expiry(sub)}, in less than 1 day."
    if failure is not None:
        head += f"\nThe automatic renewal failed: {failure}"
    body = f"{head}\nPlease renew it manually within 1 day(s): {hint}.\n\n{descr}"
    return Notice(f"[{subject}] Expiring Soon", body)


def auto_renewal_unconfirmed(
    subject: str, sub: Subscription, descr: str, hint: str, pay_by: datetime | None
) -> Notice:
    """N3 when the wallet was asked to pay but never answered: not "Auto-Renewed", since
    nothing may have been paid, but the warning before the expiry, saying until when the
    invoice the wallet was asked to pay can still be paid (a manual renewal after that
    cannot pay the same interval twice)."""
    until = f" by {when(pay_by)}" if pay_by is not None else ""
    body = (
        f"Your subscription expires on {expiry(sub)}, in less than 1 day.\n"
        "The automatic renewal asked your wallet via Nostr Wallet Connect to pay the renewal"
        " invoice, but the wallet did not answer, so the payment is not confirmed. If it was"
        " paid, the new expiry shows in your account once it settles.\n"
        f"If the expiry has not moved{until}, please renew it manually within 1 day(s): {hint}."
        f"\n\n{descr}"
    )
    return Notice(f"[{subject}] Expiring Soon", body)


def auto_renewed(subject: str, descr: str, now: datetime) -> Notice:
    """N2: a renewal invoice was paid from the user's wallet via Nostr Wallet Connect."""
    body = (
        f"Your subscription was renewed automatically via Nostr Wallet Connect on {when(now)}."
        f" The new expiry shows once the payment settles.\n\n{descr}"
    )
    return Notice(f"[{subject}] Auto-Renewed", body)


#: what a notice says instead of how to renew, for a subscription an admin switched off
SWITCHED_OFF = "It was switched off by an administrator and cannot be renewed"


def expired(subject: str, sub: Subscription, descr: str, deadline: datetime, hint: str) -> Notice:
    """N5: the subscription's paid time is over; add-ons such as IP ranges are ended."""
    if is_switched_off(sub):
        then = f"{SWITCHED_OFF}: it ends for good on {when(deadline)}."
    else:
        then = f"Renew before {when(deadline)} to keep it: {hint}."
    body = f"Your subscription has expired on {expiry(sub)}; its services are suspended.\n{then}"
    return Notice(f"[{subject}] Expired", f"{body}\n\n{descr}")


def vm_expired(
    vm_id: int,
    expires: datetime,
    grace_days: int,
    deadline: datetime,
    hint: str,
    *,
    switched_off: bool = False,
) -> Notice:
    """N6: the VM was stopped; renew within the grace period or it is deleted (D16). For a
    subscription an admin switched off (`switched_off`): when it will be deleted."""
    head = f"Your VM #{vm_id} has expired on {when(expires)} and has been stopped.\n"
    if switched_off:
        body = (
            f"{head}{SWITCHED_OFF}: the VM and all its data will be permanently deleted in"
            f" {grace_days} day(s), on {when(deadline)}."
        )
    else:
        body = (
            f"{head}Renew within {grace_days} day(s), before {when(deadline)}, or the VM and"
            f" all its data will be permanently deleted: {hint}."
        )
    return Notice(f"[VM{vm_id}] Expired", body)


def cancelled(subject: str, sub: Subscription, descr: str, now: datetime) -> Notice:
    """N4: the grace period is over; the subscription is cancelled and its services removed."""
    why = (
        "was switched off by an administrator"
        if is_switched_off(sub)
        else "was not renewed within the grace period"
    )
    body = (
        f"Your subscription has been cancelled on {when(now)}: it expired on {expiry(sub)}"
        f" and {why}. Its services have been removed.\n\n{descr}"
    )
    return Notice(f"[{subject}] Cancelled", body)


def vm_deleted_admin(vm_id: int, user_id: int, sub: Subscription, now: datetime) -> Notice:
    """N8 (admins): a VM was deleted after its grace period."""
    body = (
        f"VM #{vm_id} was permanently deleted on {when(now)} after exceeding the grace period"
        f" (expired {expiry(sub)}).\nUser ID: {user_id}\nSubscription: #{sub.id}"
    )
    return Notice(f"[VM{vm_id}] Deleted", body)


def vm_deleted_by_admin(vm_id: int, reason: str | None, now: datetime) -> Notice:
    body = f"VM #{vm_id} was deleted by an administrator on {when(now)}."
    if reason:
        body += f"\nReason: {reason}"
    return Notice(f"[VM{vm_id}] Deleted by Admin", body)


@attrs.frozen(kw_only=True)
class VmFacts:
    """What a created or upgraded VM looks like, for N9–N11."""

    vm_id: int
    cpu: int
    memory: int
    disk: int
    os: str = ""
    ips: tuple[str, ...] = ()
    npub: str = ""


def _gb(size: int) -> str:
    return f"{size / GIB:g}"


def _specs(facts: VmFacts) -> list[str]:
    return [f"CPU: {facts.cpu} vCPU", f"RAM: {_gb(facts.memory)} GB", f"Disk: {_gb(facts.disk)} GB"]


def vm_created(facts: VmFacts, now: datetime, *, admin: bool) -> Notice:
    """N10 (user) / N11 (admins): the VM exists on its host and is starting."""
    who = "User NPUB" if admin else "NPUB"
    lines = [
        f"VM #{facts.vm_id} has been created on {when(now)} and is starting."
        if admin
        else f"Your VM #{facts.vm_id} has been created on {when(now)} and is starting.",
        "",
        f"OS: {facts.os}",
        *_specs(facts),
        *(f"IP: {ip}" for ip in facts.ips),
        f"{who}: {facts.npub}",
    ]
    return Notice(f"[VM{facts.vm_id}] Created", "\n".join(lines))


def vm_recreated(
    facts: VmFacts, deleted_at: datetime, now: datetime, *, admin: bool, user_id: int = 0
) -> Notice:
    """D24: a payment arrived for a deleted VM, so it was built again — new, empty, new IPs."""
    if admin:
        head = [
            f"VM #{facts.vm_id} was deleted on {when(deleted_at)}, then a payment for it arrived;"
            f" it has been re-created empty on {when(now)} with new addresses.",
            f"User ID: {user_id}",
        ]
    else:
        head = [
            f"Your VM #{facts.vm_id} was deleted on {when(deleted_at)}. A payment for it arrived"
            f" afterwards, so it has been re-created on {when(now)}.",
            "",
            "This is a NEW, EMPTY VM: nothing from the deleted VM (files, settings, installed"
            " software) was kept, and its IP addresses were assigned afresh (below), so they"
            " may differ from before. Your SSH key was installed again.",
        ]
    lines = [
        *head,
        "",
        f"OS: {facts.os}",
        *_specs(facts),
        *(f"New IP: {ip}" for ip in facts.ips),
        f"{'User NPUB' if admin else 'NPUB'}: {facts.npub}",
    ]
    return Notice(f"[VM{facts.vm_id}] Re-created after deletion", "\n".join(lines))


def vm_upgraded(facts: VmFacts | None, vm_id: int, now: datetime) -> Notice:
    """N9: the paid upgrade is live on the host."""
    body = f"Your VM #{vm_id} has been upgraded on {when(now)}."
    if facts is not None:
        body += "\n\nNew specifications:\n" + "\n".join(_specs(facts))
    return Notice(f"[VM{vm_id}] Upgrade Complete", body)


def unpaid_cleanup_failed(vm_id: int, stage: str, error: str) -> Notice:
    """Admin notice when the never-paid cleanup (D17) cannot delete a VM."""
    title = f"VM {vm_id} {stage}"
    return Notice(title, f"Cleanup of never-paid VM #{vm_id} failed: {error}")


def resize_failed(vm_id: int, error: str) -> Notice:
    """Admin notice when the host refuses a paid upgrade's resize for good."""
    body = (
        f"The host refused to resize VM #{vm_id} to its paid upgrade: {error}\n"
        "The records hold the paid size; resize the VM on its host by hand."
    )
    return Notice(f"VM {vm_id} Resize Failed", body)


def email_verification(link: str) -> Notice:
    """The mail that carries the link verifying a user's e-mail address (D22)."""
    return Notice(
        "Verify your email address",
        "Please verify your email address by opening this link:\n\n"
        f"{link}\n\n"
        "If you did not add this address to an LNVPS account, ignore this message.",
    )
