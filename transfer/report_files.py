"""The network's figures as files: a long CSV table and an XLSX workbook (openpyxl), from
the report as the admin API gives it. The CLI's `report --csv/--xlsx` and the console's
downloads write the same files."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import IO, Any

from techbridge.v1 import admin_pb2


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


def report_rows(r: admin_pb2.GetReportResponse) -> list[list[Any]]:
    """The long table: centre, name, figure, by, value, count, target."""
    rows: list[list[Any]] = []
    for c in r.centres:
        for f in c.figures:
            rows.append([c.centre, c.name, f.name, "", "", f.count, f.target if f.has_target else ""])
        for b in c.breakdowns:
            rows.append([c.centre, c.name, b.figure, b.by, b.value, b.count, ""])
    return rows


HEADER = ["centre", "centre_name", "figure", "by", "value", "count", "target"]


def write_csv(r: admin_pb2.GetReportResponse, fh: IO[str]) -> None:
    w = csv.writer(fh)
    w.writerow(HEADER)
    w.writerows(report_rows(r))


def csv_text(r: admin_pb2.GetReportResponse) -> str:
    buf = io.StringIO(newline="")
    write_csv(r, buf)
    return buf.getvalue()


def write_xlsx(r: admin_pb2.GetReportResponse, fh: IO[bytes]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    sheet = wb.active
    assert sheet is not None
    sheet.title = "figures"
    names = [f.name for f in r.centres[0].figures] if r.centres else []
    sheet.append(["figure", *(f"{c.centre} ({c.name})" for c in r.centres)])
    for i, name in enumerate(names):
        sheet.append([name, *(c.figures[i].count for c in r.centres)])
    targets = wb.create_sheet("targets")
    targets.append(["centre", "centre_name", "figure", "count", "target"])
    for c in r.centres:
        for f in c.figures:
            if f.has_target:
                targets.append([c.centre, c.name, f.name, f.count, f.target])
    breakdowns = wb.create_sheet("breakdowns")
    breakdowns.append(["centre", "centre_name", "figure", "by", "value", "count"])
    for c in r.centres:
        for b in c.breakdowns:
            breakdowns.append([c.centre, c.name, b.figure, b.by, b.value, b.count])
    funnel = wb.create_sheet("funnel")
    funnel.append(
        ["centre", "centre_name", "from", "to", "rate", "median_days_to_introduction", "median_days_to_agreement"]
    )
    for c in r.centres:
        for s in c.funnel:
            funnel.append(
                [
                    c.centre,
                    c.name,
                    s.from_figure,
                    s.to_figure,
                    s.rate if s.has_rate else None,
                    c.median_days_to_introduction if c.has_median_to_introduction else None,
                    c.median_days_to_agreement if c.has_median_to_agreement else None,
                ]
            )
    if r.explain:
        explained = wb.create_sheet("explain")
        explained.append(["figure", "centre", "record", "version", "stamp"])
        for e in r.explained:
            explained.append([r.explain, e.centre, e.record_id, e.version_id, _iso(e.stamp_ms)])
    wb.save(fh)


def xlsx_bytes(r: admin_pb2.GetReportResponse) -> bytes:
    buf = io.BytesIO()
    write_xlsx(r, buf)
    return buf.getvalue()
