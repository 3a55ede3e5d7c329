"""SQL unit of work: one connection and transaction, rolled back unless committed."""

from __future__ import annotations

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
from ports.closing import ClosesOnExit
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


class SqlUnitOfWork(ClosesOnExit):
    """Checks out a pooled connection on enter, begins a transaction, rolls back on exit."""

    def __init__(self, engine: AsyncEngine, mappers: Mappers) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None
        c, mp = self._connection, mappers
        self.users = SqlUsers(c, mp.user)
        self.ssh_keys = SqlSshKeys(c, mp.ssh_key)
        self.companies = SqlCompanies(c, mp.company)
        self.roles = SqlRoles(c, mp.role, mp.permission, mp.assignment)
        self.regions = SqlRegions(c, mp.region)
        self.hosts = SqlHosts(c, mp.host)
        self.host_disks = SqlHostDisks(c, mp.host_disk)
        self.images = SqlImages(c, mp.image)
        self.ip_ranges = SqlIpRanges(c, mp.ip_range)
        self.ip_assignments = SqlIpAssignments(c, mp.ip_assignment)
        self.cost_plans = SqlCostPlans(c, mp.cost_plan)
        self.templates = SqlTemplates(c, mp.template)
        self.custom_pricing = SqlCustomPricings(c, mp.custom_pricing, mp.custom_pricing_disk)
        self.custom_templates = SqlCustomTemplates(c, mp.custom_template)
        self.vms = SqlVms(c, mp.vm)
        self.vm_history = SqlVmHistories(c, mp.vm_history)
        self.subscriptions = SqlSubscriptions(c, mp.subscription, mp.line_item)
        self.line_items = SqlLineItems(c, mp.line_item)
        self.payments = SqlPayments(c, mp.payment)
        self.legacy_payments = SqlLegacyPayments(c, mp.legacy_payment)
        self.ip_spaces = SqlIpSpaces(c, mp.ip_space)
        self.ip_space_pricing = SqlIpSpacePrices(c, mp.ip_space_pricing)
        self.ip_range_subscriptions = SqlIpRangeSubscriptions(c, mp.ip_range_subscription)
        self.payment_methods = SqlPaymentMethods(c, mp.payment_method)
        self.lifecycle_marks = SqlLifecycleMarks(c)
        self.idempotency_keys = SqlIdempotencyKeys(c)
        self.worker_leases = SqlWorkerLeases(c)
        self.worker_cursors = SqlWorkerCursors(c)
        self.admin_audit = SqlAdminAudits(c, mp.admin_audit)
        self.vm_reads = SqlVmReads(c, mp.vm_reads)
        self.lookups = SqlReadLookups(c, mp.user)

        self.invoices = SqlInvoices(c, mp.invoice, mp.credit_note)

        self.credit_ledger = SqlCreditLedger(c, mp.credit_entry)

    def _connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._conn

    async def __aenter__(self) -> Self:
        self._conn = await self._engine.connect()
        await self._conn.begin()
        return self

    async def aclose(self) -> None:
        """Leave the unit of work (`async with` exit): roll back what was not committed."""
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
