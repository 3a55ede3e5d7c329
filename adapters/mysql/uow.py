"""SQL unit of work: one connection and transaction, rolled back unless committed."""

from __future__ import annotations

from functools import cached_property
from typing import Any, Self

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.mysql import tables as t
from adapters.mysql.audit_repos import SqlAdminAudits
from adapters.mysql.billing_repos import (
    SqlLegacyPayments,
    SqlLineItems,
    SqlPayments,
    SqlSubscriptions,
)
from adapters.mysql.busy import raise_busy_as_storage_busy
from adapters.mysql.connection import SqlConnection
from adapters.mysql.credit_repos import SqlCreditLedger
from adapters.mysql.engine import loop_engine_of
from adapters.mysql.invoice_repos import SqlInvoices
from adapters.mysql.mapping import Mapper
from adapters.mysql.pool_hooks import mark_committed
from adapters.mysql.product_repos import (
    SqlIdempotencyKeys,
    SqlIpRangeSubscriptions,
    SqlIpSpacePrices,
    SqlIpSpaces,
    SqlLifecycleMarks,
    SqlPaymentMethods,
)
from adapters.mysql.read_models import SqlReadLookups, SqlVmReads, VmReadMappers, VmReadPlan
from adapters.mysql.report_reads import ReportMappers, SqlReportReads
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
from adapters.mysql.settlement_repos import SqlSettlementProblems
from adapters.mysql.sqlite_loop import LoopEngine
from adapters.mysql.status_reads import CustomMappers, VmStatusPlan
from adapters.mysql.vm_repos import SqlVmHistories, SqlVms
from adapters.mysql.worker_repos import SqlWorkerCursors, SqlWorkerLeases
from domain import invoice as inv
from domain import model as m
from domain.account_credit import CreditEntry
from ports.closing import ClosesOnExit
from ports.secrets import SecretBox
from ports.storage import SettlementProblem

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
        self.vm_status_reads = VmStatusPlan(
            CustomMappers(self.custom_template, self.custom_pricing, self.custom_pricing_disk)
        )

        self.invoice = mapper(t.invoice, inv.Invoice)
        self.credit_note = mapper(t.credit_note, inv.CreditNote)
        self.reports = ReportMappers(
            payment=self.payment,
            vm=self.vm,
            host=self.host,
            region=self.region,
            invoice=self.invoice,
        )

        self.credit_entry = mapper(t.user_credit_ledger, CreditEntry)
        self.settlement_problem = mapper(t.settlement_problem, SettlementProblem)


