"""Figures from real processes: a hub and nodes started with the techbridge CLI
on 127.0.0.1, driven only through the CLI and the sites' gRPC admin API, each
beside the limit it is measured against in the same run.

    .venv/bin/python bench/processes.py [--n 2000] [--samples 50] [--full]

* intake: listings/s through a node's API with 8 concurrent clients, against a
  trivial RPC (the standard health check) on the same server and clients; the node's
  processor time a create and a health check; and the same for intake's floor
  (bench/intake_floor.py: the least a create can cost, on the node's server stack);
* bulk import: the same N offers from a CSV file into a new node (`listing import`),
  against the initial push;
* initial sync: the push of N listings from a node to an empty hub (median of 3
  runs, each from a copy of the same two data folders) and the pull of N by a
  new node (median of 3 new nodes), against the single-core Ed25519 verify rate
  (libsodium, the sync's verifier) and the raw gRPC streaming rate of listings of
  the same shape (same generator and seed), measured in this process with the
  project's server, channel and TLS (bench/benchlib.py);
* a round with nothing new (median of 5);
* propagation node -> hub -> node, p50/p99, with the watch stream on, and with
  it off (nodes started with --no-live --sync-every 2s; fewer samples), against
  the unary round trip;
* fan-out: a new batch (up to 10,000) pushed by one centre until every one of
  --fanout live nodes (4; 16 with --full) holds it, against the initial push;
* HQ search for a word, a technology keyword and a country, p50/p95, against a
  primary-key lookup on the same store, on SQLite and on PostgreSQL, over a
  store of --search-size offers (10,000; 100,000 when --n >= 5000; 1,000,000
  with --full) written as signed versions straight into the hub's store before
  it starts (PostgreSQL: a fresh database on 127.0.0.1:5432 per run, dropped
  afterwards; skipped if none answers);
* peak memory of the hub and a node beside the data synced; and the hub's peak through
  an initial push of 5,000 and of 20,000 offers (10,000 and 100,000 with --full), each from a
  centre whose store was filled directly, a new hub each time, against each other.

Listings are generated from a fixed seed (words in several languages, taxonomy
keywords, target countries). Writes bench/results/processes.json with the
machine, package versions and database used.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402
from benchlib import COUNTRIES, TECH, VOCABULARY, offer_pb, put_runs  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from sync import auth  # noqa: E402
from sync.config import DataDir  # noqa: E402
from sync.keys import SigningKey  # noqa: E402
from sync.server import channel  # noqa: E402
from sync.site import Site  # noqa: E402
from techbridge.v1 import admin_pb2, admin_pb2_grpc, records_pb2  # noqa: E402
from transfer.records import KINDS  # noqa: E402

TB = [sys.executable, "-m", "cli.main"]
PG_ADMIN_URL = "postgresql://root@127.0.0.1:5432/test"


def cli(*args: str) -> str:
    r = subprocess.run([*TB, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise SystemExit(f"techbridge {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Procs:
    """The sites this run started, by name, so one can be stopped and started again."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.running: dict[str, subprocess.Popen[bytes]] = {}
        self.args: dict[str, tuple[str, tuple[str, ...]]] = {}

    def serve(self, role: str, name: str, *extra: str) -> subprocess.Popen[bytes]:
        data = self.base / name
        addr = data / "run" / "address"
        addr.unlink(missing_ok=True)
        log = open(self.base / f"{name}.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen([*TB, role, "serve", "--data", str(data), *extra], cwd=ROOT, stdout=log, stderr=log)
        self.running[name] = proc
        self.args[name] = (role, extra)
        deadline = time.monotonic() + 60
        while not addr.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{role} {name} did not start (see its log)")
            time.sleep(0.05)
        return proc

    def restart(self, name: str) -> subprocess.Popen[bytes]:
        role, extra = self.args[name]
        return self.serve(role, name, *extra)

    def stop(self, *names: str) -> None:
        procs = [self.running.pop(n) for n in names if n in self.running]
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def stop_all(self) -> None:
        self.stop(*list(self.running))


class Admin:
    def __init__(self, data: Path) -> None:
        d = DataDir(data)
        cfg = d.load()
        self.ch = channel(d.address_file.read_text().strip(), d.tls.load(), expect=cfg.site_id)
        self.md = auth.admin_metadata(cfg.admin_token)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.ch)
        self.node = admin_pb2_grpc.NodeAdminServiceStub(self.ch)

    def add(self, title: str, i: int = 0) -> str:
        listing = offer_pb(title, i)  # a fixed seed per listing: reproducible text, keywords, countries
        req = admin_pb2.AddRecordRequest(values=records_pb2.RecordValues(listing=listing))
        return self.admin.AddRecord(req, metadata=self.md, timeout=30).record.id

    def search(self, text: str, keyword: str, country: str = "", facets: bool = False) -> int:
        """A page of 20 (ranked by relevance); how many match in all."""
        req = admin_pb2.SearchRecordsRequest(
            text=text,
            keywords=[keyword] if keyword else [],
            countries=[country] if country else [],
            page_size=20,
            facets=facets,
        )
        return self.admin.SearchRecords(req, metadata=self.md, timeout=120).total

    def sync_now(self) -> None:
        for _ in self.node.SyncNow(admin_pb2.SyncNowRequest(), metadata=self.md, timeout=1800):
            pass

    def has(self, rid: str) -> bool:
        try:
            self.admin.GetRecord(admin_pb2.GetRecordRequest(id=rid), metadata=self.md, timeout=5)
            return True
        except Exception:
            return False

    def close(self) -> None:
        self.ch.close()


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """The most resident memory process `pid` has held (VmHWM), in MB."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """The resident memory process `pid` holds now (VmRSS), in MB."""
    return _status_mb(pid, "VmRSS")


CORES = len(os.sched_getaffinity(0))


def cpu_seconds(pid: int) -> float:
    """The processor time (user and system, every thread) process `pid` has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """The processor time this process's children that have ended (the CLI runs) have used."""
    t = os.times()
    return t.children_user + t.children_system


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def wait_until(check: Any, what: str, limit_s: float = 900) -> None:
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} within {limit_s:.0f} s did not happen")
        time.sleep(0.1)


