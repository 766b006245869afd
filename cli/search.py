"""`techbridge search`: offers and requests at this site matching words and filters, newest first."""

from __future__ import annotations

import argparse

import grpc
from rich.table import Table

from cli.common import CliError, Groups, staff_data_arg
from cli.connect import CALL_TIMEOUT_S, Admin, rpc_error_lines
from cli.render import iso, listing_json, out, print_json
from techbridge.v1 import admin_pb2


def cmd_search(a: argparse.Namespace) -> None:
    req = admin_pb2.SearchRecordsRequest(
        text=" ".join(a.text),
        kind=a.kind or "",
        status=a.status or "",
        keywords=a.keyword or [],
        countries=a.country or [],
        stage=a.stage or "",
        partnership=a.partnership or "",
        origin=a.centre or "",
        page_size=a.limit,
        live_only=a.live,
    )
    with Admin(a.data) as s:
        try:
            views = list(s.admin.SearchRecords(req, metadata=s.md, timeout=CALL_TIMEOUT_S).records)
        except grpc.RpcError as e:
            raise CliError(*rpc_error_lines(e)) from e
        site = s.config.site_id
    if a.json:
        print_json([listing_json(v, detail=False) for v in views])
        return
    table = Table(title=f"search at {site}: {len(views)} found")
    for col in ("id", "kind", "title", "origin", "status", "updated"):
        table.add_column(col, overflow="fold")
    for v in views:
        doc = listing_json(v, detail=False)
        table.add_row(v.id, v.kind, doc["title"], v.origin_name or v.provenance.origin, v.status, iso(v.updated_at_ms))
    out.print(table)


def add_parser(groups: Groups) -> None:
    sp = groups.add_parser("search", help="offers and requests matching words and filters, newest first")
    staff_data_arg(sp)
    sp.add_argument("text", nargs="*", help="words of the title or summary (all must match)")
    sp.add_argument("--kind", choices=["listing", "request"])
    sp.add_argument("--status", help="e.g. published")
    sp.add_argument("--keyword", action="append", help="a taxonomy term (repeatable; all must match)")
    sp.add_argument("--country", action="append", help="a target country, ISO code (repeatable)")
    sp.add_argument("--stage", help="an offer's stage, e.g. lab-tested")
    sp.add_argument("--partnership", help="a partnership type, e.g. licence")
    sp.add_argument("--centre", help="only records this centre owns")
    sp.add_argument("--live", action="store_true", help="only offers live now")
    sp.add_argument("--limit", type=int, default=100)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_search)
