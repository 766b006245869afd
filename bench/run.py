"""Benchmarks in one process: how fast a node's listings reach the hub and a new
node, beside the limits of the stack measured in the same run.

    .venv/bin/python bench/run.py [--n 2000] [--full]   (make bench: --n 5000; make bench-quick: --n 500)

* the limits: Ed25519 verify on one core (OpenSSL, and libsodium as the sync uses
  it; median of 3), and the raw gRPC streaming rate of the same envelopes in
  messages of 500 over the project's server, channel and mutual TLS, without
  verifying or storing (bench/benchlib.py; median of 3);
* the store's apply and the merge (one version per record; 20 concurrent ones), and the
  store's own SQL for an apply replayed through the bare driver (its floor) beside
  decoding the same bodies;
* the receiving site's processor time an offer (checking, then storing, one batch after
  the other on one thread; the garbage collector's share beside it), against one-core
  verify; beside it the floor: the least a sender and a receiver of this design do for
  an offer in Python on SQLite, without the sync's code (`bench_floor`);
* local adds, the initial push of N to an empty hub and the initial pull of N by
  a new node (median of 3 runs, each with a new hub and nodes);
* the initial pull and a round with nothing new on stores of 1k and 10k offers
  (100k with --full), and the initial push of 10k offers (100k with --full; 2k
  below --n 2000) from a node whose store was filled directly, to a hub on SQLite and,
  when a server answers on 127.0.0.1:5432, to one on PostgreSQL.

Prints a table and writes the figures to bench/results/latest.json with the
machine and package versions. Figures only: nothing here passes or fails on
time. The hub and nodes run in this process on 127.0.0.1 with real gRPC, real
SQLite files (or a real PostgreSQL database) and real signatures.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import hashlib
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402
import grpc  # noqa: E402
from benchlib import put_runs  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from hub.site import init_hub, start_hub  # noqa: E402
from node.site import init_node, start_node  # noqa: E402
from sync import auth  # noqa: E402
from sync.clock import Stamp  # noqa: E402
from sync.config import DataDir  # noqa: E402
from sync.envelope import envelope_to_pb, make_version, read_version  # noqa: E402
from sync.keys import SigningKey  # noqa: E402
from sync.kinds import Change, Content, create_change  # noqa: E402
from sync.protocol.receive import receive  # noqa: E402
from sync.runtime import RunningServer, settle_heap  # noqa: E402
from sync.server import channel  # noqa: E402
from sync.signing import VERSION_DOMAIN, verify  # noqa: E402
from sync.store import Store  # noqa: E402
from techbridge.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402
from transfer.records import KINDS, LISTING, listing_content  # noqa: E402


def listing(i: int) -> Content:
    text = f"Listing {i}: " + ("membrane desalination solar storage battery sensor " * 40)[:1900]
    return listing_content(title=f"Benchmark technology {i}", summary=text[:480], description=text, trl=5)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_crypto(n: int, base: Path) -> dict[str, float]:
    """The limits: Ed25519 verify on one core (OpenSSL; libsodium, median of 3) and the raw
    gRPC streaming rate of the same envelopes (benchlib.grpc_stream_rates: the project's
    server, channel options and mutual TLS, messages of 500, median of 3); then the store's
    apply of the same versions."""
    key = SigningKey.generate()
    versions = [
        make_version(
            key, site="b", record_id=f"r{i}", hlc=Stamp(i + 1, 0), change=create_change(listing(i)), kind=LISTING
        )
        for i in range(n)
    ]
    pub = key.public_bytes
    openssl = Ed25519PublicKey.from_public_bytes(pub)
    t = time.perf_counter()
    for v in versions:
        openssl.verify(v.signatures[0].signature, VERSION_DOMAIN + v.body)
    out = {"verify_cryptography_per_s": rate(n, time.perf_counter() - t), "body_bytes": len(versions[0].body)}
    for v in versions:  # a first pass that is not counted (what the sync path uses: libsodium)
        assert verify(pub, VERSION_DOMAIN, v.body, v.signatures[0].signature)
    put_runs(out, "verify_libsodium_per_s", benchlib.verify_rate(versions, pub))
    with tempfile.TemporaryDirectory() as d:
        store = Store.open(f"sqlite:///{d}/s.db", KINDS)
        t = time.perf_counter()
        for i in range(0, n, 500):
            store.apply_batch("b", versions[i : i + 500], [], through_seq=i + 500, now_ms=1)
        out["store_apply_sqlite_per_s"] = rate(n, time.perf_counter() - t)
        store.close()
    init_hub(base / "tls", listen="127.0.0.1:0")  # a CA and a certificate, as a hub has
    streams = benchlib.grpc_stream_rates(versions, DataDir(base / "tls").tls.load(), "hq", total=max(n, 10_000))
    for name, values in streams.items():
        put_runs(out, name, values)
    return out


def bench_merge(n: int) -> dict[str, float]:
    """Versions/s applied to a store for records with one version each, and for records
    with many concurrent versions (sites editing the same field at once)."""
    key = SigningKey.generate()
    width = 20
    single = [
        make_version(
            key, site="b", record_id=f"s{i}", hlc=Stamp(i + 1, 0), change=create_change(listing(i)), kind=LISTING
        )
        for i in range(n)
    ]
    many = []
    for r in range(max(1, n // width)):
        root = make_version(
            key, site="b", record_id=f"m{r}", hlc=Stamp(r + 1, 0), change=create_change(listing(r)), kind=LISTING
        )
        many.append(root)
        for j in range(width - 1):  # concurrent edits of one field, each on top of the create
            many.append(
                make_version(
                    key,
                    site="b",
                    record_id=f"m{r}",
                    hlc=Stamp(r + 1, j + 1),
                    change=Change((("summary", f"edit {j}"),)),
                    parents=(root.version_id,),
                    kind=LISTING,
                )
            )
    out: dict[str, float] = {}
    for name, versions in (("merge_one_version_per_s", single), (f"merge_{width}_concurrent_per_s", many)):
        with tempfile.TemporaryDirectory() as d:
            store = Store.open(f"sqlite:///{d}/s.db", KINDS)
            t = time.perf_counter()
            for i in range(0, len(versions), 500):
                store.apply_batch("b", versions[i : i + 500], [], through_seq=i + 500, now_ms=1)
            out[name] = rate(len(versions), time.perf_counter() - t)
            store.close()
    return out


def bench_index(n: int) -> dict[str, float]:
    """What the search index costs an apply: the same offers (benchlib's, about 3 KB of
    text in several languages each) applied to a store with the full-text index and to
    one whose kinds index nothing, median of 3 each; the difference per offer is the
    index's maintenance (the analyser in Python, the engine's insert)."""
    key = SigningKey.generate()
    versions = benchlib.signed_offers(key, "b", n)
    no_index = dataclasses.replace(KINDS, search_doc=lambda _content: None)
    out: dict[str, float] = {}
    for name, kinds in (("store_apply_indexed_per_s", KINDS), ("store_apply_unindexed_per_s", no_index)):
        runs = []
        for _ in range(3):
            with tempfile.TemporaryDirectory() as d:
                store = Store.open(f"sqlite:///{d}/s.db", kinds)
                t = time.perf_counter()
                for i in range(0, n, 500):
                    store.apply_batch("b", versions[i : i + 500], [], through_seq=i + 500, now_ms=1)
                runs.append(rate(n, time.perf_counter() - t))
                store.close()
        put_runs(out, name, runs)
    out["search_index_us_per_offer"] = 1e6 / out["store_apply_indexed_per_s"] - 1e6 / out["store_apply_unindexed_per_s"]
    return out


def bench_store_sql(n: int) -> dict[str, float]:
    """What the database itself does for an apply, apart from the Python around it: `n`
    offers applied to a SQLite store (batches of 500, after 500 already held) with every
    statement, its parameters and each commit recorded; then the same statements replayed
    through the bare driver, in the same transactions, on a copy of the store taken before
    the apply. The replay is the floor the store's writer cannot go under with these tables
    (the signed body, the merged state, the log, the search index), however little Python
    ran around it. Median of 3 each; per-statement shares in microseconds an offer. Beside
    it, reading the same bodies (`read_version`: decode and the kind's shape, no verify)."""
    import shutil
    import sqlite3

    from sqlalchemy import event

    key = SigningKey.generate()
    versions = benchlib.signed_offers(key, "b", n + 500)
    applied, replayed = [], []
    shares: dict[str, list[float]] = {}
    for _ in range(3):
        with tempfile.TemporaryDirectory() as d:
            store = Store.open(f"sqlite:///{d}/s.db", KINDS)
            benchlib.write_versions(store, versions[:500], local=False, batch=500)
            store.close()
            shutil.copy(f"{d}/s.db", f"{d}/copy.db")
            store = Store.open(f"sqlite:///{d}/s.db", KINDS)
            said: list[tuple[str, Any, bool]] = []

            def statement(
                _c: Any, _cur: Any, sql: str, params: Any, _ctx: Any, many: bool, said: list[Any] = said
            ) -> None:
                said.append((sql, params, many))

            def committed(_c: Any, said: list[Any] = said) -> None:
                said.append(("COMMIT", None, False))

            event.listen(store.engine, "before_cursor_execute", statement)
            event.listen(store.engine, "commit", committed)
            t = time.perf_counter()
            for i in range(500, n + 500, 500):
                store.apply_batch("b", versions[i : i + 500], [], through_seq=i + 500, now_ms=1)
            applied.append(rate(n, time.perf_counter() - t))
            store.close()
            conn = sqlite3.connect(f"{d}/copy.db", isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")  # as the store opens its connections,
            conn.execute("PRAGMA wal_autocheckpoint=0")  # whose WAL is copied back off the commit path
            took: dict[str, float] = {}
            t = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            for sql, params, many in said:
                if sql.lstrip().upper().startswith("PRAGMA"):
                    continue  # the checkpointer's, on its own connection outside the apply
                t0 = time.perf_counter()
                if sql == "COMMIT":
                    conn.execute("COMMIT")
                    conn.execute("BEGIN IMMEDIATE")
                elif many:
                    conn.executemany(sql, params)
                else:
                    conn.execute(sql, params if params is not None else ()).fetchall()
                what = "commit" if sql == "COMMIT" else " ".join(sql.split()[:3]).lower()
                took[what] = took.get(what, 0.0) + time.perf_counter() - t0
            conn.execute("COMMIT")
            replayed.append(rate(n, time.perf_counter() - t))
            conn.close()
            for what, secs in took.items():
                shares.setdefault(what, []).append(secs / n * 1e6)
    out: dict[str, float] = {}
    decoded = []
    for _ in range(3):  # what every received version costs before the store: its body read (no verify)
        t = time.perf_counter()
        for v in versions:
            read_version(v.body, v.signatures, KINDS)
        decoded.append(rate(len(versions), time.perf_counter() - t))
    put_runs(out, "decode_per_s", decoded)
    put_runs(out, "store_apply_replayed_per_s", applied)
    put_runs(out, "store_sql_only_per_s", replayed)
    out["store_sql_share_of_apply"] = out["store_apply_replayed_per_s"] / out["store_sql_only_per_s"]
    top = sorted(shares.items(), key=lambda kv: -statistics.median(kv[1]))[:6]
    for what, us in top:
        out["store_sql_us_" + "_".join(w.strip('("') for w in what.split())] = statistics.median(us)
    return out


def bench_floor(n: int, base: Path, runs: int = 3) -> dict[str, float]:
    """The least a sender and a receiver of this design must do for an offer, in Python on
    SQLite with none of the sync's own code around it: a floor under what an initial sync
    with this design's index can cost on this machine, whatever the sync's code does.

    Receiving, a batch of 500 at a time, one transaction each: the push message parsed
    (`PushRequest`, as sent), each body parsed (`VersionBody`), its author signature
    verified (libsodium, this thread), its id hashed, its listing's values read into a
    dict and written as the record's state JSON (orjson), its title, summary and
    description analysed for the index (`fulltext.analysed`, the analyser every store
    indexes with), then three inserts: the signed body with its signature, the state, the
    full-text row (a contentless FTS5 table, cheaper than the store's, which keeps the
    analysed text). No rules, no merge, no facets, no cursor, no log of the receiver's own.
    Beside it, the same with the analysis left to FTS5's own C tokenizer (porter over
    unicode61: no CJK bigrams, so less than the index needs: a floor under the floor).
    Sending: the stored bodies and signatures read back 500 at a time, each made an entry
    of a `PushRequest`, serialised. Processor time of this thread (`time.thread_time`: no
    other thread's); median of `runs`."""
    import sqlite3

    import orjson

    from sync.fulltext import analysed
    from techbridge.v1 import envelope_pb2, sync_pb2

    key = SigningKey.generate()
    versions = benchlib.signed_offers(key, "brussels", n, title="Benchmark listing")
    public = key.public_bytes
    batches = []
    for i in range(0, n, 500):
        msg = sync_pb2.PushRequest(txn_id=f"b{i}", through_seq=i + 500)
        for seq, v in enumerate(versions[i : i + 500], start=i + 1):
            msg.entries.add(seq=seq).envelope.CopyFrom(envelope_to_pb(v))
        batches.append(msg.SerializeToString())

    def receive_all(path: Path, python_analyser: bool) -> float:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE versions (seq INTEGER PRIMARY KEY, version_id TEXT UNIQUE NOT NULL, "
            "record_id TEXT NOT NULL, body BLOB NOT NULL, key_id TEXT NOT NULL, signature BLOB NOT NULL)"
        )
        conn.execute("CREATE TABLE records (record_id TEXT PRIMARY KEY, head TEXT NOT NULL, state TEXT NOT NULL)")
        # Contentless (the text is not kept twice), tokens split as the store's table splits them.
        tokenizer = "ascii" if python_analyser else "porter unicode61 remove_diacritics 2"
        conn.execute(
            f"CREATE VIRTUAL TABLE fts USING fts5(title, summary, body, tokenize = '{tokenizer}', content = '')"
        )
        t = time.thread_time()
        for wire in batches:
            push = sync_pb2.PushRequest.FromString(wire)
            vrows, rrows, frows = [], [], []
            for entry in push.entries:
                env = entry.envelope
                body, sig = env.body, env.signatures[0]
                msg = envelope_pb2.VersionBody.FromString(body)
                if not verify(public, VERSION_DOMAIN, body, sig.signature):
                    raise SystemExit("a benchmark signature did not verify")
                vid = hashlib.sha256(body).hexdigest()
                values = {
                    f.name: (v if isinstance(v, (str, int)) else list(v))
                    for f, v in msg.change.listing.ListFields()
                    if f.message_type is None
                }
                vrows.append((entry.seq, vid, msg.record_id, body, sig.key_id, sig.signature))
                rrows.append((msg.record_id, vid, orjson.dumps(values)))
                texts = [str(values[name]) for name in ("title", "summary", "description")]
                frows.append((entry.seq, *(map(analysed, texts) if python_analyser else texts)))
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?)", vrows)
            conn.executemany("INSERT INTO records VALUES (?, ?, ?)", rrows)
            conn.executemany("INSERT INTO fts (rowid, title, summary, body) VALUES (?, ?, ?, ?)", frows)
            conn.execute("COMMIT")
        took = time.thread_time() - t
        conn.close()
        return took / n * 1e6

    def send_all(path: Path) -> float:
        conn = sqlite3.connect(path, isolation_level=None)
        t = time.thread_time()
        after = 0
        while True:
            rows = conn.execute(
                "SELECT seq, body, key_id, signature FROM versions WHERE seq > ? ORDER BY seq LIMIT 500", (after,)
            ).fetchall()
            if not rows:
                break
            msg = sync_pb2.PushRequest(txn_id=f"b{after}", through_seq=rows[-1][0])
            for seq, body, key_id, signature in rows:
                env = msg.entries.add(seq=seq).envelope
                env.body = body
                env.signatures.add(key_id=key_id, signature=signature)
            msg.SerializeToString()
            after = rows[-1][0]
        took = time.thread_time() - t
        conn.close()
        return took / n * 1e6

    def once(d: Path) -> dict[str, float]:
        d.mkdir(parents=True, exist_ok=True)
        return {
            "floor_receive_cpu_us_per_offer": receive_all(d / "analysed.db", True),
            "floor_receive_fts5_tokenizer_cpu_us_per_offer": receive_all(d / "tokenized.db", False),
            "floor_send_cpu_us_per_offer": send_all(d / "analysed.db"),
        }

    return _median_of_runs(once, base / "floor", runs)


def bench_receive(n: int, base: Path, runs: int = 3) -> dict[str, float]:
    """What the receiving site's work costs an offer in processor time, apart from the
    sender, the network and any other thread: a hub in this process takes `n` offers
    signed by an enrolled centre, in batches of 500, each checked (`Site.check_entries`:
    decoding, the rules, the signatures on the verifier pool) and then stored
    (`receive`), one after the other on this thread. CPU time of the whole process (the
    pool included), median of `runs` runs, each on a new hub; the garbage collector's
    time is measured around each of its collections."""
    return _median_of_runs(lambda d: _receive_once(n, d), base / "receive", runs)


def _median_of_runs(once: Callable[[Path], dict[str, float]], base: Path, runs: int) -> dict[str, float]:
    """Each figure of `once` (run in a new folder under `base` each time) as the median of
    `runs` runs, with its spread (`put_runs`)."""
    samples: dict[str, list[float]] = {}
    for run in range(runs):
        for k, v in once(base / str(run)).items():
            samples.setdefault(k, []).append(v)
    out: dict[str, float] = {}
    for k, values in samples.items():
        put_runs(out, k, values)
    return out


@contextmanager
def _hub_inviting_brussels(root: Path, db_url: str | None = None) -> Iterator[RunningServer]:
    """A hub started in this process under `root` (on SQLite, or `db_url`), and the data
    folder of a centre it invited, `root/brussels`, made; the hub stops on leaving."""
    hub_cfg = init_hub(root / "hq", listen="127.0.0.1:0", db_url=db_url)
    hub = start_hub(root / "hq")
    try:
        hub_admin = admin_pb2_grpc.HubAdminServiceStub(
            channel(hub.address, DataDir(root / "hq").tls.load(), expect="hq")
        )
        token = hub_admin.Invite(
            admin_pb2.InviteRequest(centre_id="brussels", name="B", country="BE"),
            metadata=auth.admin_metadata(hub_cfg.admin_token),
        ).token
        init_node(root / "brussels", hub=hub.address, token=token)
        yield hub
    finally:
        hub.stop()


def _receive_once(n: int, base: Path) -> dict[str, float]:
    with _hub_inviting_brussels(base) as hub:
        node = start_node(base / "brussels", sync_every_s=0, live=False)
        try:
            node.client.run_round()  # the hub learns the centre's key
            key, site_id = node.running.site.key, node.running.site.site_id
        finally:
            node.stop()
        entries = [
            (i + 1, v.body, v.signatures)
            for i, v in enumerate(benchlib.signed_offers(key, site_id, n, title="Benchmark listing"))
        ]
        site = hub.site
        collecting = [0.0, 0.0]  # time in collections; when the one under way began

        def timed(phase: str, _info: dict[str, int]) -> None:
            if phase == "start":
                collecting[1] = time.perf_counter()
            else:
                collecting[0] += time.perf_counter() - collecting[1]

        check_s = store_s = 0.0
        gc.callbacks.append(timed)
        try:
            for i in range(0, n, 500):
                batch = entries[i : i + 500]
                t = time.process_time()
                checked = site.check_entries(batch)
                u = time.process_time()
                receive(site, site_id, batch, through_seq=i + len(batch), head_seq=n, txn_id=f"b{i}", checked=checked)
                check_s += u - t
                store_s += time.process_time() - u
        finally:
            gc.callbacks.remove(timed)
    return {
        "receive_cpu_us_per_offer": (check_s + store_s) / n * 1e6,
        "receive_check_cpu_us_per_offer": check_s / n * 1e6,
        "receive_store_cpu_us_per_offer": store_s / n * 1e6,
        "receive_gc_us_per_offer": collecting[0] / n * 1e6,
    }


def bench_sync(n: int, base: Path, runs: int = 3) -> dict[str, float]:
    """Local adds, the initial push to an empty hub, the initial pull by a new node and an
    idle round: each the median of `runs` runs, each run with a new hub and new nodes."""
    return _median_of_runs(lambda d: _sync_once(n, d), base / "sync", runs)


def _sync_once(n: int, base: Path) -> dict[str, float]:
    hub_cfg = init_hub(base / "hq", listen="127.0.0.1:0")
    hub = start_hub(base / "hq")
    try:
        hub_tls = DataDir(base / "hq").tls.load()
        hub_admin = admin_pb2_grpc.HubAdminServiceStub(channel(hub.address, hub_tls, expect="hq"))
        md = auth.admin_metadata(hub_cfg.admin_token)

        def node(name: str) -> Any:
            token = hub_admin.Invite(
                admin_pb2.InviteRequest(centre_id=name, name=name, country="BE"), metadata=md
            ).token
            init_node(base / name, hub=hub.address, token=token)
            return start_node(base / name, sync_every_s=0, live=False)

        a = node("brussels")
        t = time.perf_counter()
        for i in range(n):
            a.running.site.add_record(listing(i))
        add_s = time.perf_counter() - t
        t = time.perf_counter()
        a.client.run_round()
        push_s = time.perf_counter() - t
        b = node("daejeon")
        t = time.perf_counter()
        res = b.client.run_round()
        pull_s = time.perf_counter() - t
        assert res.pulled == n, res
        t = time.perf_counter()
        b.client.run_round()
        idle_s = time.perf_counter() - t
        a.stop()
        b.stop()
    finally:
        hub.stop()
    return {
        "local_add_per_s": rate(n, add_s),
        "push_to_hub_per_s": rate(n, push_s),
        "initial_pull_per_s": rate(n, pull_s),
        "idle_round_ms": idle_s * 1000,
    }


class _CountedStream:
    """A response stream that counts what it yields and can still be cancelled."""

    def __init__(self, counter: WireCounter, call: Any) -> None:
        self._counter, self._call = counter, call

    def __iter__(self) -> Any:
        return self

    def __next__(self) -> Any:
        r = next(self._call)
        self._counter.received += r.ByteSize()
        return r

    def cancel(self) -> bool:
        return bool(self._call.cancel())


class WireCounter(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[type-arg]
    grpc.StreamStreamClientInterceptor,  # type: ignore[type-arg]
):
    """Counts the protobuf bytes a client sends and receives (not HTTP/2 or TLS framing)."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0
        self.calls = 0

    def _out(self, request: Any) -> None:
        self.calls += 1
        self.sent += request.ByteSize()

    def _in(self, responses: Any) -> Any:
        return _CountedStream(self, responses)

    def _outs(self, requests: Any) -> Any:
        for r in requests:
            self.sent += r.ByteSize()
            yield r

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._out(request)
        call = continuation(details, request)
        self.received += call.result().ByteSize()
        return call

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._out(request)
        return self._in(continuation(details, request))

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self.calls += 1
        call = continuation(details, self._outs(requests))
        self.received += call.result().ByteSize()
        return call

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self.calls += 1
        return self._in(continuation(details, self._outs(requests)))


# Rounds with nothing new timed on each store size.
NOOP_ROUNDS = 11


def bench_noop(sizes: list[int], base: Path) -> dict[str, float]:
    """A round with nothing new on stores of different sizes: time and bytes on the wire.
    For each size a hub's store is filled directly with signed offers (benchlib, about 3.8
    KB) and a new node pulls them all through a real round (an initial-pull figure). Then
    the nodes run rounds with nothing new, the sizes in turn (NOOP_ROUNDS each, median), so
    that the machine's slower moments and each site's work in the background (the WAL copied
    back after the pull, the jobs) fall on every size alike. The sites of every size run in
    this process until the end, so a larger size's initial pull runs beside the smaller
    sizes' idle sites; a round's spread is over its NOOP_ROUNDS rounds."""

    import sync.protocol.node_side as client_module

    out: dict[str, float] = {}
    counter = WireCounter()
    plain = client_module.channel  # type: ignore[attr-defined]

    def counted(*args: Any, **kw: Any) -> grpc.Channel:
        return grpc.intercept_channel(plain(*args, **kw), counter)

    client_module.channel = counted  # type: ignore[attr-defined]
    with ExitStack() as running:
        running.callback(setattr, client_module, "channel", plain)
        nodes = {}
        for size in sizes:
            root = base / f"noop-{size}"
            hub_cfg = init_hub(root / "hq", listen="127.0.0.1:0")
            hub = start_hub(root / "hq")
            running.callback(hub.stop)
            site = hub.site
            key = site.key
            for start in range(0, size, 5000):  # the offers of bench_push and processes.py
                chunk = benchlib.signed_offers(key, "hq", min(5000, size - start), start=start)
                benchlib.write_versions(site.store, chunk, local=False)
            hub_admin = admin_pb2_grpc.HubAdminServiceStub(
                channel(hub.address, DataDir(root / "hq").tls.load(), expect="hq")
            )
            md = auth.admin_metadata(hub_cfg.admin_token)
            token = hub_admin.Invite(
                admin_pb2.InviteRequest(centre_id="daejeon", name="D", country="KR"), metadata=md
            ).token
            init_node(root / "daejeon", hub=hub.address, token=token)
            node = start_node(root / "daejeon", sync_every_s=0, live=False)
            running.callback(node.stop)
            t = time.perf_counter()
            assert node.client.run_round().pulled == size
            out[f"initial_pull_{size}_per_s"] = rate(size, time.perf_counter() - t)
            node.client.run_round()  # warm
            nodes[size] = node
        took: dict[int, list[float]] = {size: [] for size in sizes}
        for _ in range(NOOP_ROUNDS):
            for size in sizes:
                counter.sent = counter.received = counter.calls = 0
                t = time.perf_counter()
                result = nodes[size].client.run_round()
                took[size].append((time.perf_counter() - t) * 1000)
                assert result.pulled == 0 and result.pushed == 0
                out[f"noop_round_{size}_bytes"] = counter.sent + counter.received
                out[f"noop_round_{size}_calls"] = counter.calls
        for size, times in took.items():
            out[f"noop_round_{size}_ms_median"] = statistics.median(times)
            out[f"noop_round_{size}_ms_spread"] = max(times) - min(times)
    return out


def bench_push(size: int, base: Path) -> dict[str, float]:
    """The initial push from a node holding `size` signed offers to an empty hub (SQLite),
    and beside it to an empty hub on PostgreSQL when a server answers on 127.0.0.1:5432 (a
    new database, dropped after)."""
    out = _push_to(size, base / f"push-{size}", "sqlite")
    pg = benchlib.new_pg_database("bench_push")
    if pg is not None:
        url, drop = pg
        try:
            out.update(_push_to(size, base / f"push-{size}-pg", url))
        finally:
            drop()
    return out


def _push_to(size: int, root: Path, db: str) -> dict[str, float]:
    """The initial push from a node holding `size` signed offers (benchlib: about 3.8 KB,
    written straight into its store as its own) to an empty hub on `db` ("sqlite", or a
    PostgreSQL URL), through a real round."""
    with _hub_inviting_brussels(root, None if db == "sqlite" else db):
        node = start_node(root / "brussels", sync_every_s=0, live=False)
        try:
            site = node.running.site
            for start in range(0, size, 5000):
                chunk = benchlib.signed_offers(site.key, site.site_id, min(5000, size - start), start=start)
                benchlib.write_versions(site.store, chunk, local=True)
            t = time.perf_counter()
            assert node.client.run_round().pushed == size
            backend = "" if db == "sqlite" else "postgresql_"
            return {f"initial_push_{size}_{backend}per_s": rate(size, time.perf_counter() - t)}
        finally:
            node.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="listings per figure (default 2000)")
    ap.add_argument(
        "--full",
        action="store_true",
        help="no-op round, initial pull at 1k and 100k; initial push at 100k (default: 10k)",
    )
    a = ap.parse_args()
    settle_heap()  # the sites below run in this process: collect as a served one does
    with tempfile.TemporaryDirectory() as d:
        sizes = [1_000, 100_000 if a.full else 10_000]
        figures = {
            **bench_crypto(a.n, Path(d)),
            **bench_merge(a.n),
            **bench_index(a.n),
            **bench_store_sql(max(a.n, 2000)),
            **bench_receive(max(a.n, 2000), Path(d)),
            **bench_floor(max(a.n, 2000), Path(d)),
            **bench_sync(a.n, Path(d)),
            **bench_noop(sizes, Path(d)),
            **bench_push(sizes[-1] if a.full or a.n >= 2000 else 2_000, Path(d)),
        }
    big, small = sizes[-1], sizes[0]
    figures[f"noop_round_ms_ratio_{big}_vs_{small}"] = (
        figures[f"noop_round_{big}_ms_median"] / figures[f"noop_round_{small}_ms_median"]
    )
    figures[f"noop_round_bytes_ratio_{big}_vs_{small}"] = (
        figures[f"noop_round_{big}_bytes"] / figures[f"noop_round_{small}_bytes"]
    )
    # The ratios under stable keys: the largest initial push and pull against one-core verify.
    verify_rate = figures["verify_libsodium_per_s"]
    for way in ("push", "pull"):
        sized = [k for k in figures if k.startswith(f"initial_{way}_") and k.endswith("_per_s") and k[13:-6].isdigit()]
        largest = max(sized, key=lambda k: int(k[13:-6]))
        figures[f"initial_{way}_vs_verify"] = figures[largest] / verify_rate
        figures[f"initial_{way}_vs_verify_offers"] = int(largest[13:-6])
    # What the receiver's own processor time allows on one core, against verifying alone.
    figures["receive_cpu_bound_vs_verify"] = 1e6 / figures["receive_cpu_us_per_offer"] / verify_rate
    # The same for the floor: its receiver on one core, and both of its ends sharing two cores perfectly.
    floor_receive, floor_send = figures["floor_receive_cpu_us_per_offer"], figures["floor_send_cpu_us_per_offer"]
    figures["floor_receive_bound_vs_verify"] = 1e6 / floor_receive / verify_rate
    figures["floor_sync_two_cores_vs_verify"] = 2e6 / (floor_receive + floor_send) / verify_rate
    on_pg = [k for k in figures if k.startswith("initial_push_") and k.endswith("_postgresql_per_s")]
    if on_pg:  # the same push to a hub on PostgreSQL, beside it
        figures["initial_push_postgresql_vs_verify"] = figures[on_pg[0]] / verify_rate
    info = benchlib.machine("sqlite" if not on_pg else "sqlite; postgresql hub for initial_push_*_postgresql")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    ceiling = figures["verify_libsodium_per_s"]
    stream = figures["grpc_stream_per_s"]
    print(f"techbridge bench: {a.n} signed listings of {figures['body_bytes']:.0f} bytes, {platform.python_version()}")
    print(f"{'figure':36} {'value':>12} {'spread':>9}  {'vs verify':>9}  {'vs gRPC stream':>14}")
    for k, v in figures.items():
        if k == "body_bytes" or k.endswith(("_spread", "_runs")):
            continue
        spread = f"±{figures[k + '_spread'] / 2:.1f}" if k + "_spread" in figures else ""
        ratio = f"{v / ceiling:.2f}" if k.endswith("_per_s") else ""
        vs_stream = f"{v / stream:.2f}" if k.endswith("_per_s") else ""
        shown = f"{v:12.3f}" if "_vs_" in k or "ratio" in k or "share" in k else f"{v:12.1f}"
        print(f"{k:36} {shown} {spread:>9}  {ratio:>9}  {vs_stream:>14}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"n": a.n, "machine": info, "figures": figures}, indent=2) + "\n")
    print(f"written {out / 'latest.json'}")


if __name__ == "__main__":
    main()
