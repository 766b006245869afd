"""`techbridge listing`: technology listings (offers) held at this site.

Staff add them from a JSON file or import them in bulk from CSV, list, show
and edit them, and step them through their lifecycle (submit, validate,
publish, extend, expire, withdraw, archive, delete, undelete).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

import grpc

from cli.common import CliError, Groups, data_arg, parse_sets, parse_time, values_message
from cli.connect import CALL_TIMEOUT_S, Admin, kind_at, rpc_error_lines
from cli.records import add_record_from_file, cmd_record_step, list_records, step_record
from cli.render import err, print_listing
from sync.codec import fill_values
from sync.server import field_violations
from techbridge.v1 import admin_pb2
from transfer.bulk import ImportRow, RowProblem, iter_offers_csv, site_problem
from transfer.records import LISTING


def cmd_listing_add(a: argparse.Namespace) -> None:
    add_record_from_file(a, LISTING)


def cmd_listing_list(a: argparse.Namespace) -> None:
    list_records(a, "listing")


def cmd_listing_show(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.id), metadata=s.md, timeout=CALL_TIMEOUT_S)
    print_listing(resp.record, a.json)


def cmd_listing_edit(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        kind = kind_at(s, a.id)
        fields = parse_sets(a.set, kind)
        resp = s.admin.EditRecord(
            admin_pb2.EditRecordRequest(id=a.id, fields=sorted(fields), values=values_message(kind, fields)),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    print_listing(resp.record, a.json)


def cmd_listing_step(a: argparse.Namespace) -> None:
    step_record(a, a.step, getattr(a, "set", None) or [])


def cmd_listing_extend(a: argparse.Namespace) -> None:
    step_record(a, "extend", [f"valid_until_ms={a.until}"])


def cmd_listing_import(a: argparse.Namespace) -> None:
    """Bulk offers from CSV: a header row of field names, one offer a row; lists separated by
    ';'. The rows are read, checked and sent as one stream (ImportRecords): the site checks
    each as it arrives and stores them only once every row is good; every problem is
    printed (row and field), whether this side or the site found it. With --check nothing
    is stored either way."""
    name = a.file
    try:
        with open(name, encoding="utf-8", newline="") as f:
            text = f.read()
    except OSError as exc:
        raise CliError(f"error: {name}: cannot read: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise CliError(f"error: {name}: not a UTF-8 CSV file ({exc})") from exc
    problems: list[RowProblem] = []
    sent_rows: list[int] = []  # the file's row of each record sent, in the order sent

    def requests() -> Iterator[admin_pb2.ImportRecordsRequest]:
        batch: list[admin_pb2.AddRecordRequest] = []
        for item in iter_offers_csv(text):
            if isinstance(item, RowProblem):
                problems.append(item)
                continue
            sent_rows.append(item.row)
            batch.append(_record_of(item))
            if len(batch) == IMPORT_BATCH:
                yield admin_pb2.ImportRecordsRequest(records=batch, check_only=bool(problems))
                batch = []
        # The last message, marked so: the site stores nothing of a stream that ends without it.
        yield admin_pb2.ImportRecordsRequest(records=batch, check_only=a.check or bool(problems), last=True)

    stored = checked = 0
    with Admin(a.data) as s:
        try:
            for answer in s.admin.ImportRecords(requests(), metadata=s.md, timeout=IMPORT_TIMEOUT_S):
                for rid in answer.ids:
                    sys.stdout.write(rid + "\n")
                stored += len(answer.ids)
                checked = max(checked, answer.checked)
        except grpc.RpcError as e:
            found = [site_problem(field, description, sent_rows) for field, description in field_violations(e)]
            if not found:  # not a problem of the rows: the connection, the site
                raise CliError(*rpc_error_lines(e), *_stored_line(name, stored)) from e
            problems.extend(found)
    if problems:
        whole = [p for p in problems if p.row == 0 and p.field == "(file)"]
        shown = whole or sorted(problems, key=lambda p: (p.row == 0, p.row))
        raise CliError(*(_problem_line(name, p) for p in shown), *_stored_line(name, stored))
    if a.check:
        err.print(f"checked {checked} offers in {name}: all good, none stored", highlight=False)
        return
    err.print(f"imported {stored} offers from {name}", highlight=False)


def _record_of(row: ImportRow) -> admin_pb2.AddRecordRequest:
    record = admin_pb2.AddRecordRequest(audience=row.audience, status=row.content.status, private_note=row.private_note)
    fill_values(LISTING, record.values.listing, row.content.fields)
    return record


# Records a message of the import stream carries.
IMPORT_BATCH = 500
# The whole import, read, checked and stored (20,000 rows at most).
IMPORT_TIMEOUT_S = 900.0


def _problem_line(name: str, p: RowProblem) -> str:
    if p.row == 0:
        return (
            f"error: {name}: {p.description}" if p.field == "(file)" else f"error: {name}: {p.field}: {p.description}"
        )
    if p.field == "(row)":
        return f"error: {name}: row {p.row}: {p.description}"
    return f"error: {name}: row {p.row}: {p.field}: {p.description}"


def _stored_line(name: str, stored: int) -> list[str]:
    return [f"error: {name}: rows 2-{stored + 1} were stored; none after"] if stored else []


def add_parser(groups: Groups) -> None:
    listing = groups.add_parser("listing", help="technology listings").add_subparsers(dest="cmd", required=True)
    sp = listing.add_parser("add", help="sign and store a listing from a JSON file; prints its id last")
    data_arg(sp)
    sp.add_argument(
        "--file",
        required=True,
        help="listing JSON: title (required) and any offer field (see the README: stage, trl, ipr_status, "
        "keywords, partnership_types, ...), status (draft or submitted), audience (network, hq or centre ids), "
        "private_note (kept only at this centre)",
    )
    sp.add_argument("--json", action="store_true", help="print the stored listing as JSON")
    sp.set_defaults(func=cmd_listing_add)
    sp = listing.add_parser("list", help="list the listings this site holds")
    data_arg(sp)
    sp.add_argument("--centre", default=None, help="only listings owned by this centre")
    sp.add_argument("--deleted", action="store_true", help="include deleted listings")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_list)
    sp = listing.add_parser("show", help="one listing with its provenance")
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_show)
    sp = listing.add_parser(
        "edit",
        help="set fields: content (any offer field but valid_until_ms) at the owning centre; "
        "curation (tags, featured) at HQ",
    )
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument(
        "--set",
        action="append",
        required=True,
        metavar="FIELD=VALUE",
        help="repeatable; lists are comma-separated (keywords=water,solar), featured=true|false",
    )
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_edit)
    steps = {
        "submit": "draft -> submitted (owning centre)",
        "validate": "submitted -> validated (HQ only)",
        "publish": "validated -> published",
        "withdraw": "any live status -> withdrawn",
        "delete": "write a tombstone; edits that did not see it do not bring the listing back",
        "undelete": "bring a deleted listing back (made on top of the tombstone)",
    }
    for step, text in steps.items():
        sp = listing.add_parser(step, help=text)
        data_arg(sp)
        sp.add_argument("id")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_listing_step, step=step)
    sp = listing.add_parser("extend", help="extend a published or expired offer once, to a new end of validity")
    sp.add_argument("--data", required=True)
    sp.add_argument("id")
    sp.add_argument("--until", required=True, type=parse_time, help="e.g. 2028-01-31T00:00:00Z")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_extend)
    sp = listing.add_parser("import", help="bulk offers from a CSV file (header: field names; lists split by ';')")
    sp.add_argument("--data", required=True)
    sp.add_argument("--file", required=True)
    sp.add_argument("--check", action="store_true", help="check every row at the site, store none")
    sp.set_defaults(func=cmd_listing_import)
    sp = listing.add_parser("expire", help="the owning centre (or HQ) marks a published offer expired now")
    sp.add_argument("--data", required=True)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_record_step, step="expire", set=None)
    sp = listing.add_parser("archive", help="archive a withdrawn or expired offer")
    sp.add_argument("--data", required=True)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_record_step, step="archive", set=None)
