"""Record commands several nouns share: add from a file, list, show, step, a firm's change and list.

Listings, firms, requests and interests are all records; these bodies do the
work for whichever kind a command names and print the result the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

import grpc
from rich.table import Table

from cli.common import CliError, parse_sets, read_json_file, values_message
from cli.connect import CALL_TIMEOUT_S, Admin, as_firm, call, firm_client, kind_at, rpc_error_lines
from cli.render import err, iso, listing_json, out, print_json, print_listing
from sync.errors import InvalidInput, TechbridgeError
from sync.kinds import Change, Kind
from techbridge.v1 import admin_pb2, records_pb2
from transfer.records import audience_from_json, content_from_json


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


def all_records(
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
        views = all_records(s, getattr(a, "centre", None) or "", getattr(a, "deleted", False), kind)
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


def firm_change(a: argparse.Namespace, build: Callable[[admin_pb2.RecordView], Change]) -> None:
    """A firm signs the change `build` makes from the record as its centre holds it, and sees the result."""
    with firm_client(a) as c:
        view = call(lambda: c.get(a.id))
        try:
            change = build(view)
        except InvalidInput as exc:
            raise CliError(*(f"error: {v.field}: {v.description}" for v in exc.violations)) from exc
        except TechbridgeError as exc:
            raise CliError(f"error: {exc}") from exc
        result = call(lambda: c.change(view, change))
    if a.json:
        print_json(listing_json(result, detail=True))
    else:
        print_listing(result, False)


def firm_list(a: argparse.Namespace, kind: str) -> None:
    """The records of a kind a firm sees at its centre (with --mine, only its own)."""
    with firm_client(a) as c:
        views = call(lambda: c.list(kind, mine=a.mine))
        site = c.site_id
    if a.json:
        print_json([listing_json(v, detail=False) for v in views])
        return
    table = Table(title=f"{kind}s a firm sees at {site} ({len(views)})")
    for col in ("id", "title", "origin", "status", "updated"):
        table.add_column(col, overflow="fold")
    for v in views:
        doc = listing_json(v, detail=False)
        table.add_row(v.id, doc["title"], v.origin_name or v.provenance.origin, v.status, iso(v.updated_at_ms))
    out.print(table)


def cmd_staff_show(a: argparse.Namespace) -> None:
    """`show` for staff: one record as this site holds it."""
    with Admin(a.data) as s:
        view = call(
            lambda: s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.id), metadata=s.md, timeout=CALL_TIMEOUT_S).record
        )
    print_listing(view, a.json)


def cmd_record_show(a: argparse.Namespace) -> None:
    """`show` for a record either side reads: a firm through its centre, staff at their own site."""
    if as_firm(a):
        with firm_client(a) as c:
            view = call(lambda: c.get(a.id))
        print_listing(view, a.json)
        return
    cmd_staff_show(a)


def cmd_record_step(a: argparse.Namespace) -> None:
    """A lifecycle step with no fields of its own (the parser sets `step`)."""
    step_record(a, a.step, a.set or [])
