"""Storage port of the revenue reports: a window's paid payments with what they belong to."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import attrs

from domain.invoice import Invoice
from domain.model import Host, Region, SubscriptionPayment, Vm


@attrs.frozen(kw_only=True)
class PaidWindow:
    """Paid payments paid in `[since, until)`, by `SubscriptionPayment.paid_time` (`paid_at`,
    else `created`)."""

    since: datetime
    until: datetime


@attrs.frozen(kw_only=True)
class PaidRecord:
    """A paid payment and what it belongs to: its subscription's list currency, the VM its
    subscription's first VPS line item sold (the lowest-id one, soft-deleted too: a report of
    the past does not change when a VM goes; None: no VPS item, or no VM), that VM's host and
    region, and its invoice (None: paid before invoices were issued)."""

    payment: SubscriptionPayment
    list_currency: str
    vm: Vm | None
    host: Host | None
    region: Region | None
    invoice: Invoice | None


class ReportReads(Protocol):
    """A fixed number of statements whatever the number of rows (SQL: one for the payments,
    then one per kind of record they belong to, per 1 000 ids)."""

    async def paid(
        self, window: PaidWindow, company_id: int, currency: str | None
    ) -> list[PaidRecord]:
        """The window's paid payments whose subscription the company sells, of `currency`
        (upper case) when given, in the order paid (`paid_time`, then id)."""
        ...

    async def first_paid_referred(
        self, window: PaidWindow, ref_code: str | None
    ) -> list[PaidRecord]:
        """The window's paid payments that are the first paid (`paid_time`, then id) of their
        subscription, whose VM (as `PaidRecord.vm`) was ordered with a referral code
        (`ref_code` when given), in the order paid."""
        ...
