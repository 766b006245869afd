"""`techbridge keys`: this site's signing key, rotated without stopping the site."""

from __future__ import annotations

import argparse

from cli.common import Groups, data_arg
from cli.connect import CALL_TIMEOUT_S, Admin
from cli.render import iso, out, print_json
from techbridge.v1 import admin_pb2


def cmd_keys_rotate(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.RotateKey(admin_pb2.RotateOwnKeyRequest(), metadata=s.md, timeout=CALL_TIMEOUT_S)
    doc = {
        "old_key_id": resp.old_key_id,
        "new_key_id": resp.new_key_id,
        "registry_version": resp.registry_version,
        "from": iso(resp.at_ms),
    }
    if a.json:
        print_json(doc)
        return
    out.print(
        f"{s.config.site_id} now signs with key {resp.new_key_id} (from {iso(resp.at_ms)}); "
        f"key {resp.old_key_id} is retired; registry version {resp.registry_version}",
        highlight=False,
    )


def add_parser(groups: Groups) -> None:
    keys = groups.add_parser("keys", help="this site's signing key").add_subparsers(dest="cmd", required=True)
    sp = keys.add_parser("rotate", help="replace this site's signing key without stopping it")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_keys_rotate)
