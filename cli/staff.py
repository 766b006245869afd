"""`techbridge staff`: the console's accounts at this site (add, list, disable, reset).

`add` and `reset` print a one-time code, valid for a day, with which the staff member sets a
password when first signing in to the console; only its hash is kept."""

from __future__ import annotations

import argparse
import sys

from rich.table import Table

from cli.common import Groups, staff_data_arg
from cli.connect import CALL_TIMEOUT_S, Admin, call
from cli.render import err, iso, out, print_json
from techbridge.v1 import staff_pb2, staff_pb2_grpc


def _stub(s: Admin) -> staff_pb2_grpc.StaffServiceStub:
    return staff_pb2_grpc.StaffServiceStub(s.channel)


def _view_json(v: staff_pb2.StaffView) -> dict[str, object]:
    return {
        "name": v.name,
        "role": v.role,
        "disabled": v.disabled,
        "has_password": v.has_password,
        "created_at": iso(v.created_at_ms),
        "last_login": iso(v.last_login_ms) if v.last_login_ms else None,
    }


def _code(name: str, code: str, until_ms: int, as_json: bool) -> None:
    if as_json:
        print_json({"name": name, "code": code, "valid_until": iso(until_ms)})
        return
    err.print(
        f"one-time code for {name}, valid until {iso(until_ms)}: give it to them to set a password", highlight=False
    )
    sys.stdout.write(code + "\n")


def cmd_add(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        r = call(
            lambda: _stub(s).AddStaff(
                staff_pb2.AddStaffRequest(name=a.name, role=a.role, language=a.language),
                metadata=s.md,
                timeout=CALL_TIMEOUT_S,
            )
        )
    _code(r.staff.name, r.code, r.code_expires_ms, a.json)


def cmd_list(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        r = call(lambda: _stub(s).ListStaff(staff_pb2.ListStaffRequest(), metadata=s.md, timeout=CALL_TIMEOUT_S))
        site = s.config.site_id
    if a.json:
        print_json([_view_json(v) for v in r.staff])
        return
    table = Table(title=f"console accounts at {site} ({len(r.staff)})")
    for col in ("name", "role", "state", "last sign-in"):
        table.add_column(col)
    for v in r.staff:
        state = "disabled" if v.disabled else ("active" if v.has_password else "waiting for a password")
        table.add_row(v.name, v.role, state, iso(v.last_login_ms) if v.last_login_ms else "")
    out.print(table)


def cmd_disable(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        v = call(
            lambda: _stub(s).DisableStaff(
                staff_pb2.DisableStaffRequest(name=a.name), metadata=s.md, timeout=CALL_TIMEOUT_S
            )
        )
    if a.json:
        print_json(_view_json(v))
    else:
        err.print(f"disabled {v.name}: it can no longer sign in", highlight=False)


def cmd_reset(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        r = call(
            lambda: _stub(s).ResetStaff(staff_pb2.ResetStaffRequest(name=a.name), metadata=s.md, timeout=CALL_TIMEOUT_S)
        )
    _code(a.name, r.code, r.code_expires_ms, a.json)


def add_parser(groups: Groups) -> None:
    staff = groups.add_parser("staff", help="the console's accounts at this site").add_subparsers(
        dest="cmd", required=True
    )
    sp = staff.add_parser("add", help="a new account; prints its one-time code")
    staff_data_arg(sp)
    sp.add_argument("--name", required=True)
    sp.add_argument("--role", required=True, help="HQ: curator or viewer; a centre: staff or viewer")
    sp.add_argument("--language", default="en", help="the console's language for this member: en (default) or zh")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_add)
    sp = staff.add_parser("list", help="the accounts at this site")
    staff_data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_list)
    for name, text, fn in (
        ("disable", "the account can no longer sign in", cmd_disable),
        ("reset", "a new one-time code (the password stops working)", cmd_reset),
    ):
        sp = staff.add_parser(name, help=text)
        staff_data_arg(sp)
        sp.add_argument("name")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=fn)
