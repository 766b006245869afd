"""What bench/run.py and bench/processes.py share: offers generated from a fixed
seed, signed versions written straight into a store, the limits a sync figure is
measured against (single-core verify, raw gRPC streaming of the same bytes), the
machine, and medians with their spread."""

from __future__ import annotations

import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from sync.clock import Stamp  # noqa: E402
from sync.codec import content_from_pb  # noqa: E402
from sync.envelope import Version, make_version, signatures_from_pb, stored_envelope_to_pb  # noqa: E402
from sync.ids import new_record_id  # noqa: E402
from sync.keys import SigningKey  # noqa: E402
from sync.kinds import Content, create_change, pins_of  # noqa: E402
from sync.server import build_server, channel  # noqa: E402
from sync.signing import VERSION_DOMAIN, verify  # noqa: E402
from sync.store import Store  # noqa: E402
from sync.tls import TlsFiles  # noqa: E402
from techbridge.v1 import records_pb2, sync_pb2, sync_pb2_grpc  # noqa: E402
from transfer import taxonomy  # noqa: E402
from transfer.records import LISTING, ListingStatus  # noqa: E402

# The batch the sync uses both ways (sync.config pull_batch / push_batch).
SYNC_BATCH = 500

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


def offer_pb(title: str, i: int) -> records_pb2.Listing:
    """Offer `i`: words in several languages, two technology keywords, a market keyword
    and two target countries, from a fixed seed per offer (about 3 KB)."""
    rnd = random.Random(i)
    words = " ".join(rnd.choice(VOCABULARY) for _ in range(60))
    return records_pb2.Listing(
        title=f"{title} {rnd.choice(VOCABULARY)} {rnd.choice(VOCABULARY)}",
        summary=words[:400],
        description=(words + " ") * 6,
        keywords=rnd.sample(TECH, 2),
        market_keywords=rnd.sample(MARKET, 1),
        taxonomy=taxonomy.CURRENT,
        target_countries=rnd.sample(COUNTRIES, 2),
    )


def offer_content(title: str, i: int) -> Content:
    return content_from_pb(LISTING, offer_pb(title, i), ListingStatus.SUBMITTED)


def signed_offers(key: SigningKey, site: str, n: int, *, start: int = 0, title: str = "Offer") -> list[Version]:
    """`n` offers created and signed by `site`, stamped one millisecond apart."""
    out = []
    base = 1_700_000_000_000
    for i in range(start, start + n):
        change = create_change(offer_content(title, i))
        rid, nonce = new_record_id(site, base + i, pins_of(LISTING, change))
        out.append(
            make_version(
                key, site=site, record_id=rid, hlc=Stamp(base + i, 0), change=change, record_nonce=nonce, kind=LISTING
            )
        )
    return out


def write_versions(store: Store, versions: Sequence[Version], *, local: bool, batch: int = 2000) -> None:
    """Write signed versions straight into a store (not through a site's API): as this
    site's own writes (`local`, what a node pushes) or as received from a peer."""
    for i in range(0, len(versions), batch):
        chunk = versions[i : i + batch]
        if local:
            store.append_local_batch(chunk, 1)
        else:
            store.apply_batch("bench", chunk, [], through_seq=0, now_ms=1)


def median_spread(values: Sequence[float]) -> tuple[float, float]:
    """The median and the spread (max - min) of several runs."""
    return statistics.median(values), max(values) - min(values)


def put_runs(figures: dict[str, Any], name: str, values: Sequence[float]) -> None:
    """`name` is the median of the runs; `name_spread` their max - min; `name_runs` how many."""
    med, spread = median_spread(values)
    figures[name] = med
    figures[f"{name}_spread"] = spread
    figures[f"{name}_runs"] = len(values)


def verify_rate(versions: Sequence[Version], public_key: bytes, repeats: int = 3) -> list[float]:
    """Single-core Ed25519 verifies/s of these versions' author signatures with the
    verifier the sync uses (libsodium via PyNaCl, `sync.signing.verify`), one figure per run."""
    jobs = [(v.signatures[0].signature, v.body) for v in versions]
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        for sig, body in jobs:
            if not verify(public_key, VERSION_DOMAIN, body, sig):
                raise AssertionError("a benchmark signature does not verify")
        out.append(len(jobs) / (time.perf_counter() - t))
    return out


def _pull_message(rows: list[tuple[bytes, Any]], start: int, total: int) -> sync_pb2.PullResponse:
    """The batch of SYNC_BATCH entries from `start`, built from stored bytes (rows repeated)."""
    msg = sync_pb2.PullResponse(through_seq=start + SYNC_BATCH, head_seq=total)
    for j in range(start, min(start + SYNC_BATCH, total)):
        body, sigs = rows[j % len(rows)]
        msg.entries.add(seq=j + 1).envelope.CopyFrom(stored_envelope_to_pb(body, sigs))
    return msg


