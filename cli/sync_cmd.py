"""`techbridge sync`: synchronisation with the hub.

`now` runs one round with a progress bar (a node), `status` shows each
peer's last success, cursors, pending versions and last error, `digest`
what this site holds, to compare sites with. The module is named sync_cmd
so that, with cli/ first on the path (python cli/main.py), it cannot stand
in for the sync package.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cli.common import CliError, Groups, data_arg
from cli.connect import CALL_TIMEOUT_S, SYNC_TIMEOUT_S, Admin
from cli.render import err, iso, out, print_json
from techbridge.v1 import admin_pb2, admin_pb2_grpc


def cmd_sync_now(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        if s.config.role != "node":
            raise CliError("error: `sync now` runs on a node; the hub syncs whenever its nodes call in")
        stub = admin_pb2_grpc.NodeAdminServiceStub(s.channel)
        final: admin_pb2.SyncProgress | None = None
        with Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err, transient=False
        ) as bar:
            tasks: dict[int, Any] = {}
            names = {
                admin_pb2.SYNC_PHASE_REGISTRY: "registry",
                admin_pb2.SYNC_PHASE_PUSH: "push to hub",
                admin_pb2.SYNC_PHASE_PULL: "pull from hub",
            }
            for ev in stub.SyncNow(admin_pb2.SyncNowRequest(), metadata=s.md, timeout=SYNC_TIMEOUT_S):
                if ev.phase == admin_pb2.SYNC_PHASE_DONE:
                    final = ev
                    continue
                if ev.phase not in tasks:
                    tasks[ev.phase] = bar.add_task(names.get(ev.phase, "sync"), total=ev.total or None)
                bar.update(tasks[ev.phase], completed=ev.done, total=max(ev.total, ev.done) or None)
            for t in tasks.values():
                task = bar.tasks[t]
                if task.total is None:
                    bar.update(t, total=task.completed or 1, completed=task.completed or 1)
    if final is not None:
        msg = (
            f"sync done: {final.done} versions pushed, {final.stored} new versions received, "
            f"{final.rejected} refused; {final.message}"
        )
        if a.json:
            print_json({"ok": True, "pushed": final.done, "received": final.stored, "refused": final.rejected})
        else:
            out.print(msg)


def cmd_sync_status(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        st = s.admin.GetSyncStatus(admin_pb2.GetSyncStatusRequest(), metadata=s.md, timeout=CALL_TIMEOUT_S)
    peers = [
        {
            "peer": p.peer,
            "last_success": iso(p.last_success_ms) or None,
            "last_attempt": iso(p.last_attempt_ms) or None,
            "last_error": p.last_error or None,
            "last_error_at": iso(p.last_error_ms) or None,
            "cursors": {"pull": p.pull_cursor, "push_acked": p.push_acked},
            "pending": {"push": p.pending_push, "pull": p.pending_pull},
            "backoff": {"failures": p.failures, "next_attempt": iso(p.next_attempt_ms) or None},
            "watching": p.watching,
        }
        for p in st.peers
    ]
    if a.json:
        print_json(
            {
                "site": st.site_id,
                "log_head": st.log_head,
                "versions": st.versions,
                "rejected": st.rejected,
                "peers": peers,
            }
        )
        return
    out.print(
        f"site {st.site_id}: {st.versions} versions, log head {st.log_head}, {st.rejected} refused", highlight=False
    )
    table = Table()
    cols = ["peer", "last success", "pull cursor", "push acked", "pending push", "pending pull", "last error"]
    node_view = s.config.role == "node"
    if node_view:
        cols += ["backoff", "watching"]
    for col in cols:
        table.add_column(col, overflow="fold")
    for p in st.peers:
        table.add_row(
            p.peer,
            iso(p.last_success_ms) or "never",
            str(p.pull_cursor),
            str(p.push_acked),
            str(p.pending_push),
            str(p.pending_pull),
            p.last_error if p.last_error_ms > p.last_success_ms else "",
            *(
                [
                    f"{p.failures} failures, next {iso(p.next_attempt_ms)}" if p.failures else "",
                    "yes" if p.watching else "no",
                ]
                if node_view
                else []
            ),
        )
    out.print(table)


def cmd_sync_digest(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        d = s.admin.GetDigest(admin_pb2.GetDigestRequest(), metadata=s.md, timeout=SYNC_TIMEOUT_S)
    origins = [{"origin": o.origin, "versions": o.versions, "digest": o.digest} for o in d.origins]
    if a.json:
        print_json({"site": d.site_id, "versions": d.versions, "digest": d.digest, "origins": origins})
        return
    out.print(f"site {d.site_id}: {d.versions} versions, digest {d.digest}", highlight=False)
    table = Table()
    for col in ("origin", "versions", "digest"):
        table.add_column(col, overflow="fold")
    for o in d.origins:
        table.add_row(o.origin, str(o.versions), o.digest)
    out.print(table)


def add_parser(groups: Groups) -> None:
    sync = groups.add_parser("sync", help="synchronisation with the hub").add_subparsers(dest="cmd", required=True)
    sp = sync.add_parser("now", help="run one sync round with the hub now (node)")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_sync_now)
    sp = sync.add_parser("status", help="per peer: last success, cursors, pending versions, last error")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_sync_status)
    sp = sync.add_parser(
        "digest", help="a digest of every version this site holds, whole and per origin (compare sites with it)"
    )
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_sync_digest)
