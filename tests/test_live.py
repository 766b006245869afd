"""At once when the link is up; backoff while it is down."""

from __future__ import annotations

import time
from pathlib import Path

from sync import backoff
from sync.errors import Unavailable
from tests.harness import Hub, make_hub, make_node, start_existing_node, wait_until


def test_a_listing_reaches_another_centre_without_waiting_for_the_schedule(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv", live=True)
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR", live=True)
    try:
        assert dj.node is not None and dj.node.scheduler is None  # no schedule: only the watch stream
        assert wait_until(lambda: bool(dj.node and dj.node.watcher and dj.node.watcher.connected), timeout=10)
        start = time.monotonic()
        rid = ta.add_record("Published in Tel Aviv")
        assert wait_until(lambda: any(v.id == rid for v in dj.listings()), timeout=15, step=0.02)
        print(f"Tel Aviv -> Daejeon in {time.monotonic() - start:.2f}s")
        assert dj.show(rid).provenance.verified
    finally:
        ta.stop()
        dj.stop()


def test_backoff_grows_while_the_hub_is_away_survives_a_restart_and_clears_when_it_answers(tmp_path: Path) -> None:
    hub = make_hub(tmp_path / "hq")
    node = make_node(hub, tmp_path / "toledo", "toledo", country="ES")
    address = hub.address
    hub.stop()
    store = node.node.running.site.store if node.node else None
    assert store is not None
    waits = []
    for _ in range(4):
        try:
            node.sync()
        except Unavailable:
            pass
        st = store.peer_state("hq")
        waits.append(st.next_attempt_ms - st.last_attempt_ms)
    assert st.failures == 4
    assert waits[-1] > waits[0] and all(w <= backoff.CAP_MS for w in waits)
    assert node.node is not None and node.node.client.in_backoff()
    token = node.admin_token
    node.stop()
    node = start_existing_node(tmp_path / "toledo", token)  # the backoff is kept across a restart
    assert node.node is not None and node.node.client.in_backoff()
    # The hub comes back on the same address; the watch stream notices and clears the backoff.
    from hub.site import start_hub

    running = start_hub(tmp_path / "hq", listen=address)
    try:
        node.stop()
        node = start_existing_node(tmp_path / "toledo", token, live=True)
        site = node.node.running.site if node.node else None
        assert site is not None
        assert wait_until(lambda: site.store.peer_state("hq").failures == 0, timeout=20)
        assert wait_until(lambda: site.store.peer_state("hq").last_success_ms > 0, timeout=20)
    finally:
        node.stop()
        running.stop()


def test_jitter_spreads_reconnects() -> None:
    import random

    rng = random.Random(7)
    delays = {backoff.delay_ms(5, rng) for _ in range(30)}
    assert len(delays) > 20 and min(delays) >= backoff.BASE_MS * 16 // 2 and max(delays) < backoff.BASE_MS * 16


def test_one_node_cannot_hold_many_hub_threads_with_watch_streams(hub: Hub, tmp_path: Path) -> None:
    import grpc

    from sync import auth
    from sync.config import DataDir
    from sync.keys import SigningKey
    from sync.server import channel
    from techbridge.v1 import sync_pb2, sync_pb2_grpc

    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = SigningKey.load(DataDir(node.path).signing_key)
    streams = []
    with channel(hub.address, node.tls) as ch:
        stub = sync_pb2_grpc.SyncServiceStub(ch)

        def watch() -> object:
            md = auth.site_metadata(key, "tel-aviv", "Watch", time.time_ns() // 1_000_000)
            s = stub.Watch(sync_pb2.WatchRequest(), metadata=md, timeout=30)
            next(iter(s))  # the hub answers at once
            return s

        streams = [watch(), watch()]
        try:
            watch()
            raise AssertionError("a third watch stream was allowed")
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for s in streams:
            s.cancel()  # type: ignore[attr-defined]
        # A caller that leaves frees its place at once (no waiting for the heartbeat).
        assert wait_until(lambda: _try(watch), timeout=5)
    node.stop()


def _try(fn: object) -> bool:
    import grpc

    try:
        s = fn()  # type: ignore[operator]
        s.cancel()
        return True
    except grpc.RpcError:
        return False
