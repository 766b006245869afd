"""`techbridge search`: offers and requests at this site matching a query and filters,
ranked by relevance (or newest first), each with a snippet of why it was found, and the
facet counts over every match on request."""

from __future__ import annotations

import argparse
from typing import Any

import grpc
from rich.markup import escape
from rich.table import Table

from cli.common import CliError, Groups, staff_data_arg
from cli.connect import CALL_TIMEOUT_S, Admin, rpc_error_lines
from cli.render import iso, listing_json, out, print_json
from techbridge.v1 import admin_pb2

QUERY_HELP = (
    'words of any field a person writes (all must match), "a quoted phrase", a trailing * for a '
    "prefix, OR between two words, -word to exclude"
)


def snippet_json(s: admin_pb2.Snippet) -> dict[str, Any]:
    return {"field": s.field, "parts": [[p.text, p.match] for p in s.parts]}


def snippet_markup(s: admin_pb2.Snippet) -> str:
    """The snippet for the terminal, the matches in bold."""
    return "".join(f"[bold yellow]{escape(p.text)}[/]" if p.match else escape(p.text) for p in s.parts)


def search_request(a: argparse.Namespace) -> admin_pb2.SearchRecordsRequest:
    """The query and filters given on the command line (`add_filter_args`)."""
    return admin_pb2.SearchRecordsRequest(
        text=" ".join(a.query_words),
        kind=a.kind or "",
        status=a.status or "",
        keywords=a.keyword or [],
        countries=a.country or [],
        stage=a.stage or "",
        partnership=a.partnership or "",
        origin=a.centre or "",
    )


def add_filter_args(sp: argparse.ArgumentParser) -> None:
    """The query and the filters, as `search` and `alert add` take them."""
    sp.add_argument("query_words", nargs="*", metavar="QUERY", help=QUERY_HELP)
    sp.add_argument("--kind", choices=["listing", "request"])
    sp.add_argument("--status", help="e.g. published")
    sp.add_argument("--keyword", action="append", help="a taxonomy term (repeatable; all must match)")
    sp.add_argument("--country", action="append", help="a target country, ISO code (repeatable; all must match)")
    sp.add_argument("--stage", help="an offer's stage, e.g. lab-tested")
    sp.add_argument("--partnership", help="a partnership type, e.g. licence")
    sp.add_argument("--centre", help="only records this centre owns")


def cmd_search(a: argparse.Namespace) -> None:
    req = search_request(a)
    req.page_size = a.limit
    req.live_only = a.live
    req.sort = admin_pb2.SEARCH_SORT_NEWEST if a.sort == "newest" else admin_pb2.SEARCH_SORT_RELEVANCE
    req.facets = a.facets
    req.page_token = a.page_token or ""
    with Admin(a.data) as s:
        try:
            found = s.admin.SearchRecords(req, metadata=s.md, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as e:
            raise CliError(*rpc_error_lines(e)) from e
        site = s.config.site_id
    facets = {f.name: {v.value: v.count for v in f.values} for f in found.facets}
    if a.json:
        results = []
        for view, hit in zip(found.records, found.hits, strict=True):
            doc = listing_json(view, detail=False)
            doc["score"] = round(hit.score, 6)
            doc["snippet"] = snippet_json(hit.snippet) if hit.HasField("snippet") else None
            results.append(doc)
        doc_all: dict[str, Any] = {"total": found.total, "results": results, "next_page_token": found.next_page_token}
        if a.facets:
            doc_all["facets"] = facets
        print_json(doc_all)
        return
    shown = f"{len(found.records)} of {found.total}" if found.total > len(found.records) else str(found.total)
    table = Table(title=f"search at {site}: {shown} found")
    for col in ("id", "kind", "title", "origin", "status", "updated", "score", "why"):
        table.add_column(col, overflow="fold")
    for view, hit in zip(found.records, found.hits, strict=True):
        doc = listing_json(view, detail=False)
        why = f"[dim]{escape(hit.snippet.field)}:[/] {snippet_markup(hit.snippet)}" if hit.HasField("snippet") else ""
        table.add_row(
            view.id,
            view.kind,
            escape(doc["title"]),
            escape(view.origin_name or view.provenance.origin),
            view.status,
            iso(view.updated_at_ms),
            f"{hit.score:.3g}",
            why,
        )
    out.print(table)
    if found.next_page_token:
        out.print(f"more: add --page-token {found.next_page_token}")
    if facets:
        ft = Table(title=f"facets over all {found.total} found")
        for col in ("facet", "value", "records"):
            ft.add_column(col, justify="right" if col == "records" else "left")
        for name, counts in facets.items():
            for i, (value, count) in enumerate(counts.items()):
                ft.add_row(name if i == 0 else "", escape(value), str(count), end_section=i == len(counts) - 1)
        out.print(ft)


def add_parser(groups: Groups) -> None:
    sp = groups.add_parser(
        "search", help="offers and requests matching a query and filters, best match first, with facets"
    )
    staff_data_arg(sp)
    add_filter_args(sp)
    sp.add_argument("--live", action="store_true", help="only records live now (published, within validity)")
    sp.add_argument("--sort", choices=["relevance", "newest"], default="relevance")
    sp.add_argument("--facets", action="store_true", help="count every match by centre, kind, status, keyword, …")
    sp.add_argument("--limit", type=int, default=20, help="results per page (at most 1000)")
    sp.add_argument("--page-token", help="the next page (the token a search printed)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_search)
