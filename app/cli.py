"""The `lnvps` command line: the composition root's entry point."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import attrs

from adapters.crypto.secretbox import KeyFileError
from adapters.http.nip98_sign import nip98_header
from adapters.lightning.dev import DevInvoiceError, DevLightningNode, parse_payment_id
from adapters.memory.offset_clock import OffsetClock, parse_duration
from adapters.mysql.legacy_backfill import (
    BackfillIncomplete,
    BackfillLockTimeout,
    LegacyShapeError,
    migrate_legacy_billing,
)
from adapters.mysql.schema_upgrade import (
    SchemaMismatch,
    current_revision,
    downgrade_database,
    upgrade_database,
)
from app.container import (
    DEV_CLOCK_FILE,
    DEV_LIGHTNING_FILE,
    EncryptionNotConfigured,
    state_path,
)
from app.logs import setup_logging
from app.serve import check_mode, serve
from app.settings import Settings, SettingsError, load_settings, resolve_db_url

log = logging.getLogger("lnvps.cli")

DEV_NOSTR_KEY_FILE = "lnvps-dev-nostr.key"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lnvps", description="lnvps billing core")
    parser.add_argument("--config", help="YAML config file (default: $LNVPS_CONFIG)")
    parser.add_argument("--db", help="database URL (default: $LNVPS_DB, config `db`, SQLite)")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the user API, the worker and the payment listeners")
    serve.add_argument("--listen", help="HOST:PORT (default: $LNVPS_LISTEN, 127.0.0.1:8000)")
    serve.add_argument(
        "--mode",
        choices=("all", "api", "worker"),
        default="all",
        help="all: API + worker in one process; api / worker: separate processes over Redis",
    )

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

    dev = sub.add_parser("dev", help="embedded-default dev tools (dev rail, dev clock)")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    pay = dev_sub.add_parser("pay", help="settle a dev-rail invoice as if it had been paid")
    pay.add_argument("payment_id", help="payment id (64 hex digits) or the BOLT11 invoice")
    advance = dev_sub.add_parser("advance-clock", help="move the dev server's clock forward")
    advance.add_argument("duration", help="e.g. 30m, 25h, 2d, 1w")
    auth = dev_sub.add_parser(
        "auth", help="print a NIP-98 Authorization header signed with the dev key (for curl)"
    )
    auth.add_argument("method", help="HTTP method, e.g. GET")
    auth.add_argument("url", help="the full request URL")
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
    """Exit 0 when everything migrated, 1 on any VM/payment error (D18), 2 when it cannot run."""
    try:
        report = await migrate_legacy_billing(url, dry_run=args.dry_run)
    except (LegacyShapeError, BackfillLockTimeout) as exc:
        print(f"lnvps: legacy backfill cannot run: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    return 0 if report.ok else 1


def dev_nostr_key(path: Path) -> bytes:
    """The dev user's Nostr secret key, created (32 random bytes, mode 0600) on first use."""
    if path.exists():
        return bytes.fromhex(path.read_text().strip())
    secret = secrets.token_bytes(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(secret.hex())
    return secret


async def _dev_command(args: argparse.Namespace, settings: Settings) -> int:
    if not settings.is_embedded_default:
        print("lnvps dev: only for the embedded default (dev rail, dev clock)", file=sys.stderr)
        return 2
    if args.dev_command == "auth":
        secret = dev_nostr_key(state_path(settings, DEV_NOSTR_KEY_FILE))
        print(nip98_header(secret, args.url, args.method, int(time.time())))
        return 0
    if args.dev_command == "pay":
        node = DevLightningNode(state_path(settings, DEV_LIGHTNING_FILE))
        try:
            settled = await node.settle(parse_payment_id(args.payment_id))
        except (ValueError, DevInvoiceError) as exc:
            print(f"lnvps dev pay: {exc}", file=sys.stderr)
            return 1
        print(f"settled {settled.payment_hash.hex()} (settle index {settled.settle_index})")
        return 0
    clock = OffsetClock(state_path(settings, DEV_CLOCK_FILE))
    try:
        clock.advance(parse_duration(args.duration))
    except ValueError as exc:
        print(f"lnvps dev advance-clock: {exc}", file=sys.stderr)
        return 1
    print(f"dev clock now {clock.now().isoformat(timespec='seconds')} (offset {clock.offset()})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        setup_logging(settings.log_format or ("text" if settings.is_embedded_default else "json"))
    except (SettingsError, ValueError) as exc:
        print(f"lnvps: {exc}", file=sys.stderr)
        return 2
    url = resolve_db_url(args.db, settings)
    try:
        if args.command == "db":
            return asyncio.run(_db_command(args, url))
        if args.command == "migrate-legacy-billing":
            return asyncio.run(_backfill_command(args, url))
        if args.command == "dev":
            return asyncio.run(_dev_command(args, settings))
        settings = attrs.evolve(settings, db=url, listen=args.listen or settings.listen)
        try:
            check_mode(args.mode, settings)
        except ValueError as exc:
            print(f"lnvps: {exc}", file=sys.stderr)
            return 2
        asyncio.run(serve(settings, mode=args.mode))
        return 0
    except (EncryptionNotConfigured, KeyFileError) as exc:
        print(f"lnvps: {exc}", file=sys.stderr)
        return 2
    except SchemaMismatch as exc:
        print(f"lnvps: refusing this database: {exc}", file=sys.stderr)
        return 3
    except BackfillIncomplete as exc:
        print(f"lnvps: legacy billing backfill failed, not serving:\n{exc}", file=sys.stderr)
        return 4


if __name__ == "__main__":
    raise SystemExit(main())
