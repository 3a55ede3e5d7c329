"""The `lnvps` command line: the composition root's entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lnvps", description="lnvps billing core")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the API server and worker (not built yet)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        print(
            "lnvps serve: the HTTP server is not built yet (it arrives with the billing issue); "
            "the domain package is usable as a library.",
            file=sys.stderr,
        )
        return 2
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
