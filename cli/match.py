"""`techbridge match`: the offers that fit a request, or the requests an offer fits, among
what this site holds, best first, each with its score and why."""

from __future__ import annotations

import argparse
from typing import Any

import grpc
from rich.markup import escape
from rich.table import Table

from cli.common import CliError, Groups, staff_data_arg
from cli.connect import CALL_TIMEOUT_S, Admin, rpc_error_lines
from cli.render import listing_json, out, print_json
from techbridge.v1 import admin_pb2


def reason_text(r: admin_pb2.MatchReason) -> str:
    return f"{r.part} +{r.points:.2f}" + (f": {r.detail}" if r.detail else "")


def cmd_match(a: argparse.Namespace) -> None:
    req = admin_pb2.MatchRecordRequest(id=a.id, limit=a.limit, published_only=a.published)
    with Admin(a.data) as s:
        try:
            found = s.admin.MatchRecord(req, metadata=s.md, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as e:
            raise CliError(*rpc_error_lines(e)) from e
        site = s.config.site_id
    of = listing_json(found.of, detail=False)
    if a.json:
        doc: dict[str, Any] = {"of": {"id": of["id"], "kind": of["kind"], "title": of["title"]}, "suggestions": []}
        for sug in found.suggestions:
            item = listing_json(sug.record, detail=False)
            item["score"] = round(sug.score, 6)
            item["why"] = [{"part": r.part, "detail": r.detail, "points": round(r.points, 6)} for r in sug.reasons]
            doc["suggestions"].append(item)
        print_json(doc)
        return
    what = "offers for request" if of["kind"] == "request" else "requests for offer"
    table = Table(title=f"{what} {escape(of['title'])} at {site}: {len(found.suggestions)} suggested")
    for col in ("id", "title", "origin", "status", "score", "why"):
        table.add_column(col, overflow="fold")
    for sug in found.suggestions:
        doc = listing_json(sug.record, detail=False)
        table.add_row(
            sug.record.id,
            escape(doc["title"]),
            escape(sug.record.origin_name or sug.record.provenance.origin),
            sug.record.status,
            f"{sug.score:.2f}",
            escape("; ".join(reason_text(r) for r in sug.reasons)),
        )
    out.print(table)


def add_parser(groups: Groups) -> None:
    sp = groups.add_parser("match", help="the offers that fit a request, or the requests an offer fits, and why")
    staff_data_arg(sp)
    sp.add_argument("id", help="an offer's or a request's id")
    sp.add_argument("--limit", type=int, default=10, help="suggestions wanted (at most 100)")
    sp.add_argument("--published", action="store_true", help="only published counterparts")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_match)