class SqlUnitOfWork(ClosesOnExit):
    """Checks out a pooled connection on enter (the transaction begins with the first statement);
    what was not committed is rolled back on exit."""

    def __init__(self, engine: AsyncEngine | LoopEngine, mappers: Mappers) -> None:
        self._engine = engine
        self._conn: SqlConnection | None = None
        self._mappers = mappers

    # each repository is made on first use: a request touches two or three of them (issue 10)

    @cached_property
    def users(self) -> SqlUsers:
        return SqlUsers(self._connection, self._mappers.user)

    @cached_property
    def ssh_keys(self) -> SqlSshKeys:
        return SqlSshKeys(self._connection, self._mappers.ssh_key)

    @cached_property
    def companies(self) -> SqlCompanies:
        return SqlCompanies(self._connection, self._mappers.company)

    @cached_property
    def roles(self) -> SqlRoles:
        return SqlRoles(
            self._connection,
            self._mappers.role,
            self._mappers.permission,
            self._mappers.assignment,
        )

    @cached_property
    def regions(self) -> SqlRegions:
        return SqlRegions(self._connection, self._mappers.region)

    @cached_property
    def hosts(self) -> SqlHosts:
        return SqlHosts(self._connection, self._mappers.host)

    @cached_property
    def host_disks(self) -> SqlHostDisks:
        return SqlHostDisks(self._connection, self._mappers.host_disk)

    @cached_property
    def images(self) -> SqlImages:
        return SqlImages(self._connection, self._mappers.image)

    @cached_property
    def ip_ranges(self) -> SqlIpRanges:
        return SqlIpRanges(self._connection, self._mappers.ip_range)

    @cached_property
    def ip_assignments(self) -> SqlIpAssignments:
        return SqlIpAssignments(self._connection, self._mappers.ip_assignment)

    @cached_property
    def cost_plans(self) -> SqlCostPlans:
        return SqlCostPlans(self._connection, self._mappers.cost_plan)

    @cached_property
    def templates(self) -> SqlTemplates:
        return SqlTemplates(self._connection, self._mappers.template)

    @cached_property
    def custom_pricing(self) -> SqlCustomPricings:
        return SqlCustomPricings(
            self._connection,
            self._mappers.custom_pricing,
            self._mappers.custom_pricing_disk,
        )

    @cached_property
    def custom_templates(self) -> SqlCustomTemplates:
        return SqlCustomTemplates(self._connection, self._mappers.custom_template)

    @cached_property
    def vms(self) -> SqlVms:
        return SqlVms(self._connection, self._mappers.vm)

    @cached_property
    def vm_history(self) -> SqlVmHistories:
        return SqlVmHistories(self._connection, self._mappers.vm_history)

    @cached_property
    def subscriptions(self) -> SqlSubscriptions:
        return SqlSubscriptions(
            self._connection,
            self._mappers.subscription,
            self._mappers.line_item,
        )

    @cached_property
    def line_items(self) -> SqlLineItems:
        mappers = self._mappers
        return SqlLineItems(
            self._connection,
            mappers.line_item,
            mappers.user,
            mappers.company,
            mappers.vm,
            mappers.template,
            mappers.cost_plan,
            mappers.subscription,
            mappers.payment,
            self.subscriptions,
        )

    @cached_property
    def payments(self) -> SqlPayments:
        return SqlPayments(self._connection, self._mappers.payment)

    @cached_property
    def legacy_payments(self) -> SqlLegacyPayments:
        return SqlLegacyPayments(self._connection, self._mappers.legacy_payment)

    @cached_property
    def ip_spaces(self) -> SqlIpSpaces:
        return SqlIpSpaces(self._connection, self._mappers.ip_space)

    @cached_property
    def ip_space_pricing(self) -> SqlIpSpacePrices:
        return SqlIpSpacePrices(self._connection, self._mappers.ip_space_pricing)

    @cached_property
    def ip_range_subscriptions(self) -> SqlIpRangeSubscriptions:
        m = self._mappers
        return SqlIpRangeSubscriptions(
            self._connection, m.ip_range_subscription, m.subscription, m.line_item
        )

    @cached_property
    def payment_methods(self) -> SqlPaymentMethods:
        return SqlPaymentMethods(self._connection, self._mappers.payment_method)

    @cached_property
    def lifecycle_marks(self) -> SqlLifecycleMarks:
        return SqlLifecycleMarks(self._connection)

    @cached_property
    def idempotency_keys(self) -> SqlIdempotencyKeys:
        return SqlIdempotencyKeys(self._connection)

    @cached_property
    def worker_leases(self) -> SqlWorkerLeases:
        return SqlWorkerLeases(self._connection)

    @cached_property
    def worker_cursors(self) -> SqlWorkerCursors:
        return SqlWorkerCursors(self._connection)

    @cached_property
    def admin_audit(self) -> SqlAdminAudits:
        return SqlAdminAudits(self._connection, self._mappers.admin_audit)

    @cached_property
    def vm_reads(self) -> SqlVmReads:
        return SqlVmReads(self._connection, self._mappers.vm_reads, self._mappers.vm_status_reads)

    @cached_property
    def lookups(self) -> SqlReadLookups:
        return SqlReadLookups(self._connection, self._mappers.user)

    @cached_property
    def report_reads(self) -> SqlReportReads:
        return SqlReportReads(self._connection, self._mappers.reports)

    @cached_property
    def invoices(self) -> SqlInvoices:
        return SqlInvoices(self._connection, self._mappers.invoice, self._mappers.credit_note)

    @cached_property
    def credit_ledger(self) -> SqlCreditLedger:
        return SqlCreditLedger(self._connection, self._mappers.credit_entry)

    @cached_property
    def settlement_problems(self) -> SqlSettlementProblems:
        return SqlSettlementProblems(self._connection, self._mappers.settlement_problem)

    def _connection(self) -> SqlConnection:
        if self._conn is None:
            raise RuntimeError("unit of work used outside `async with`")
        return self._conn

    async def __aenter__(self) -> Self:
        # the transaction begins with the first statement (SQLAlchemy's autobegin, as an
        # explicit `begin()` would: neither driver is sent a BEGIN): one loop hop less
        self._conn = await self._engine.connect()
        return self

    async def aclose(self) -> None:
        """Leave the unit of work (`async with` exit): roll back what was not committed."""
        conn, self._conn = self._connection(), None
        await conn.close()  # rolls back what was not committed, in the same hop

    async def commit(self) -> None:
        conn = self._connection()
        await conn.commit()
        mark_committed(conn)  # returned to the pool without another ROLLBACK

    async def rollback(self) -> None:
        await self._connection().rollback()


class SqlUnitOfWorkFactory:
    """`UnitOfWorkFactory` over an async engine; `box` seals the `ENC:` columns, always (D28).

    On a SQLite file the units of work run on the engine's sync twin (`sqlite_loop`: no
    async layer per statement). A lock the database gave up on (timeout, deadlock) is
    `StorageBusy` on either."""

    def __init__(self, engine: AsyncEngine, box: SecretBox) -> None:
        self.engine = engine
        self.mappers = Mappers(box)
        self._runs_on: AsyncEngine | LoopEngine = loop_engine_of(engine) or engine
        raise_busy_as_storage_busy(engine)

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self._runs_on, self.mappers)
