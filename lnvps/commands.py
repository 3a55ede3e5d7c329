"""The `lnvps` commands that need the server's modules (database, legacy backfill, admin
roles, serve), imported by `lnvps.cli` only when one of them runs."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

import attrs

from adapters.clock.offset import parse_duration
from adapters.crypto.secretbox import KeyFileError
from adapters.mysql.legacy_backfill import (
    BackfillIncomplete,
    BackfillLockTimeout,
    LegacyShapeError,
    migrate_legacy_billing,
)
from adapters.mysql.schema_upgrade import (
    DowngradeRefused,
    SchemaMismatch,
    current_revision,
    downgrade_database,
    upgrade_database,
)
from app.admin.roles import (
    Assignment,
    UnknownRole,
    grant_role,
    list_assignments,
    revoke_role_of,
)
from app.settlement_problems import recent_problems
from domain.nip19 import npub, parse_pubkey
from lnvps.container import (
    EncryptionNotConfigured,
    close_container,
    open_container,
    storage_kind,
)
from lnvps.progress import ProgressLine
from lnvps.serve import ListenError, check_mode, serve
from lnvps.settings import Settings
from ports.storage import SettlementProblem


def run_command(args: argparse.Namespace, settings: Settings, url: str) -> int:
    """Run `db`, `migrate-legacy-billing`, `admin` or `serve`; the process's exit status."""
    try:
        if args.command == "db":
            return asyncio.run(_db_command(args, url))
        if args.command == "migrate-legacy-billing":
            return asyncio.run(_backfill_command(args, url))
        if args.command == "admin":
            return asyncio.run(_admin_command(args, settings, url))
        settings = attrs.evolve(
            settings,
            db=url,
            listen=args.listen or settings.listen,
            admin_listen=settings.admin_listen if args.admin_listen is None else args.admin_listen,
        )
        try:
            check_mode(args.mode, settings)
        except ValueError as exc:
            print(f"lnvps: {exc}", file=sys.stderr)
            return 2
        asyncio.run(serve(settings, mode=args.mode))
        return 0
    except ListenError as exc:
        print(f"lnvps: {exc}", file=sys.stderr)
        return 1
    except (EncryptionNotConfigured, KeyFileError) as exc:
        print(f"lnvps: {exc}", file=sys.stderr)
        return 2
    except SchemaMismatch as exc:
        print(f"lnvps: refusing this database: {exc}", file=sys.stderr)
        return 3
    except BackfillIncomplete as exc:
        print(f"lnvps: legacy billing backfill failed, not serving:\n{exc}", file=sys.stderr)
        return 4


async def _db_command(args: argparse.Namespace, url: str) -> int:
    if args.db_command == "upgrade":
        report = await upgrade_database(url)
        adopted = (
            f" (adopted an LNVPS database at sqlx version {report.adopted_sqlx_version})"
            if report.adopted_sqlx_version
            else ""
        )
        print(f"schema at {report.to_revision}; applied {len(report.applied)} revision(s){adopted}")
        return 0
    if args.db_command == "current":
        print(await current_revision(url) or "(empty database)")
        return 0
    try:
        await downgrade_database(url, args.revision, destroy_data=args.destroy_data)
    except DowngradeRefused as exc:
        print(f"lnvps: {exc}", file=sys.stderr)
        return 3
    print(f"schema at {args.revision}")
    return 0


def _interactive(stream: TextIO) -> bool:
    """Progress is drawn on a terminal only; logs, pipes and CI get the report alone."""
    return stream.isatty()


async def _backfill_command(args: argparse.Namespace, url: str) -> int:
    """Exit 0 when everything migrated, 1 on any VM/payment error (D18), 2 when it cannot run."""
    interactive = _interactive(sys.stdout)
    progress = ProgressLine(sys.stdout, interactive=interactive)
    sizes = {"vm_batch": args.vm_batch, "payment_batch": args.payment_batch}
    try:
        report = await migrate_legacy_billing(
            url,
            dry_run=args.dry_run,
            progress=progress if interactive else None,
            **{name: size for name, size in sizes.items() if size is not None},
        )
    except (LegacyShapeError, BackfillLockTimeout) as exc:
        progress.finish()
        print(f"lnvps: legacy backfill cannot run: {exc}", file=sys.stderr)
        return 2
    progress.finish()
    print(report.summary())
    return 0 if report.ok else 1


def _expiry(text: str | None, now: datetime) -> datetime | None:
    """`--expires`: an ISO 8601 time (naive → UTC) or a duration from now (`30d`)."""
    if text is None:
        return None
    try:
        return now + parse_duration(text)
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--expires: not a time or a duration: {text!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _admin_line(found: Assignment) -> str:
    a = found.assignment
    expires = "never" if a.expires_at is None else a.expires_at.isoformat(timespec="seconds")
    by = "console" if a.assigned_by is None else f"user {a.assigned_by}"
    return (
        f"{found.pubkey.hex()}  {npub(found.pubkey)}  {found.role_name}  "
        f"assigned {a.assigned_at.isoformat(timespec='seconds')} by {by}  expires {expires}"
    )


def _problem_line(problem: SettlementProblem, paid: bool | None) -> str:
    state = {None: "payment gone", False: "STILL UNPAID", True: "paid since"}[paid]
    return (
        f"{problem.created.isoformat(timespec='seconds')}  {problem.payment_id.hex()}  "
        f"settle index {problem.settle_index}  {problem.amount_paid_msat} msat  {state}  "
        f"{problem.error}: {problem.message}"
    )


async def _admin_command(args: argparse.Namespace, settings: Settings, url: str) -> int:
    """`lnvps admin grant|revoke|list|settlement-problems`; exit 2 when the input or the
    database is unusable."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if storage_kind(settings) == "memory":
        print("lnvps admin: `db: memory` keeps nothing between processes", file=sys.stderr)
        return 2
    if await current_revision(url) is None:
        print(
            "lnvps admin: the database has no schema yet: run `lnvps db upgrade` first",
            file=sys.stderr,
        )
        return 2
    container = await open_container(attrs.evolve(settings, db=url))
    try:
        uow_factory = container.uow_factory()
        now = container.clock().now()
        if args.admin_command == "list":
            for found in await list_assignments(uow_factory):
                print(_admin_line(found))
            return 0
        if args.admin_command == "settlement-problems":
            for problem, paid in await recent_problems(uow_factory, args.limit):
                print(_problem_line(problem, paid))
            return 0
        try:
            pubkey = parse_pubkey(args.pubkey)
            if args.admin_command == "grant":
                assignment, new = await grant_role(
                    uow_factory,
                    now,
                    pubkey=pubkey,
                    role_name=args.role,
                    expires_at=_expiry(args.expires, now),
                )
                until = (
                    ""
                    if assignment.expires_at is None
                    else (f" until {assignment.expires_at.isoformat(timespec='seconds')}")
                )
                state = "granted" if new else "already held; expiry set"
                print(f"{args.role} {state} for {npub(pubkey)}{until}")
                return 0
            removed = await revoke_role_of(uow_factory, pubkey=pubkey, role_name=args.role)
        except (ValueError, UnknownRole) as exc:
            print(f"lnvps admin: {exc}", file=sys.stderr)
            return 2
        print(f"{args.role} {'revoked' if removed else 'was not held'} for {npub(pubkey)}")
        return 0
    finally:
        await close_container(container)
