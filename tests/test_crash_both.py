"""SIGKILL the hub and a node, both real processes, at random instants of a
20,000-listing sync (the node pushing its catalogue while it pulls HQ's), many
times, restarting the one killed each time. Neither is told to sync: the node's
schedule and watch stream do it, as in production. After every kill the victim
holds each version once; at the end both sites print the same digest of what
they hold (`techbridge sync digest`), with nothing missing.

`TECHBRIDGE_SOAK=1` runs the long variant: 100,000 listings, 40 kills."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.harness import cli, hub_process, make_node, preload_listings, serve_process, stop, wait_until

SOAK = os.environ.get("TECHBRIDGE_SOAK") == "1"
AT_NODE = 100_000 if SOAK else 20_000
AT_HQ = 10_000 if SOAK else 2_000
KILLS = 40 if SOAK else 10
BOUND_S = 3600 if SOAK else 150


def held(path: Path) -> tuple[int, int]:
    """(versions, log entries) in a site's store, in one read while the other site may write."""
    conn = sqlite3.connect(f"file:{path / 'store.db'}?mode=ro", uri=True, timeout=10)
    try:
        versions, log_rows = conn.execute(
            "SELECT (SELECT count(*) FROM versions), (SELECT count(*) FROM log_entries)"
        ).fetchone()
    finally:
        conn.close()
    return int(versions), int(log_rows)


def digest(path: Path) -> dict[str, object]:
    r = cli("sync", "digest", "--data", str(path), "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    out: dict[str, object] = json.loads(r.stdout)
    return out


@pytest.mark.timeout(BOUND_S + 900)
def test_hub_and_node_killed_at_random_during_a_large_sync_end_identical(tmp_path: Path) -> None:
    rng = random.Random(20261202)
    hq, node_path = tmp_path / "hq", tmp_path / "toledo"
    hub, hub_proc = hub_process(hq)  # every restart comes back on the same ports
    make_node(hub, node_path, "toledo", country="ES").stop()

    stop(hub_proc)
    preload_listings(hq, "hq", AT_HQ, "HQ")
    preload_listings(node_path, "toledo", AT_NODE, "Toledo")
    total = AT_HQ + AT_NODE

    def start(role: str) -> subprocess.Popen[bytes]:
        if role == "hub":
            return serve_process("hub", hq)
        return serve_process("node", node_path, "--sync-every", "1s")

    procs = {"hub": start("hub"), "node": start("node")}
    kills: list[tuple[str, int, int]] = []  # (victim, hub versions, node versions) at each kill
    deadline = time.monotonic() + BOUND_S
    try:
        while len(kills) < KILLS and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 3.0))
            victim = rng.choice(("hub", "node"))
            procs[victim].send_signal(signal.SIGKILL)
            procs[victim].wait(timeout=10)
            at_hub, hub_log = held(hq)
            at_node, node_log = held(node_path)
            # Every version held has its place in the log, at any instant (none twice: the schema).
            assert hub_log == at_hub and node_log == at_node
            kills.append((victim, at_hub, at_node))
            procs[victim] = start(victim)
        print("kills (victim, hub held, node held):", kills)
        assert {v for v, _, _ in kills} == {"hub", "node"}
        # At least one kill landed in the middle of the sync.
        assert any(AT_HQ < h < total or AT_NODE < n < total for _, h, n in kills), kills

        # Nobody runs `sync now`: the schedule and the watch stream finish the job.
        def same() -> bool:
            a, b = digest(hq), digest(node_path)
            return a["digest"] == b["digest"] and a["versions"] == total

        assert wait_until(same, timeout=240, step=2), (digest(hq), digest(node_path))
        assert held(hq) == (total, total) and held(node_path) == (total, total)
        origins = {o["origin"]: o["versions"] for o in digest(hq)["origins"]}  # type: ignore[attr-defined]
        assert origins == {"hq": AT_HQ, "toledo": AT_NODE}
    finally:
        for p in procs.values():
            stop(p)
