"""A site's figures for Prometheus (`prometheus_client`), served on `--metrics-listen`.

Counted as things happen (module-level metrics, one set per process):

* `techbridge_rpcs_total{method,code}` and `techbridge_rpc_seconds{method}`: every call the
  site's gRPC server answers, by status code, and how long it took (a stream: how long it
  was open);
* `techbridge_versions_received_total{peer}`, `..._stored_total{peer}`,
  `..._refused_total{peer,reason}`: what the receive step did with a peer's versions;
* `techbridge_signature_verifications_total{outcome}`: Ed25519 verifications;
* `techbridge_sync_rounds_total{peer,outcome}` and `techbridge_sync_round_seconds{peer}`:
  a node's rounds with its hub;
* `techbridge_watch_streams_open`: the watch streams the hub holds open;
* `techbridge_job_runs_total{job,outcome}`: scheduled jobs' runs (ok, failed, skipped when
  another process on the store had the turn).

Read from the store when scraped (`SiteCollector`): per peer the versions still to send and
to receive (`techbridge_peer_versions_behind{peer,direction}`), the seconds since the last
successful exchange, whether it watches; the log's head (the versions held) and the
store's size in bytes.

No label carries a key, a token or a record's content: peers are site ids, methods are the
gRPC method names, reasons are the reason codes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from sync.errors import ConfigError

log = logging.getLogger(__name__)

RPCS = Counter("techbridge_rpcs", "gRPC calls answered, by method and status code", ["method", "code"])
RPC_SECONDS = Histogram(
    "techbridge_rpc_seconds",
    "Time to answer a gRPC call (a stream: how long it was open)",
    ["method"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
VERSIONS_RECEIVED = Counter("techbridge_versions_received", "Versions received from a peer", ["peer"])
VERSIONS_STORED = Counter("techbridge_versions_stored", "Versions received and stored (new here)", ["peer"])
VERSIONS_REFUSED = Counter("techbridge_versions_refused", "Versions refused, by reason code", ["peer", "reason"])
VERIFICATIONS = Counter("techbridge_signature_verifications", "Ed25519 verifications", ["outcome"])
ROUNDS = Counter("techbridge_sync_rounds", "Sync rounds with the hub, by outcome", ["peer", "outcome"])
ROUND_SECONDS = Histogram(
    "techbridge_sync_round_seconds",
    "Duration of a sync round",
    ["peer"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
WATCH_STREAMS = Gauge("techbridge_watch_streams_open", "Watch streams this hub holds open")
JOB_RUNS = Counter("techbridge_job_runs", "Scheduled job runs, by outcome", ["job", "outcome"])


class PeerStatusLike(Protocol):
    peer: str
    last_success_ms: int
    pending_push: int
    pending_pull: int
    watching: bool


@dataclass(frozen=True)
class StoreFigures:
    log_head: int
    size_bytes: int


class SiteCollector(Collector):
    """The figures read from a site's store at each scrape."""

    def __init__(
        self,
        site_id: str,
        peers: Callable[[], Iterable[PeerStatusLike]],
        store: Callable[[], StoreFigures],
        now_ms: Callable[[], int],
    ) -> None:
        self._site_id = site_id
        self._peers = peers
        self._store = store
        self._now_ms = now_ms

    def collect(self) -> Iterator[GaugeMetricFamily]:
        behind = GaugeMetricFamily(
            "techbridge_peer_versions_behind",
            "Versions still to send to a peer (direction=send) or to receive from it (direction=receive)",
            labels=["peer", "direction"],
        )
        since = GaugeMetricFamily(
            "techbridge_peer_seconds_since_success",
            "Seconds since the last successful exchange with a peer (absent: never)",
            labels=["peer"],
        )
        watching = GaugeMetricFamily(
            "techbridge_peer_watching", "1 while a watch stream with the peer is open", labels=["peer"]
        )
        now = self._now_ms()
        try:
            for p in self._peers():
                behind.add_metric([p.peer, "send"], p.pending_push)
                behind.add_metric([p.peer, "receive"], p.pending_pull)
                if p.last_success_ms:
                    since.add_metric([p.peer], max(0.0, (now - p.last_success_ms) / 1000))
                watching.add_metric([p.peer], 1 if p.watching else 0)
            figures = self._store()
        except Exception:  # a scrape while the store is unreachable answers what it can
            log.warning("reading the store for metrics failed", exc_info=True)
            yield from (behind, since, watching)
            return
        yield from (behind, since, watching)
        for name, value, text in (
            ("techbridge_store_log_head", figures.log_head, "The newest position of this site's log (versions held)"),
            ("techbridge_store_size_bytes", figures.size_bytes, "The store's size on disk"),
        ):
            yield GaugeMetricFamily(name, text, value=value)


class _ProcessMetrics(Collector):
    """The module-level metrics (and the process's own: CPU, memory), for a site's registry."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


@dataclass
class MetricsServer:
    address: str
    stop: Callable[[], None]


def serve_metrics(listen: str, collector: SiteCollector) -> MetricsServer:
    """Serve the process's metrics and `collector`'s on http://`listen`/metrics. A port in
    use is a ConfigError naming the flag that moves it."""
    host, _, port_text = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"--metrics-listen {listen!r}: HOST:PORT, e.g. 127.0.0.1:9100") from None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessMetrics())
    registry.register(collector)
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"cannot serve metrics on {listen}: {exc.strerror or exc} (--metrics-listen HOST:PORT moves it)"
        ) from None
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return MetricsServer(f"{shown}:{bound}", stop)
