"""Shared pieces of the techbridge CLI: connections, errors, record views.

The commands live in cli.main (sites, listings, sync) and cli.domain
(firms, requests, interests).

Each site is a data folder. `init` and `serve` work on the folder directly;
every other command talks to the site's running server over gRPC with the
admin credential kept in the folder's config. Commands that print data take
--json. Errors print one line per problem and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.table import Table

from sync import auth
from sync.codec import values_from_pb, values_to_pb
from sync.config import DataDir, SiteConfig
from sync.errors import InvalidInput, TechbridgeError
from sync.kinds import FieldValue, Kind
from sync.server import channel, field_violations
from techbridge.v1 import admin_pb2, admin_pb2_grpc, records_pb2
from transfer.records import KINDS, audience_from_json, content_from_json, parse_field_value

# Wide enough for ids and titles when output goes to a pipe or a file.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, width=_WIDTH)

CONNECT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 30.0
SYNC_TIMEOUT_S = 1800.0


class CliError(Exception):
    """Lines to print on stderr before exiting with `code`."""

    def __init__(self, *lines: str, code: int = 1) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines
        self.code = code


# ---- helpers -------------------------------------------------------------------


def iso(ms: int) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def record_values(view: admin_pb2.RecordView) -> tuple[Kind, dict[str, FieldValue]]:
    """A view's kind and its fields, as domain values."""
    slot = view.values.WhichOneof("values") or view.kind or "listing"
    kind = KINDS[slot]
    return kind, dict(values_from_pb(kind, getattr(view.values, slot)))


def values_message(kind: Kind, fields: dict[str, FieldValue]) -> records_pb2.RecordValues:
    out = records_pb2.RecordValues()
    getattr(out, kind.name).CopyFrom(values_to_pb(kind, sorted(fields.items())))
    return out


def jsonable(value: FieldValue, name: str = "") -> object:
    if name == "translations" and isinstance(value, tuple):
        keys = ("language", "title", "summary", "description")
        return [dict(zip(keys, t, strict=True)) for t in value]
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return None
    return value


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


class Admin:
    """A connection to the site's own server, with its admin credential."""

    def __init__(self, data_path: str) -> None:
        self.data = DataDir(Path(data_path))
        try:
            self.config: SiteConfig = self.data.load()
        except TechbridgeError as exc:
            raise CliError(f"error: {exc}") from exc
        self.address = self.data.server_address(self.config)
        try:
            tls = None if self.data.running_insecure() else self.data.tls.load()
        except TechbridgeError as exc:
            raise CliError(f"error: {exc}") from exc
        if tls is None:
            err.print(f"[bold red]warning: the {self.config.role} at {self.address} runs WITHOUT TLS (--insecure)[/]")
        self.channel = channel(self.address, tls, expect=self.config.site_id)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError as exc:
            raise CliError(
                f"error: cannot reach the {self.config.role} at {self.address}; "
                f"is `techbridge {self.config.role} serve --data {data_path}` running?"
            ) from exc
        self.md = auth.admin_metadata(self.config.admin_token)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()


def rpc_error_lines(e: grpc.RpcError, what: str = "") -> list[str]:
    violations = field_violations(e)
    prefix = f"{what}: " if what else ""
    if violations:
        return [f"error: {prefix}{f}: {d}" for f, d in violations]
    return [f"error: {e.code().name}: {e.details()}"]


def listing_json(view: admin_pb2.RecordView, detail: bool) -> dict[str, Any]:
    p = view.provenance
    kind, values = record_values(view)
    doc: dict[str, Any] = {
        "id": view.id,
        "kind": kind.name,
        "title": f"interest in: {view.about or values['to_record']}"
        if kind.name == "interest"
        else str(values[kind.title_field]),
        "origin": p.origin,
        "origin_name": view.origin_name or None,
        "status": view.status,
        "live": view.live,
        "updated_at": iso(view.updated_at_ms),
        "verified": p.verified,
        "version_id": p.version_id,
        "versions": view.version_count,
        "deleted": view.deleted,
        "conflicts": len(view.conflicts),
    }
    if detail:
        doc.update({name: jsonable(value, name) for name, value in sorted(values.items())})
        if kind.name == "listing":
            doc["extended"] = view.extended
        if view.private_note:
            doc["private_note"] = view.private_note
        doc.update(
            audience=list(view.audience) or "network",
            heads=list(view.heads),
            waiting=view.waiting,
            conflicts=[conflict_json(c) for c in view.conflicts],
            key_id=p.key_id,
            provenance={
                "origin": p.origin,
                "author": p.author,
                "key_id": p.key_id,
                "verified": p.verified,
                "version_id": p.version_id,
                "received_from": p.received_from or None,
                "received_at": iso(p.received_at_ms),
                "hlc": {"wall_ms": p.hlc_wall_ms, "counter": p.hlc_counter},
                "parents": list(p.parents),
                "relay": p.relay or None,
            },
        )
    return doc


def candidate_json(c: admin_pb2.ConflictCandidate) -> dict[str, Any]:
    return {
        "version_id": c.version_id,
        "author": c.author,
        "hlc": {"wall_ms": c.hlc_wall_ms, "counter": c.hlc_counter},
        "value": json.loads(c.value_json) if c.value_json else None,
    }


def conflict_json(c: admin_pb2.ConflictView) -> dict[str, Any]:
    return {
        "id": c.id,
        "listing": c.record_id,
        "field": c.field,
        "rule": c.rule,
        "winner": candidate_json(c.winner),
        "others": [candidate_json(o) for o in c.others],
    }


