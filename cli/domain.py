"""CLI commands for firms, enterprise requests and expressions of interest.

Staff commands take `--data DIR` (the centre's own folder, as everywhere);
a firm's commands take `--node HOST:PORT --firm-key FILE` and work against
whichever centre the firm deals with.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import grpc

from cli.common import CliError, parse_sets, parse_time, read_json_file, record_values, values_message
from cli.connect import CALL_TIMEOUT_S, Admin, as_firm, call, firm_client, rpc_error_lines
from cli.firmclient import FirmKeyFile
from cli.records import firm_change, firm_list, list_records, step_record
from cli.render import err, listing_json, print_json, print_listing, report
from sync import taxonomy
from sync.errors import InvalidInput
from sync.keys import SigningKey
from sync.records import (
    FIRM,
    INTEREST,
    LISTING,
    REQUEST,
    Action,
    Change,
    FieldValue,
    audience_from_json,
    content_from_json,
    create_change,
    make_content,
    next_status,
    validate_content,
)
from techbridge.v1 import admin_pb2

# ---- firms (staff at the home centre) -----------------------------------------------------


def cmd_firm_register(a: argparse.Namespace) -> None:
    out_path = Path(a.out)
    if out_path.exists():
        raise CliError(f"error: {out_path} exists; the firm's key file is never overwritten")
    key = SigningKey.generate()
    fields: dict[str, FieldValue] = {"name": a.name, "country": a.country, "public_key": key.public_bytes.hex()}
    if a.size:
        fields["size"] = a.size
    if a.sectors:
        fields["sectors"] = tuple(w.strip() for w in a.sectors.split(",") if w.strip())
        fields["taxonomy"] = taxonomy.CURRENT
    try:
        validate_content(make_content(FIRM, fields, "active"))
    except InvalidInput as exc:
        raise CliError(*(f"error: {v.field}: {v.description}" for v in exc.violations)) from exc
    with Admin(a.data) as s:
        insecure = s.data.running_insecure()
        ca_pem = "" if insecure else s.data.tls.ca.read_text()
        view = call(
            lambda: (
                s.admin.AddRecord(
                    admin_pb2.AddRecordRequest(
                        values=values_message(FIRM, fields), status="active", private_note=a.contact or ""
                    ),
                    metadata=s.md,
                    timeout=CALL_TIMEOUT_S,
                ).record
            )
        )
    FirmKeyFile(view.id, a.name, view.provenance.origin, key, ca_pem).save(out_path)
    err.print(
        f"registered firm {a.name} ({a.country}) at {view.provenance.origin}; its key file is {out_path} "
        "(give it to the firm: it reaches any centre with it)",
        highlight=False,
    )
    sys.stdout.write(view.id + "\n")


def cmd_firm_show(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        view = call(
            lambda: s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.id), metadata=s.md, timeout=CALL_TIMEOUT_S).record
        )
    print_listing(view, a.json)


def cmd_firm_list(a: argparse.Namespace) -> None:
    list_records(a, "firm")


def cmd_firm_erase(a: argparse.Namespace) -> None:
    step_record(a, "erase", [])


# ---- requests ---------------------------------------------------------------------------------


def cmd_request_submit(a: argparse.Namespace) -> None:
    name = a.file
    doc = read_json_file(name)
    writable = REQUEST.owner_fields - {"via"}
    try:
        content = content_from_json(REQUEST, doc, extra=frozenset({"to", "status"}), writable=writable)
        targets = audience_from_json(doc, "to")
    except InvalidInput as exc:
        raise CliError(*(f"error: {name}: {v.field}: {v.description}" for v in exc.violations)) from exc
    with firm_client(a) as c:
        values = {**content.as_dict(), "via": c.site_id}
        content = make_content(REQUEST, values, content.status)
        audience = tuple(sorted({*targets, c.site_id})) if targets else ()
        view = call(lambda: c.create("request", create_change(content, audience)), name)
    report(view, a.json, "submitted")


def cmd_request_edit(a: argparse.Namespace) -> None:
    firm_change(a, lambda view: Change(tuple(sorted(parse_sets(a.set, REQUEST).items()))))


def cmd_request_withdraw(a: argparse.Namespace) -> None:
    def build(view: admin_pb2.RecordView) -> Change:
        return Change(action=Action.WITHDRAW, status=next_status(view.status, Action.WITHDRAW, REQUEST))

    firm_change(a, build)


def cmd_request_show(a: argparse.Namespace) -> None:
    if as_firm(a):
        with firm_client(a) as c:
            view = call(lambda: c.get(a.id))
        print_listing(view, a.json)
        return
    cmd_firm_show(a)


def cmd_request_list(a: argparse.Namespace) -> None:
    if as_firm(a):
        firm_list(a, "request")
    else:
        list_records(a, "request")


def cmd_record_step(a: argparse.Namespace) -> None:
    step_record(a, a.step, a.set or [])


# ---- expressions of interest ---------------------------------------------------------------------


def _interest_values(
    target: admin_pb2.RecordView, from_centre: str, message: str, consent: bool
) -> dict[str, FieldValue]:
    kind, values = record_values(target)
    if kind.name not in ("listing", "request"):
        raise CliError(f"error: --to: {target.id} is a {kind.name}; interest goes to an offer or a request")
    owner = target.provenance.origin if kind.name == "listing" else str(values["via"])
    return {
        "to_record": target.id,
        "to_kind": kind.name,
        "to_owner": owner,
        "from_centre": from_centre,
        "message": message,
        "sender_consent": consent,
    }


def cmd_interest_send(a: argparse.Namespace) -> None:
    if as_firm(a):
        with firm_client(a) as c:
            target = call(lambda: c.get(a.to), "--to")
            values = _interest_values(target, c.site_id, a.message or "", a.consent)
            content = make_content(INTEREST, values, "sent")
            audience = tuple(sorted({str(values["to_owner"]), c.site_id}))
            view = call(lambda: c.create("interest", create_change(content, audience)))
        report(view, a.json, "sent")
        return
    with Admin(a.data) as s:
        target = call(
            lambda: (
                s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.to), metadata=s.md, timeout=CALL_TIMEOUT_S).record
            ),
            "--to",
        )
        values = _interest_values(target, s.config.site_id, a.message or "", a.consent)
        staff_audience = sorted({str(values["to_owner"]), s.config.site_id})
        view = call(
            lambda: (
                s.admin.AddRecord(
                    admin_pb2.AddRecordRequest(
                        values=values_message(INTEREST, values),
                        audience=staff_audience,
                        status="sent",
                        private_note=a.client or "",
                    ),
                    metadata=s.md,
                    timeout=CALL_TIMEOUT_S,
                ).record
            )
        )
    report(view, a.json, "sent")


def cmd_interest_decline(a: argparse.Namespace) -> None:
    step_record(a, "decline", [f"decline_reason={a.reason}"])


def cmd_interest_introduce(a: argparse.Namespace) -> None:
    identity = a.identity
    if not identity:
        with Admin(a.data) as s:
            interest = call(
                lambda: (
                    s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.id), metadata=s.md, timeout=CALL_TIMEOUT_S).record
                )
            )
            _, values = record_values(interest)
            target = call(
                lambda: (
                    s.admin.GetRecord(
                        admin_pb2.GetRecordRequest(id=str(values["to_record"])), metadata=s.md, timeout=CALL_TIMEOUT_S
                    ).record
                )
            )
            _, tvalues = record_values(target)
            identity = (
                target.private_note
                or str(tvalues.get("client_name") or "")
                or (f"the client of {s.config.site_id} (contact the centre)")
            )
    step_record(a, "introduce", [f"owner_identity={identity}"])


def cmd_interest_close(a: argparse.Namespace) -> None:
    if as_firm(a):

        def build(view: admin_pb2.RecordView) -> Change:
            return Change(action=Action.CLOSE, status=next_status(view.status, Action.CLOSE, INTEREST))

        firm_change(a, build)
        return
    step_record(a, "close", [])


def cmd_interest_consent(a: argparse.Namespace) -> None:
    firm_change(a, lambda view: Change((("sender_consent", True),)))


def cmd_interest_list(a: argparse.Namespace) -> None:
    if as_firm(a):
        firm_list(a, "interest")
    else:
        list_records(a, "interest")


def cmd_listing_import(a: argparse.Namespace) -> None:
    """Bulk offers from CSV: a header row of field names, one offer a row; lists separated by ';'.
    Every row is checked first and every problem printed (row and field); nothing is stored
    unless all rows are good."""
    name = a.file
    try:
        with open(name, encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise CliError(f"error: {name}: cannot read: {exc.strerror}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise CliError(f"error: {name}: not a UTF-8 CSV file ({exc})") from exc
    if not rows:
        raise CliError(f"error: {name}: no rows under the header")
    problems: list[str] = []
    docs: list[dict[str, object]] = []
    for n, row in enumerate(rows, start=2):
        doc: dict[str, object] = {}
        for key, text in row.items():
            if key is None:
                problems.append(f"error: {name}: row {n}: more cells than header columns")
                continue
            text = (text or "").strip()
            default = LISTING.defaults.get(key)
            if not text:
                continue
            if isinstance(default, tuple) or key == "audience":
                doc[key] = [w.strip() for w in text.split(";") if w.strip()]
            elif isinstance(default, bool):
                doc[key] = text.lower() in ("true", "yes", "1")
            elif isinstance(default, int):
                doc[key] = int(text) if text.lstrip("-").isdigit() else text
            else:
                doc[key] = text
        try:
            content_from_json(LISTING, doc, extra=frozenset({"audience", "status", "private_note"}))
            audience_from_json(doc)
        except InvalidInput as exc:
            problems.extend(f"error: {name}: row {n}: {v.field}: {v.description}" for v in exc.violations)
        docs.append(doc)
    if problems:
        raise CliError(*problems)
    with Admin(a.data) as s:
        for n, doc in enumerate(docs, start=2):
            content = content_from_json(LISTING, doc, extra=frozenset({"audience", "status", "private_note"}))
            note = doc.get("private_note")
            req = admin_pb2.AddRecordRequest(
                values=values_message(LISTING, content.as_dict()),
                audience=list(audience_from_json(doc)),
                status=content.status,
                private_note=note if isinstance(note, str) else "",
            )
            try:
                view = s.admin.AddRecord(req, metadata=s.md, timeout=CALL_TIMEOUT_S).record
            except grpc.RpcError as e:
                raise CliError(*rpc_error_lines(e, f"{name}: row {n}")) from e
            sys.stdout.write(view.id + "\n")
    err.print(f"imported {len(docs)} offers from {name}", highlight=False)


def cmd_search(a: argparse.Namespace) -> None:
    from rich.table import Table

    from cli.render import iso, out

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


def cmd_listing_extend(a: argparse.Namespace) -> None:
    step_record(a, "extend", [f"valid_until_ms={a.until}"])


# ---- parser ------------------------------------------------------------------------------------------


def add_parsers(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def data_arg(sp: argparse.ArgumentParser, required: bool = True) -> None:
        sp.add_argument("--data", required=required, help="the centre's data folder (staff)")

    def firm_args(sp: argparse.ArgumentParser, required: bool = True) -> None:
        sp.add_argument("--node", required=required, metavar="HOST:PORT", help="any centre's open (firm) port")
        sp.add_argument("--firm-key", required=required, metavar="FILE", help="the firm's key file")

    def either(sp: argparse.ArgumentParser) -> None:
        data_arg(sp, required=False)
        firm_args(sp, required=False)

    sp = groups.add_parser("search", help="offers and requests matching words and filters, newest first")
    data_arg(sp)
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

    firm = groups.add_parser("firm", help="firms registered at a centre").add_subparsers(dest="cmd", required=True)
    sp = firm.add_parser("register", help="register a firm at this (its home) centre and write its key file")
    data_arg(sp)
    sp.add_argument("--name", required=True, help="legal name")
    sp.add_argument("--country", required=True, help="ISO 3166-1 alpha-2, e.g. CN")
    sp.add_argument("--size", default="", help="micro, small, medium or large")
    sp.add_argument("--sectors", default="", help=f"comma-separated market terms of taxonomy {taxonomy.CURRENT}")
    sp.add_argument("--contact", default="", help="personal contact, kept only at this centre (never signed or sent)")
    sp.add_argument("--out", required=True, help="where to write the firm's key file (mode 0600; never overwritten)")
    sp.set_defaults(func=cmd_firm_register)
    sp = firm.add_parser("show", help="one firm as this centre holds it")
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_firm_show)
    sp = firm.add_parser("list", help="the firms this centre holds")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_firm_list)
    sp = firm.add_parser("erase", help="erase a firm's personal data (GDPR request): a signed erasure step")
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_firm_erase)

    request = groups.add_parser("request", help="enterprise requests (a firm's)").add_subparsers(
        dest="cmd", required=True
    )
    sp = request.add_parser("submit", help="a firm submits a request through any centre; prints its id last")
    firm_args(sp)
    sp.add_argument("--file", required=True, help="request JSON (see the README)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_request_submit)
    sp = request.add_parser("edit", help="a firm edits its request")
    firm_args(sp)
    sp.add_argument("id")
    sp.add_argument("--set", action="append", required=True, metavar="FIELD=VALUE")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_request_edit)
    sp = request.add_parser("withdraw", help="a firm withdraws its request")
    firm_args(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_request_withdraw)
    sp = request.add_parser("show", help="one request (staff: --data; a firm: --node --firm-key)")
    either(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_request_show)
    sp = request.add_parser("list", help="requests (staff: all held here; a firm: its own and public ones)")
    either(sp)
    sp.add_argument("--mine", action="store_true", help="a firm: only its own")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_request_list)
    for step, text in {"validate": "HQ validates a submitted request", "publish": "HQ publishes it"}.items():
        sp = request.add_parser(step, help=text)
        data_arg(sp)
        sp.add_argument("id")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_record_step, step=step, set=None)

    interest = groups.add_parser("interest", help="expressions of interest").add_subparsers(dest="cmd", required=True)
    sp = interest.add_parser("send", help="express interest in an offer or a request (a firm, or staff for a client)")
    either(sp)
    sp.add_argument("--to", required=True, metavar="RECORD_ID", help="the offer or request")
    sp.add_argument("--message", default="")
    sp.add_argument("--consent", action="store_true", help="consent to be introduced if the owner accepts")
    sp.add_argument("--client", default="", help="staff: the client it is sent for (kept only at this centre)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_send)
    for step, text in {
        "forward": "the handling centre passes it to its client",
        "accept": "the handling centre accepts it for its client",
        "negotiate": "both sides are negotiating",
        "agree": "an agreement was signed",
    }.items():
        sp = interest.add_parser(step, help=text)
        data_arg(sp)
        sp.add_argument("id")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_record_step, step=step, set=None)
    sp = interest.add_parser("decline", help="the handling centre declines it, with a reason")
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--reason", required=True, help="not-relevant, no-capacity, already-partnered, ...")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_decline)
    sp = interest.add_parser("introduce", help="reveal the owner's identity to the sender (it consented)")
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--identity", default="", help="default: the client this centre keeps for the offer")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_introduce)
    sp = interest.add_parser("close", help="close without a deal (either side)")
    either(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_close)
    sp = interest.add_parser("consent", help="a firm consents to be introduced (signed)")
    firm_args(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_consent)
    sp = interest.add_parser("show", help="one interest (staff: --data; a firm: --node --firm-key)")
    either(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_request_show)
    sp = interest.add_parser("list", help="interests held here (staff) or a firm's own")
    either(sp)
    sp.add_argument("--mine", action="store_true", help="a firm: only those it sent")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_list)


def add_listing_parsers(listing: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sp = listing.add_parser("extend", help="extend a published or expired offer once, to a new end of validity")
    sp.add_argument("--data", required=True)
    sp.add_argument("id")
    sp.add_argument("--until", required=True, type=parse_time, help="e.g. 2028-01-31T00:00:00Z")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_extend)
    sp = listing.add_parser("import", help="bulk offers from a CSV file (header: field names; lists split by ';')")
    sp.add_argument("--data", required=True)
    sp.add_argument("--file", required=True)
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
