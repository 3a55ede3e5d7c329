"""Command line for the legacy billing backfill: `python -m adapters.mysql.legacy_cli --db URL`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from adapters.mysql.legacy_backfill import (
    BackfillIncomplete,
    BackfillLockTimeout,
    LegacyShapeError,
    migrate_legacy_billing,
    prepare_database,
)
from domain.legacy import BackfillReport

EXIT_OK, EXIT_ERRORS, EXIT_FATAL = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m adapters.mysql.legacy_cli",
        description="Link every legacy VM to a subscription and copy vm_payment (D18).",
    )
    parser.add_argument("--db", required=True, help="database URL (mysql://… or sqlite:///…)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="report what would be done; write nothing"
    )
    mode.add_argument(
        "--upgrade", action="store_true", help="upgrade the schema to head first (start-up order)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log every planned VM")
    return parser


async def _run(url: str, *, dry_run: bool, upgrade: bool) -> BackfillReport:
    if upgrade:
        try:
            return await prepare_database(url)
        except BackfillIncomplete as exc:
            return exc.report
    return await migrate_legacy_billing(url, dry_run=dry_run)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit 0 when everything migrated, 1 on any per-VM/payment error, 2 when it cannot run."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
    )
    try:
        report = asyncio.run(_run(args.db, dry_run=args.dry_run, upgrade=args.upgrade))
    except (LegacyShapeError, BackfillLockTimeout) as exc:
        sys.stderr.write(f"legacy backfill cannot run: {exc}\n")
        return EXIT_FATAL
    sys.stdout.write(report.summary() + "\n")
    return EXIT_OK if report.ok else EXIT_ERRORS


if __name__ == "__main__":
    raise SystemExit(main())