class _StreamOnly:
    """A throwaway SyncService whose Pull streams given envelopes in batches, without
    reading, verifying or storing anything."""

    def __init__(self, messages: list[sync_pb2.PullResponse], rows: list[tuple[bytes, Any]], total: int) -> None:
        self.messages, self.rows, self.total = messages, rows, total

    def Pull(self, request: sync_pb2.PullRequest, context: grpc.ServicerContext) -> Iterator[sync_pb2.PullResponse]:
        if request.after_seq == 0:  # the messages built once: transport and protobuf only
            yield from self.messages
            return
        # Built per batch from the stored bytes, the way the hub's Pull builds them.
        for start in range(0, self.total, SYNC_BATCH):
            yield _pull_message(self.rows, start, self.total)


def grpc_stream_rates(
    versions: Sequence[Version], tls: TlsFiles, site_id: str, *, total: int = 10_000, repeats: int = 3
) -> dict[str, list[float]]:
    """Envelopes/s over a gRPC server stream on 127.0.0.1 with the project's server and
    channel (sync.server: options, keepalive, message limits, mutual TLS, the service
    boundary interceptor), in messages of SYNC_BATCH envelopes, `total` per run (the
    versions repeated). Two figures, a run each per repeat:

    * grpc_stream: messages built once; the client takes each message's entries.
      Transport, TLS and protobuf serialising/parsing only.
    * grpc_stream_built: each message built from the stored bytes as the hub's Pull
      builds it, and the client reads (seq, body, signatures) of each entry as the
      sync client does.
    """
    rows = [(v.body, v.signatures) for v in versions]
    messages = [_pull_message(rows, start, total) for start in range(0, total, SYNC_BATCH)]
    servicer = _StreamOnly(messages, rows, total)

    def register(server: grpc.Server) -> list[str]:
        # Only Pull, under the sync service's own name, with the generated messages.
        pull = grpc.unary_stream_rpc_method_handler(
            servicer.Pull,
            request_deserializer=sync_pb2.PullRequest.FromString,
            response_serializer=sync_pb2.PullResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("techbridge.v1.SyncService", {"Pull": pull}),)
        )
        return []

    bound = build_server("127.0.0.1:0", "bench-admin-token", register, site_id=site_id, tls=tls)
    out: dict[str, list[float]] = {"grpc_stream_per_s": [], "grpc_stream_built_per_s": []}
    try:
        ch = channel(f"127.0.0.1:{bound.port}", tls, expect=site_id)
        stub = sync_pb2_grpc.SyncServiceStub(ch)
        for rep in range(repeats + 1):  # the first run warms the connection up and is not counted
            for name, after in (("grpc_stream_per_s", 0), ("grpc_stream_built_per_s", 1)):
                got = 0
                t = time.perf_counter()
                for msg in stub.Pull(sync_pb2.PullRequest(after_seq=after, batch_size=SYNC_BATCH), timeout=120):
                    if after:
                        entries = [(e.seq, e.envelope.body, signatures_from_pb(e.envelope)) for e in msg.entries]
                        got += len(entries)
                    else:
                        got += len(msg.entries)
                took = time.perf_counter() - t
                assert got == total, (got, total)
                if rep:
                    out[name].append(total / took)
        ch.close()
    finally:
        bound.server.stop(None)
    return out


def machine(database: str = "sqlite") -> dict[str, str]:
    """What the figures were measured on."""
    from importlib.metadata import version

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"cores": str(os.cpu_count()), "cpu": cpu, "python": platform.python_version(), "database": database}
    for pkg in ("grpcio", "protobuf", "SQLAlchemy", "cryptography", "PyNaCl", "psycopg"):
        try:
            out[pkg] = version(pkg)
        except Exception:
            out[pkg] = "?"
    return out


def new_pg_database(prefix: str) -> tuple[str, Callable[[], None]] | None:
    """A new PostgreSQL database on the test server (127.0.0.1:5432, as the current user)
    named `prefix` and a random suffix, and how to drop it; None, said once, if no server
    answers."""
    import uuid

    try:
        import psycopg

        admin = psycopg.connect("postgresql://root@127.0.0.1:5432/test", autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"postgresql at 127.0.0.1:5432 not reachable ({exc.__class__.__name__}): its figures are skipped")
        return None
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin.execute(f"CREATE DATABASE {name}")

    def drop() -> None:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()

    return f"postgresql+psycopg://root@127.0.0.1:5432/{name}", drop
