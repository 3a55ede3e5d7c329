"""SQL unit of work: one connection and transaction, rolled back unless committed."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.mysql import tables as t
from adapters.mysql.audit_repos import SqlAdminAudits
from adapters.mysql.billing_repos import (
    SqlLegacyPayments,
    SqlLineItems,
    SqlPayments,
    SqlSubscriptions,
)
from adapters.mysql.credit_repos import SqlCreditLedger
from adapters.mysql.invoice_repos import SqlInvoices
from adapters.mysql.mapping import Mapper
from adapters.mysql.product_repos import (
    SqlIdempotencyKeys,
    SqlIpRangeSubscriptions,
    SqlIpSpacePrices,
    SqlIpSpaces,
    SqlLifecycleMarks,
    SqlPaymentMethods,
)
from adapters.mysql.read_models import SqlReadLookups, SqlVmReads, VmReadMappers, VmReadPlan
from adapters.mysql.repositories import (
    SqlCompanies,
    SqlCostPlans,
    SqlCustomPricings,
    SqlCustomTemplates,
    SqlHostDisks,
    SqlHosts,
    SqlImages,
    SqlIpAssignments,
    SqlIpRanges,
    SqlRegions,
    SqlRoles,
    SqlSshKeys,
    SqlTemplates,
    SqlUsers,
)
from adapters.mysql.vm_repos import SqlVmHistories, SqlVms
from adapters.mysql.worker_repos import SqlWorkerCursors, SqlWorkerLeases
from domain import invoice as inv
from domain import model as m
from domain.account_credit import CreditEntry
from ports.secrets import SecretBox

#: columns stored as `ENC:` ciphertext (schema.md §2)
ENCRYPTED: dict[str, tuple[str, ...]] = {
    "users": ("email", "nwc_connection_string"),
    "user_ssh_key": ("key_data",),
    "vm_host": ("api_token", "ssh_key"),
    "subscription_payment": ("external_data",),
    "vm_payment": ("external_data",),
}


class Mappers:
    """One mapper per table, sharing the secret box."""

    def __init__(self, box: SecretBox) -> None:
        def mapper(table: Table, cls: type[Any]) -> Mapper[Any]:
            return Mapper(table, cls, box, ENCRYPTED.get(table.name, ()))

        self.user = mapper(t.users, m.User)
        self.ssh_key = mapper(t.user_ssh_key, m.SshKey)
        self.company = mapper(t.company, m.Company)
        self.role = mapper(t.admin_roles, m.AdminRole)
        self.permission = mapper(t.admin_role_permissions, m.RolePermission)
        self.assignment = mapper(t.admin_role_assignments, m.RoleAssignment)
        self.region = mapper(t.vm_host_region, m.Region)
        self.host = mapper(t.vm_host, m.Host)
        self.host_disk = mapper(t.vm_host_disk, m.HostDisk)
        self.image = mapper(t.vm_os_image, m.OsImage)
        self.ip_range = mapper(t.ip_range, m.IpRange)
        self.ip_assignment = mapper(t.vm_ip_assignment, m.IpAssignment)
        self.cost_plan = mapper(t.vm_cost_plan, m.CostPlan)
        self.template = mapper(t.vm_template, m.VmTemplate)
        self.custom_pricing = mapper(t.vm_custom_pricing, m.CustomPricing)
        self.custom_pricing_disk = mapper(t.vm_custom_pricing_disk, m.CustomPricingDisk)
        self.custom_template = mapper(t.vm_custom_template, m.CustomTemplate)
        self.vm = mapper(t.vm, m.Vm)
        self.vm_history = mapper(t.vm_history, m.VmHistory)
        self.subscription = mapper(t.subscription, m.Subscription)
        self.line_item = mapper(t.subscription_line_item, m.LineItem)
        self.payment = mapper(t.subscription_payment, m.SubscriptionPayment)
        self.legacy_payment = mapper(t.vm_payment, m.LegacyVmPayment)
        self.ip_space = mapper(t.available_ip_space, m.AvailableIpSpace)
        self.ip_space_pricing = mapper(t.ip_space_pricing, m.IpSpacePricing)
        self.ip_range_subscription = mapper(t.ip_range_subscription, m.IpRangeSubscription)
        self.payment_method = mapper(t.payment_method_config, m.PaymentMethodConfig)
        self.admin_audit = mapper(t.admin_audit, m.AdminAudit)
        self.vm_reads = VmReadPlan(
            VmReadMappers(
                vm=self.vm,
                subscription=self.subscription,
                image=self.image,
                region=self.region,
                template=self.template,
                cost_plan=self.cost_plan,
                custom_template=self.custom_template,
                custom_pricing=self.custom_pricing,
                custom_pricing_disk=self.custom_pricing_disk,
                ip_assignment=self.ip_assignment,
                ip_range=self.ip_range,
            )
        )

        self.invoice = mapper(t.invoice, inv.Invoice)
        self.credit_note = mapper(t.credit_note, inv.CreditNote)

        self.credit_entry = mapper(t.user_credit_ledger, CreditEntry)


#: how each repository of a unit of work is made, on its first use: a request uses a few of
#: them, and building all of them per unit of work cost 15-30 µs (issue 10)
_REPOSITORIES: dict[str, Callable[[Callable[[], AsyncConnection], Mappers], object]] = {
    "users": lambda c, mp: SqlUsers(c, mp.user),
    "ssh_keys": lambda c, mp: SqlSshKeys(c, mp.ssh_key),
    "companies": lambda c, mp: SqlCompanies(c, mp.company),
    "roles": lambda c, mp: SqlRoles(c, mp.role, mp.permission, mp.assignment),
    "regions": lambda c, mp: SqlRegions(c, mp.region),
    "hosts": lambda c, mp: SqlHosts(c, mp.host),
    "host_disks": lambda c, mp: SqlHostDisks(c, mp.host_disk),
    "images": lambda c, mp: SqlImages(c, mp.image),
    "ip_ranges": lambda c, mp: SqlIpRanges(c, mp.ip_range),
    "ip_assignments": lambda c, mp: SqlIpAssignments(c, mp.ip_assignment),
    "cost_plans": lambda c, mp: SqlCostPlans(c, mp.cost_plan),
    "templates": lambda c, mp: SqlTemplates(c, mp.template),
    "custom_pricing": lambda c, mp: SqlCustomPricings(c, mp.custom_pricing, mp.custom_pricing_disk),
    "custom_templates": lambda c, mp: SqlCustomTemplates(c, mp.custom_template),
    "vms": lambda c, mp: SqlVms(c, mp.vm),
    "vm_history": lambda c, mp: SqlVmHistories(c, mp.vm_history),
    "subscriptions": lambda c, mp: SqlSubscriptions(c, mp.subscription, mp.line_item),
    "line_items": lambda c, mp: SqlLineItems(c, mp.line_item),
    "payments": lambda c, mp: SqlPayments(c, mp.payment),
    "legacy_payments": lambda c, mp: SqlLegacyPayments(c, mp.legacy_payment),
    "ip_spaces": lambda c, mp: SqlIpSpaces(c, mp.ip_space),
    "ip_space_pricing": lambda c, mp: SqlIpSpacePrices(c, mp.ip_space_pricing),
    "ip_range_subscriptions": lambda c, mp: SqlIpRangeSubscriptions(c, mp.ip_range_subscription),
    "payment_methods": lambda c, mp: SqlPaymentMethods(c, mp.payment_method),
    "lifecycle_marks": lambda c, mp: SqlLifecycleMarks(c),
    "idempotency_keys": lambda c, mp: SqlIdempotencyKeys(c),
    "worker_leases": lambda c, mp: SqlWorkerLeases(c),
    "worker_cursors": lambda c, mp: SqlWorkerCursors(c),
    "admin_audit": lambda c, mp: SqlAdminAudits(c, mp.admin_audit),
    "vm_reads": lambda c, mp: SqlVmReads(c, mp.vm_reads),
    "lookups": lambda c, mp: SqlReadLookups(c, mp.user),
    "invoices": lambda c, mp: SqlInvoices(c, mp.invoice, mp.credit_note),
    "credit_ledger": lambda c, mp: SqlCreditLedger(c, mp.credit_entry),
}


class SqlUnitOfWork:
    """Checks out a pooled connection on enter, begins a transaction, rolls back on exit.

    The repositories (declared below) are made on first use, from `_REPOSITORIES`."""

    users: SqlUsers
    ssh_keys: SqlSshKeys
    companies: SqlCompanies
    roles: SqlRoles
    regions: SqlRegions
    hosts: SqlHosts
    host_disks: SqlHostDisks
    images: SqlImages
    ip_ranges: SqlIpRanges
    ip_assignments: SqlIpAssignments
    cost_plans: SqlCostPlans
    templates: SqlTemplates
    custom_pricing: SqlCustomPricings
    custom_templates: SqlCustomTemplates
    vms: SqlVms
    vm_history: SqlVmHistories
    subscriptions: SqlSubscriptions
    line_items: SqlLineItems
    payments: SqlPayments
    legacy_payments: SqlLegacyPayments
    ip_spaces: SqlIpSpaces
    ip_space_pricing: SqlIpSpacePrices
    ip_range_subscriptions: SqlIpRangeSubscriptions
    payment_methods: SqlPaymentMethods
    lifecycle_marks: SqlLifecycleMarks
    idempotency_keys: SqlIdempotencyKeys
    worker_leases: SqlWorkerLeases
    worker_cursors: SqlWorkerCursors
    admin_audit: SqlAdminAudits
    vm_reads: SqlVmReads
    lookups: SqlReadLookups
    invoices: SqlInvoices
    credit_ledger: SqlCreditLedger

    def __init__(self, engine: AsyncEngine, mappers: Mappers) -> None:
        self._engine = engine
        self._mappers = mappers
        self._conn: AsyncConnection | None = None

    def __getattr__(self, name: str) -> Any:
        make = _REPOSITORIES.get(name)
        if make is None:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        repository = make(self._connection, self._mappers)
        setattr(self, name, repository)
        return repository

    def _connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._conn

    async def __aenter__(self) -> Self:
        self._conn = await self._engine.connect()
        await self._conn.begin()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._connection(), None
        try:
            if conn.in_transaction():
                await conn.rollback()
        finally:
            await conn.close()

    async def commit(self) -> None:
        await self._connection().commit()

    async def rollback(self) -> None:
        await self._connection().rollback()


class SqlUnitOfWorkFactory:
    """`UnitOfWorkFactory` over an async engine; `box` seals the `ENC:` columns, always (D28)."""

    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self.engine = engine
        self.mappers = Mappers(box)

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.engine, self.mappers)
