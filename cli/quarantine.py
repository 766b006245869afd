"""`techbridge quarantine`: versions set aside because their signing keys were revoked."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from cli.common import Groups, data_arg
from cli.connect import CALL_TIMEOUT_S, Admin
from cli.render import out, print_json
from techbridge.v1 import admin_pb2


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


def add_parser(groups: Groups) -> None:
    quarantine = groups.add_parser("quarantine", help="versions set aside because of revoked keys").add_subparsers(
        dest="cmd", required=True
    )
    sp = quarantine.add_parser("list", help="versions quarantined here or refused on receipt")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_quarantine_list)
