"""`techbridge hub`: create and serve the headquarters hub, invite centres, revoke keys.

`init` and `serve` work on the hub's data folder directly; `invite` (a
one-time join token for a centre) and `revoke` (a signing key, network-wide)
go to the running hub's admin service. The module is named hub_cmd so that,
with cli/ first on the path (python cli/main.py), it cannot stand in for the
hub package.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.common import (
    Groups,
    check_web_files,
    data_arg,
    metrics_arg,
    parse_duration,
    parse_time,
    save_web_files,
    web_init_args,
)
from cli.connect import CALL_TIMEOUT_S, Admin
from cli.render import console_line, err, iso, out, print_json, warn_insecure
from techbridge.v1 import admin_pb2, admin_pb2_grpc


def cmd_hub_init(a: argparse.Namespace) -> None:
    from hub.site import init_hub

    check_web_files(a.web_cert, a.web_key)
    config = init_hub(
        Path(a.data),
        site_id=a.id,
        listen=a.listen,
        enrol_listen=a.enrol_listen,
        db_url=a.db,
        names=tuple(a.name),
        web_listen=a.web_listen,
        country=a.country,
    )
    save_web_files(a.data, a.web_cert, a.web_key)
    out.print(
        f"hub [bold]{config.site_id}[/] initialised in {a.data}; it will listen on {config.listen} (mutual TLS) "
        f"and take enrolments on {config.enrol_listen} (TLS)"
    )
    out.print(f"start it with: techbridge hub serve --data {a.data}")


def cmd_hub_serve(a: argparse.Namespace) -> None:
    from hub.site import start_hub
    from sync.runtime import bound_malloc_arenas, wait_for_signal

    bound_malloc_arenas()  # before the server's threads start

    if a.insecure:
        warn_insecure("hub")
    running = start_hub(
        Path(a.data),
        listen=a.listen,
        insecure=a.insecure,
        web_listen=a.web_listen,
        metrics_listen=a.metrics_listen,
        health_listen=a.health_listen,
    )
    how = "WITHOUT TLS" if a.insecure else f"mutual TLS; enrolment and firms on port {running.enrol_port}"
    out.print(f"hub {running.site.site_id} serving on {running.address} ({how}; Ctrl-C to stop)", highlight=False)
    console_line(running)
    sys.stdout.flush()
    wait_for_signal(running)


def cmd_hub_replica(a: argparse.Namespace) -> None:
    from hub.site import make_replica

    config = make_replica(
        Path(getattr(a, "from")),
        Path(a.data),
        listen=a.listen,
        enrol_listen=a.enrol_listen,
        web_listen=a.web_listen,
    )
    out.print(
        f"replica of hub [bold]{config.site_id}[/] in {a.data}: it will listen on {config.listen} "
        f"and take enrolments on {config.enrol_listen}, on the same database"
    )
    out.print(f"start it with: techbridge hub serve --data {a.data}")


def cmd_hub_invite(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = admin_pb2_grpc.HubAdminServiceStub(s.channel).Invite(
            admin_pb2.InviteRequest(centre_id=a.centre, name=a.name, country=a.country, ttl_seconds=int(a.ttl)),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    err.print(f"invited {a.centre} ({a.name}, {a.country}); the token works once, until {iso(resp.expires_at_ms)}:")
    sys.stdout.write(resp.token + "\n")


def cmd_hub_revoke(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = admin_pb2_grpc.HubAdminServiceStub(s.channel).RevokeKey(
            admin_pb2.RevokeKeyRequest(key_id=a.key, compromised_since_ms=a.compromised_since or 0),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    if a.json:
        print_json(
            {
                "key_id": a.key,
                "revoked_at": iso(resp.revoked_at_ms),
                "registry_version": resp.registry_version,
                "quarantined": resp.quarantined,
            }
        )
        return
    out.print(
        f"key {a.key} revoked from {iso(resp.revoked_at_ms)} (registry version {resp.registry_version}); "
        f"{resp.quarantined} versions held here went to quarantine; every site follows at its next sync",
        highlight=False,
    )


def add_parser(groups: Groups) -> None:
    hub = groups.add_parser("hub", help="run the headquarters hub").add_subparsers(dest="cmd", required=True)
    sp = hub.add_parser("init", help="create a hub data folder: root key, signing key, store")
    data_arg(sp)
    sp.add_argument("--id", default="hq", help="the hub's site id (default hq)")
    sp.add_argument("--listen", default="127.0.0.1:7700", help="HOST:PORT to serve on (default 127.0.0.1:7700)")
    sp.add_argument(
        "--enrol-listen", default=None, help="HOST:PORT where new nodes enrol (default: the next port on the same host)"
    )
    sp.add_argument(
        "--name", action="append", default=[], help="another host name or IP nodes use to reach the hub (repeatable)"
    )
    sp.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite in the data folder)")
    sp.add_argument("--country", default="CN", help="HQ's country, ISO 3166-1 alpha-2 (default CN)")
    web_init_args(sp)
    sp.set_defaults(func=cmd_hub_init)
    sp = hub.add_parser("serve", help="serve the hub until Ctrl-C / SIGTERM")
    data_arg(sp)
    sp.add_argument("--listen", default=None, help="override the configured HOST:PORT")
    sp.add_argument("--insecure", action="store_true", help="serve WITHOUT TLS (local development only)")
    sp.add_argument("--web-listen", default=None, metavar="HOST:PORT", help="override the console's configured address")
    metrics_arg(sp)
    sp.set_defaults(func=cmd_hub_serve)
    sp = hub.add_parser(
        "replica", help="make a data folder for another process of a PostgreSQL hub (same keys, same database)"
    )
    data_arg(sp)
    sp.add_argument("--from", required=True, metavar="DIR", help="the hub's data folder to copy keys and settings from")
    sp.add_argument("--listen", required=True, metavar="HOST:PORT", help="where this replica serves")
    sp.add_argument("--enrol-listen", default=None, help="HOST:PORT where it takes enrolments (default: the next port)")
    sp.add_argument(
        "--web-listen", default=None, metavar="HOST:PORT", help="its staff console (default: --listen's port + 80)"
    )
    sp.set_defaults(func=cmd_hub_replica)
    sp = hub.add_parser("invite", help="invite a centre; prints a one-time join token as the last line")
    data_arg(sp)
    sp.add_argument("--centre", required=True, help="the centre's site id, e.g. tel-aviv")
    sp.add_argument("--name", required=True, help='display name, e.g. "Tel Aviv"')
    sp.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. IL")
    sp.add_argument("--ttl", type=parse_duration, default=7 * 24 * 3600, help="token lifetime (default 7 days)")
    sp.set_defaults(func=cmd_hub_invite)

    sp = hub.add_parser("revoke", help="revoke a signing key; versions it signs from then on are refused everywhere")
    data_arg(sp)
    sp.add_argument("--key", required=True, metavar="KEYID", help="the key id (as listing show prints it)")
    sp.add_argument(
        "--compromised-since",
        type=parse_time,
        default=None,
        metavar="TIME",
        help="refuse what it signed from this time on (ISO 8601, e.g. 2026-11-22T10:00:00Z); default: now",
    )
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_hub_revoke)
