"""`techbridge report`: each centre's figures for a period, against its targets; and the two
records the figures read beyond the rest: `event` (a centre's matchmaking meetings,
roadshows, delegations) and `target` (HQ's yearly targets for a centre).

The figures are computed at the site from the signed versions it holds (transfer/report.py):
at HQ every centre's, at a centre its own. `--explain FIGURE` lists the records and versions
counted; `--recount` first counts every record's figures again from nothing. `--csv FILE`
writes one UTF-8 table with a header (a row per centre and figure, and per breakdown value);
`--xlsx FILE` a workbook with one sheet per table.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from rich.table import Table

from cli.common import CliError, Groups, parse_time, staff_data_arg, values_message
from cli.connect import CALL_TIMEOUT_S, Admin, call, rpc_error_lines
from cli.records import all_records, list_records
from cli.render import out, print_json
from cli.render import report as report_written
from sync.kinds import FieldValue
from techbridge.v1 import admin_pb2
from transfer.records import EVENT, EVENT_TYPES, TARGET, TARGET_FIELDS
from transfer.report_files import write_csv, write_xlsx

# A recount reads every record held: minutes on a store of millions.
RECOUNT_TIMEOUT_S = 3600.0


def _fetch(a: argparse.Namespace) -> admin_pb2.GetReportResponse:
    if a.period and (a.date_from or a.date_to):
        raise CliError("error: give --period or --from and --to, not both")
    if bool(a.date_from) != bool(a.date_to):
        raise CliError("error: --from and --to go together")
    period = a.period or ("" if a.date_from else str(datetime.now(UTC).year))
    with Admin(a.data) as s:
        try:
            return s.admin.GetReport(
                admin_pb2.GetReportRequest(
                    period=period,
                    from_date=a.date_from or "",
                    to_date=a.date_to or "",
                    centres=a.centre or [],
                    explain=a.explain or "",
                    recount=a.recount,
                ),
                metadata=s.md,
                timeout=RECOUNT_TIMEOUT_S if a.recount else CALL_TIMEOUT_S,
            )
        except grpc.RpcError as e:
            raise CliError(*rpc_error_lines(e)) from e


def report_json(r: admin_pb2.GetReportResponse) -> dict[str, Any]:
    centres = []
    for c in r.centres:
        figures: dict[str, Any] = {}
        for f in c.figures:
            figures[f.name] = {"count": f.count, **({"target": f.target} if f.has_target else {})}
        breakdowns: dict[str, list[dict[str, Any]]] = {}
        for b in c.breakdowns:
            breakdowns.setdefault(b.figure, []).append({"by": b.by, "value": b.value, "count": b.count})
        centres.append(
            {
                "centre": c.centre,
                "name": c.name,
                "figures": figures,
                "breakdowns": breakdowns,
                "funnel": [
                    {"from": s.from_figure, "to": s.to_figure, "rate": s.rate if s.has_rate else None} for s in c.funnel
                ],
                "median_days": {
                    "interest_to_introduction": c.median_days_to_introduction if c.has_median_to_introduction else None,
                    "introduction_to_agreement": c.median_days_to_agreement if c.has_median_to_agreement else None,
                },
            }
        )
    doc: dict[str, Any] = {
        "site": r.site,
        "period": {"label": r.period, "start": _iso(r.start_ms), "end": _iso(r.end_ms)},
        "centres": centres,
    }
    if r.explain:
        doc["explain"] = {
            "figure": r.explain,
            "counted": [
                {"centre": e.centre, "record": e.record_id, "version": e.version_id, "stamp": _iso(e.stamp_ms)}
                for e in r.explained
            ],
        }
    return doc


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def _cell(f: admin_pb2.FigureCount) -> str:
    if not f.has_target:
        return str(f.count)
    share = f" ({f.count / f.target:.0%})" if f.target else ""
    return f"{f.count} / {f.target}{share}"


def cmd_report(a: argparse.Namespace) -> None:
    r = _fetch(a)
    try:
        if a.csv:
            with Path(a.csv).open("w", newline="", encoding="utf-8") as fh:
                write_csv(r, fh)
        if a.xlsx:
            with Path(a.xlsx).open("wb") as fb:
                write_xlsx(r, fb)
    except OSError as exc:
        raise CliError(f"error: {exc.filename}: cannot write: {exc.strerror}") from exc
    if a.json:
        print_json(report_json(r))
        return
    if a.csv or a.xlsx:
        sys.stderr.write(f"wrote the figures for {r.period} to {', '.join(x for x in (a.csv, a.xlsx) if x)}\n")
        return
    table = Table(title=f"figures at {r.site}, {r.period} ({_iso(r.start_ms)[:10]} to {_iso(r.end_ms - 1)[:10]}, UTC)")
    table.add_column("figure")
    for c in r.centres:
        table.add_column(c.centre, justify="right")
    names = [f.name for f in r.centres[0].figures] if r.centres else []
    for i, name in enumerate(names):
        table.add_row(name, *(_cell(c.figures[i]) for c in r.centres))
    table.add_row(
        "interest → introduction (median days)",
        *(f"{c.median_days_to_introduction:g}" if c.has_median_to_introduction else "" for c in r.centres),
    )
    table.add_row(
        "introduction → agreement (median days)",
        *(f"{c.median_days_to_agreement:g}" if c.has_median_to_agreement else "" for c in r.centres),
    )
    for step in r.centres[0].funnel if r.centres else []:
        label = f"{step.from_figure.split('.')[1]} → {step.to_figure.split('.')[1]}"
        cells = []
        for c in r.centres:
            s = next(x for x in c.funnel if x.to_figure == step.to_figure)
            cells.append(f"{s.rate:.0%}" if s.has_rate else "")
        table.add_row(label, *cells)
    out.print(table)
    for c in r.centres:
        if not c.breakdowns:
            continue
        t = Table(title=f"{c.centre}: breakdowns")
        for col in ("figure", "by", "value", "count"):
            t.add_column(col)
        for b in c.breakdowns:
            t.add_row(b.figure, b.by, b.value, str(b.count))
        out.print(t)
    if r.explain:
        t = Table(title=f"{r.explain}: what was counted ({len(r.explained)})")
        for col in ("centre", "record", "version", "stamp"):
            t.add_column(col, overflow="fold")
        for e in r.explained:
            t.add_row(e.centre, e.record_id, e.version_id, _iso(e.stamp_ms))
        out.print(t)


def _add(a: argparse.Namespace, kind_name: str, values: dict[str, FieldValue], audience: list[str]) -> None:
    kind = EVENT if kind_name == "event" else TARGET
    with Admin(a.data) as s:
        view = call(
            lambda: (
                s.admin.AddRecord(
                    admin_pb2.AddRecordRequest(values=values_message(kind, values), audience=audience),
                    metadata=s.md,
                    timeout=CALL_TIMEOUT_S,
                ).record
            )
        )
    report_written(view, a.json, "recorded")


def cmd_event_add(a: argparse.Namespace) -> None:
    values: dict[str, FieldValue] = {
        "title": a.title,
        "event_type": a.type,
        "held_on_ms": a.date,
        "place": a.place,
        "firms": tuple(a.firm or ()),
        "firm_count": a.firm_count,
        "interests": tuple(a.interest or ()),
    }
    _add(a, "event", values, [])


def cmd_target_set(a: argparse.Namespace) -> None:
    values: dict[str, FieldValue] = {"centre": a.centre, "year": a.year}
    for name in TARGET_FIELDS:
        v = getattr(a, name)
        if v is not None:
            values[name] = v
    with Admin(a.data) as s:
        current = [
            v
            for v in all_records(s, "", kind="target")
            if v.values.target.centre == a.centre and v.values.target.year == a.year
        ]
        if current:  # setting them again revises the same record
            fields = sorted(k for k in values if k not in ("centre", "year"))
            view = call(
                lambda: (
                    s.admin.EditRecord(
                        admin_pb2.EditRecordRequest(
                            id=current[0].id, fields=fields, values=values_message(TARGET, values)
                        ),
                        metadata=s.md,
                        timeout=CALL_TIMEOUT_S,
                    ).record
                )
            )
    if current:
        report_written(view, a.json, "updated")
        return
    _add(a, "target", values, [a.centre])


def add_parser(groups: Groups) -> None:
    sp = groups.add_parser("report", help="each centre's figures for a period, against its targets")
    staff_data_arg(sp)
    sp.add_argument("--period", default="", help="2026, 2026-Q4 or 2026-11 (UTC; default: this year)")
    sp.add_argument("--from", dest="date_from", default="", metavar="DATE", help="first day, YYYY-MM-DD")
    sp.add_argument("--to", dest="date_to", default="", metavar="DATE", help="last day, YYYY-MM-DD")
    sp.add_argument("--centre", action="append", metavar="ID", help="only this centre (repeat; HQ)")
    sp.add_argument("--explain", default="", metavar="FIGURE", help="list the records counted, e.g. offers.published")
    sp.add_argument(
        "--recount",
        action="store_true",
        help="count every record's figures again from nothing first (after a restore, or to check the kept figures)",
    )
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--csv", default="", metavar="FILE", help="write the figures as CSV (UTF-8, header)")
    sp.add_argument("--xlsx", default="", metavar="FILE", help="write a workbook, one sheet per table")
    sp.set_defaults(func=cmd_report)

    event = groups.add_parser("event", help="a centre's events: matchmaking, roadshows, delegations").add_subparsers(
        dest="cmd", required=True
    )
    sp = event.add_parser("add", help="record an event this centre held")
    staff_data_arg(sp)
    sp.add_argument("--title", required=True)
    sp.add_argument("--type", required=True, choices=EVENT_TYPES)
    sp.add_argument("--date", required=True, type=parse_time, help="when it was held: 2026-11-22 (UTC)")
    sp.add_argument("--place", default="")
    sp.add_argument("--firm", action="append", metavar="FIRM_ID", help="a registered firm that took part (repeat)")
    sp.add_argument("--firm-count", type=int, default=0, help="how many firms took part in all")
    sp.add_argument("--interest", action="append", metavar="INTEREST_ID", help="an interest it produced (repeat)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_event_add)
    sp = event.add_parser("list", help="the events held here")
    staff_data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=lambda a: list_records(a, "event"))

    target = groups.add_parser("target", help="HQ's yearly targets for a centre").add_subparsers(
        dest="cmd", required=True
    )
    sp = target.add_parser("set", help="HQ sets (or revises) a centre's targets for a year")
    staff_data_arg(sp)
    sp.add_argument("--centre", required=True, metavar="ID")
    sp.add_argument("--year", required=True, type=int)
    for name in TARGET_FIELDS:
        sp.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None, metavar="N")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_target_set)
    sp = target.add_parser("list", help="the targets held here")
    staff_data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=lambda a: list_records(a, "target"))
