"""A node killed with SIGKILL in the middle of a sync resumes from its cursor:
nothing lost, nothing doubled, and at the instant of the kill its cursor
matched exactly what it held."""

from __future__ import annotations

import signal
import sqlite3
import threading
from pathlib import Path

import grpc

from node.site import init_node
from sync import auth
from sync.config import DataDir
from sync.server import channel
from techbridge.v1 import admin_pb2, admin_pb2_grpc
from tests.harness import Hub, make_node, serve_process, wait_until

LISTINGS = 600


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{path / 'store.db'}?mode=ro", uri=True, timeout=10)


def _cursor_and_held(path: Path) -> tuple[int, set[str], int]:
    with _db(path) as conn:
        row = conn.execute("SELECT pull_cursor FROM peer_state WHERE peer = 'hq'").fetchone()
        held = {r[0] for r in conn.execute("SELECT version_id FROM versions")}
        log_rows = conn.execute("SELECT count(*) FROM log_entries").fetchone()[0]
    return (row[0] if row else 0), held, log_rows


def _sync_now_in_background(path: Path) -> threading.Thread:
    data = DataDir(path)
    cfg = data.load()
    address = data.server_address(cfg)

    def run() -> None:
        with channel(address, data.tls.load(), expect=cfg.site_id) as ch:
            try:
                for _ in admin_pb2_grpc.NodeAdminServiceStub(ch).SyncNow(
                    admin_pb2.SyncNowRequest(), metadata=auth.admin_metadata(cfg.admin_token), timeout=120
                ):
                    pass
            except grpc.RpcError:
                pass  # the server is killed under us; that is the point

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_sigkill_mid_pull_resumes_without_loss_or_duplicates(hub: Hub, tmp_path: Path) -> None:
    brussels = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    for i in range(LISTINGS):
        brussels.add_record(f"Brussels technology {i}")
    brussels.sync()
    assert hub.running is not None
    hub_versions = hub.running.site.store.version_ids()
    assert len(hub_versions) == LISTINGS

    path = tmp_path / "daejeon"
    init_node(path, hub=hub.address, token=hub.invite("daejeon", country="KR"))
    data = DataDir(path)
    data.save(data.load().with_updates(pull_batch=3))  # many small transactions to land inside

    killed_at: tuple[int, set[str], int] | None = None
    for _attempt in range(5):
        proc = serve_process("node", path, "--sync-every", "0")
        _sync_now_in_background(path)
        wait_until(lambda: _cursor_and_held(path)[0] > 0, timeout=30, step=0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        state = _cursor_and_held(path)
        if 0 < state[0] < LISTINGS:
            killed_at = state
            break
    assert killed_at is not None, "never caught the node in the middle of a pull"

    cursor, held, log_rows = killed_at
    # The cursor matches what is held: exactly the hub's entries up to it.
    hub_rows, _, _ = hub.running.site.store.log_after(0, cursor)
    assert held == {r.version_id for r in hub_rows}
    assert log_rows == len(held)

    proc = serve_process("node", path, "--sync-every", "0")
    try:
        t = _sync_now_in_background(path)
        t.join(timeout=120)
        cursor, held, log_rows = _cursor_and_held(path)
        assert held == hub_versions
        assert log_rows == LISTINGS  # nothing doubled
        assert cursor == LISTINGS
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
    brussels.stop()
