"""Figures from real processes: a hub and nodes started with the techbridge CLI
on 127.0.0.1, driven only through the CLI and the sites' gRPC admin API.

    .venv/bin/python bench/processes.py [--n 2000] [--samples 50]

Reports intake (listings/s through a node's API, 8 concurrent clients), the
initial sync (push of N to an empty hub; pull of N by a new node), a round with
nothing new, HQ search (a word and a keyword; p50/p95 beside a primary-key
lookup), propagation through the watch stream (p50/p99), fan-out (a batch of
up to 1,000 pushed by one centre until every one of --fanout live nodes holds
it), and the peak memory of the hub and a node. Listings are generated from a fixed seed (words in
several languages, taxonomy keywords, target countries). Writes bench/results/processes.json.
"""

from __future__ import annotations

import argparse
import json
import random
import signal
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

from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402

from sync import auth, taxonomy  # noqa: E402
from sync.config import DataDir  # noqa: E402
from sync.server import channel  # noqa: E402
from techbridge.v1 import admin_pb2, admin_pb2_grpc, records_pb2  # noqa: E402

TB = [sys.executable, "-m", "cli.main"]
VOCABULARY = (
    "membrane",
    "solar",
    "sensor",
    "battery",
    "robot",
    "vision",
    "water",
    "energy",
    "storage",
    "coating",
    "polymer",
    "catalyst",
    "laser",
    "wireless",
    "edge",
    "grid",
    "hydrogen",
    "desalination",
    "irrigation",
    "diagnostic",
    "vaccine",
    "textile",
    "recycling",
    "concrete",
    "membrana",
    "energía",
    "sensor",
    "batería",
    "agua",
    "Speicher",
    "Wasserstoff",
    "Sensoren",
    "태양광",
    "배터리",
    "센서",
    "ממברנה",
)
TECH = sorted(taxonomy.technology_terms(taxonomy.CURRENT) or ())
MARKET = sorted(taxonomy.market_terms(taxonomy.CURRENT) or ())
COUNTRIES = ["BE", "ES", "IL", "KR", "KZ", "CN", "DE", "FR"]


