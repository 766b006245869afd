"""techbridge: the one command-line tool.

Each site is a data folder. `init` and `serve` work on the folder directly;
every other command talks to the site's running server over gRPC with the
admin credential kept in the folder's config. Commands that print data take
--json. Errors print one line per problem and exit non-zero.

This module is the entry point: each noun's module adds its subcommands to
the parser, `main` runs the one chosen and maps errors to exit codes.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import grpc

from cli import (
    alert,
    backup,
    conflicts,
    duplicates,
    firm,
    health,
    hub_cmd,
    interest,
    keys,
    listing,
    match,
    node_cmd,
    quarantine,
    report,
    request,
    search,
    staff,
    suggestion,
    sync_cmd,
)
from cli.common import CliError, Groups
from cli.connect import rpc_error_lines
from cli.render import err
from sync import logs
from sync.errors import InvalidInput, TechbridgeError

# The nouns in the order `techbridge --help` lists them.
NOUNS: tuple[Callable[[Groups], None], ...] = (
    hub_cmd.add_parser,
    keys.add_parser,
    quarantine.add_parser,
    node_cmd.add_parser,
    listing.add_parser,
    search.add_parser,
    match.add_parser,
    suggestion.add_parser,
    duplicates.add_parser,
    alert.add_parser,
    firm.add_parser,
    request.add_parser,
    interest.add_parser,
    conflicts.add_parser,
    report.add_parser,
    staff.add_parser,
    sync_cmd.add_parser,
    health.add_parser,
    backup.add_parser,
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="techbridge", description="techbridge: a federated technology-transfer network")
    p.add_argument(
        "--log-level",
        default=os.environ.get("TECHBRIDGE_LOG_LEVEL", "WARNING"),
        help="DEBUG, INFO, WARNING (default; or $TECHBRIDGE_LOG_LEVEL) or ERROR",
    )
    p.add_argument(
        "--log-format",
        choices=logs.FORMATS,
        default=os.environ.get("TECHBRIDGE_LOG_FORMAT", "text"),
        help="text (default; or $TECHBRIDGE_LOG_FORMAT) or json: one object per line with time, level, logger, "
        "site, peer, call and message",
    )
    groups = p.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for add_parser in NOUNS:
        add_parser(groups)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Only a search takes words that look like options: `-word` excludes a word.
        words = getattr(args, "query_words", None)
        if words is None or any(e.startswith("--") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        words.extend(extra)
    logs.configure(str(args.log_level), args.log_format)
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except CliError as exc:
        for line in exc.lines:
            err.print(line, highlight=False, markup=False)
        return exc.code
    except InvalidInput as exc:
        for v in exc.violations:
            err.print(f"error: {v.field}: {v.description}", highlight=False, markup=False)
        return 1
    except TechbridgeError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        return 1
    except grpc.RpcError as e:
        for line in rpc_error_lines(e):
            err.print(line, highlight=False, markup=False)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
