"""Adopt a legacy LNVPS database: link every VM to a subscription and copy `vm_payment` (D18).

Trade-off between D18's "one transaction per VM" and speed: Phase 1 writes a batch of VMs
(default 1 000) in one transaction with three set-wise statements (multi-row INSERT … RETURNING
for subscriptions and line items, one guarded UPDATE … CASE for the links). A transaction is
all-or-nothing for every VM in it, so no VM can ever end up with part of its rows. If anything in
the batch fails, the batch is rolled back and redone one VM per transaction, which isolates the
bad VM (its rows stay absent, it is reported) while the others commit. The cost of a failure is
redoing one batch slowly; the cost of a crash is losing at most one uncommitted batch, which the
next run redoes (idempotent, no orphan subscription: R1). Phase 2 copies payments with one
`INSERT … SELECT … WHERE NOT EXISTS` per id range, so `external_data`, `rate` and timestamps are
copied by the server byte for byte (B5) and memory stays flat. D18's `is_setup = 1 only where
the VM has a paid payment` is applied in the same transaction that copies a paid payment (set-wise,
`legacy_payments.mark_setup`): Phase 1 writes `is_setup = 0`, because looking payments up per VM
reads `vm_payment` in random order and made Phase 1 I/O-bound on large tables. So a subscription
is set up exactly when a paid legacy payment of its VM has been copied; a paid payment that fails
to copy (reported) leaves it at 0 until it is fixed and the backfill re-run. The exception is the
few VMs LNVPS marked as unpaid orders (`expires == created`): Phase 1 looks their payments up,
since a never-paid one is adopted without expiry (`domain.legacy.plan_vm`), and one with a paid
payment is then written set up. The same per-range transaction also sets up the pre-existing
non-VM subscriptions (IP range, ASN, DNS) that were paid before the schema upgrade added
`is_setup` (R6; deviation from the reference, which left them at 0 and so charged their setup
fee again).

Drift (review r11): the old LNVPS must be stopped for good before the first run, since Phase 1
copies `vm.expires` once and the old server keeps writing `vm.expires` and `vm_payment` when a
payment arrives. Until finalization every run reports its traces as errors, set-wise per id
range (`legacy_payments.read_withheld`, `read_paid_after_copy`): a paid row still to copy
whose VM's legacy expiry no longer equals its subscription's is held back (copied, it would
look applied while the subscription misses its time), and a copy still unpaid whose original
was marked paid since is reported; finalization refuses while either exists. Nothing is moved
automatically: whether lnvps changed the subscription since adoption is not known here.

Concurrency (R2): on MariaDB/MySQL the run holds `GET_LOCK('lnvps_legacy_backfill')`; a second
process **waits** up to `lock_timeout` seconds (then finds nothing left to do) and otherwise fails
with `BackfillLockTimeout`. Every link is also a guarded `UPDATE … WHERE link IS NULL OR 0`, so
even without the lock (SQLite) a VM is never linked twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import attrs
from sqlalchemy import Select, func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.mysql import tables as t
from adapters.mysql.engine import create_engine, dialect_is_mysql
from adapters.mysql.legacy_payments import (
    classify,
    copy_range,
    count_plain_rows,
    count_present,
    mark_setup,
    next_bound,
    read_attention_rows,
    read_paid_after_copy,
    read_withheld,
)
from adapters.mysql.legacy_shape import BillingShape, LegacyShapeError, read_shape
from adapters.mysql.legacy_vms import (
    AlreadyLinked,
    count_linked,
    plan_batch,
    read_vm_batch,
    unlinked_condition,
    write_batch,
    write_one,
)
from adapters.mysql.named_locks import of_this_database
from adapters.mysql.schema_upgrade import upgrade_database
from domain.legacy import BackfillReport, LegacyDataError, Problem, VmPlan

__all__ = [
    "BackfillIncomplete",
    "BackfillLockTimeout",
    "LegacyShapeError",
    "migrate_legacy_billing",
    "prepare_database",
]

log = logging.getLogger("lnvps.legacy_backfill")

LOCK_NAME = "lnvps_legacy_backfill"
VM_BATCH = 1000
PAYMENT_BATCH = 5000

#: Called after each batch with the phase name ("phase1"/"phase2"), the rows handled so far
#: in that phase and the phase's total (VMs to link / `vm_payment` rows) counted at its start.
Progress = Callable[[str, int, int], None]


class BackfillLockTimeout(RuntimeError):
    """Another process held the backfill lock for longer than `lock_timeout` (R2)."""


class BackfillIncomplete(RuntimeError):
    """The backfill reported errors; startup must not go on to serve VMs (§7)."""

    def __init__(self, report: BackfillReport) -> None:
        super().__init__(report.summary())
        self.report = report


async def migrate_legacy_billing(
    engine_or_url: AsyncEngine | str | URL,
    *,
    dry_run: bool,
    progress: Progress | None = None,
    now: datetime | None = None,
    lock_timeout: int = 300,
    vm_batch: int = VM_BATCH,
    payment_batch: int = PAYMENT_BATCH,
) -> BackfillReport:
    """Run (or, with `dry_run`, plan) the backfill and return its report; never raises per VM.

    Raises `LegacyShapeError` when the database cannot be backfilled at all (not upgraded
    yet in a real run; legacy columns dropped before the backfill, B1) and
    `BackfillLockTimeout` when another process keeps the lock. A dry run reads the legacy
    shape as it is (even before any schema upgrade), takes no lock and writes nothing: the
    session is made read-only for its duration as a second guard.
    """
    owned = not isinstance(engine_or_url, AsyncEngine)
    engine = (
        create_engine(engine_or_url)
        if not isinstance(engine_or_url, AsyncEngine)
        else (engine_or_url)
    )
    moment = now or datetime.now(UTC)
    try:
        async with engine.connect() as conn:
            run = _Run(conn, dry_run, progress, moment, vm_batch, payment_batch)
            return await run.execute(lock_timeout)
    finally:
        if owned:
            await engine.dispose()


@attrs.define
class _Run:
    """One backfill run on one connection (the MySQL lock is per session)."""

    conn: AsyncConnection
    dry_run: bool
    progress: Progress | None
    now: datetime
    vm_batch: int
    payment_batch: int
    report: BackfillReport = attrs.field(init=False)
    failed_vms: set[int] = attrs.field(init=False, factory=set)
    mysql: bool = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.report = BackfillReport(dry_run=self.dry_run)
        self.mysql = dialect_is_mysql(self.conn)

    async def execute(self, lock_timeout: int) -> BackfillReport:
        shape = await read_shape(self.conn)
        await self.conn.rollback()
        if await self._nothing_to_do(shape):
            return self.report
        if not self.dry_run and not shape.is_head:
            raise LegacyShapeError(
                "the database is not upgraded to the head schema: run upgrade_database first "
                "(prepare_database does both, in order)"
            )
        await self._enter(lock_timeout)
        try:
            await self._phase1(shape)
            await self._phase2(shape)
        finally:
            await self._leave()
        log.info("%s", self.report.summary())
        return self.report

    async def _nothing_to_do(self, shape: BillingShape) -> bool:
        """Finalized (even half-way, §9) → skip; legacy billing dropped too early → refuse (B1).

        Finalization drops `vm_payment` only once every VM is linked and every payment copied,
        and then the `vm` columns one by one (not atomic on MariaDB). So "every VM linked and
        `vm_payment` gone" means finalization ran, whichever legacy columns a crash left: there
        is nothing to backfill, and a second `finalize_legacy_billing` finishes the rest.
        """
        if shape.has_vm_payment and shape.has_legacy_vm_columns:
            return False
        stmt = select(func.count()).select_from(t.vm).where(unlinked_condition(shape))
        unlinked = int((await self.conn.execute(stmt)).scalar_one())
        await self.conn.rollback()
        if not shape.has_vm_payment and shape.has_link and unlinked == 0:
            note = (
                "finalized shape (no vm_payment, no vm.expires): skipped"
                if not {"expires", "auto_renewal_enabled", "created"} & shape.vm_columns
                else "finalization was interrupted (vm_payment dropped, legacy vm columns left): "
                "skipped; run finalize_legacy_billing again to finish it"
            )
            self.report.notes.append(note)
            return True
        missing = [
            name
            for name, present in (
                ("table vm_payment", shape.has_vm_payment),
                ("columns vm.expires/vm.auto_renewal_enabled", shape.has_legacy_vm_columns),
            )
            if not present
        ]
        raise LegacyShapeError(
            f"{' and '.join(missing)} missing while {unlinked} VMs are unlinked"
            f"{'' if shape.has_vm_payment else ' (their payments cannot be copied)'}: legacy "
            "billing was dropped before the backfill ran (B1); restore it from a backup"
        )

    async def _enter(self, lock_timeout: int) -> None:
        if self.dry_run:
            guard = "SET SESSION TRANSACTION READ ONLY" if self.mysql else "PRAGMA query_only = ON"
            await self.conn.execute(text(guard))
            await self.conn.commit()
        elif self.mysql:
            stmt = text(f"SELECT GET_LOCK({of_this_database('name')}, :timeout)")
            params = {"name": LOCK_NAME, "timeout": lock_timeout}
            got = (await self.conn.execute(stmt, params)).scalar()
            await self.conn.commit()
            if got != 1:
                raise BackfillLockTimeout(
                    f"another process holds {LOCK_NAME!r} (waited {lock_timeout}s); "
                    "it is migrating now — retry when it has finished"
                )

    async def _leave(self) -> None:
        await self.conn.rollback()
        if self.dry_run:
            reset = (
                "SET SESSION TRANSACTION READ WRITE" if self.mysql else "PRAGMA query_only = OFF"
            )
            await self.conn.execute(text(reset))
        elif self.mysql:
            await self.conn.execute(
                text(f"SELECT RELEASE_LOCK({of_this_database('name')})"), {"name": LOCK_NAME}
            )
        await self.conn.commit()

    def _tick(self, phase: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(phase, done, max(total, done))

    async def _count(self, stmt: Select[int]) -> int:
        """A total for the progress display (skipped when nobody is watching)."""
        if self.progress is None:
            return 0
        total = int((await self.conn.execute(stmt)).scalar_one())
        await self.conn.rollback()
        return total

    # --- Phase 1 ---------------------------------------------------------------------------
    async def _phase1(self, shape: BillingShape) -> None:
        self.report.vms_skipped = await count_linked(self.conn, shape)
        await self.conn.rollback()
        total = await self._count(
            select(func.count()).select_from(t.vm).where(unlinked_condition(shape))
        )
        after = 0
        while True:
            vms = await read_vm_batch(self.conn, shape, after, self.vm_batch)
            await self.conn.rollback()
            if not vms:
                break
            after = vms[-1].id
            plans, problems = plan_batch(vms, self.now)
            for problem in problems:
                self._vm_failed(problem)
            for plan in plans:
                for warning in plan.warnings:
                    self.report.add_warning(Problem("phase1", warning, vm_id=plan.vm_id))
            if self.dry_run:
                for plan in plans:
                    log.debug("[DRY RUN] %s", plan.log_line())
                self._linked(plans)
            elif plans:
                await self._write_plans(plans)
            self._tick("phase1", self.report.vms_linked + self.report.vms_failed, total)

    def _linked(self, plans: list[VmPlan]) -> None:
        self.report.vms_linked += len(plans)
        self.report.vms_never_paid += sum(1 for p in plans if p.subscription.expires is None)

    def _vm_failed(self, problem: Problem) -> None:
        self.report.vms_failed += 1
        if problem.vm_id is not None:
            self.failed_vms.add(problem.vm_id)
        self.report.add_error(problem)
        log.warning("Phase 1: Failed to migrate VM %s: %s", problem.vm_id, problem.message)

    async def _write_plans(self, plans: list[VmPlan]) -> None:
        if self.conn.dialect.insert_returning and len(plans) > 1:
            try:
                async with self.conn.begin():
                    await write_batch(self.conn, plans)
                self._linked(plans)
                return
            except (SQLAlchemyError, RuntimeError) as exc:
                log.info("Phase 1: batch rolled back (%s); retrying VM by VM", exc)
        for plan in plans:
            try:
                async with self.conn.begin():
                    await write_one(self.conn, plan)
                self._linked([plan])
            except AlreadyLinked:
                self.report.vms_skipped += 1
            except (SQLAlchemyError, LegacyDataError) as exc:
                message = str(exc).splitlines()[0]
                self._vm_failed(Problem("phase1", message, vm_id=plan.vm_id))

    # --- Phase 2 ---------------------------------------------------------------------------
    async def _phase2(self, shape: BillingShape) -> None:
        low: bytes | None = None
        done = 0
        total = await self._count(select(func.count()).select_from(t.vm_payment))
        while True:
            high = await next_bound(self.conn, low, self.payment_batch)
            present, conflicts = await count_present(self.conn, shape, low, high)
            conflicts += await self._drifted_copies(low, high, conflicts)
            withheld = await read_withheld(self.conn, shape, low, high)
            rows = await read_attention_rows(self.conn, shape, low, high)
            ok, problems, warnings, failed = classify(
                rows, dry_run_failed_vms=self.failed_vms if self.dry_run else None
            )
            for warning in warnings:
                self.report.add_warning(warning)
                log.warning("Phase 2: %s", warning)
            if self.dry_run:
                copied = await count_plain_rows(self.conn, shape, low, high) + len(ok)
                await self.conn.rollback()
            else:
                await self.conn.rollback()
                try:
                    copied = await self._copy(shape, low, high, ok, guard=present > 0)
                except SQLAlchemyError as exc:
                    copied = 0
                    failed += await count_plain_rows(self.conn, shape, low, high) + len(ok)
                    await self.conn.rollback()
                    span = f"{(low or b'').hex()[:12]}…{(high or b'').hex()[:12]}"
                    message = str(exc).splitlines()[0]
                    problems.append(Problem("phase2", f"copy of id range {span} failed: {message}"))
            self.report.payments_copied += copied
            self.report.payments_skipped += present - len(conflicts)
            self.report.payments_failed += failed + len(conflicts) + len(withheld)
            for problem in [*conflicts, *withheld, *problems]:
                self.report.add_error(problem)
                log.warning("Phase 2: %s", problem)
            done += copied + present + failed + len(withheld)
            self._tick("phase2", done, total)
            if high is None:
                break
            low = high

    async def _drifted_copies(
        self, low: bytes | None, high: bytes | None, conflicts: list[Problem]
    ) -> list[Problem]:
        """Copies the old LNVPS settled afterwards (`read_paid_after_copy`), each once."""
        reported = {problem.payment_id for problem in conflicts}
        drifted = await read_paid_after_copy(self.conn, low, high)
        return [problem for problem in drifted if problem.payment_id not in reported]

    async def _copy(
        self,
        shape: BillingShape,
        low: bytes | None,
        high: bytes | None,
        ok: dict[bytes, str | None],
        *,
        guard: bool,
    ) -> int:
        try:
            async with self.conn.begin():
                copied = await copy_range(self.conn, shape, low, high, ok, guard=guard)
                await mark_setup(self.conn, shape, low, high)
                return copied
        except IntegrityError:
            if guard:
                raise
            log.info("Phase 2: copies appeared concurrently; retrying with NOT EXISTS")
        async with self.conn.begin():
            copied = await copy_range(self.conn, shape, low, high, ok, guard=True)
            await mark_setup(self.conn, shape, low, high)
            return copied


async def prepare_database(url: str | URL, *, progress: Progress | None = None) -> BackfillReport:
    """Start-up hook: schema upgrade, then the backfill, before anything reads a VM (§3, B1).

    Raises `BackfillIncomplete` (carrying the report) when any VM or payment failed, so the
    server stops before serving VMs whose link is missing; the next start retries what is left.
    """
    await upgrade_database(url)
    report = await migrate_legacy_billing(url, dry_run=False, progress=progress)
    if not report.ok:
        raise BackfillIncomplete(report)
    return report