def cli(*args: str) -> str:
    r = subprocess.run([*TB, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if r.returncode:
        raise SystemExit(f"techbridge {' '.join(args)} failed: {r.stderr}")
    return r.stdout


def serve(role: str, data: Path, *extra: str) -> subprocess.Popen[bytes]:
    addr = data / "run" / "address"
    log = open(data.parent / f"{data.name}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*TB, role, "serve", "--data", str(data), *extra], cwd=ROOT, stdout=log, stderr=log)
    deadline = time.monotonic() + 30
    while not addr.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{role} {data.name} did not start")
        time.sleep(0.05)
    return proc


class Admin:
    def __init__(self, data: Path) -> None:
        d = DataDir(data)
        cfg = d.load()
        self.ch = channel(d.address_file.read_text().strip(), d.tls.load(), expect=cfg.site_id)
        self.md = auth.admin_metadata(cfg.admin_token)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.ch)
        self.node = admin_pb2_grpc.NodeAdminServiceStub(self.ch)

    def add(self, title: str, i: int = 0) -> str:
        rnd = random.Random(i)  # a fixed seed per listing: reproducible text, keywords, countries
        words = " ".join(rnd.choice(VOCABULARY) for _ in range(60))
        listing = records_pb2.Listing(
            title=f"{title} {rnd.choice(VOCABULARY)} {rnd.choice(VOCABULARY)}",
            summary=words[:400],
            description=(words + " ") * 6,
            keywords=rnd.sample(TECH, 2),
            market_keywords=rnd.sample(MARKET, 1),
            taxonomy=taxonomy.CURRENT,
            target_countries=rnd.sample(COUNTRIES, 2),
        )
        req = admin_pb2.AddRecordRequest(values=records_pb2.RecordValues(listing=listing))
        return self.admin.AddRecord(req, metadata=self.md, timeout=30).record.id

    def search(self, text: str, keyword: str) -> int:
        req = admin_pb2.SearchRecordsRequest(text=text, keywords=[keyword], page_size=20)
        return len(self.admin.SearchRecords(req, metadata=self.md, timeout=30).records)

    def sync_now(self) -> None:
        for _ in self.node.SyncNow(admin_pb2.SyncNowRequest(), metadata=self.md, timeout=900):
            pass

    def has(self, rid: str) -> bool:
        try:
            self.admin.GetRecord(admin_pb2.GetRecordRequest(id=rid), metadata=self.md, timeout=5)
            return True
        except Exception:
            return False


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=50)
    ap.add_argument("--fanout", type=int, default=4, help="live nodes that must all receive a new batch")
    a = ap.parse_args()
    figures: dict[str, Any] = {"n": a.n}
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        try:
            cli("hub", "init", "--data", str(base / "hq"), "--listen", "127.0.0.1:0")
            hub = serve("hub", base / "hq")
            procs.append(hub)
            hub_addr = (base / "hq" / "run" / "address").read_text().strip()

            def node(name: str, *extra: str) -> tuple[subprocess.Popen[bytes], Admin]:
                token = cli(
                    "hub", "invite", "--data", str(base / "hq"), "--centre", name, "--name", name, "--country", "BE"
                )
                cli(
                    "node",
                    "init",
                    "--data",
                    str(base / name),
                    "--hub",
                    hub_addr,
                    "--token",
                    token.strip().splitlines()[-1],
                )
                p = serve("node", base / name, *extra)
                procs.append(p)
                return p, Admin(base / name)

            _, a_admin = node("brussels", "--sync-every", "0", "--no-live")
            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                added = list(pool.map(lambda i: a_admin.add(f"Benchmark listing {i}", i), range(a.n)))
            figures["intake_per_s_8_clients"] = a.n / (time.perf_counter() - t)
            # The limit: a trivial RPC (the standard health check) on the same server stack, same clients.
            health = health_pb2_grpc.HealthStub(a_admin.ch)
            echoes = max(a.n, 500)
            t = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                list(pool.map(lambda _: health.Check(health_pb2.HealthCheckRequest(), timeout=10), range(echoes)))
            figures["echo_rpc_per_s_8_clients"] = echoes / (time.perf_counter() - t)
            rtt = []
            for _ in range(50):
                t = time.perf_counter()
                health.Check(health_pb2.HealthCheckRequest(), timeout=10)
                rtt.append((time.perf_counter() - t) * 1000)
            figures["unary_rtt_ms_p50"] = statistics.median(rtt)
            t = time.perf_counter()
            a_admin.sync_now()
            figures["initial_push_per_s"] = a.n / (time.perf_counter() - t)
            pb, b_admin = node("daejeon", "--sync-every", "0", "--no-live")
            t = time.perf_counter()
            b_admin.sync_now()
            figures["initial_pull_per_s"] = a.n / (time.perf_counter() - t)
            idle = []
            for _ in range(5):
                t = time.perf_counter()
                b_admin.sync_now()
                idle.append((time.perf_counter() - t) * 1000)
            figures["noop_round_ms_median"] = statistics.median(idle)
            # HQ search (a word and a keyword) against a primary-key lookup on the same store.
            hq = Admin(base / "hq")
            rnd = random.Random(11)
            queries = [(rnd.choice(VOCABULARY), rnd.choice(TECH)) for _ in range(a.samples)]
            for q in queries[:5]:  # warm-up
                hq.search(*q)
            took = []
            for q in queries:
                t = time.perf_counter()
                hq.search(*q)
                took.append((time.perf_counter() - t) * 1000)
            took.sort()
            figures["search_ms_p50"] = took[len(took) // 2]
            figures["search_ms_p95"] = took[min(len(took) - 1, int(len(took) * 0.95))]
            some = [
                v.id for v in hq.admin.ListRecords(admin_pb2.ListRecordsRequest(page_size=50), metadata=hq.md).records
            ]
            looks = []
            for rid in some:
                t = time.perf_counter()
                hq.has(rid)
                looks.append((time.perf_counter() - t) * 1000)
            figures["pk_lookup_ms_p50"] = statistics.median(looks)
            figures["hub_peak_rss_mb"] = peak_rss_mb(hub.pid)
            body = a_admin.admin.GetRecord(admin_pb2.GetRecordRequest(id=added[0]), metadata=a_admin.md).record
            figures["data_synced_mb"] = a.n * body.values.ByteSize() / 1e6
            figures["node_peak_rss_mb"] = peak_rss_mb(pb.pid)

            _, c_admin = node("tel-aviv")
            _, d_admin = node("toledo")
            # Both new nodes first take in the catalogue (watch streams open, initial pull done).
            deadline = time.monotonic() + 600
            while not (c_admin.has(added[-1]) and d_admin.has(added[-1])):
                if time.monotonic() > deadline:
                    raise SystemExit("the new nodes did not take in the catalogue within 10 minutes")
                time.sleep(0.1)
            time.sleep(1.0)
            lat = []
            for i in range(a.samples):
                t = time.perf_counter()
                rid = c_admin.add(f"Propagation {i}")
                while not d_admin.has(rid):
                    if time.perf_counter() - t > 30:
                        raise SystemExit("a listing did not arrive within 30 s")
                    time.sleep(0.002)
                lat.append((time.perf_counter() - t) * 1000)
            lat.sort()
            figures["propagation_ms_p50"] = lat[len(lat) // 2]
            figures["propagation_ms_p99"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))]

            # Fan-out: a new batch pushed by one centre, until every live node holds it.
            live = [c_admin, d_admin]
            for j in range(a.fanout - len(live)):
                live.append(node(f"fanout-{j}")[1])
            deadline = time.monotonic() + 900
            while not all(x.has(added[-1]) for x in live):
                if time.monotonic() > deadline:
                    raise SystemExit("the fan-out nodes did not take in the catalogue within 15 minutes")
                time.sleep(0.2)
            batch = min(a.n, 1000)
            with ThreadPoolExecutor(8) as pool:
                more = list(pool.map(lambda i: a_admin.add(f"Fan-out listing {i}", a.n + i), range(batch)))
            t = time.perf_counter()
            a_admin.sync_now()
            while not all(x.has(more[-1]) for x in live):
                if time.perf_counter() - t > 900:
                    raise SystemExit("the fan-out batch did not reach every node within 15 minutes")
                time.sleep(0.02)
            figures[f"fanout_{len(live)}_nodes_per_s"] = batch / (time.perf_counter() - t)
            figures["fanout_batch"] = batch
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
    print(f"techbridge bench (separate processes, {a.n} listings)")
    for k, v in figures.items():
        print(f"{k:32} {v:12.1f}" if isinstance(v, float) else f"{k:32} {v:12}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "processes.json").write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
