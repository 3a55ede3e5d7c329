"""The `lnvps` command line: the composition root's entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from adapters.mysql.legacy_backfill import migrate_legacy_billing
from adapters.mysql.schema_upgrade import (
    SchemaMismatch,
    current_revision,
    downgrade_database,
    upgrade_database,
)
from app.settings import SettingsError, load_settings, resolve_db_url

log = logging.getLogger("lnvps.cli")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lnvps", description="lnvps billing core")
    parser.add_argument("--config", help="YAML config file (default: $LNVPS_CONFIG)")
    parser.add_argument("--db", help="database URL (default: $LNVPS_DB, config `db`, SQLite)")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", help="run the API server and worker (not built yet)")

    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply pending migrations (adopting an LNVPS database)")
    db_sub.add_parser("current", help="print the current schema revision")
    down = db_sub.add_parser("downgrade", help="revert to an earlier revision")
    down.add_argument("revision")

    backfill = sub.add_parser(
        "migrate-legacy-billing", help="move vm_payment / vm.expires to subscriptions"
    )
    backfill.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    return parser


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
    await downgrade_database(url, args.revision)
    print(f"schema at {args.revision}")
    return 0


async def _backfill_command(args: argparse.Namespace, url: str) -> int:
    report = await migrate_legacy_billing(url, dry_run=args.dry_run)
    print(report.summary())
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except SettingsError as exc:
        print(f"lnvps: {exc}", file=sys.stderr)
        return 2
    url = resolve_db_url(args.db, settings)
    try:
        if args.command == "db":
            return asyncio.run(_db_command(args, url))
        if args.command == "migrate-legacy-billing":
            return asyncio.run(_backfill_command(args, url))
    except SchemaMismatch as exc:
        print(f"lnvps: refusing this database: {exc}", file=sys.stderr)
        return 3
    print(
        "lnvps serve: the HTTP server is not built yet (it arrives with the billing issue); "
        "the domain package is usable as a library.",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
