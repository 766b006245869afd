"""techbridge: the one command-line tool.

Each site is a data folder. `init` and `serve` work on the folder directly;
every other command talks to the site's running server over gRPC with the
admin credential kept in the folder's config. Commands that print data take
--json. Errors print one line per problem and exit non-zero.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from cli import domain
from cli.common import CliError, parse_duration, parse_sets, parse_time, values_message
from cli.connect import CALL_TIMEOUT_S, SYNC_TIMEOUT_S, Admin, kind_at, rpc_error_lines
from cli.records import add_record_from_file, list_records, step_record
from cli.render import conflict_json, err, iso, out, print_json, print_listing, warn_insecure
from sync.errors import InvalidInput, TechbridgeError
from sync.records import LISTING
from techbridge.v1 import admin_pb2, admin_pb2_grpc

# ---- commands: hub ----------------------------------------------------------------


def cmd_hub_init(a: argparse.Namespace) -> None:
    from hub.site import init_hub

    config = init_hub(
        Path(a.data), site_id=a.id, listen=a.listen, enrol_listen=a.enrol_listen, db_url=a.db, names=tuple(a.name)
    )
    out.print(
        f"hub [bold]{config.site_id}[/] initialised in {a.data}; it will listen on {config.listen} (mutual TLS) "
        f"and take enrolments on {config.enrol_listen} (TLS)"
    )
    out.print(f"start it with: techbridge hub serve --data {a.data}")


def cmd_hub_serve(a: argparse.Namespace) -> None:
    from hub.site import start_hub
    from sync.runtime import wait_for_signal

    if a.insecure:
        warn_insecure("hub")
    running = start_hub(Path(a.data), listen=a.listen, insecure=a.insecure)
    how = "WITHOUT TLS" if a.insecure else f"mutual TLS; enrolment and firms on port {running.enrol_port}"
    out.print(f"hub {running.site.site_id} serving on {running.address} ({how}; Ctrl-C to stop)", highlight=False)
    sys.stdout.flush()
    wait_for_signal(running)


def cmd_hub_invite(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = admin_pb2_grpc.HubAdminServiceStub(s.channel).Invite(
            admin_pb2.InviteRequest(centre_id=a.centre, name=a.name, country=a.country, ttl_seconds=int(a.ttl)),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    err.print(f"invited {a.centre} ({a.name}, {a.country}); the token works once, until {iso(resp.expires_at_ms)}:")
    sys.stdout.write(resp.token + "\n")


# ---- commands: node -----------------------------------------------------------------


def cmd_node_init(a: argparse.Namespace) -> None:
    from node.site import init_node

    try:
        if a.insecure:
            warn_insecure("node")
        config = init_node(Path(a.data), hub=a.hub, token=a.token, listen=a.listen, db_url=a.db, insecure=a.insecure)
    except grpc.RpcError as e:
        raise CliError(*(f"{line} (enrolling at {a.hub})" for line in rpc_error_lines(e))) from e
    out.print(f"node [bold]{config.site_id}[/] enrolled at {a.hub}; data in {a.data}")
    out.print(f"start it with: techbridge node serve --data {a.data}")


def cmd_node_serve(a: argparse.Namespace) -> None:
    from node.site import start_node
    from sync.runtime import wait_for_signal

    if a.insecure:
        warn_insecure("node")
    node = start_node(Path(a.data), sync_every_s=a.sync_every, listen=a.listen, insecure=a.insecure, live=not a.no_live)
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
    sys.stdout.flush()
    try:
        wait_for_signal(node.running)
    finally:
        if node.scheduler is not None:
            node.scheduler.shutdown(wait=False)


# ---- commands: listings ---------------------------------------------------------------


def cmd_listing_add(a: argparse.Namespace) -> None:
    add_record_from_file(a, LISTING)


def cmd_listing_list(a: argparse.Namespace) -> None:
    list_records(a, "listing")


def cmd_listing_show(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.id), metadata=s.md, timeout=CALL_TIMEOUT_S)
    print_listing(resp.record, a.json)


def cmd_listing_edit(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        kind = kind_at(s, a.id)
        fields = parse_sets(a.set, kind)
        resp = s.admin.EditRecord(
            admin_pb2.EditRecordRequest(id=a.id, fields=sorted(fields), values=values_message(kind, fields)),
            metadata=s.md,
            timeout=CALL_TIMEOUT_S,
        )
    print_listing(resp.record, a.json)


def cmd_listing_step(a: argparse.Namespace) -> None:
    step_record(a, a.step, getattr(a, "set", None) or [])


def cmd_conflicts_list(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.ListConflicts(
            admin_pb2.ListConflictsRequest(record_id=a.listing or ""), metadata=s.md, timeout=CALL_TIMEOUT_S
        )
    docs = [conflict_json(c) for c in resp.conflicts]
    if a.json:
        print_json(docs)
        return
    table = Table(title=f"open conflicts at {s.config.site_id} ({len(docs)})")
    for col in ("conflict", "kept (winner)", "competing", "rule"):
        table.add_column(col, overflow="fold")
    for d in docs:
        w = d["winner"]
        table.add_row(
            d["id"],
            f"{json.dumps(w['value'], ensure_ascii=False)}\nby {w['author']}, version {w['version_id'][:12]}",
            "\n".join(
                f"{json.dumps(o['value'], ensure_ascii=False)}\nby {o['author']}, version {o['version_id'][:12]}"
                for o in d["others"]
            ),
            d["rule"],
        )
    out.print(table)


def cmd_conflicts_resolve(a: argparse.Namespace) -> None:
    req = admin_pb2.ResolveConflictRequest(conflict_id=a.id)
    if a.take:
        req.take_version = a.take
    else:
        req.value_json = a.value
    with Admin(a.data) as s:
        resp = s.admin.ResolveConflict(req, metadata=s.md, timeout=CALL_TIMEOUT_S)
    print_listing(resp.record, a.json)


# ---- commands: keys and quarantine ------------------------------------------------------


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


def cmd_quarantine_list(a: argparse.Namespace) -> None:
    with Admin(a.data) as s:
        resp = s.admin.ListQuarantine(admin_pb2.ListQuarantineRequest(), metadata=s.md, timeout=CALL_TIMEOUT_S)
    docs: list[dict[str, Any]] = [
        {
            "version_id": q.version_id,
            "listing": q.record_id or None,
            "key_id": q.key_id or None,
            "kind": q.kind,
            "from": q.peer or None,
            "reason": q.reason,
        }
        for q in resp.entries
    ]
    if a.json:
        print_json(docs)
        return
    table = Table(title=f"quarantine at {s.config.site_id} ({len(docs)})")
    for col in ("version", "listing", "kind", "reason"):
        table.add_column(col, overflow="fold")
    for d in docs:
        table.add_row(d["version_id"][:16], d["listing"] or "", d["kind"], d["reason"])
    out.print(table)


# ---- commands: sync ----------------------------------------------------------------------


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


# ---- parser ---------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="techbridge", description="techbridge: a federated technology-transfer network")
    p.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default) or ERROR")
    groups = p.add_subparsers(dest="group", required=True, metavar="COMMAND")

    def data_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", required=True, metavar="DIR", help="the site's data folder")

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
    sp.set_defaults(func=cmd_hub_init)
    sp = hub.add_parser("serve", help="serve the hub until Ctrl-C / SIGTERM")
    data_arg(sp)
    sp.add_argument("--listen", default=None, help="override the configured HOST:PORT")
    sp.add_argument("--insecure", action="store_true", help="serve WITHOUT TLS (local development only)")
    sp.set_defaults(func=cmd_hub_serve)
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

    keys = groups.add_parser("keys", help="this site's signing key").add_subparsers(dest="cmd", required=True)
    sp = keys.add_parser("rotate", help="replace this site's signing key without stopping it")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_keys_rotate)

    quarantine = groups.add_parser("quarantine", help="versions set aside because of revoked keys").add_subparsers(
        dest="cmd", required=True
    )
    sp = quarantine.add_parser("list", help="versions quarantined here or refused on receipt")
    data_arg(sp)
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_quarantine_list)

    node = groups.add_parser("node", help="run a centre node").add_subparsers(dest="cmd", required=True)
    sp = node.add_parser("init", help="create a node data folder and enrol it at the hub")
    data_arg(sp)
    sp.add_argument("--hub", required=True, metavar="HOST:PORT", help="the hub's address")
    sp.add_argument("--token", required=True, help="the join token from `techbridge hub invite`")
    sp.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT for the admin server (default: any free port)")
    sp.add_argument("--db", default=None, help="SQLAlchemy URL (default: SQLite in the data folder)")
    sp.add_argument("--insecure", action="store_true", help="enrol with a hub that serves WITHOUT TLS (development)")
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
    sp.set_defaults(func=cmd_node_serve)

    listing = groups.add_parser("listing", help="technology listings").add_subparsers(dest="cmd", required=True)
    sp = listing.add_parser("add", help="sign and store a listing from a JSON file; prints its id last")
    data_arg(sp)
    sp.add_argument(
        "--file",
        required=True,
        help="listing JSON: title (required) and any offer field (see the README: stage, trl, ipr_status, "
        "keywords, partnership_types, ...), status (draft or submitted), audience (network, hq or centre ids), "
        "private_note (kept only at this centre)",
    )
    sp.add_argument("--json", action="store_true", help="print the stored listing as JSON")
    sp.set_defaults(func=cmd_listing_add)
    sp = listing.add_parser("list", help="list the listings this site holds")
    data_arg(sp)
    sp.add_argument("--centre", default=None, help="only listings owned by this centre")
    sp.add_argument("--deleted", action="store_true", help="include deleted listings")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_list)
    sp = listing.add_parser("show", help="one listing with its provenance")
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_show)
    sp = listing.add_parser(
        "edit",
        help="set fields: content (any offer field but valid_until_ms) at the owning centre; "
        "curation (tags, featured) at HQ",
    )
    data_arg(sp)
    sp.add_argument("id")
    sp.add_argument(
        "--set",
        action="append",
        required=True,
        metavar="FIELD=VALUE",
        help="repeatable; lists are comma-separated (keywords=water,solar), featured=true|false",
    )
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_listing_edit)
    steps = {
        "submit": "draft -> submitted (owning centre)",
        "validate": "submitted -> validated (HQ only)",
        "publish": "validated -> published",
        "withdraw": "any live status -> withdrawn",
        "delete": "write a tombstone; edits that did not see it do not bring the listing back",
        "undelete": "bring a deleted listing back (made on top of the tombstone)",
    }
    for step, text in steps.items():
        sp = listing.add_parser(step, help=text)
        data_arg(sp)
        sp.add_argument("id")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_listing_step, step=step)
    domain.add_listing_parsers(listing)
    domain.add_parsers(groups)

    conflicts = groups.add_parser("conflicts", help="concurrent edits kept for staff to settle").add_subparsers(
        dest="cmd", required=True
    )
    sp = conflicts.add_parser("list", help="open conflicts at this site")
    data_arg(sp)
    sp.add_argument("--listing", default=None, help="only this listing's conflicts")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_conflicts_list)
    sp = conflicts.add_parser("resolve", help="settle a conflict with a new version on top of the competing ones")
    data_arg(sp)
    sp.add_argument("id", help="the conflict id, <listing id>/<field>, as conflicts list shows it")
    choice = sp.add_mutually_exclusive_group(required=True)
    choice.add_argument("--take", metavar="VERSION", help="keep the value this version wrote (id or unique prefix)")
    choice.add_argument("--value", help='write this value instead (JSON: "text", 7, true, ["a","b"])')
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_conflicts_resolve)

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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    func: Callable[[argparse.Namespace], None] = args.func
    try:
        func(args)
    except CliError as exc:
        for line in exc.lines:
            err.print(line, highlight=False, markup=False)
        return exc.code
    except InvalidInput as exc:
        for v in exc.violations:
            err.print(f"error: {v.field}: {v.description}", highlight=False, markup=False)
        return 1
    except TechbridgeError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        return 1
    except grpc.RpcError as e:
        for line in rpc_error_lines(e):
            err.print(line, highlight=False, markup=False)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
