"""Server time of the staff console's pages at HQ over a large network.

    .venv/bin/python bench/console_bench.py [--offers 100000] [--samples 30] [--backend sqlite|postgresql]

A hub store is filled as bench/report_bench.py fills it (`--offers` offers over a year from
five centres, a tenth as many requests, a fifth as many interests, each through its
steps). HQ's console is served on a loopback port and a signed-in curator's client asks
for each page `--samples` times over real HTTP: Network, Search (empty, a word, a word
with a facet), Record (a different offer each time), Queues and Figures (this year), beside
the sign-in page (a page that reads nothing) in the same run. Prints and writes each
page's median and p95 in milliseconds and p95 as a share of the 300 ms limit the console
keeps (bench/results/console.json; `console_p95_ms_<page>` and
`console_p95_vs_limit_<page>` in latest.json).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import benchlib  # noqa: E402
import report_bench  # noqa: E402

from console.pages import console_pages  # noqa: E402
from console.web import start_console  # noqa: E402
from hub.console_pages import HQ_PAGES  # noqa: E402
from hub.console_pages import TEMPLATES as HQ_TEMPLATES  # noqa: E402
from hub.site import init_hub  # noqa: E402
from sync.config import DataDir  # noqa: E402
from sync.keys import SigningKey  # noqa: E402
from sync.protocol.hub_side import HubSide  # noqa: E402
from sync.site import Site  # noqa: E402
from tests.console_client import ConsoleClient, staff_member  # noqa: E402
from transfer.records import KINDS  # noqa: E402

LIMIT_MS = 300.0


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench(base: Path, backend: str, offers: int, samples: int) -> dict[str, Any]:
    db_url = f"sqlite:///{base}/hq.db"
    drop = None
    reuse = (base / "hq" / "site.json").exists() and backend == "sqlite"
    if backend == "postgresql":
        db_url, drop = report_bench.pg_hub_database()
    if not reuse:
        init_hub(base / "hq", listen="127.0.0.1:0", db_url=db_url)
    site = Site.open(DataDir(base / "hq"), KINDS, now_ms=lambda: report_bench.START + report_bench.YEAR_MS - 1)
    console = None
    try:
        t = time.perf_counter()
        if reuse:
            sizes = {"offers": offers, "reused": 1}
        else:
            report_bench.register_centres(site, SigningKey.load(DataDir(base / "hq").root_key))
            sizes = report_bench.fill(site, offers)
        load_s = time.perf_counter() - t
        if backend == "postgresql":
            with site.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        # A network at rest: every centre has taken what the hub holds (pending counts read
        # only what is newer than a centre's cursor).
        for peer in (*report_bench.CENTRES, "bench"):
            site.store.set_push_acked(peer, site.store.log_head())
        status = HubSide(site)
        console = start_console(
            site, status, console_pages(status, HQ_PAGES), listen="127.0.0.1:0", template_dirs=(HQ_TEMPLATES,)
        )
        if not reuse:
            staff_member(site, "bench", "curator")
        client = ConsoleClient(console.url)
        assert client.sign_in("bench").status_code == 303
        offer_ids = [r.record_id for r in site.records(origin=None, limit=2000, kind="listing")]
        rng = random.Random(7)
        pages: dict[str, Any] = {
            "sign_in": lambda: "/login",
            "network": lambda: "/network",
            "search": lambda: "/search",
            "search_text": lambda: f"/search?q=offer+{rng.randrange(offers)}",
            "search_facet": lambda: "/search?q=water&kind=listing&origin=daejeon",
            "record": lambda: f"/records/{rng.choice(offer_ids)}",
            "queues": lambda: "/queues",
            "figures": lambda: "/figures?period=2026",
        }
        out: dict[str, Any] = {**sizes, "load_s": round(load_s, 1)}
        anonymous = ConsoleClient(console.url)
        for name, path in pages.items():
            asking = anonymous if name == "sign_in" else client
            asking.get(path())  # warm
            times = []
            for _ in range(samples):
                t = time.perf_counter()
                r = asking.get(path())
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200, (name, r.status_code, r.text[:300])
            p95 = _pct(times, 0.95)
            out[name] = {
                "median_ms": round(statistics.median(times), 1),
                "p95_ms": round(p95, 1),
                "p95_vs_limit": round(p95 / LIMIT_MS, 3),
            }
            print(f"  {backend} {name:>13}: median {out[name]['median_ms']:8.1f} ms  p95 {p95:8.1f} ms", flush=True)
        client.close()
        anonymous.close()
        return out
    finally:
        if console is not None:
            console.stop()
        site.close()
        if drop:
            drop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--store", default="", help="keep the filled SQLite hub in DIR and reuse it next time")
    a = ap.parse_args()
    if a.store:
        Path(a.store).mkdir(parents=True, exist_ok=True)
        got = bench(Path(a.store), a.backend, a.offers, a.samples)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            got = bench(Path(tmp), a.backend, a.offers, a.samples)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    doc = {"machine": benchlib.machine(a.backend), "limit_ms": LIMIT_MS, "backend": a.backend, "figures": got}
    (out / "console.json").write_text(json.dumps(doc, indent=2) + "\n")
    latest = out / "latest.json"
    held = json.loads(latest.read_text()) if latest.exists() else {}
    for name, fig in got.items():
        if isinstance(fig, dict):
            held[f"console_p95_ms_{name}"] = fig["p95_ms"]
            held[f"console_p95_vs_limit_{name}"] = fig["p95_vs_limit"]
    latest.write_text(json.dumps(held, indent=2) + "\n")


if __name__ == "__main__":
    main()
