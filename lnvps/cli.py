"""The `lnvps` command line: the composition root's entry point. `lnvps dev …` runs from the
light modules imported here; the other commands import the server's (`lnvps.commands`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
from coincurve import PublicKeyXOnly

from adapters.clock.offset import OffsetClock, parse_duration
from adapters.http.nip98_sign import nip98_header
from adapters.lightning.dev import DevInvoiceError, DevLightningNode, parse_payment_id
from lnvps.dev_mode import check_dev_mode
from lnvps.dev_state import DEV_CLOCK_FILE, DEV_LIGHTNING_FILE, state_path
from lnvps.logs import setup_logging
from lnvps.settings import Settings, SettingsError, load_settings, resolve_db_url

log = logging.getLogger("lnvps.cli")

DEV_NOSTR_KEY_FILE = "lnvps-dev-nostr.key"
#: the commands that run the embedded default's dev tools when no Lightning node is
#: configured (`serve`, `admin` through the whole container, `dev`): `lnvps.dev_mode` judges
#: their configuration first; `db` and `migrate-legacy-billing` only open the database
DEV_TOOL_COMMANDS = frozenset({"serve", "admin", "dev"})


def _positive(text: str) -> int:
    """A whole number of at least 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _global_options(parser: argparse.ArgumentParser, default: object) -> None:
    """`--config` and `--db`, taken before or after any subcommand (`lnvps db upgrade --db U`).

    Subcommands default to SUPPRESS so that they never overwrite a value given earlier.
    """
    parser.add_argument(
        "--config", default=default, help="YAML config file (default: $LNVPS_CONFIG)"
    )
    parser.add_argument(
        "--db", default=default, help="database URL (default: $LNVPS_DB, config `db`, SQLite)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lnvps", description="lnvps billing core")
    _global_options(parser, None)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(group: Any, name: str, text: str) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = group.add_parser(name, help=text, parents=[common])
        return made

    serve = command(sub, "serve", "run the user API, the worker and the payment listeners")
    serve.add_argument("--listen", help="HOST:PORT (default: $LNVPS_LISTEN, 127.0.0.1:8000)")
    serve.add_argument(
        "--admin-listen",
        help="HOST:PORT of the admin API (default: $LNVPS_ADMIN_LISTEN, 127.0.0.1:8001); "
        "empty turns it off",
    )
    serve.add_argument(
        "--mode",
        choices=("all", "api", "worker"),
        default="all",
        help="all: API + worker in one process; api / worker: separate processes over Redis",
    )

    db = command(sub, "db", "database schema")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    command(db_sub, "upgrade", "apply pending migrations (adopting an LNVPS database)")
    command(db_sub, "current", "print the current schema revision")
    downgrade = command(db_sub, "downgrade", "revert to an earlier revision")
    downgrade.add_argument("revision")
    downgrade.add_argument(
        "--destroy-data",
        action="store_true",
        help="drop tables/columns even when they hold data (refused without it; back up first)",
    )

    backfill = command(
        sub, "migrate-legacy-billing", "move vm_payment / vm.expires to subscriptions"
    )
    backfill.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    backfill.add_argument(
        "--vm-batch", type=_positive, help="VMs linked per transaction (default 1000)"
    )
    backfill.add_argument(
        "--payment-batch",
        type=_positive,
        help="payments copied per transaction (default 5000)",
    )

    admin = command(sub, "admin", "admin role assignments (the first admin, and from a shell)")
    admin_sub = admin.add_subparsers(dest="admin_command", required=True)
    grant = command(admin_sub, "grant", "give a user (created if unknown) a role; idempotent")
    grant.add_argument("pubkey", help="the user's Nostr key: npub1… or 64 hex digits")
    grant.add_argument("role", help="role name, e.g. super_admin, admin, vm_manager")
    grant.add_argument(
        "--expires", help="an ISO 8601 time (UTC if no offset) or a duration from now (30d)"
    )
    revoke = command(admin_sub, "revoke", "take a role from a user; idempotent")
    revoke.add_argument("pubkey", help="the user's Nostr key: npub1… or 64 hex digits")
    revoke.add_argument("role", help="role name")
    command(admin_sub, "list", "print every role assignment")
    problems = command(
        admin_sub,
        "settlement-problems",
        "print settled Lightning payments the intake could not complete (newest first)",
    )
    problems.add_argument(
        "--limit", type=_positive, default=50, help="at most this many (default 50)"
    )

    dev = command(sub, "dev", "embedded-default dev tools (dev rail, dev clock)")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    pay = command(dev_sub, "pay", "settle a dev-rail invoice as if it had been paid")
    pay.add_argument("payment_id", help="payment id (64 hex digits) or the BOLT11 invoice")
    advance = command(dev_sub, "advance-clock", "move the dev server's clock forward")
    advance.add_argument("duration", help="e.g. 30m, 25h, 2d, 1w")
    command(dev_sub, "reset-clock", "put the dev clock back to real time")
    auth = command(
        dev_sub, "auth", "print a NIP-98 Authorization header signed with the dev key (for curl)"
    )
    auth.add_argument("method", help="HTTP method, e.g. GET")
    auth.add_argument("url", help="the full request URL, query string included")
    command(dev_sub, "pubkey", "print the dev key's public key (hex), e.g. for `admin grant`")
    return parser


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
    if args.dev_command == "pubkey":
        secret = dev_nostr_key(state_path(settings, DEV_NOSTR_KEY_FILE))
        print(PublicKeyXOnly.from_secret(secret).format().hex())
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
    if args.dev_command == "reset-clock":
        clock.reset()
        print(f"dev clock back to real time: {clock.now().isoformat(timespec='seconds')}")
        return 0
    try:
        clock.advance(parse_duration(args.duration))
    except ValueError as exc:
        print(f"lnvps dev advance-clock: {exc}", file=sys.stderr)
        return 1
    print(f"dev clock now {clock.now().isoformat(timespec='seconds')} (offset {clock.offset()})")
    return 0


def _server_commands() -> Callable[[argparse.Namespace, Settings, str], int]:
    """The database, admin and server commands, with the modules they need (~2 s to import).
    Imported before logging is set up, as they always were: alembic logs its plugins at
    INFO when it is imported."""
    from lnvps.commands import run_command

    return run_command


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # `lnvps dev …` needs none of them: it answers in a fraction of a second
    run_command = None if args.command == "dev" else _server_commands()
    try:
        settings = load_settings(args.config)
        setup_logging(settings.log_format or ("text" if settings.is_embedded_default else "json"))
        url = resolve_db_url(args.db, settings)
        if args.command in DEV_TOOL_COMMANDS:
            check_dev_mode(attrs.evolve(settings, db=url))
    except (SettingsError, ValueError) as exc:
        print(f"lnvps: {exc}", file=sys.stderr)
        return 2
    for key in settings.unknown_keys:
        log.warning("config key %r is not a setting of this server: ignored (misspelt?)", key)
    if run_command is None:
        return asyncio.run(_dev_command(args, settings))
    return run_command(args, settings, url)


if __name__ == "__main__":
    raise SystemExit(main())
