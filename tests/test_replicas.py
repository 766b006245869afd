"""Two hub replicas (real `hub serve` processes) on one PostgreSQL database serve one
network: nodes spread over them, a write through one reaches a node watching the other
without any schedule, pushes through both at once while nodes pull lose and double
nothing, and a replica SIGKILLed in the middle of a push leaves its nodes to the other,
with the same digest at every site at the end."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from hub.site import init_hub, make_replica
from node.site import init_node
from sync.config import DataDir
from sync.errors import TechbridgeError
from sync.store import Store
from tests.backends import PG_SKIP_REASON, PG_URL, database_url
from tests.harness import Hub, Node, preload_listings, serve_process, start_existing_node, stop, wait_until
from transfer.records import KINDS

pytestmark = pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)


@dataclass
class Replicas:
    url: str
    a: Hub
    b: Hub
    procs: dict[str, subprocess.Popen[bytes]]


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    with database_url("postgresql", tmp_path) as url:
        cfg = init_hub(tmp_path / "hq-a", listen="127.0.0.1:0", db_url=url)
        make_replica(tmp_path / "hq-a", tmp_path / "hq-b", listen="127.0.0.1:0")
        procs: dict[str, subprocess.Popen[bytes]] = {}
        hubs = []
        for name in ("hq-a", "hq-b"):
            procs[name] = serve_process("hub", tmp_path / name)
            address = DataDir(tmp_path / name).address_file.read_text().strip()
            hubs.append(Hub(path=tmp_path / name, admin_token=cfg.admin_token, address=address))
        try:
            yield Replicas(url, hubs[0], hubs[1], procs)
        finally:
            for h in hubs:
                h.close_channel()
            for p in procs.values():
                stop(p)


def enrol(via: Hub, other: Hub, path: Path, centre: str, country: str, *, preload: int = 0, live: bool) -> Node:
    """A node enrolled through `via`, given both replicas' addresses (`via` first)."""
    token = via.invite(centre, country=country)
    cfg = init_node(path, hub=f"{via.address},{other.address}", token=token, listen="127.0.0.1:0")
    if preload:
        preload_listings(path, centre, preload, centre)
    return start_existing_node(path, cfg.admin_token, live=live)


def hub_log_count(url: str, origin: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM log_entries WHERE received_from = :o"), {"o": origin}
                ).scalar_one()
            )
    finally:
        engine.dispose()


def test_a_write_through_one_replica_reaches_a_node_watching_the_other(replicas: Replicas, tmp_path: Path) -> None:
    # No schedule at either node: only the watch streams can carry the offer across.
    ta = enrol(replicas.a, replicas.b, tmp_path / "tel-aviv", "tel-aviv", "IL", live=True)
    dj = enrol(replicas.b, replicas.a, tmp_path / "daejeon", "daejeon", "KR", live=True)
    try:
        assert wait_until(lambda: dj.node is not None and dj.node.watcher is not None and dj.node.watcher.connected)
        record = ta.add_record("Drip irrigation controller")  # pushed to replica A at once
        assert wait_until(lambda: any(v.id == record for v in dj.listings()), timeout=20)
        shown = dj.show(record)
        assert shown.provenance.verified  # daejeon checked tel-aviv's key: replica B had its registry
        # daejeon's own write goes through replica B and reaches tel-aviv on replica A.
        back = dj.add_record("Hydrogen fuel cell membrane")
        assert wait_until(lambda: any(v.id == back for v in ta.listings()), timeout=20)
    finally:
        ta.stop()
        dj.stop()


def test_pushes_through_both_replicas_and_a_replica_killed_mid_push(replicas: Replicas, tmp_path: Path) -> None:
    """Tel Aviv and Daejeon push 1,500 offers each at once, through replicas A and B, while
    Brussels (on A) and Toledo (on B) pull round after round. Replica A is SIGKILLed once
    it has stored part of Tel Aviv's push: Tel Aviv and Brussels turn to B. At the end every
    node holds every offer exactly once and every site's digest is the same."""
    each = 1500
    ta = enrol(replicas.a, replicas.b, tmp_path / "tel-aviv", "tel-aviv", "IL", preload=each, live=False)
    dj = enrol(replicas.b, replicas.a, tmp_path / "daejeon", "daejeon", "KR", preload=each, live=False)
    br = enrol(replicas.a, replicas.b, tmp_path / "brussels", "brussels", "BE", live=False)
    to = enrol(replicas.b, replicas.a, tmp_path / "toledo", "toledo", "ES", live=False)
    nodes = (ta, dj, br, to)
    pushing = threading.Event()
    pushing.set()
    errors: list[BaseException] = []
    pulled = {"brussels": 0, "toledo": 0}

    def push(node: Node) -> None:
        for _ in range(10):  # a round cut short by the kill is taken again
            try:
                node.sync()
                return
            except TechbridgeError:
                continue
            except BaseException as exc:
                errors.append(exc)
                return
        errors.append(AssertionError(f"{node.path.name} never finished its push"))

    def pull(node: Node, name: str) -> None:
        for _ in range(2000):
            try:
                pulled[name] += node.sync().pulled
            except TechbridgeError:
                pass
            except BaseException as exc:
                errors.append(exc)
                return
            if not pushing.is_set():
                return

    try:
        threads = [threading.Thread(target=push, args=(n,)) for n in (ta, dj)]
        threads += [threading.Thread(target=pull, args=(n, n.path.name)) for n in (br, to)]
        for t in threads:
            t.start()
        assert wait_until(lambda: hub_log_count(replicas.url, "tel-aviv") >= 300, timeout=120, step=0.02)
        killed = replicas.procs["hq-a"]
        killed.kill()
        killed.wait(timeout=10)
        at_kill = hub_log_count(replicas.url, "tel-aviv")
        assert at_kill < each  # the kill came in the middle of Tel Aviv's push
        for t in threads[:2]:
            t.join(timeout=300)
        pushing.clear()
        for t in threads[2:]:
            t.join(timeout=300)
        assert not errors, errors
        assert hub_log_count(replicas.url, "tel-aviv") == each
        assert hub_log_count(replicas.url, "daejeon") == each
        for node in (br, to):  # a last round after the pushes: everything the pullers missed
            pulled[node.path.name] += node.sync().pulled
        for node in (ta, dj):
            node.sync()
        assert pulled == {"brussels": 2 * each, "toledo": 2 * each}  # each version delivered once
        hub_store = Store.open(replicas.url, KINDS)
        try:
            expected = hub_store.digest()
        finally:
            hub_store.close()
        assert expected.versions == 2 * each
        for node in nodes:
            assert node.node is not None
            assert node.node.running.site.store.digest() == expected, node.path.name
        # Tel Aviv and Brussels talk to replica B now.
        assert ta.node is not None and ta.node.client.address == replicas.b.address
        assert br.node is not None and br.node.client.address == replicas.b.address
    finally:
        pushing.clear()
        for n in nodes:
            n.stop()
