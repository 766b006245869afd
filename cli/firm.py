"""`techbridge firm`: firms registered at their home centre.

Staff register a firm (writing the key file it reaches any centre with),
show and list firms, and erase a firm's personal data.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import CliError, Groups, staff_data_arg, values_message
from cli.connect import CALL_TIMEOUT_S, Admin, call
from cli.firmclient import FirmKeyFile
from cli.records import cmd_staff_show, list_records, step_record
from cli.render import err
from sync.errors import InvalidInput
from sync.keys import SigningKey
from sync.kinds import FieldValue, make_content, validate_content
from techbridge.v1 import admin_pb2
from transfer import taxonomy
from transfer.records import FIRM


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


def cmd_firm_list(a: argparse.Namespace) -> None:
    list_records(a, "firm")


def cmd_firm_erase(a: argparse.Namespace) -> None:
    step_record(a, "erase", [])


def add_parser(groups: Groups) -> None:
    firm = groups.add_parser("firm", help="firms registered at a centre").add_subparsers(dest="cmd", required=True)
    sp = firm.add_parser("register", help="register a firm at this (its home) centre and write its key file")
    staff_data_arg(sp)
    sp.add_argument("--name", required=True, help="legal name")
    sp.add_argument("--country", required=True, help="ISO 3166-1 alpha-2, e.g. CN")
    sp.add_argument("--size", default="", help="micro, small, medium or large")
    sp.add_argument("--sectors", default="", help=f"comma-separated market terms of taxonomy {taxonomy.CURRENT}")
    sp.add_argument("--contact", default="", help="personal contact, kept only at this centre (never signed or sent)")
    sp.add_argument("--out", required=True, help="where to write the firm's key file (mode 0600; never overwritten)")
    sp.set_defaults(func=cmd_firm_register)
    sp = firm.add_parser("show", help="one firm as this centre holds it")
    staff_data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_staff_show)
    sp = firm.add_parser("list", help="the firms this centre holds")
    staff_data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_firm_list)
    sp = firm.add_parser("erase", help="erase a firm's personal data (GDPR request): a signed erasure step")
    staff_data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_firm_erase)
