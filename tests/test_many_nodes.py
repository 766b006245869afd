"""Thirty centres lose the hub at once and come back: every watch stream
reconnects within the backoff's bound once the hub is back, the hub serves
them all at once (no refusals, no lost rounds), and every change made while it
was away reaches every centre. (That the backoff's jitter spreads thirty
reconnections is held by tests/test_live.py::test_jitter_spreads_reconnects;
here the stops themselves stagger them too much to tell.)"""

from __future__ import annotations

import time
from pathlib import Path

from hub.site import start_hub
from sync import backoff
from tests.harness import Hub, Node, make_node, wait_until

N = 30


def test_thirty_nodes_reconnect_spread_out_and_converge(hub: Hub, tmp_path: Path) -> None:
    nodes: list[Node] = []
    try:
        for i in range(N):
            nodes.append(make_node(hub, tmp_path / f"centre-{i:02d}", f"centre-{i:02d}", live=True))
        assert wait_until(lambda: all(n.node and n.node.watcher and n.node.watcher.connected for n in nodes), 30)
        assert hub.running is not None
        port = hub.running.port
        hub.running.stop(grace=0.2)
        hub.running = None
        hub.close_channel()
        assert wait_until(lambda: not any(n.node and n.node.watcher and n.node.watcher.connected for n in nodes), 20)
        for i, n in enumerate(nodes):  # work goes on locally while the hub is away
            n.add_record(f"Offline work {i}")
        time.sleep(2.5)  # every watcher has failed at least once and is backing off

        hub.running = start_hub(hub.path, listen=f"127.0.0.1:{port}")
        restarted = time.monotonic()
        back: dict[str, float] = {}

        def reconnected() -> bool:
            for n in nodes:
                assert n.node is not None and n.node.watcher is not None
                if n.node.watcher.connected and n.path.name not in back:
                    back[n.path.name] = time.monotonic() - restarted
            return len(back) == N

        assert wait_until(reconnected, 60, step=0.01)
        # The watchers had failed once or twice: their next try comes within 2 * BASE * 2 seconds.
        assert max(back.values()) < 4 * backoff.BASE_MS / 1000 + 2, sorted(back.values())
        assert wait_until(lambda: len(hub.listings()) == N, 60)
        # Each centre hears of everyone's offline work without being asked (watch + immediate pull).
        assert wait_until(lambda: all(len(n.listings()) == N for n in nodes), 90), [len(n.listings()) for n in nodes]
    finally:
        for n in nodes:
            n.stop()