def propagation(src: Admin, dst: Admin, samples: int, title: str, limit_s: float = 60) -> list[float]:
    lat = []
    for i in range(samples):
        t = time.perf_counter()
        rid = src.add(f"{title} {i}", 10_000_000 + i)
        while not dst.has(rid):
            if time.perf_counter() - t > limit_s:
                raise SystemExit(f"a listing did not arrive within {limit_s:.0f} s")
            time.sleep(0.002)
        lat.append((time.perf_counter() - t) * 1000)
    return lat


def eight_clients(call: Any, n: int) -> tuple[float, list[Any]]:
    """The rate (calls a second) at which eight threads at once make `call(i)` for i < n,
    and what the calls returned, in order."""
    t = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        returned = list(pool.map(call, range(n)))
    return n / (time.perf_counter() - t), returned


def bench_intake_floor(data: Path, n: int) -> dict[str, float]:
    """Intake at its floor (`bench/intake_floor.py`): the least a create through a node's API
    can cost, served in its own process on the node's server stack and TLS files (the node
    stopped), against that server's health check; the same eight clients and requests as the
    node's intake. The floor's database is removed after."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "intake_floor.py"), "--data", str(data)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    ch = None
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as ready:
            ready.register(proc.stdout, selectors.EVENT_READ)
            said = proc.stdout.readline() if ready.select(timeout=60) else ""
        if not said.strip().isdigit():
            raise SystemExit(f"bench/intake_floor.py did not start (exit code {proc.poll()}, said {said!r})")
        d = DataDir(data)
        cfg = d.load()
        ch = channel(f"127.0.0.1:{int(said)}", d.tls.load(), expect=cfg.site_id)
        md = auth.admin_metadata(cfg.admin_token)
        admin = admin_pb2_grpc.AdminServiceStub(ch)
        health = health_pb2_grpc.HealthStub(ch)

        def add(i: int) -> str:
            values = records_pb2.RecordValues(listing=offer_pb(f"Floor listing {i}", i))
            return admin.AddRecord(admin_pb2.AddRecordRequest(values=values), metadata=md, timeout=30).record.id

        def check(_: int) -> None:
            health.Check(health_pb2.HealthCheckRequest(), timeout=10)

        before = cpu_seconds(proc.pid)
        adds, _ = eight_clients(add, n)
        add_cpu = (cpu_seconds(proc.pid) - before) / n
        echoes = max(n, 500)
        before = cpu_seconds(proc.pid)
        checks, _ = eight_clients(check, echoes)
        check_cpu = (cpu_seconds(proc.pid) - before) / echoes
    finally:
        if ch is not None:
            ch.close()
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        for f in data.glob("floor.db*"):
            f.unlink()
    return {
        "intake_floor_per_s_8_clients": adds,
        "intake_floor_echo_rpc_per_s_8_clients": checks,
        "intake_floor_vs_trivial_rpc": adds / checks,
        "intake_floor_cpu_ms_per_create": add_cpu * 1e3,
        "intake_floor_echo_rpc_cpu_ms": check_cpu * 1e3,
        "intake_floor_cpu_bound_vs_trivial_rpc": check_cpu / add_cpu,
    }


def pg_admin() -> Any:
    """A connection to the PostgreSQL server the tests use, or None if none answers."""
    try:
        import psycopg

        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"postgresql at 127.0.0.1:5432 not reachable ({exc.__class__.__name__}): its search figure is skipped")
        return None


def index_bytes(engine: Any) -> int:
    """The bytes the search index takes on disk: on SQLite the FTS5 tables and
    search_docs with their indexes (dbstat), on PostgreSQL search_docs with its indexes
    and TOAST."""
    from sqlalchemy import text

    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sql = (
                "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name LIKE 'search_%' "
                "OR name LIKE 'ix_search_docs%' OR name LIKE 'sqlite_autoindex_search_docs%' "
                "OR name LIKE 'uq_search_docs%'"
            )
        else:
            sql = "SELECT pg_total_relation_size('search_docs')"
        return int(conn.execute(text(sql)).scalar_one())


def bench_search(base: Path, backend: str, size: int, samples: int) -> dict[str, Any]:
    """HQ search over `size` offers on `backend`: a hub whose store is filled with signed
    versions before it starts, then queried through its admin API."""
    out: dict[str, Any] = {}
    name = f"search-{backend}"
    db_url, drop = "", None
    init = ["hub", "init", "--data", str(base / name), "--listen", "127.0.0.1:0"]
    if backend == "postgresql":
        made = benchlib.new_pg_database("techbridge_bench")
        if made is None:
            return out
        db_url, drop = made
        init += ["--db", db_url]
    procs = Procs(base)
    try:
        cli(*init)
        site = Site.open(DataDir(base / name), KINDS)  # runs the migrations; the hub is not running yet
        t = time.perf_counter()
        fill = 0.0
        for start in range(0, size, 5000):
            chunk = benchlib.signed_offers(site.key, site.site_id, min(5000, size - start), start=start)
            f = time.perf_counter()
            benchlib.write_versions(site.store, chunk, local=False)
            fill += time.perf_counter() - f
        out[f"search_{backend}_store_apply_per_s"] = size / fill
        out[f"search_{backend}_build_s"] = time.perf_counter() - t
        out[f"search_{backend}_index_bytes_per_offer"] = index_bytes(site.store.engine) / size
        site.close()
        if backend == "postgresql":
            # What autovacuum does within a minute of a bulk load: statistics and the
            # visibility map (index-only scans). Measured: the store as it runs, not mid-load.
            import psycopg

            with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as vac:
                vac.execute("VACUUM ANALYZE")
        hub = procs.serve("hub", name)
        hq = Admin(base / name)
        rnd = random.Random(11)
        queries = [(rnd.choice(VOCABULARY), rnd.choice(TECH), rnd.choice(COUNTRIES)) for _ in range(samples)]
        for q in queries[:5]:  # warm-up
            hq.search(*q)
        took, hits = [], []
        for q in queries:
            t = time.perf_counter()
            hits.append(hq.search(*q))
            took.append((time.perf_counter() - t) * 1000)
        out[f"search_{backend}_ms_p50"] = percentile(took, 0.5)
        out[f"search_{backend}_ms_p95"] = percentile(took, 0.95)
        out[f"search_{backend}_hits_p50"] = percentile([float(h) for h in hits], 0.5)
        # Facets for a common word alone: every match counted by every facet.
        common = [rnd.choice(VOCABULARY[:24]) for _ in range(max(5, samples // 5))]
        hq.search(common[0], "", facets=True)  # warm-up
        took, hits = [], []
        for word in common:
            t = time.perf_counter()
            hits.append(hq.search(word, "", facets=True))
            took.append((time.perf_counter() - t) * 1000)
        out[f"search_{backend}_facets_common_ms_p50"] = percentile(took, 0.5)
        out[f"search_{backend}_facets_common_ms_p95"] = percentile(took, 0.95)
        out[f"search_{backend}_facets_common_hits_p50"] = percentile([float(h) for h in hits], 0.5)
        ids = [v.id for v in hq.admin.ListRecords(admin_pb2.ListRecordsRequest(page_size=60), metadata=hq.md).records]
        for rid in ids[:10]:  # warm-up
            hq.has(rid)
        looks = []
        for rid in ids[10:]:
            t = time.perf_counter()
            assert hq.has(rid)
            looks.append((time.perf_counter() - t) * 1000)
        out[f"pk_lookup_{backend}_ms_p50"] = statistics.median(looks)
        out[f"search_{backend}_hub_peak_rss_mb"] = peak_rss_mb(hub.pid)
        hq.close()
    finally:
        procs.stop_all()
        if drop is not None:
            drop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--full", action="store_true", help="fan-out to 16 nodes, search over 1,000,000 offers")
    ap.add_argument("--fanout", type=int, default=None, help="live nodes that must all receive a new batch (4)")
    ap.add_argument("--search-size", type=int, default=None, help="offers in the search store (see above)")
    ap.add_argument("--only-search", action="store_true", help="only the search figures (writes search.json)")
    a = ap.parse_args()
    fanout = a.fanout or (16 if a.full else 4)
    search_size = a.search_size or (1_000_000 if a.full else 100_000 if a.n >= 5000 else 10_000)
    figures: dict[str, Any] = {"n": a.n}
    started = time.perf_counter()
    if a.only_search:
        only_search(search_size, a.samples)
        return
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        procs = Procs(base)
        try:
            hub_port = free_port()  # fixed, so the hub can be started again from a copy of its folder
            cli("hub", "init", "--data", str(base / "hq"), "--listen", f"127.0.0.1:{hub_port}")
            hub = procs.serve("hub", "hq")
            hub_addr = f"127.0.0.1:{hub_port}"

            def node(name: str, *extra: str) -> tuple[subprocess.Popen[bytes], Admin]:
                token = cli(
                    "hub", "invite", "--data", str(base / "hq"), "--centre", name, "--name", name, "--country", "BE"
                )
                cli("node", "init", "--data", str(base / name), "--hub", hub_addr, "--token", token.splitlines()[-1])
                p = procs.serve("node", name, *extra)
                return p, Admin(base / name)

            quiet = ("--sync-every", "0", "--no-live")
            intake_node, a_admin = node("brussels", *quiet)
            before = cpu_seconds(intake_node.pid)
            figures["intake_per_s_8_clients"], added = eight_clients(
                lambda i: a_admin.add(f"Benchmark listing {i}", i), a.n
            )
            figures["intake_node_cpu_ms_per_create"] = (cpu_seconds(intake_node.pid) - before) / a.n * 1e3
            # The limit: a trivial RPC (the standard health check) on the same server stack, same clients.
            health = health_pb2_grpc.HealthStub(a_admin.ch)
            echoes = max(a.n, 500)
            before = cpu_seconds(intake_node.pid)
            figures["echo_rpc_per_s_8_clients"], _ = eight_clients(
                lambda _: health.Check(health_pb2.HealthCheckRequest(), timeout=10), echoes
            )
            figures["echo_rpc_node_cpu_ms"] = (cpu_seconds(intake_node.pid) - before) / echoes * 1e3
            # What the node's processor time alone allows: a create's against a health check's.
            figures["intake_cpu_bound_vs_trivial_rpc"] = (
                figures["echo_rpc_node_cpu_ms"] / figures["intake_node_cpu_ms_per_create"]
            )
            rtt = []
            for _ in range(50):
                t = time.perf_counter()
                health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                rtt.append((time.perf_counter() - t) * 1000)
            figures["unary_rtt_ms_p50"] = statistics.median(rtt)

            # Initial push, three times from copies of the same two folders (hub empty, node holding N).
            a_admin.close()
            procs.stop("hq", "brussels")
            # Beside intake, its floor, on the stopped node's folder.
            figures.update(bench_intake_floor(base / "brussels", a.n))
            for name in ("hq", "brussels"):
                shutil.copytree(base / name, base / f"{name}.snapshot")
            pushes = []
            cpu_used: dict[str, list[tuple[float, float]]] = {"push": [], "pull": []}
            for run in range(3):
                if run:
                    procs.stop("hq", "brussels")
                    for name in ("hq", "brussels"):
                        shutil.rmtree(base / name)
                        shutil.copytree(base / f"{name}.snapshot", base / name)
                hub = procs.restart("hq")
                pa = procs.restart("brussels")
                a_admin = Admin(base / "brussels")
                cpu_before = (cpu_seconds(hub.pid), cpu_seconds(pa.pid))
                t = time.perf_counter()
                a_admin.sync_now()
                pushes.append(a.n / (time.perf_counter() - t))
                cpu_used["push"].append((cpu_seconds(hub.pid) - cpu_before[0], cpu_seconds(pa.pid) - cpu_before[1]))
                if run < 2:
                    a_admin.close()
            put_runs(figures, "initial_push_per_s", pushes)
            # Initial pull by three new nodes, one at a time; the first stays.
            pulls = []
            pb, b_admin = node("daejeon", *quiet)
            for run in range(3):
                puller, who = (pb, b_admin) if run == 0 else node(f"pull-{run}", *quiet)
                cpu_before = (cpu_seconds(hub.pid), cpu_seconds(puller.pid))
                t = time.perf_counter()
                who.sync_now()
                pulls.append(a.n / (time.perf_counter() - t))
                cpu_used["pull"].append((cpu_seconds(hub.pid) - cpu_before[0], cpu_seconds(puller.pid) - cpu_before[1]))
                if run:
                    who.close()
                    procs.stop(f"pull-{run}")
            put_runs(figures, "initial_pull_per_s", pulls)
            # What bounds them: the processor time each side spent an offer (user and system,
            # every thread), and the rate that time allows were it spread over every core.
            for way, used in cpu_used.items():
                hub_us = statistics.median(h for h, _ in used) / a.n * 1e6
                node_us = statistics.median(n for _, n in used) / a.n * 1e6
                figures[f"initial_{way}_cpu_us_per_offer_hub"] = hub_us
                figures[f"initial_{way}_cpu_us_per_offer_node"] = node_us
                figures[f"initial_{way}_cpu_bound_per_s"] = CORES * 1e6 / (hub_us + node_us)

            # Bulk import: the same offers from a CSV file into a new node (`listing import`).
            sheet = base / "offers.csv"
            with sheet.open("w", newline="", encoding="utf-8") as sheet_file:
                w = csv.writer(sheet_file)
                w.writerow(
                    ["title", "summary", "description", "keywords", "market_keywords", "taxonomy", "target_countries"]
                )
                for i in range(a.n):
                    o = offer_pb(f"Imported listing {i}", i)
                    w.writerow(
                        [
                            o.title,
                            o.summary,
                            o.description.strip(),
                            ";".join(o.keywords),
                            ";".join(o.market_keywords),
                            o.taxonomy,
                            ";".join(o.target_countries),
                        ]
                    )
            importer, _ = node("importer", *quiet)
            # What the node and the CLI (its start, about 0.3 s, included) spent an offer.
            node_before, cli_before = cpu_seconds(importer.pid), children_cpu_seconds()
            t = time.perf_counter()
            cli("listing", "import", "--data", str(base / "importer"), "--file", str(sheet))
            figures["bulk_import_per_s"] = a.n / (time.perf_counter() - t)
            figures["bulk_import_cpu_us_per_offer_node"] = (cpu_seconds(importer.pid) - node_before) / a.n * 1e6
            figures["bulk_import_cpu_us_per_offer_cli"] = (children_cpu_seconds() - cli_before) / a.n * 1e6
            figures["bulk_import_vs_initial_push"] = figures["bulk_import_per_s"] / figures["initial_push_per_s"]
            procs.stop("importer")

            # The limits of the initial sync, in this process: single-core verify, raw gRPC stream.
            key = SigningKey.generate()
            same = benchlib.signed_offers(key, "brussels", min(a.n, 2000), title="Benchmark listing")
            put_runs(figures, "verify_libsodium_per_s", benchlib.verify_rate(same, key.public_bytes))
            rates = benchlib.grpc_stream_rates(same, DataDir(base / "hq").tls.load(), "hq", total=max(a.n, 10_000))
            for k, v in rates.items():
                put_runs(figures, k, v)
            figures["envelope_body_bytes"] = statistics.mean(len(v.body) for v in same)
            del same

            idle = []
            for _ in range(5):
                t = time.perf_counter()
                b_admin.sync_now()
                idle.append((time.perf_counter() - t) * 1000)
            put_runs(figures, "noop_round_ms", idle)
            figures["hub_peak_rss_mb"] = peak_rss_mb(hub.pid)
            body = a_admin.admin.GetRecord(admin_pb2.GetRecordRequest(id=added[0]), metadata=a_admin.md).record
            figures["data_synced_mb"] = a.n * body.values.ByteSize() / 1e6
            figures["node_peak_rss_mb"] = peak_rss_mb(pb.pid)

            # Propagation through the watch stream.
            _, c_admin = node("tel-aviv")
            _, d_admin = node("toledo")
            # Both new nodes first take in the catalogue (watch streams open, initial pull done).
            wait_until(lambda: c_admin.has(added[-1]) and d_admin.has(added[-1]), "the catalogue reaching new nodes")
            time.sleep(1.0)
            lat = propagation(c_admin, d_admin, a.samples, "Propagation")
            figures["propagation_ms_p50"] = percentile(lat, 0.5)
            figures["propagation_ms_p99"] = percentile(lat, 0.99)
            figures["propagation_samples"] = len(lat)

            # Propagation with the watch off: the schedule alone (every 2 s at both ends).
            sched = ("--no-live", "--sync-every", "2s")
            _, e_admin = node("sched-a", *sched)
            _, f_admin = node("sched-b", *sched)
            wait_until(lambda: e_admin.has(added[-1]) and f_admin.has(added[-1]), "the catalogue reaching new nodes")
            off = propagation(e_admin, f_admin, max(5, a.samples // 10), "Scheduled propagation")
            figures["propagation_no_watch_ms_p50"] = percentile(off, 0.5)
            figures["propagation_no_watch_ms_p99"] = percentile(off, 0.99)
            figures["propagation_no_watch_samples"] = len(off)
            figures["propagation_no_watch_sync_every_s"] = 2
            for x in (e_admin, f_admin):
                x.close()
            procs.stop("sched-a", "sched-b", "daejeon")

            # Fan-out: a new batch pushed by one centre, until every live node holds it.
            live = [c_admin, d_admin]
            for j in range(fanout - len(live)):
                live.append(node(f"fanout-{j}")[1])
            wait_until(lambda: all(x.has(added[-1]) for x in live), "the catalogue reaching the fan-out nodes", 1800)
            batch = min(a.n, 10_000)
            with ThreadPoolExecutor(8) as pool:
                more = list(pool.map(lambda i: a_admin.add(f"Fan-out listing {i}", a.n + i), range(batch)))
            t = time.perf_counter()
            a_admin.sync_now()
            wait_until(lambda: all(x.has(more[-1]) for x in live), "the fan-out batch reaching every node", 1800)
            took = time.perf_counter() - t
            figures["fanout_nodes"] = len(live)
            figures["fanout_batch"] = batch
            figures["fanout_s"] = took
            figures["fanout_per_node_per_s"] = batch / took
            figures["fanout_deliveries_per_s"] = batch * len(live) / took
            for x in [a_admin, b_admin, *live]:
                x.close()
        finally:
            procs.stop_all()

        # The hub's peak memory through pushes of a small and a large catalogue, nothing else running.
        figures.update(bench_push_memory(base, [10_000, 100_000] if a.full else [5_000, 20_000]))

        # HQ search on larger stores, SQLite and PostgreSQL, nothing else running.
        figures["search_size"] = search_size
        for backend in ("sqlite", "postgresql"):
            figures.update(bench_search(base, backend, search_size, a.samples))
    figures["total_s"] = time.perf_counter() - started
    info = benchlib.machine("sqlite (sync, search); postgresql 127.0.0.1:5432 (search)")
    if "search_postgresql_ms_p50" in figures:
        info["postgresql"] = postgres_version()
    report(a.n, figures, info)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "processes.json").write_text(json.dumps({"n": a.n, "machine": info, "figures": figures}, indent=2) + "\n")
    print(f"written {out / 'processes.json'}")
    # The ratios that compare runs, beside bench/run.py's in latest.json.
    figures["intake_vs_trivial_rpc"] = figures["intake_per_s_8_clients"] / figures["echo_rpc_per_s_8_clients"]
    latest = out / "latest.json"
    doc = json.loads(latest.read_text()) if latest.exists() else {"machine": info, "figures": {}}
    doc["figures"]["intake_vs_trivial_rpc"] = figures["intake_vs_trivial_rpc"]
    doc["figures"]["bulk_import_per_s"] = figures["bulk_import_per_s"]
    doc["figures"]["bulk_import_vs_initial_push"] = figures["bulk_import_vs_initial_push"]
    for name in ("bulk_import_cpu_us_per_offer_node", "bulk_import_cpu_us_per_offer_cli"):
        doc["figures"][name] = figures[name]
    doc["figures"]["intake_per_s_8_clients"] = figures["intake_per_s_8_clients"]
    doc["figures"]["echo_rpc_per_s_8_clients"] = figures["echo_rpc_per_s_8_clients"]
    for name in (
        "intake_node_cpu_ms_per_create",
        "echo_rpc_node_cpu_ms",
        "intake_cpu_bound_vs_trivial_rpc",
        "intake_floor_per_s_8_clients",
        "intake_floor_echo_rpc_per_s_8_clients",
        "intake_floor_vs_trivial_rpc",
        "intake_floor_cpu_ms_per_create",
        "intake_floor_echo_rpc_cpu_ms",
        "intake_floor_cpu_bound_vs_trivial_rpc",
    ):
        doc["figures"][name] = figures[name]
    # The initial sync between real processes (a hub and a node each with its own interpreter,
    # as deployed), against the verify ceiling measured here: beside bench/run.py's in-process ones.
    for way in ("push", "pull"):
        doc["figures"][f"initial_{way}_vs_verify_processes"] = (
            figures[f"initial_{way}_per_s"] / figures["verify_libsodium_per_s"]
        )
        # The same rate were the processor time both sides spend an offer spread over every core.
        doc["figures"][f"initial_{way}_cpu_bound_vs_verify"] = (
            figures[f"initial_{way}_cpu_bound_per_s"] / figures["verify_libsodium_per_s"]
        )
        for side in ("hub", "node"):
            spent = f"initial_{way}_cpu_us_per_offer_{side}"
            doc["figures"][spent] = figures[spent]
    doc["figures"]["initial_sync_processes_offers"] = a.n
    for name in ("push_memory_small_offers", "push_memory_big_offers", "push_memory_hub_peak_ratio"):
        doc["figures"][name] = figures[name]
    for size in (figures["push_memory_small_offers"], figures["push_memory_big_offers"]):
        doc["figures"][f"push_memory_hub_peak_rss_mb_{size}"] = figures[f"push_memory_hub_peak_rss_mb_{size}"]
    doc["processes_machine"] = info
    latest.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"intake vs trivial RPC {figures['intake_vs_trivial_rpc']:.3f}, written to {latest}")


JOBS_EVERY_S = 1.0


def bench_push_memory(base: Path, sizes: list[int]) -> dict[str, float]:
    """The hub's peak memory through an initial push, at each of `sizes` offers: for each
    size a new hub and a new centre (started with the CLI, real processes), the centre's
    store filled with `size` signed offers straight before it starts (benchlib, about 3.8 KB
    each, as its own), one round pushing them all to the hub; then the hub's and the node's peak
    resident memory (VmHWM) and what the hub held before the round. The sites of one size
    stop, and their folders go, before the next size starts."""
    out: dict[str, float] = {}
    for size in sizes:
        root = base / f"memory-{size}"
        root.mkdir()
        procs = Procs(root)
        try:
            hub_port = free_port()
            cli("hub", "init", "--data", str(root / "hq"), "--listen", f"127.0.0.1:{hub_port}")
            # The hub's jobs (figures, suggestions) every second, not every 30: each runs
            # beside the push whatever its length, as a long push meets them.
            hq = DataDir(root / "hq")
            hq.save(hq.load().with_updates(figures_every_s=JOBS_EVERY_S, suggest_every_s=JOBS_EVERY_S))
            hub = procs.serve("hub", "hq")
            token = cli(
                "hub", "invite", "--data", str(root / "hq"), "--centre", "brussels", "--name", "B", "--country", "BE"
            )
            cli(
                "node",
                "init",
                "--data",
                str(root / "brussels"),
                "--hub",
                f"127.0.0.1:{hub_port}",
                "--token",
                token.splitlines()[-1],
            )
            site = Site.open(DataDir(root / "brussels"), KINDS)  # the node is not running yet
            try:
                for start in range(0, size, 5000):
                    chunk = benchlib.signed_offers(site.key, site.site_id, min(5000, size - start), start=start)
                    benchlib.write_versions(site.store, chunk, local=True)
            finally:
                site.close()
            node = procs.serve("node", "brussels", "--sync-every", "0", "--no-live")
            out[f"push_memory_hub_start_rss_mb_{size}"] = rss_mb(hub.pid)
            brussels = Admin(root / "brussels")
            t = time.perf_counter()
            brussels.sync_now()
            out[f"push_memory_per_s_{size}"] = size / (time.perf_counter() - t)
            brussels.close()
            out[f"push_memory_hub_peak_rss_mb_{size}"] = peak_rss_mb(hub.pid)
            out[f"push_memory_node_peak_rss_mb_{size}"] = peak_rss_mb(node.pid)
        finally:
            procs.stop_all()
            shutil.rmtree(root)
    small, big = min(sizes), max(sizes)
    # Stable keys, whatever the sizes: the largest push's peak against the smallest's.
    out["push_memory_small_offers"] = small
    out["push_memory_big_offers"] = big
    peaks = (out[f"push_memory_hub_peak_rss_mb_{big}"], out[f"push_memory_hub_peak_rss_mb_{small}"])
    out["push_memory_hub_peak_ratio"] = peaks[0] / peaks[1]
    return out


def only_search(search_size: int, samples: int) -> None:
    figures: dict[str, Any] = {"search_size": search_size}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgresql"):
            figures.update(bench_search(Path(tmp), backend, search_size, samples))
    figures["total_s"] = time.perf_counter() - started
    info = benchlib.machine("sqlite and postgresql 127.0.0.1:5432 (search)")
    if "search_postgresql_ms_p50" in figures:
        info["postgresql"] = postgres_version()
    for k, v in figures.items():
        print(f"  {k:44} {v:12.2f}" if isinstance(v, float) else f"  {k:44} {v:>12}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "search.json").write_text(json.dumps({"machine": info, "figures": figures}, indent=2) + "\n")
    print(f"written {out / 'search.json'}")


def postgres_version() -> str:
    conn = pg_admin()
    if conn is None:
        return "?"
    with conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def report(n: int, f: dict[str, Any], info: dict[str, str]) -> None:
    """Each figure beside its limit from the same run."""
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"techbridge bench (separate processes, {n} listings of ~{f['envelope_body_bytes']:.0f} bytes)")

    def runs(k: str) -> str:
        return f"{f[k]:10.1f} ±{f[k + '_spread'] / 2:.0f} (median of {f[k + '_runs']})"

    small_peak = f[f"push_memory_hub_peak_rss_mb_{f['push_memory_small_offers']}"]
    big_peak = f[f"push_memory_hub_peak_rss_mb_{f['push_memory_big_offers']}"]
    rows = [
        (
            "intake, 8 clients /s",
            f"{f['intake_per_s_8_clients']:10.1f}",
            f"echo RPC {f['echo_rpc_per_s_8_clients']:.0f}/s",
        ),
        (
            "  node CPU ms a create / a check",
            f"{f['intake_node_cpu_ms_per_create']:10.2f} / {f['echo_rpc_node_cpu_ms']:.2f}",
            f"CPU bound vs echo {f['intake_cpu_bound_vs_trivial_rpc']:.2f}",
        ),
        (
            "intake's floor, 8 clients /s",
            f"{f['intake_floor_per_s_8_clients']:10.1f}",
            f"echo RPC {f['intake_floor_echo_rpc_per_s_8_clients']:.0f}/s: {f['intake_floor_vs_trivial_rpc']:.3f}",
        ),
        (
            "  floor CPU ms a create / a check",
            f"{f['intake_floor_cpu_ms_per_create']:10.2f} / {f['intake_floor_echo_rpc_cpu_ms']:.2f}",
            f"CPU bound vs echo {f['intake_floor_cpu_bound_vs_trivial_rpc']:.2f}",
        ),
        ("initial push /s", runs("initial_push_per_s"), ""),
        ("initial pull /s", runs("initial_pull_per_s"), ""),
        (
            "bulk import (listing import) /s",
            f"{f['bulk_import_per_s']:10.1f}",
            f"vs initial push {f['bulk_import_vs_initial_push']:.2f}",
        ),
        (
            "  CPU µs an offer, node / CLI",
            f"{f['bulk_import_cpu_us_per_offer_node']:10.0f} / {f['bulk_import_cpu_us_per_offer_cli']:.0f}",
            f"push: hub {f['initial_push_cpu_us_per_offer_hub']:.0f}, "
            f"node {f['initial_push_cpu_us_per_offer_node']:.0f}",
        ),
        ("  limit: verify 1 core /s", runs("verify_libsodium_per_s"), ""),
        ("  limit: gRPC stream /s", runs("grpc_stream_per_s"), "messages built once"),
        ("  limit: gRPC stream+pb /s", runs("grpc_stream_built_per_s"), "built from bytes, entries read"),
        ("no-op round ms", runs("noop_round_ms"), ""),
        (
            "propagation watch p50/p99 ms",
            f"{f['propagation_ms_p50']:10.1f} / {f['propagation_ms_p99']:.1f}",
            f"unary RTT {f['unary_rtt_ms_p50']:.2f} ms",
        ),
        (
            "propagation no watch p50/p99",
            f"{f['propagation_no_watch_ms_p50']:10.1f} / {f['propagation_no_watch_ms_p99']:.1f}",
            f"{f['propagation_no_watch_samples']} samples, --sync-every 2s",
        ),
        (
            f"fan-out {f['fanout_nodes']} nodes, per node /s",
            f"{f['fanout_per_node_per_s']:10.1f}",
            f"{f['fanout_batch']} in {f['fanout_s']:.1f} s; {f['fanout_deliveries_per_s']:.0f} deliveries/s; "
            f"vs push {f['fanout_per_node_per_s'] / f['initial_push_per_s']:.2f}",
        ),
        (
            "peak RSS hub / node MB",
            f"{f['hub_peak_rss_mb']:10.1f} / {f['node_peak_rss_mb']:.1f}",
            f"data {f['data_synced_mb']:.1f} MB",
        ),
        (
            f"hub peak MB, push of {f['push_memory_small_offers']:,} / {f['push_memory_big_offers']:,}",
            f"{small_peak:10.1f} / {big_peak:.1f}",
            f"ratio {f['push_memory_hub_peak_ratio']:.2f}",
        ),
    ]
    for backend in ("sqlite", "postgresql"):
        if f"search_{backend}_ms_p50" in f:
            rows.append(
                (
                    f"search {backend} {f['search_size']} p50/p95",
                    f"{f[f'search_{backend}_ms_p50']:10.1f} / {f[f'search_{backend}_ms_p95']:.1f}",
                    f"pk lookup {f[f'pk_lookup_{backend}_ms_p50']:.2f} ms; filled at "
                    f"{f[f'search_{backend}_store_apply_per_s']:.0f}/s",
                )
            )
            rows.append(
                (
                    "  facets, a common word p50/p95",
                    f"{f[f'search_{backend}_facets_common_ms_p50']:10.1f} / "
                    f"{f[f'search_{backend}_facets_common_ms_p95']:.1f}",
                    f"{f[f'search_{backend}_facets_common_hits_p50']:.0f} matches; index "
                    f"{f[f'search_{backend}_index_bytes_per_offer']:.0f} bytes an offer",
                )
            )
    push = f["initial_push_per_s"]
    pull = f["initial_pull_per_s"]
    for label, value, note in rows:
        print(f"{label:34} {value:34} {note}")
    verify_, stream = f["verify_libsodium_per_s"], f["grpc_stream_per_s"]
    print(
        f"initial push vs verify {push / verify_:.2f}, vs gRPC stream {push / stream:.2f}; "
        f"pull vs verify {pull / verify_:.2f}, vs gRPC stream {pull / stream:.2f}"
    )
    for way in ("push", "pull"):
        hub_us, node_us = f[f"initial_{way}_cpu_us_per_offer_hub"], f[f"initial_{way}_cpu_us_per_offer_node"]
        print(
            f"initial {way}: processor time an offer, hub {hub_us:.0f} µs + node {node_us:.0f} µs "
            f"(verify {1e6 / verify_:.0f} µs): on {CORES} cores at most {f[f'initial_{way}_cpu_bound_per_s']:.0f} /s, "
            f"{f[f'initial_{way}_cpu_bound_per_s'] / verify_:.2f} of verify"
        )
    for k, v in f.items():
        print(f"  {k:40} {v:12.2f}" if isinstance(v, float) else f"  {k:40} {v:>12}")


if __name__ == "__main__":
    main()
