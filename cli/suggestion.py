"""`techbridge suggestion`: HQ's suggestions of offers for open requests.

HQ's suggestion job writes them (hub/suggestions.py) and sends each to the centre handling
the request and to the offer's owner. Centre staff list them (`list`, standing ones by
default), read one (`show`), dismiss one with a reason (`dismiss`), or act on it with
`techbridge interest send --suggestion ID`, which sends an expression of interest in the
offer for the request's client and marks the suggestion taken.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table

from cli.common import Groups, record_values, staff_data_arg
from cli.connect import Admin
from cli.records import all_records, cmd_staff_show, step_record
from cli.render import listing_json, out, print_json
from transfer.records import DISMISS_REASONS, SuggestionStatus

STATUSES = (*(s.value for s in SuggestionStatus), "all")


def cmd_list(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        views = all_records(s, "", kind="suggestion", status="" if a.status == "all" else a.status)
        site = s.config.site_id
    rows: list[dict[str, Any]] = []
    for v in views:
        _, values = record_values(v)
        if a.request and values["request"] != a.request:
            continue
        doc = listing_json(v, detail=False)
        score, reasons = values["score"], values["reasons"]
        assert isinstance(score, int) and isinstance(reasons, tuple)
        doc.update(
            request=values["request"],
            offer=values["offer"],
            for_centre=values["for_centre"],
            offer_owner=values["offer_owner"],
            score=score / 1000,
            reasons=[str(r) for r in reasons],
            dismiss_reason=values["dismiss_reason"] or None,
            interest=values["interest"] or None,
        )
        rows.append(doc)
    rows.sort(key=lambda d: (d["request"], -d["score"], d["id"]))
    if a.json:
        print_json(rows)
        return
    table = Table(title=f"HQ's suggestions at {site} ({len(rows)})")
    for col in ("id", "offer -> request", "score", "why", "for", "status", "updated"):
        table.add_column(col, overflow="fold")
    for d in rows:
        status = d["status"] + (f" ({d['dismiss_reason']})" if d["dismiss_reason"] else "")
        status += f" (interest {d['interest']})" if d["interest"] else ""
        table.add_row(
            d["id"], d["title"], f"{d['score']:.2f}", "\n".join(d["reasons"]), d["for_centre"], status, d["updated_at"]
        )
    out.print(table)


def cmd_dismiss(a: argparse.Namespace) -> None:
    step_record(a, "decline", [f"dismiss_reason={a.reason}"])


def add_parser(groups: Groups) -> None:
    sug = groups.add_parser("suggestion", help="HQ's suggestions of offers for requests").add_subparsers(
        dest="cmd", required=True
    )
    sp = sug.add_parser("list", help="the suggestions held here (standing ones unless --status)")
    staff_data_arg(sp)
    sp.add_argument("--status", choices=STATUSES, default=SuggestionStatus.SUGGESTED.value)
    sp.add_argument("--request", default="", metavar="RECORD_ID", help="only those for this request")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_list)
    sp = sug.add_parser("show", help="one suggestion, with its score and why")
    staff_data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_staff_show)
    sp = sug.add_parser("dismiss", help="the request's centre sets a suggestion aside, with a reason")
    staff_data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--reason", required=True, choices=DISMISS_REASONS)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_dismiss)
