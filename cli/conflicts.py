"""`techbridge conflicts`: concurrent edits kept for staff to settle: list them, resolve one."""

from __future__ import annotations

import argparse
import json

from rich.table import Table

from cli.common import Groups, data_arg
from cli.connect import CALL_TIMEOUT_S, Admin
from cli.render import conflict_json, out, print_json, print_listing
from techbridge.v1 import admin_pb2


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


def add_parser(groups: Groups) -> None:
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
