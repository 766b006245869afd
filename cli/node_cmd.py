"""`techbridge node`: create a centre node, enrolling it at the hub, and serve it.

A serving node syncs with the hub at once (watch stream) and on a schedule.
The module is named node_cmd so that, with cli/ first on the path
(python cli/main.py), it cannot stand in for the node package.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc

from cli.common import (
    CliError,
    Groups,
    check_web_files,
    data_arg,
    metrics_arg,
    parse_duration,
    save_web_files,
    web_init_args,
)
from cli.connect import rpc_error_lines
from cli.render import console_line, out, warn_insecure


def cmd_node_init(a: argparse.Namespace) -> None:
    from node.site import init_node

    try:
        if a.insecure:
            warn_insecure("node")
        check_web_files(a.web_cert, a.web_key)
        config = init_node(
            Path(a.data),
            hub=a.hub,
            token=a.token,
            listen=a.listen,
            db_url=a.db,
            insecure=a.insecure,
            web_listen=a.web_listen,
        )
        save_web_files(a.data, a.web_cert, a.web_key)
    except grpc.RpcError as e:
        raise CliError(*(f"{line} (enrolling at {a.hub})" for line in rpc_error_lines(e))) from e
    out.print(f"node [bold]{config.site_id}[/] enrolled at {a.hub}; data in {a.data}")
    out.print(f"start it with: techbridge node serve --data {a.data}")


def cmd_node_serve(a: argparse.Namespace) -> None:
    from node.site import start_node
    from sync.runtime import bound_malloc_arenas, wait_for_signal

    bound_malloc_arenas()  # before the server's threads start

    if a.insecure:
        warn_insecure("node")
    node = start_node(
        Path(a.data),
        sync_every_s=a.sync_every,
        listen=a.listen,
        insecure=a.insecure,
        live=not a.no_live,
        web_listen=a.web_listen,
        metrics_listen=a.metrics_listen,
        health_listen=a.health_listen,
    )
    if node.running.insecure and not a.insecure:
        warn_insecure("node (its hub serves without TLS)")
    every = a.sync_every if a.sync_every is not None else node.running.site.config.sync_every_s
    how = [] if a.no_live else ["at once (watch stream)"]
    how.append(f"every {every:g}s" if every > 0 else "by `sync now`" if a.no_live else "(no schedule)")
    out.print(
        f"node {node.running.site.site_id} serving on {node.running.address}"
        + (f" (firms on port {node.running.enrol_port})" if node.running.enrol_port else "")
        + "; "
        f"syncing with {node.running.site.config.hub_address} {' and '.join(how)} (Ctrl-C to stop)",
        highlight=False,
    )
    console_line(node.running)
    sys.stdout.flush()
    try:
        wait_for_signal(node.running)
    finally:
        if node.scheduler is not None:
            node.scheduler.shutdown(wait=False)


def add_parser(groups: Groups) -> None:
    node = groups.add_parser("node", help="run a centre node").add_subparsers(dest="cmd", required=True)
    sp = node.add_parser("init", help="create a node data folder and enrol it at the hub")
    data_arg(sp)
    sp.add_argument(
        "--hub",
        required=True,
        metavar="HOST:PORT[,HOST:PORT...]",
        help="the hub's address; several, comma-separated, for replicas of the hub (enrols at the first)",
    )
    sp.add_argument("--token", required=True, help="the join token from `techbridge hub invite`")
    sp.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT for the admin server (default: any free port)")
    sp.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite in the data folder)")
    sp.add_argument("--insecure", action="store_true", help="enrol with a hub that serves WITHOUT TLS (development)")
    web_init_args(sp)
    sp.set_defaults(func=cmd_node_init)
    sp = node.add_parser("serve", help="serve the node and sync with the hub on a schedule")
    data_arg(sp)
    sp.add_argument(
        "--sync-every", type=parse_duration, default=None, help="interval such as 30s or 5m; 0 turns the schedule off"
    )
    sp.add_argument("--listen", default=None, help="override the configured HOST:PORT")
    sp.add_argument("--insecure", action="store_true", help="serve WITHOUT TLS (local development only)")
    sp.add_argument(
        "--no-live",
        action="store_true",
        help="no watch stream and no immediate push: sync only on the schedule or by `sync now` (a link kept down)",
    )
    sp.add_argument("--web-listen", default=None, metavar="HOST:PORT", help="override the console's configured address")
    metrics_arg(sp)
    sp.set_defaults(func=cmd_node_serve)
