"""The storage port: a unit of work with one repository per kind of record."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, Self

from ports.storage.audit import AdminAudits
from ports.storage.busy import StorageBusy
from ports.storage.catalogue import (
    AddressUse,
    CostPlans,
    CustomPricings,
    CustomTemplates,
    HostDisks,
    Hosts,
    Images,
    IpAssignments,
    IpRanges,
    Regions,
    Templates,
)
from ports.storage.common import Catalogue, Page, Records, Removable
from ports.storage.credit import CreditKey, CreditLedger
from ports.storage.identity import Companies, Permission, Roles, SshKeys, Users
from ports.storage.invoices import Invoices, InvoiceWindow
from ports.storage.marks import (
    NEVER_PAID_CLEANUP,
    IdempotencyKeys,
    IdempotencyRecord,
    LifecycleMarks,
)
from ports.storage.payments import (
    LegacyPayments,
    MetadataKey,
    MetadataTest,
    NewestPending,
    PaidTally,
    Payments,
    PendingCount,
    PendingKind,
    PendingOf,
)
from ports.storage.products import IpRangeSubscriptions, IpSpacePrices, IpSpaces, PaymentMethods
from ports.storage.reads import ReadLookups, VmReads
from ports.storage.reports import PaidRecord, PaidWindow, ReportReads
from ports.storage.settlement import SettlementProblem, SettlementProblems
from ports.storage.subscriptions import (
    DueWindow,
    LineItems,
    LockedPriced,
    NeverPaidWindow,
    OwnedPriced,
    PricedBy,
    PricedItems,
    ShownItems,
    Subscriptions,
)
from ports.storage.vms import SpecTotals, VmHistories, VmListFilter, VmOnPlan, Vms
from ports.storage.worker import WorkerCursors, WorkerLeases


class UnitOfWork(Protocol):
    """One transaction. Use as `async with uow_factory() as uow: ...; await uow.commit()`.

    Leaving the block without `commit()` rolls everything back; after `commit()` the unit of
    work may go on with a new transaction. Repositories share the transaction and never
    commit on their own; they are read-only attributes. Open one unit of work at a time per
    task: storage may serialise them (the memory adapter holds a lock, MySQL row locks).
    """

    @property
    def users(self) -> Users: ...
    @property
    def ssh_keys(self) -> SshKeys: ...
    @property
    def companies(self) -> Companies: ...
    @property
    def roles(self) -> Roles: ...
    @property
    def regions(self) -> Regions: ...
    @property
    def hosts(self) -> Hosts: ...
    @property
    def host_disks(self) -> HostDisks: ...
    @property
    def images(self) -> Images: ...
    @property
    def ip_ranges(self) -> IpRanges: ...
    @property
    def ip_assignments(self) -> IpAssignments: ...
    @property
    def cost_plans(self) -> CostPlans: ...
    @property
    def templates(self) -> Templates: ...
    @property
    def custom_pricing(self) -> CustomPricings: ...
    @property
    def custom_templates(self) -> CustomTemplates: ...
    @property
    def vms(self) -> Vms: ...
    @property
    def vm_history(self) -> VmHistories: ...
    @property
    def subscriptions(self) -> Subscriptions: ...
    @property
    def line_items(self) -> LineItems: ...
    @property
    def payments(self) -> Payments: ...
    @property
    def legacy_payments(self) -> LegacyPayments: ...
    @property
    def ip_spaces(self) -> IpSpaces: ...
    @property
    def ip_space_pricing(self) -> IpSpacePrices: ...
    @property
    def ip_range_subscriptions(self) -> IpRangeSubscriptions: ...
    @property
    def payment_methods(self) -> PaymentMethods: ...
    @property
    def lifecycle_marks(self) -> LifecycleMarks: ...
    @property
    def idempotency_keys(self) -> IdempotencyKeys: ...
    @property
    def worker_leases(self) -> WorkerLeases: ...
    @property
    def worker_cursors(self) -> WorkerCursors: ...
    @property
    def admin_audit(self) -> AdminAudits: ...
    @property
    def vm_reads(self) -> VmReads: ...
    @property
    def lookups(self) -> ReadLookups: ...
    @property
    def report_reads(self) -> ReportReads: ...
    @property
    def invoices(self) -> Invoices: ...
    @property
    def credit_ledger(self) -> CreditLedger: ...
    @property
    def settlement_problems(self) -> SettlementProblems: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...

    async def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]

__all__ = [
    "NEVER_PAID_CLEANUP",
    "AddressUse",
    "AdminAudits",
    "Catalogue",
    "Companies",
    "CostPlans",
    "CreditKey",
    "CreditLedger",
    "CustomPricings",
    "CustomTemplates",
    "DueWindow",
    "HostDisks",
    "Hosts",
    "IdempotencyKeys",
    "IdempotencyRecord",
    "Images",
    "InvoiceWindow",
    "Invoices",
    "IpAssignments",
    "IpRangeSubscriptions",
    "IpRanges",
    "IpSpacePrices",
    "IpSpaces",
    "LegacyPayments",
    "LifecycleMarks",
    "LineItems",
    "LockedPriced",
    "MetadataKey",
    "MetadataTest",
    "NeverPaidWindow",
    "NewestPending",
    "OwnedPriced",
    "Page",
    "PaidRecord",
    "PaidTally",
    "PaidWindow",
    "PaymentMethods",
    "Payments",
    "PendingCount",
    "PendingKind",
    "PendingOf",
    "Permission",
    "PricedBy",
    "PricedItems",
    "ReadLookups",
    "Records",
    "Regions",
    "Removable",
    "ReportReads",
    "Roles",
    "SettlementProblem",
    "SettlementProblems",
    "ShownItems",
    "SpecTotals",
    "SshKeys",
    "StorageBusy",
    "Subscriptions",
    "Templates",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "Users",
    "VmHistories",
    "VmListFilter",
    "VmOnPlan",
    "VmReads",
    "Vms",
    "WorkerCursors",
    "WorkerLeases",
]
