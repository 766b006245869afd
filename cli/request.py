"""`techbridge request`: enterprise requests, a firm's own records.

A firm submits, edits and withdraws its requests through any centre
(--node HOST:PORT --firm-key FILE); HQ staff validate and publish them
(--data DIR); either side shows and lists them.
"""

from __future__ import annotations

import argparse

from cli.common import CliError, Groups, firm_args, parse_sets, read_json_file, staff_data_arg, staff_or_firm_args
from cli.connect import as_firm, call, firm_client
from cli.records import cmd_record_show, cmd_record_step, firm_change, firm_list, list_records
from cli.render import report
from sync.errors import InvalidInput
from sync.kinds import Action, Change, create_change, make_content, next_status
from techbridge.v1 import admin_pb2
from transfer.records import REQUEST, audience_from_json, content_from_json


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


def cmd_request_list(a: argparse.Namespace) -> None:
    if as_firm(a):
        firm_list(a, "request")
    else:
        list_records(a, "request")


def add_parser(groups: Groups) -> None:
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
    staff_or_firm_args(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_record_show)
    sp = request.add_parser("list", help="requests (staff: all held here; a firm: its own and public ones)")
    staff_or_firm_args(sp)
    sp.add_argument("--mine", action="store_true", help="a firm: only its own")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_request_list)
    for step, text in {"validate": "HQ validates a submitted request", "publish": "HQ publishes it"}.items():
        sp = request.add_parser(step, help=text)
        staff_data_arg(sp)
        sp.add_argument("id")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_record_step, step=step, set=None)
