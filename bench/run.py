"""First benchmarks: how fast a node's listings reach the hub and a new node,
beside the limits of the stack measured in the same run.

    .venv/bin/python bench/run.py [--n 2000]      (make bench; make bench-quick uses --n 500)

Prints a table and writes the figures to bench/results/latest.json. Figures
only: nothing here passes or fails on time. The hub and nodes run in this
process on 127.0.0.1 with real gRPC, real SQLite files and real signatures.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from hub.site import init_hub, start_hub  # noqa: E402
from node.site import init_node, start_node  # noqa: E402
from sync import auth  # noqa: E402
from sync.clock import Stamp  # noqa: E402
from sync.config import DataDir  # noqa: E402
from sync.envelope import make_listing_version  # noqa: E402
from sync.keys import SigningKey  # noqa: E402
from sync.records import Content, create_change, listing_content  # noqa: E402
from sync.server import channel  # noqa: E402
from sync.signing import VERSION_DOMAIN, verify  # noqa: E402
from sync.store import Store  # noqa: E402
from techbridge.v1 import admin_pb2, admin_pb2_grpc  # noqa: E402


def listing(i: int) -> Content:
    text = f"Listing {i}: " + ("membrane desalination solar storage battery sensor " * 40)[:1900]
    return listing_content(title=f"Benchmark technology {i}", summary=text[:480], description=text, trl=5)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def bench_crypto(n: int) -> dict[str, float]:
    key = SigningKey.generate()
    versions = [
        make_listing_version(key, site="b", record_id=f"r{i}", hlc=Stamp(i + 1, 0), change=create_change(listing(i)))
        for i in range(n)
    ]
    pub = key.public_bytes
    openssl = Ed25519PublicKey.from_public_bytes(pub)
    t = time.perf_counter()
    for v in versions:
        openssl.verify(v.signatures[0].signature, VERSION_DOMAIN + v.body)
    out = {"verify_cryptography_per_s": rate(n, time.perf_counter() - t), "body_bytes": len(versions[0].body)}
    t = time.perf_counter()
    for v in versions:  # what the sync path uses (libsodium)
        assert verify(pub, VERSION_DOMAIN, v.body, v.signatures[0].signature)
    out["verify_libsodium_per_s"] = rate(n, time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as d:
        store = Store.open(f"sqlite:///{d}/s.db")
        t = time.perf_counter()
        for i in range(0, n, 500):
            store.apply_batch("b", versions[i : i + 500], [], through_seq=i + 500, now_ms=1)
        out["store_apply_sqlite_per_s"] = rate(n, time.perf_counter() - t)
        store.close()
    return out


def bench_sync(n: int, base: Path) -> dict[str, float]:
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
            a.running.site.add_listing(listing(i))
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000, help="listings per figure (default 2000)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        figures = {**bench_crypto(a.n), **bench_sync(a.n, Path(d))}
    ceiling = figures["verify_libsodium_per_s"]
    print(f"techbridge bench: {a.n} signed listings of {figures['body_bytes']:.0f} bytes, {platform.python_version()}")
    print(f"{'figure':34} {'value':>12}  {'vs verify ceiling':>18}")
    for k, v in figures.items():
        if k == "body_bytes":
            continue
        ratio = f"{v / ceiling:.2f}" if k.endswith("_per_s") else ""
        print(f"{k:34} {v:12.1f}  {ratio:>18}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "latest.json").write_text(json.dumps({"n": a.n, "figures": figures}, indent=2) + "\n")
    print(f"written {out / 'latest.json'}")


if __name__ == "__main__":
    main()
