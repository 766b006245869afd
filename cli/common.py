"""Shared pieces of the techbridge CLI: its error, its common options, reading what a user gives it.

CliError carries the lines a command prints on stderr and its exit code. The
option helpers give every noun's commands the same --data, --node and
--firm-key. The parsers turn files, durations, times and FIELD=VALUE
arguments into domain values, reporting every problem, and field values are
converted to and from the messages the admin service speaks.
"""

from __future__ import annotations

import argparse
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeAlias

from sync.codec import values_from_pb, values_to_pb
from sync.errors import InvalidInput
from sync.kinds import FieldValue, Kind
from techbridge.v1 import admin_pb2, records_pb2
from transfer.records import KINDS, parse_field_value

# What a noun's module adds its parser to: the top-level parser's subcommands.
Groups: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CliError(Exception):
    """Lines to print on stderr before exiting with `code`."""

    def __init__(self, *lines: str, code: int = 1) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code


def data_arg(sp: argparse.ArgumentParser) -> None:
    """--data for the site commands (hub, node, keys, quarantine, listing, conflicts, sync)."""
    sp.add_argument("--data", required=True, metavar="DIR", help="the site's data folder")


def web_init_args(sp: argparse.ArgumentParser) -> None:
    """The staff console's address and HTTPS files, kept in site.json."""
    sp.add_argument(
        "--web-listen",
        default=None,
        metavar="HOST:PORT",
        help="where the staff console listens (default 127.0.0.1, port: --listen's + 80 or any free one; off: none)",
    )
    sp.add_argument("--web-cert", default="", metavar="PEM", help="HTTPS certificate for the console")
    sp.add_argument("--web-key", default="", metavar="PEM", help="HTTPS key for the console")


def metrics_arg(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--metrics-listen",
        default=None,
        metavar="HOST:PORT",
        help="serve Prometheus metrics at http://HOST:PORT/metrics (a bare port: on 127.0.0.1; "
        "default: metrics_listen in site.json, none unless set; off: none)",
    )
    sp.add_argument(
        "--health-listen",
        default=None,
        metavar="HOST:PORT",
        help="also answer the gRPC health service in plain text there, for probes without TLS "
        "(a bare port: on 127.0.0.1; default: health_listen in site.json, none unless set)",
    )


def check_web_files(cert: str, key: str) -> None:
    """CliError unless the console's HTTPS files are both given and readable, or neither."""
    if bool(cert) != bool(key):
        raise CliError("error: --web-cert and --web-key go together (HTTPS needs both)")
    for name in (cert, key):
        if name and not Path(name).is_file():
            raise CliError(f"error: {name}: no such file")


def save_web_files(data_dir: str, cert: str, key: str) -> None:
    """Record the console's HTTPS certificate and key (absolute paths) in site.json."""
    from sync.config import DataDir

    if not cert:
        return
    data = DataDir(Path(data_dir))
    data.save(data.load().with_updates(web_cert=str(Path(cert).resolve()), web_key=str(Path(key).resolve())))


def staff_data_arg(sp: argparse.ArgumentParser, required: bool = True) -> None:
    """--data for centre staff's commands on firms, requests, interests and search."""
    sp.add_argument("--data", required=required, help="the centre's data folder (staff)")


def firm_args(sp: argparse.ArgumentParser, required: bool = True) -> None:
    """--node and --firm-key for a firm's commands."""
    sp.add_argument("--node", required=required, metavar="HOST:PORT", help="any centre's open (firm) port")
    sp.add_argument("--firm-key", required=required, metavar="FILE", help="the firm's key file")


def staff_or_firm_args(sp: argparse.ArgumentParser) -> None:
    """Both, optional, for a command either side runs (connect.as_firm tells which was given)."""
    staff_data_arg(sp, required=False)
    firm_args(sp, required=False)


def record_values(view: admin_pb2.RecordView) -> tuple[Kind, dict[str, FieldValue]]:
    """A view's kind and its fields, as domain values."""
    slot = view.values.WhichOneof("values") or view.kind or "listing"
    kind = KINDS[slot]
    return kind, dict(values_from_pb(kind, getattr(view.values, slot)))


def values_message(kind: Kind, fields: dict[str, FieldValue]) -> records_pb2.RecordValues:
    out = records_pb2.RecordValues()
    getattr(out, kind.name).CopyFrom(values_to_pb(kind, sorted(fields.items())))
    return out


def read_json_file(name: str) -> object:
    try:
        text = Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"error: {name}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"error: {name}: not UTF-8 text") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"error: {name}: not valid JSON: line {exc.lineno} column {exc.colno}: {exc.msg}") from exc


def parse_duration(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", text.strip())
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 30s, 5m, 1h or 0")
    value = float(m.group(1))
    return value * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


def parse_time(text: str) -> int:
    """Unix milliseconds from ISO 8601 (2026-11-22T10:00:00Z) or a number of milliseconds."""
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2026-11-22T10:00:00Z") from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def parse_sets(items: list[str], kind: Kind) -> dict[str, FieldValue]:
    """FIELD=VALUE arguments converted to the kind's field types; every problem reported."""
    problems: list[str] = []
    fields: dict[str, FieldValue] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep:
            problems.append(f"error: --set {item}: expected FIELD=VALUE")
            continue
        try:
            fields[name.strip()] = parse_field_value(name.strip(), text, kind)
        except InvalidInput as exc:
            problems.extend(f"error: {v.field}: {v.description}" for v in exc.violations)
    if problems:
        raise CliError(*problems)
    if any(n in fields for n in ("keywords", "market_keywords", "sectors")) and "taxonomy" not in fields:
        from transfer import taxonomy

        fields["taxonomy"] = taxonomy.CURRENT
    return fields
