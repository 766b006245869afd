"""`techbridge duplicates`: offers that may be the same technology listed twice, with their
similarity and why (`list`, for one offer or every offer waiting for validation), and HQ
settling a pair (`mark` links the duplicate to the original, `dismiss` keeps the pair from
being listed again): both are curation edits HQ signs, received everywhere."""

from __future__ import annotations

import argparse
from typing import Any

import grpc
from rich.markup import escape
from rich.table import Table

from cli.common import CliError, Groups, staff_data_arg
from cli.connect import CALL_TIMEOUT_S, Admin, rpc_error_lines
from cli.render import listing_json, out, print_json
from techbridge.v1 import admin_pb2, records_pb2


def cmd_list(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        try:
            found = s.admin.ListDuplicates(
                admin_pb2.ListDuplicatesRequest(id=a.id or ""), metadata=s.md, timeout=CALL_TIMEOUT_S
            )
        except grpc.RpcError as e:
            raise CliError(*rpc_error_lines(e)) from e
        site = s.config.site_id
    if a.json:
        doc: list[dict[str, Any]] = []
        for p in found.pairs:
            one, other = listing_json(p.record, detail=False), listing_json(p.other, detail=False)
            doc.append(
                {
                    "id": one["id"],
                    "title": one["title"],
                    "origin": one["origin"],
                    "other_id": other["id"],
                    "other_title": other["title"],
                    "other_origin": other["origin"],
                    "similarity": round(p.similarity, 6),
                    "why": list(p.reasons),
                }
            )
        print_json(doc)
        return
    scope = f"for {a.id}" if a.id else "for the offers waiting for validation"
    table = Table(title=f"possible duplicates at {site} {scope}: {len(found.pairs)}")
    for col in ("offer", "origin", "may be the same as", "origin ", "similarity", "why"):
        table.add_column(col, overflow="fold")
    for p in found.pairs:
        one, other = listing_json(p.record, detail=False), listing_json(p.other, detail=False)
        table.add_row(
            f"{escape(one['title'])}\n{p.record.id}",
            escape(p.record.origin_name or p.record.provenance.origin),
            f"{escape(other['title'])}\n{p.other.id}",
            escape(p.other.origin_name or p.other.provenance.origin),
            f"{p.similarity:.0%}",
            escape("; ".join(p.reasons)),
        )
    out.print(table)


def _settle(a: argparse.Namespace, field: str) -> None:
    """Set HQ's curation field `field` of offer `a.id` with `a.of` (an edit HQ signs)."""
    if a.id == a.of:
        raise CliError(f"error: {a.id} cannot duplicate itself")
    with Admin(a.data) as s:
        try:
            other = s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.of), metadata=s.md, timeout=CALL_TIMEOUT_S)
            if other.record.kind != "listing":
                raise CliError(f"error: {a.of} is a {other.record.kind}, not an offer")
            current = s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.id), metadata=s.md, timeout=CALL_TIMEOUT_S)
            values = records_pb2.Listing()
            if field == "duplicate_of":
                values.duplicate_of = a.of
            else:
                values.not_duplicate_of.extend(dict.fromkeys([*current.record.values.listing.not_duplicate_of, a.of]))
            s.admin.EditRecord(
                admin_pb2.EditRecordRequest(id=a.id, fields=[field], values=records_pb2.RecordValues(listing=values)),
                metadata=s.md,
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.RpcError as e:
            raise CliError(*rpc_error_lines(e)) from e
    what = "marked the duplicate of" if field == "duplicate_of" else "not a duplicate of"
    out.print(f"{a.id}: {what} {a.of}")


def add_parser(groups: Groups) -> None:
    sp = groups.add_parser("duplicates", help="offers that may be the same technology listed twice")
    sub = sp.add_subparsers(dest="action", required=True, metavar="ACTION")
    ls = sub.add_parser("list", help="possible duplicates of an offer, or of every offer waiting for validation")
    staff_data_arg(ls)
    ls.add_argument("id", nargs="?", help="an offer's id (default: every submitted or validated offer)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)
    for name, field, help_text in (
        ("mark", "duplicate_of", "HQ: mark an offer the duplicate of another (linked, not deleted)"),
        ("dismiss", "not_duplicate_of", "HQ: the pair is not a duplicate; never listed again"),
    ):
        p = sub.add_parser(name, help=help_text)
        staff_data_arg(p)
        p.add_argument("id", help="the offer")
        p.add_argument("--of", required=True, help="the other offer")
        p.set_defaults(func=lambda a, f=field: _settle(a, f))
