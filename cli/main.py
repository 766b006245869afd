"""techbridge: the one command-line tool.

Each site is a data folder. `init` and `serve` work on the folder directly;
every other command talks to the site's running server over gRPC with the
admin credential kept in the folder's config. Commands that print data take
--json. Errors print one line per problem and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from sync import auth
from sync.codec import values_from_pb, values_to_pb
from sync.config import DataDir, SiteConfig
from sync.errors import InvalidInput, TechbridgeError
from sync.records import KINDS, LISTING, FieldValue, Kind, audience_from_json, content_from_json, parse_field_value
from sync.server import channel, field_violations
from techbridge.v1 import admin_pb2, admin_pb2_grpc, records_pb2

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
    getattr(out, kind.name).CopyFrom(values_to_pb(kind.name, sorted(fields.items())))
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
        "title": str(values[kind.title_field]),
        "origin": p.origin,
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


# ---- commands: hub ----------------------------------------------------------------


def _warn_insecure(what: str) -> None:
    err.print(
        f"[bold red]WARNING: this {what} runs WITHOUT TLS (--insecure). Anyone on the network can read and "
        "inject traffic. For local development only.[/]"
    )


def cmd_hub_init(a: argparse.Namespace) -> None:
    from hub.site import init_hub

    config = init_hub(
        Path(a.data), site_id=a.id, listen=a.listen, enrol_listen=a.enrol_listen, db_url=a.db, names=tuple(a.name)
    )
    out.print(
        f"hub [bold]{config.site_id}[/] initialised in {a.data}; it will listen on {config.listen} (mutual TLS) "
        f"and take enrolments on {config.enrol_listen} (TLS)"
    )
    out.print(f"start it with: techbridge hub serve --data {a.data}")


def cmd_hub_serve(a: argparse.Namespace) -> None:
    from hub.site import start_hub
    from sync.runtime import wait_for_signal

    if a.insecure:
        _warn_insecure("hub")
    running = start_hub(Path(a.data), listen=a.listen, insecure=a.insecure)
    how = "WITHOUT TLS" if a.insecure else f"mutual TLS; enrolment on port {running.enrol_port}"
    out.print(f"hub {running.site.site_id} serving on {running.address} ({how}; Ctrl-C to stop)", highlight=False)
    sys.stdout.flush()
    wait_for_signal(running)


def cmd_hub_invite(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = admin_pb2_grpc.HubAdminServiceStub(s.channel).Invite(
            admin_pb2.InviteRequest(centre_id=a.centre, name=a.name, country=a.country, ttl_seconds=int(a.ttl)),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    err.print(f"invited {a.centre} ({a.name}, {a.country}); the token works once, until {iso(resp.expires_at_ms)}:")
    sys.stdout.write(resp.token + "\n")


# ---- commands: node -----------------------------------------------------------------


def cmd_node_init(a: argparse.Namespace) -> None:
    from node.site import init_node

    try:
        if a.insecure:
            _warn_insecure("node")
        config = init_node(Path(a.data), hub=a.hub, token=a.token, listen=a.listen, db_url=a.db, insecure=a.insecure)
    except grpc.RpcError as e:
        raise CliError(*(f"{line} (enrolling at {a.hub})" for line in rpc_error_lines(e))) from e
    out.print(f"node [bold]{config.site_id}[/] enrolled at {a.hub}; data in {a.data}")
    out.print(f"start it with: techbridge node serve --data {a.data}")


def cmd_node_serve(a: argparse.Namespace) -> None:
    from node.site import start_node
    from sync.runtime import wait_for_signal

    if a.insecure:
        _warn_insecure("node")
    node = start_node(Path(a.data), sync_every_s=a.sync_every, listen=a.listen, insecure=a.insecure, live=not a.no_live)
    if node.running.insecure and not a.insecure:
        _warn_insecure("node (its hub serves without TLS)")
    every = a.sync_every if a.sync_every is not None else node.running.site.config.sync_every_s
    how = [] if a.no_live else ["at once (watch stream)"]
    how.append(f"every {every:g}s" if every > 0 else "by `sync now`" if a.no_live else "(no schedule)")
    out.print(
        f"node {node.running.site.site_id} serving on {node.running.address}; "
        f"syncing with {node.running.site.config.hub_address} {' and '.join(how)} (Ctrl-C to stop)",
        highlight=False,
    )
    sys.stdout.flush()
    try:
        wait_for_signal(node.running)
    finally:
        if node.scheduler is not None:
            node.scheduler.shutdown(wait=False)


# ---- commands: listings ---------------------------------------------------------------


def cmd_listing_add(a: argparse.Namespace) -> None:
    add_record_from_file(a, LISTING)


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


def cmd_listing_list(a: argparse.Namespace) -> None:
    list_records(a, "listing")


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
            v.provenance.origin,
            v.status
            + (" (deleted)" if v.deleted else "")
            + (" (not live)" if v.status == "published" and not v.live else ""),
            iso(v.updated_at_ms),
            "yes" if v.provenance.verified else "NO",
            str(len(v.conflicts)) if v.conflicts else "",
        )
    out.print(table)


def cmd_listing_show(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.id), metadata=s.md, timeout=CALL_TIMEOUT_S)
    print_listing(resp.record, a.json)


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
        from sync import taxonomy

        fields["taxonomy"] = taxonomy.CURRENT
    return fields


def _kind_at(s: Admin, record_id: str) -> Kind:
    view = s.admin.GetRecord(admin_pb2.GetRecordRequest(id=record_id), metadata=s.md, timeout=CALL_TIMEOUT_S)
    return KINDS[view.record.kind or "listing"]


def cmd_listing_edit(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        kind = _kind_at(s, a.id)
        fields = parse_sets(a.set, kind)
        resp = s.admin.EditRecord(
            admin_pb2.EditRecordRequest(id=a.id, fields=sorted(fields), values=values_message(kind, fields)),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    print_listing(resp.record, a.json)


def cmd_listing_step(a: argparse.Namespace) -> None:
    step_record(a, a.step, getattr(a, "set", None) or [])


def step_record(a: argparse.Namespace, step: str, sets: list[str]) -> None:
    action = records_pb2.LifecycleAction.Value(f"LIFECYCLE_ACTION_{step.upper()}")
    with Admin(a.data) as s:
        kind = _kind_at(s, a.id)
        fields = parse_sets(sets, kind)
        resp = s.admin.StepRecord(
            admin_pb2.StepRecordRequest(
                id=a.id, action=action, fields=sorted(fields), values=values_message(kind, fields)
            ),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    print_listing(resp.record, a.json)


def cmd_conflicts_list(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.ListConflicts(
            admin_pb2.ListConflictsRequest(record_id=a.listing or ""), metadata=s.md, timeout=CALL_TIMEOUT_S
        )
    docs = [conflict_json(c) for c in resp.conflicts]
    if a.json:
        print_json(docs)
        return
    table = Table(title=f"open conflicts at {s.config.site_id} ({len(docs)})")
    for col in ("conflict", "kept (winner)", "competing", "rule"):
        table.add_column(col, overflow="fold")
    for d in docs:
        w = d["winner"]
        table.add_row(
            d["id"],
            f"{json.dumps(w['value'], ensure_ascii=False)}\nby {w['author']}, version {w['version_id'][:12]}",
            "\n".join(
                f"{json.dumps(o['value'], ensure_ascii=False)}\nby {o['author']}, version {o['version_id'][:12]}"
                for o in d["others"]
            ),
            d["rule"],
        )
    out.print(table)


def cmd_conflicts_resolve(a: argparse.Namespace) -> None:
    req = admin_pb2.ResolveConflictRequest(conflict_id=a.id)
    if a.take:
        req.take_version = a.take
    else:
        req.value_json = a.value
    with Admin(a.data) as s:
        resp = s.admin.ResolveConflict(req, metadata=s.md, timeout=CALL_TIMEOUT_S)
    print_listing(resp.record, a.json)


# ---- commands: keys and quarantine ------------------------------------------------------


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


def cmd_keys_rotate(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.RotateKey(admin_pb2.RotateOwnKeyRequest(), metadata=s.md, timeout=CALL_TIMEOUT_S)
    doc = {
        "old_key_id": resp.old_key_id,
        "new_key_id": resp.new_key_id,
        "registry_version": resp.registry_version,
        "from": iso(resp.at_ms),
    }
    if a.json:
        print_json(doc)
        return
    out.print(
        f"{s.config.site_id} now signs with key {resp.new_key_id} (from {iso(resp.at_ms)}); "
        f"key {resp.old_key_id} is retired; registry version {resp.registry_version}",
        highlight=False,
    )


def cmd_hub_revoke(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = admin_pb2_grpc.HubAdminServiceStub(s.channel).RevokeKey(
            admin_pb2.RevokeKeyRequest(key_id=a.key, compromised_since_ms=a.compromised_since or 0),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    if a.json:
        print_json(
            {
                "key_id": a.key,
                "revoked_at": iso(resp.revoked_at_ms),
                "registry_version": resp.registry_version,
                "quarantined": resp.quarantined,
            }
        )
        return
    out.print(
        f"key {a.key} revoked from {iso(resp.revoked_at_ms)} (registry version {resp.registry_version}); "
        f"{resp.quarantined} versions held here went to quarantine; every site follows at its next sync",
        highlight=False,
    )


def cmd_quarantine_list(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.ListQuarantine(admin_pb2.ListQuarantineRequest(), metadata=s.md, timeout=CALL_TIMEOUT_S)
    docs: list[dict[str, Any]] = [
        {
            "version_id": q.version_id,
            "listing": q.record_id or None,
            "key_id": q.key_id or None,
            "kind": q.kind,
            "from": q.peer or None,
            "reason": q.reason,
        }
        for q in resp.entries
    ]
    if a.json:
        print_json(docs)
        return
    table = Table(title=f"quarantine at {s.config.site_id} ({len(docs)})")
    for col in ("version", "listing", "kind", "reason"):
        table.add_column(col, overflow="fold")
    for d in docs:
        table.add_row(d["version_id"][:16], d["listing"] or "", d["kind"], d["reason"])
    out.print(table)


# ---- commands: sync ----------------------------------------------------------------------


def cmd_sync_now(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        if s.config.role != "node":
            raise CliError("error: `sync now` runs on a node; the hub syncs whenever its nodes call in")
        stub = admin_pb2_grpc.NodeAdminServiceStub(s.channel)
        final: admin_pb2.SyncProgress | None = None
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err, transient=False
        ) as bar:
            tasks: dict[int, Any] = {}
            names = {
                admin_pb2.SYNC_PHASE_REGISTRY: "registry",
                admin_pb2.SYNC_PHASE_PUSH: "push to hub",
                admin_pb2.SYNC_PHASE_PULL: "pull from hub",
            }
            for ev in stub.SyncNow(admin_pb2.SyncNowRequest(), metadata=s.md, timeout=SYNC_TIMEOUT_S):
                if ev.phase == admin_pb2.SYNC_PHASE_DONE:
                    final = ev
                    continue
                if ev.phase not in tasks:
                    tasks[ev.phase] = bar.add_task(names.get(ev.phase, "sync"), total=ev.total or None)
                bar.update(tasks[ev.phase], completed=ev.done, total=max(ev.total, ev.done) or None)
            for t in tasks.values():
                task = bar.tasks[t]
                if task.total is None:
                    bar.update(t, total=task.completed or 1, completed=task.completed or 1)
    if final is not None:
        msg = (
            f"sync done: {final.done} versions pushed, {final.stored} new versions received, "
            f"{final.rejected} refused; {final.message}"
        )
        if a.json:
            print_json({"ok": True, "pushed": final.done, "received": final.stored, "refused": final.rejected})
        else:
            out.print(msg)


def cmd_sync_status(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        st = s.admin.GetSyncStatus(admin_pb2.GetSyncStatusRequest(), metadata=s.md, timeout=CALL_TIMEOUT_S)
    peers = [
        {
            "peer": p.peer,
            "last_success": iso(p.last_success_ms) or None,
            "last_attempt": iso(p.last_attempt_ms) or None,
            "last_error": p.last_error or None,
            "last_error_at": iso(p.last_error_ms) or None,
            "cursors": {"pull": p.pull_cursor, "push_acked": p.push_acked},
            "pending": {"push": p.pending_push, "pull": p.pending_pull},
            "backoff": {"failures": p.failures, "next_attempt": iso(p.next_attempt_ms) or None},
            "watching": p.watching,
        }
        for p in st.peers
    ]
    if a.json:
        print_json(
            {
                "site": st.site_id,
                "log_head": st.log_head,
                "versions": st.versions,
                "rejected": st.rejected,
                "peers": peers,
            }
        )
        return
    out.print(
        f"site {st.site_id}: {st.versions} versions, log head {st.log_head}, {st.rejected} refused", highlight=False
    )
    table = Table()
    cols = ["peer", "last success", "pull cursor", "push acked", "pending push", "pending pull", "last error"]
    node_view = s.config.role == "node"
    if node_view:
        cols += ["backoff", "watching"]
    for col in cols:
        table.add_column(col, overflow="fold")
    for p in st.peers:
        table.add_row(
            p.peer,
            iso(p.last_success_ms) or "never",
            str(p.pull_cursor),
            str(p.push_acked),
            str(p.pending_push),
            str(p.pending_pull),
            p.last_error if p.last_error_ms > p.last_success_ms else "",
            *(
                [
                    f"{p.failures} failures, next {iso(p.next_attempt_ms)}" if p.failures else "",
                    "yes" if p.watching else "no",
                ]
                if node_view
                else []
            ),
        )
    out.print(table)


# ---- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="techbridge", description="techbridge: a federated technology-transfer network")
    p.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default) or ERROR")
    groups = p.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def data_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", required=True, metavar="DIR", help="the site's data folder")

    hub = groups.add_parser("hub", help="run the headquarters hub").add_subparsers(dest="cmd", required=True)
    sp = hub.add_parser("init", help="create a hub data folder: root key, signing key, store")
    data_arg(sp)
    sp.add_argument("--id", default="hq", help="the hub's site id (default hq)")
    sp.add_argument("--listen", default="127.0.0.1:7700", help="HOST:PORT to serve on (default 127.0.0.1:7700)")
    sp.add_argument(
        "--enrol-listen", default=None, help="HOST:PORT where new nodes enrol (default: the next port on the same host)"
    )
    sp.add_argument(
        "--name", action="append", default=[], help="another host name or IP nodes use to reach the hub (repeatable)"
    )
    sp.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite in the data folder)")
    sp.set_defaults(func=cmd_hub_init)
    sp = hub.add_parser("serve", help="serve the hub until Ctrl-C / SIGTERM")
    data_arg(sp)
    sp.add_argument("--listen", default=None, help="override the configured HOST:PORT")
    sp.add_argument("--insecure", action="store_true", help="serve WITHOUT TLS (local development only)")
    sp.set_defaults(func=cmd_hub_serve)
    sp = hub.add_parser("invite", help="invite a centre; prints a one-time join token as the last line")
    data_arg(sp)
    sp.add_argument("--centre", required=True, help="the centre's site id, e.g. tel-aviv")
    sp.add_argument("--name", required=True, help='display name, e.g. "Tel Aviv"')
    sp.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. IL")
    sp.add_argument("--ttl", type=parse_duration, default=7 * 24 * 3600, help="token lifetime (default 7 days)")
    sp.set_defaults(func=cmd_hub_invite)

    sp = hub.add_parser("revoke", help="revoke a signing key; versions it signs from then on are refused everywhere")
    data_arg(sp)
    sp.add_argument("--key", required=True, metavar="KEYID", help="the key id (as listing show prints it)")
    sp.add_argument(
        "--compromised-since",
        type=parse_time,
        default=None,
        metavar="TIME",
        help="refuse what it signed from this time on (ISO 8601, e.g. 2026-11-22T10:00:00Z); default: now",
    )
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_hub_revoke)

    keys = groups.add_parser("keys", help="this site's signing key").add_subparsers(dest="cmd", required=True)
    sp = keys.add_parser("rotate", help="replace this site's signing key without stopping it")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_keys_rotate)

    quarantine = groups.add_parser("quarantine", help="versions set aside because of revoked keys").add_subparsers(
        dest="cmd", required=True
    )
    sp = quarantine.add_parser("list", help="versions quarantined here or refused on receipt")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_quarantine_list)

    node = groups.add_parser("node", help="run a centre node").add_subparsers(dest="cmd", required=True)
    sp = node.add_parser("init", help="create a node data folder and enrol it at the hub")
    data_arg(sp)
    sp.add_argument("--hub", required=True, metavar="HOST:PORT", help="the hub's address")
    sp.add_argument("--token", required=True, help="the join token from `techbridge hub invite`")
    sp.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT for the admin server (default: any free port)")
    sp.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite in the data folder)")
    sp.add_argument("--insecure", action="store_true", help="enrol with a hub that serves WITHOUT TLS (development)")
    sp.set_defaults(func=cmd_node_init)
    sp = node.add_parser("serve", help="serve the node and sync with the hub on a schedule")
    data_arg(sp)
    sp.add_argument(
        "--sync-every", type=parse_duration, default=None, help="interval such as 30s or 5m; 0 turns the schedule off"
    )
    sp.add_argument("--listen", default=None, help="override the configured HOST:PORT")
    sp.add_argument("--insecure", action="store_true", help="serve WITHOUT TLS (local development only)")
    sp.add_argument(
        "--no-live",
        action="store_true",
        help="no watch stream and no immediate push: sync only on the schedule or by `sync now` (a link kept down)",
    )
    sp.set_defaults(func=cmd_node_serve)

    listing = groups.add_parser("listing", help="technology listings").add_subparsers(dest="cmd", required=True)
    sp = listing.add_parser("add", help="sign and store a listing from a JSON file; prints its id last")
    data_arg(sp)
    sp.add_argument(
        "--file",
        required=True,
        help='listing JSON: title (required), summary, description, keywords, trl, status ("draft" or "submitted"), '
        'audience ("network", "hq" or a list of centre ids)',
    )
    sp.add_argument("--json", action="store_true", help="print the stored listing as JSON")
    sp.set_defaults(func=cmd_listing_add)
    sp = listing.add_parser("list", help="list the listings this site holds")
    data_arg(sp)
    sp.add_argument("--centre", default=None, help="only listings owned by this centre")
    sp.add_argument("--deleted", action="store_true", help="include deleted listings")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_list)
    sp = listing.add_parser("show", help="one listing with its provenance")
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_show)
    sp = listing.add_parser(
        "edit",
        help="set fields: content (title, summary, description, keywords, trl) at the owning centre; "
        "curation (tags, featured) at HQ",
    )
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument(
        "--set",
        action="append",
        required=True,
        metavar="FIELD=VALUE",
        help="repeatable; lists are comma-separated (keywords=water,solar), featured=true|false",
    )
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_edit)
    steps = {
        "submit": "draft -> submitted (owning centre)",
        "validate": "submitted -> validated (HQ only)",
        "publish": "validated -> published",
        "withdraw": "any live status -> withdrawn",
        "delete": "write a tombstone; edits that did not see it do not bring the listing back",
        "undelete": "bring a deleted listing back (made on top of the tombstone)",
    }
    for step, text in steps.items():
        sp = listing.add_parser(step, help=text)
        data_arg(sp)
        sp.add_argument("id")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_listing_step, step=step)

    conflicts = groups.add_parser("conflicts", help="concurrent edits kept for staff to settle").add_subparsers(
        dest="cmd", required=True
    )
    sp = conflicts.add_parser("list", help="open conflicts at this site")
    data_arg(sp)
    sp.add_argument("--listing", default=None, help="only this listing's conflicts")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_conflicts_list)
    sp = conflicts.add_parser("resolve", help="settle a conflict with a new version on top of the competing ones")
    data_arg(sp)
    sp.add_argument("id", help="the conflict id, <listing id>/<field>, as conflicts list shows it")
    choice = sp.add_mutually_exclusive_group(required=True)
    choice.add_argument("--take", metavar="VERSION", help="keep the value this version wrote (id or unique prefix)")
    choice.add_argument("--value", help='write this value instead (JSON: "text", 7, true, ["a","b"])')
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_conflicts_resolve)

    sync = groups.add_parser("sync", help="synchronisation with the hub").add_subparsers(dest="cmd", required=True)
    sp = sync.add_parser("now", help="run one sync round with the hub now (node)")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_sync_now)
    sp = sync.add_parser("status", help="per peer: last success, cursors, pending versions, last error")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_sync_status)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
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
