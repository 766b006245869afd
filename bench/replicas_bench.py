"""Hub replicas on PostgreSQL: one replica against two on the same database, real processes
started with the techbridge CLI on 127.0.0.1.

    .venv/bin/python bench/replicas_bench.py [--n 4000] [--samples 50]

Each layout gets a fresh PostgreSQL database on 127.0.0.1:5432 (dropped afterwards) and
the same work:

* initial push: two nodes, each holding n/2 offers written straight into its store, push
  at once (through replica A both, or one through A and one through B);
* initial pull: two new nodes pull all n at once (both from A, or one from each);
* propagation: an offer added at a live node until a live node on the other replica holds
  it (watch streams on both; p50/p99 of --samples), beside the same with both nodes on
  replica A;

against the single-core Ed25519 verify rate of the same offers in the same run. Writes
bench/results/replicas.json and `replica_*` keys into bench/results/latest.json. Figures
only.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
from processes import Admin, Procs, cli, free_port, percentile, propagation  # noqa: E402

from sync.config import DataDir  # noqa: E402
from sync.keys import SigningKey  # noqa: E402
from sync.store import Store  # noqa: E402
from transfer.records import KINDS  # noqa: E402


def preload(path: Path, site: str, n: int, start: int) -> None:
    data = DataDir(path)
    store = Store.open(data.load().db_url, KINDS)
    try:
        benchlib.write_versions(
            store, benchlib.signed_offers(SigningKey.load(data.signing_key), site, n, start=start), local=True
        )
    finally:
        store.close()


def layout(base: Path, url: str, two: bool, n: int, samples: int) -> dict[str, Any]:
    procs = Procs(base)
    try:
        ports = free_port(), free_port()
        cli("hub", "init", "--data", str(base / "hq"), "--db", url, "--listen", f"127.0.0.1:{ports[0]}")
        cli(
            "hub",
            "replica",
            "--from",
            str(base / "hq"),
            "--data",
            str(base / "hq-b"),
            "--listen",
            f"127.0.0.1:{ports[1]}",
        )
        procs.serve("hub", "hq")
        procs.serve("hub", "hq-b")
        a_addr = f"127.0.0.1:{ports[0]}"
        b_addr = f"127.0.0.1:{ports[1]}" if two else a_addr
        turn = [a_addr, b_addr]
        made = 0

        def node(name: str, hub: str, *extra: str, load: int = 0, start: int = 0) -> Admin:
            nonlocal made
            made += 1
            token = cli(
                "hub", "invite", "--data", str(base / "hq"), "--centre", name, "--name", name, "--country", "BE"
            )
            cli("node", "init", "--data", str(base / name), "--hub", hub, "--token", token.splitlines()[-1])
            if load:
                preload(base / name, name, load, start)
            procs.serve("node", name, *extra)
            return Admin(base / name)

        quiet = ("--sync-every", "0", "--no-live")
        pushers = [node(f"push-{i}", turn[i], *quiet, load=n // 2, start=i * (n // 2)) for i in range(2)]
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda adm: adm.sync_now(), pushers))
        push = 2 * (n // 2) / (time.perf_counter() - t)
        pullers = [node(f"pull-{i}", turn[i], *quiet) for i in range(2)]
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(lambda adm: adm.sync_now(), pullers))
        pull = 2 * 2 * (n // 2) / (time.perf_counter() - t)  # versions delivered, both nodes together
        src, dst = node("live-a", a_addr), node("live-b", b_addr)
        time.sleep(2)  # both watch streams open
        lat = propagation(src, dst, samples, "Propagation")
        for adm in [*pushers, *pullers, src, dst]:
            adm.close()
        return {
            "initial_push_per_s": push,
            "initial_pull_versions_per_s": pull,
            "propagation_ms_p50": percentile(lat, 0.5),
            "propagation_ms_p99": percentile(lat, 0.99),
        }
    finally:
        procs.stop_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--samples", type=int, default=50)
    a = ap.parse_args()
    key = SigningKey.generate()
    verify = benchlib.median_spread(benchlib.verify_rate(benchlib.signed_offers(key, "x", 2000), key.public_bytes))[0]
    got: dict[str, Any] = {"verify_per_s_one_core": verify}
    for name, two in (("one_replica", False), ("two_replicas", True)):
        made = benchlib.new_pg_database("tb_bench")
        if made is None:
            raise SystemExit("replicas need PostgreSQL at 127.0.0.1:5432")
        db_url, drop = made
        try:
            with tempfile.TemporaryDirectory() as tmp:
                got[name] = layout(Path(tmp), db_url, two, a.n, a.samples)
        finally:
            drop()
        print(f"{name}: {json.dumps(got[name])}", flush=True)
    one, two_ = got["one_replica"], got["two_replicas"]
    got["push_two_vs_one"] = two_["initial_push_per_s"] / one["initial_push_per_s"]
    got["pull_two_vs_one"] = two_["initial_pull_versions_per_s"] / one["initial_pull_versions_per_s"]
    got["push_two_vs_verify"] = two_["initial_push_per_s"] / verify
    got["pull_two_vs_verify"] = two_["initial_pull_versions_per_s"] / verify
    print(
        f"offers {a.n}; verify {verify:,.0f}/s on one core\n"
        f"initial push (2 nodes at once): one replica {one['initial_push_per_s']:,.0f}/s, "
        f"two {two_['initial_push_per_s']:,.0f}/s ({got['push_two_vs_one']:.2f}x)\n"
        f"initial pull (2 nodes at once, versions delivered): one {one['initial_pull_versions_per_s']:,.0f}/s, "
        f"two {two_['initial_pull_versions_per_s']:,.0f}/s ({got['pull_two_vs_one']:.2f}x)\n"
        f"propagation node -> hub -> node, p50/p99: same replica {one['propagation_ms_p50']:.0f}/"
        f"{one['propagation_ms_p99']:.0f} ms, across replicas {two_['propagation_ms_p50']:.0f}/"
        f"{two_['propagation_ms_p99']:.0f} ms"
    )
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": benchlib.machine("postgresql"), "offers": a.n, "samples": a.samples, "figures": got}
    (out / "replicas.json").write_text(json.dumps(doc, indent=2) + "\n")
    latest = out / "latest.json"
    held = json.loads(latest.read_text()) if latest.exists() else {}
    for layout_name in ("one_replica", "two_replicas"):
        for k, v in got[layout_name].items():
            held[f"replica_{layout_name}_{k}"] = v
    for k in ("push_two_vs_one", "pull_two_vs_one", "push_two_vs_verify", "pull_two_vs_verify"):
        held[f"replica_{k}"] = got[k]
    latest.write_text(json.dumps(held, indent=2) + "\n")


if __name__ == "__main__":
    main()