def print_json(doc: object) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


# ---- record helpers ------------------------------------------------------------------


def add_record_from_file(a: argparse.Namespace, kind: Kind, private_note: str = "") -> None:
    """Read a record file, check every field here, then have the site sign and store it."""
    name = a.file
    doc = read_json_file(name)
    try:
        content = content_from_json(kind, doc, extra=frozenset({"audience", "status", "private_note"}))
        audience = audience_from_json(doc)
    except InvalidInput as exc:
        raise CliError(*(f"error: {name}: {v.field}: {v.description}" for v in exc.violations)) from exc
    note = doc.get("private_note") if isinstance(doc, dict) else None
    if note is not None and not isinstance(note, str):
        raise CliError(f"error: {name}: private_note: must be a string")
    with Admin(a.data) as s:
        try:
            resp = s.admin.AddRecord(
                admin_pb2.AddRecordRequest(
                    values=values_message(kind, content.as_dict()),
                    audience=list(audience),
                    status=content.status,
                    private_note=note or private_note,
                ),
                metadata=s.md,
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.RpcError as e:
            raise CliError(*rpc_error_lines(e, name)) from e
    view = resp.record
    if a.json:
        print_json(listing_json(view, detail=True))
        return
    doc_out = listing_json(view, detail=False)
    err.print(
        f'stored {kind.name} "{doc_out["title"]}" at {view.provenance.origin} '
        f"(status {view.status}, signed by key {view.provenance.key_id})",
        highlight=False,
    )
    sys.stdout.write(view.id + "\n")


def _all_listings(
    s: Admin, origin: str, include_deleted: bool = False, kind: str = "listing", status: str = ""
) -> list[admin_pb2.RecordView]:
    views: list[admin_pb2.RecordView] = []
    token = ""
    while True:
        resp = s.admin.ListRecords(
            admin_pb2.ListRecordsRequest(
                origin=origin,
                page_size=500,
                page_token=token,
                include_deleted=include_deleted,
                kind=kind,
                status=status,
            ),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
        views.extend(resp.records)
        token = resp.next_page_token
        if not token:
            return views


def list_records(a: argparse.Namespace, kind: str) -> None:
    with Admin(a.data) as s:
        views = _all_listings(s, getattr(a, "centre", None) or "", getattr(a, "deleted", False), kind)
    if a.json:
        print_json([listing_json(v, detail=False) for v in views])
        return
    table = Table(title=f"{kind}s at {s.config.site_id} ({len(views)})")
    for col in ("id", "title", "origin", "status", "updated", "verified", "conflicts"):
        table.add_column(col, overflow="fold")
    for v in views:
        doc = listing_json(v, detail=False)
        table.add_row(
            v.id,
            doc["title"],
            v.origin_name or v.provenance.origin,
            v.status
            + (" (deleted)" if v.deleted else "")
            + (" (not live)" if v.status == "published" and not v.live else ""),
            iso(v.updated_at_ms),
            "yes" if v.provenance.verified else "NO",
            str(len(v.conflicts)) if v.conflicts else "",
        )
    out.print(table)


def _cell(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, list) and v and isinstance(v[0], dict):
        return "; ".join(", ".join(f"{k}: {x}" for k, x in d.items() if x) for d in v)
    if isinstance(v, list):
        return ", ".join(str(x)[:12] if len(str(x)) == 64 else str(x) for x in v)
    return "" if v is None else str(v)


def print_listing(view: admin_pb2.RecordView, as_json: bool) -> None:
    doc = listing_json(view, detail=True)
    if as_json:
        print_json(doc)
        return
    prov = doc.pop("provenance")
    conflicts = doc.pop("conflicts")
    for k in ("verified", "key_id"):
        doc.pop(k)
    table = Table(show_header=False, title=f"{doc['kind']} {doc['id']}")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for k, v in doc.items():
        if v in (None, "", [], False) and k not in ("deleted", "conflicts", "waiting"):
            continue  # fields not given
        table.add_row(k, _cell(v))
    table.add_section()
    table.add_row("verified", "yes" if prov["verified"] else "NO")
    for k in ("origin", "author", "key_id", "received_from", "received_at"):
        table.add_row(k, str(prov[k] or "(written here)" if k == "received_from" else prov[k] or ""))
    if conflicts:
        table.add_section()
        for c in conflicts:
            rivals = "; ".join(f"{json.dumps(o['value'], ensure_ascii=False)} by {o['author']}" for o in c["others"])
            table.add_row(
                f"conflict {c['field']}",
                f"{json.dumps(c['winner']['value'], ensure_ascii=False)} by {c['winner']['author']} "
                f"(by {c['rule']}) over {rivals}; "
                f"settle: techbridge conflicts resolve --data DIR {c['id']} --take VERSION",
            )
    out.print(table)


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


def kind_at(s: Admin, record_id: str) -> Kind:
    view = s.admin.GetRecord(admin_pb2.GetRecordRequest(id=record_id), metadata=s.md, timeout=CALL_TIMEOUT_S)
    return KINDS[view.record.kind or "listing"]


def step_record(a: argparse.Namespace, step: str, sets: list[str]) -> None:
    action = records_pb2.LifecycleAction.Value(f"LIFECYCLE_ACTION_{step.upper()}")
    with Admin(a.data) as s:
        kind = kind_at(s, a.id)
        fields = parse_sets(sets, kind)
        resp = s.admin.StepRecord(
            admin_pb2.StepRecordRequest(
                id=a.id, action=action, fields=sorted(fields), values=values_message(kind, fields)
            ),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    print_listing(resp.record, a.json)


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
