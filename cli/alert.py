"""`techbridge alert`: searches centre staff keep for a client (`add`, `list`, `remove`), and
the records that came to match them since (`hits`)."""

from __future__ import annotations

import argparse
import json

import grpc
from rich.markup import escape
from rich.table import Table

from cli.common import CliError, Groups, staff_data_arg
from cli.connect import CALL_TIMEOUT_S, Admin, rpc_error_lines
from cli.render import iso, listing_json, out, print_json
from cli.search import add_filter_args, search_request
from techbridge.v1 import admin_pb2


def _call(a: argparse.Namespace, method: str, request: object) -> object:
    with Admin(a.data) as s:
        try:
            return getattr(s.admin, method)(request, metadata=s.md, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as e:
            raise CliError(*rpc_error_lines(e)) from e


def _alert_json(v: admin_pb2.AlertView) -> dict[str, object]:
    return {
        "id": v.id,
        "name": v.name,
        "query": v.text,
        "filters": json.loads(v.filters_json or "{}"),
        "created_at": iso(v.created_at_ms),
    }


def cmd_add(a: argparse.Namespace) -> None:
    search = search_request(a)
    view = _call(a, "AddAlert", admin_pb2.AddAlertRequest(name=a.name, search=search))
    assert isinstance(view, admin_pb2.AlertView)
    out.print(f"alert {view.id} ({escape(view.name)}) saved: records that arrive from now on and match it are kept")


def cmd_list(a: argparse.Namespace) -> None:
    found = _call(a, "ListAlerts", admin_pb2.ListAlertsRequest())
    assert isinstance(found, admin_pb2.ListAlertsResponse)
    if a.json:
        print_json([_alert_json(v) for v in found.alerts])
        return
    table = Table(title=f"alerts: {len(found.alerts)}")
    for col in ("id", "name", "query", "filters", "created"):
        table.add_column(col, overflow="fold")
    for v in found.alerts:
        table.add_row(v.id, escape(v.name), escape(v.text), escape(v.filters_json), iso(v.created_at_ms))
    out.print(table)


def cmd_remove(a: argparse.Namespace) -> None:
    _call(a, "RemoveAlert", admin_pb2.RemoveAlertRequest(id=a.id))
    out.print(f"alert {a.id} removed")


def cmd_hits(a: argparse.Namespace) -> None:
    found = _call(a, "ListAlertHits", admin_pb2.ListAlertHitsRequest())
    assert isinstance(found, admin_pb2.ListAlertHitsResponse)
    if a.json:
        docs = []
        for h in found.hits:
            record = listing_json(h.record, detail=False)
            docs.append(
                {
                    "alert_id": h.alert_id,
                    "alert": h.alert_name,
                    "id": record["id"],
                    "kind": record["kind"],
                    "title": record["title"],
                    "origin": record["origin"],
                    "found_at": iso(h.hit_at_ms),
                    "delivered_at": iso(h.delivered_at_ms) if h.delivered_at_ms else None,
                    "attempts": h.attempts,
                }
            )
        print_json(docs)
        return
    table = Table(title=f"alert hits: {len(found.hits)}")
    for col in ("alert", "id", "title", "origin", "found", "delivered"):
        table.add_column(col, overflow="fold")
    for h in found.hits:
        record = listing_json(h.record, detail=False)
        table.add_row(
            escape(h.alert_name),
            h.record.id,
            escape(record["title"]),
            escape(h.record.origin_name or h.record.provenance.origin),
            iso(h.hit_at_ms),
            iso(h.delivered_at_ms)
            if h.delivered_at_ms
            else ("no webhook" if not h.attempts else f"{h.attempts} tries"),
        )
    out.print(table)


def add_parser(groups: Groups) -> None:
    sp = groups.add_parser("alert", help="saved searches for a client, and the records that came to match them")
    sub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sub.add_parser("add", help="save a search: records that arrive from now on and match it are kept")
    staff_data_arg(add)
    add.add_argument("--name", required=True, help="e.g. the client's name and need")
    add_filter_args(add)
    add.set_defaults(func=cmd_add)
    ls = sub.add_parser("list", help="the alerts kept here")
    staff_data_arg(ls)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    rm = sub.add_parser("remove", help="remove an alert and its hits")
    staff_data_arg(rm)
    rm.add_argument("id")
    rm.set_defaults(func=cmd_remove)
    hits = sub.add_parser("hits", help="records that came to match an alert, newest first")
    staff_data_arg(hits)
    hits.add_argument("--json", action="store_true")
    hits.set_defaults(func=cmd_hits)
