"""In-memory unit of work: a private snapshot per transaction, published on commit."""

from __future__ import annotations

from typing import Self

from adapters.memory.audit import MemoryAdminAudits
from adapters.memory.billing import (
    MemoryLegacyPayments,
    MemoryLineItems,
    MemoryPayments,
    MemorySubscriptions,
)
from adapters.memory.catalogue import (
    MemoryCostPlans,
    MemoryCustomPricings,
    MemoryCustomTemplates,
    MemoryHostDisks,
    MemoryHosts,
    MemoryImages,
    MemoryIpAssignments,
    MemoryIpRanges,
    MemoryRegions,
    MemoryTemplates,
)
from adapters.memory.credit import MemoryCreditLedger
from adapters.memory.db import MemoryDatabase, Snapshot
from adapters.memory.identity import MemoryCompanies, MemoryRoles, MemorySshKeys, MemoryUsers
from adapters.memory.invoices import MemoryInvoices
from adapters.memory.products import (
    MemoryIdempotencyKeys,
    MemoryIpRangeSubscriptions,
    MemoryIpSpacePrices,
    MemoryIpSpaces,
    MemoryLifecycleMarks,
    MemoryPaymentMethods,
)
from adapters.memory.reads import MemoryReadLookups, MemoryVmReads
from adapters.memory.report_reads import MemoryReportReads
from adapters.memory.settlement import MemorySettlementProblems
from adapters.memory.vms import MemoryVmHistories, MemoryVms
from adapters.memory.worker import MemoryWorkerCursors, MemoryWorkerLeases
from ports.closing import ClosesOnExit


class MemoryUnitOfWork(ClosesOnExit):
    """Holds the database lock for its whole life, so units of work run one at a time."""

    def __init__(self, db: MemoryDatabase) -> None:
        self._db = db
        self._snapshot: Snapshot | None = None
        current = self._current
        self.users = MemoryUsers(current)
        self.ssh_keys = MemorySshKeys(current)
        self.companies = MemoryCompanies(current)
        self.roles = MemoryRoles(current)
        self.admin_audit = MemoryAdminAudits(current)
        self.credit_ledger = MemoryCreditLedger(current)
        self.settlement_problems = MemorySettlementProblems(current)
        self.regions = MemoryRegions(current)
        self.hosts = MemoryHosts(current)
        self.host_disks = MemoryHostDisks(current)
        self.images = MemoryImages(current)
        self.ip_ranges = MemoryIpRanges(current)
        self.ip_assignments = MemoryIpAssignments(current)
        self.cost_plans = MemoryCostPlans(current)
        self.templates = MemoryTemplates(current)
        self.custom_pricing = MemoryCustomPricings(current)
        self.custom_templates = MemoryCustomTemplates(current)
        self.vms = MemoryVms(current)
        self.vm_history = MemoryVmHistories(current)
        self.subscriptions = MemorySubscriptions(current)
        self.line_items = MemoryLineItems(current)
        self.payments = MemoryPayments(current)
        self.legacy_payments = MemoryLegacyPayments(current)
        self.ip_spaces = MemoryIpSpaces(current)
        self.ip_space_pricing = MemoryIpSpacePrices(current)
        self.ip_range_subscriptions = MemoryIpRangeSubscriptions(current)
        self.payment_methods = MemoryPaymentMethods(current)
        self.lifecycle_marks = MemoryLifecycleMarks(current)
        self.idempotency_keys = MemoryIdempotencyKeys(current)
        self.worker_leases = MemoryWorkerLeases(current)
        self.worker_cursors = MemoryWorkerCursors(current)
        self.vm_reads = MemoryVmReads(current)
        self.lookups = MemoryReadLookups(current)
        self.report_reads = MemoryReportReads(current)

        self.invoices = MemoryInvoices(current)

    def _current(self) -> Snapshot:
        if self._snapshot is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._snapshot

    async def __aenter__(self) -> Self:
        await self._db.lock.acquire()
        self._snapshot = Snapshot(self._db)
        return self

    async def aclose(self) -> None:
        """Leave the unit of work (`async with` exit): what was not committed is dropped."""
        self._snapshot = None
        self._db.lock.release()

    async def commit(self) -> None:
        self._current().publish(self._db)
        self._snapshot = Snapshot(self._db)

    async def rollback(self) -> None:
        self._current()
        self._snapshot = Snapshot(self._db)


class MemoryUnitOfWorkFactory:
    """`UnitOfWorkFactory` over one shared in-memory database."""

    def __init__(self, db: MemoryDatabase | None = None) -> None:
        self.db = db if db is not None else MemoryDatabase()

    def __call__(self) -> MemoryUnitOfWork:
        return MemoryUnitOfWork(self.db)
