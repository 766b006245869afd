"""A node that reads far slower than the hub produces does not make the hub hold
what it has not yet sent: the hub, a real process holding about 90 MB of
offers, keeps its memory within a small part of that while one pull stream
sits unread until its deadline, then serves the next reader in full.

(That the node resumes from its cursor after the deadline is held by
test_sync_faults.test_a_slow_consumer_hits_its_deadline_and_resumes_from_its_cursor.)"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from sync import auth
from sync.clock import system_now_ms
from sync.config import DataDir
from sync.keys import SigningKey
from sync.server import channel
from techbridge.v1 import sync_pb2, sync_pb2_grpc
from tests.harness import hub_process, make_node, preload_listings, serve_process, stop

OFFERS = 20_000
DESCRIPTION = "A membrane that turns brackish water into drinking water with little energy. " * 50  # ~3.9 KB


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_an_unread_pull_stream_does_not_grow_the_hubs_memory(tmp_path: Path) -> None:
    hq = tmp_path / "hq"
    hub, proc = hub_process(hq)
    address = hub.address
    make_node(hub, tmp_path / "daejeon", "daejeon", country="KR").stop()
    stop(proc)
    preload_listings(hq, "hq", OFFERS, "HQ", description=DESCRIPTION)
    proc = serve_process("hub", hq)
    nd = DataDir(tmp_path / "daejeon")
    key, tls = SigningKey.load(nd.signing_key), nd.tls.load()
    try:
        with channel(address, tls, expect="hq") as ch:
            stub = sync_pb2_grpc.SyncServiceStub(ch)

            def pull(timeout: float, after: int = 0) -> Any:  # a grpc call: an iterator that can be cancelled
                md = auth.site_metadata(key, "daejeon", "Pull", system_now_ms())
                return stub.Pull(sync_pb2.PullRequest(after_seq=after, batch_size=500), metadata=md, timeout=timeout)

            # Warm the hub up with a short read of the log's last entries (its caches, its
            # thread pool), then measure.
            assert sum(len(m.entries) for m in pull(30, after=OFFERS - 5)) == 5
            time.sleep(0.5)
            before = rss_bytes(proc.pid)

            slow = pull(6)
            first = next(slow)  # one batch read, then nothing until the deadline
            assert len(first.entries) == 500 and first.head_seq >= OFFERS
            peak = before
            for _ in range(50):  # an unbounded producer would have made every batch by now
                time.sleep(0.1)
                peak = max(peak, rss_bytes(proc.pid))
            with pytest.raises(grpc.RpcError) as exc:
                for _ in slow:
                    time.sleep(0.2)
            assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            grown = peak - before

            # The hub still serves: a reader that keeps up gets everything.
            taken = catalogue = 0
            for m in pull(120):
                taken += len(m.entries)
                catalogue += m.ByteSize()
            assert taken == OFFERS
            print(f"catalogue {catalogue / 1e6:.0f} MB sent; hub RSS {before / 1e6:.0f} MB, grew {grown / 1e6:.1f} MB")
            # A few batches in flight and the store's caches (about 20 MB here), not the
            # catalogue: a hub that made every batch up front grows by more than all of it.
            assert grown < catalogue * 0.4, (grown, catalogue)
    finally:
        stop(proc)
