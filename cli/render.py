"""How the techbridge CLI prints: its consoles, JSON documents and record tables.

Tables and messages go through `out` (stdout) and `err` (stderr); a command
given --json prints one JSON document on stdout instead. A record view is
rendered the same way by every command that shows one.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from cli.common import record_values
from sync.kinds import FieldValue
from techbridge.v1 import admin_pb2

# Wide enough for ids and titles when output goes to a pipe or a file.
_WIDTH = None if sys.stdout.isatty() else 160
out = Console(soft_wrap=True, width=_WIDTH)
err = Console(stderr=True, soft_wrap=True, width=_WIDTH)


def iso(ms: int) -> str:
    if not ms:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def jsonable(value: FieldValue, name: str = "") -> object:
    if name == "translations" and isinstance(value, tuple):
        keys = ("language", "title", "summary", "description")
        return [dict(zip(keys, t, strict=True)) for t in value]
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, int) and not isinstance(value, bool) and value == 0:
        return None
    return value


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


def report(view: admin_pb2.RecordView, as_json: bool, what: str) -> None:
    """What a command did with a record: its JSON, or a line on stderr and its id last on stdout."""
    if as_json:
        print_json(listing_json(view, detail=True))
        return
    err.print(f"{what} {view.kind} {view.id} (status {view.status}) at {view.provenance.origin}", highlight=False)
    sys.stdout.write(view.id + "\n")


def warn_insecure(what: str) -> None:
    err.print(
        f"[bold red]WARNING: this {what} runs WITHOUT TLS (--insecure). Anyone on the network can read and "
        "inject traffic. For local development only.[/]"
    )


def console_line(running: object) -> None:
    """Where the staff console of a serving site is, and how it is served."""
    url = getattr(running, "web_url", "")
    if not url:
        out.print("staff console: off (web_listen is off in site.json)", highlight=False)
        return
    how = "HTTPS" if url.startswith("https:") else "plain HTTP, this machine only: give --web-cert/--web-key for HTTPS"
    out.print(f"staff console on {url} ({how}); add staff with `techbridge staff add`", highlight=False)
    metrics = getattr(running, "metrics_address", "")
    if metrics:
        out.print(f"metrics for Prometheus on http://{metrics}/metrics", highlight=False)
    probe = getattr(running, "health_address", "")
    if probe:
        out.print(
            f"health checks in plain text on {probe} (techbridge health --addr {probe} --insecure)", highlight=False
        )
