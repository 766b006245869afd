"""Running a site's server until told to stop (shared by hub and node)."""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from sync import logs
from sync.errors import ConfigError
from sync.metrics import PeerStatusLike, SiteCollector, StoreFigures, serve_metrics
from sync.server import build_server
from sync.site import Site

log = logging.getLogger(__name__)


@dataclass
class RunningServer:
    site: Site
    server: grpc.Server
    port: int
    host: str
    enrol_port: int = 0
    insecure: bool = False
    # The staff console's address ("" when it is not served).
    web_url: str = ""
    # Where Prometheus scrapes this site ("" when metrics are not served).
    metrics_address: str = ""
    # The server's health service, and where it also answers in plain text for probes.
    health: health.HealthServicer | None = None
    health_address: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)
    # Called first when the server stops (background jobs).
    on_stop: list[Callable[[], None]] = field(default_factory=list)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, grace: float = 2.0) -> None:
        self.stopping.set()
        for hook in self.on_stop:
            hook()
        self.server.stop(grace).wait()
        self.site.data.clear_address()
        self.site.close()


def serve_site(
    site: Site,
    bind: str,
    register: Callable[[grpc.Server], list[str]],
    *,
    insecure: bool = False,
    enrol_bind: str | None = None,
) -> RunningServer:
    """Start the site's server on `bind` (mutual TLS unless `insecure`) and record the address it bound."""
    logs.set_site(site.site_id)
    try:
        tls = None if insecure else site.data.tls.load()
        if tls is not None:
            site.data.tls.check(site.site_id, tls)
        bound = build_server(
            bind, site.config.admin_token, register, site_id=site.site_id, tls=tls, enrol_listen=enrol_bind
        )
    except Exception:
        site.close()
        raise
    running = RunningServer(
        site, bound.server, bound.port, host_of(bind), bound.enrol_port, insecure, health=bound.health
    )
    enrol = f"{host_of(enrol_bind)}:{bound.enrol_port}" if enrol_bind else ""
    site.data.write_address(running.address, enrol=enrol, insecure=insecure)
    if insecure:
        log.warning(
            "%s serves WITHOUT TLS on %s (--insecure): for local development only", site.site_id, running.address
        )
    return running


def metrics_bind(listen: str) -> str:
    """`--metrics-listen` as HOST:PORT: a bare port is on loopback; "" or "off" is none."""
    listen = listen.strip()
    if listen in ("", "off"):
        return ""
    return f"127.0.0.1:{listen}" if listen.isdigit() else listen


def serve_site_metrics(
    running: RunningServer, peers: Callable[[], Iterable[PeerStatusLike]], listen: str | None = None
) -> None:
    """Serve the site's Prometheus metrics on `listen` (or site.json's `metrics_listen`), if
    either names an address; stopped with the server."""
    bind = metrics_bind(running.site.config.metrics_listen if listen is None else listen)
    if not bind:
        return
    site = running.site
    collector = SiteCollector(
        site.site_id,
        peers,
        lambda: StoreFigures(log_head=site.store.log_head(), size_bytes=site.store.size_bytes()),
        site.now_ms,
    )
    try:
        served = serve_metrics(bind, collector)
    except Exception:
        running.stop(grace=0)
        raise
    running.metrics_address = served.address
    running.on_stop.append(served.stop)
    site.data.write_metrics_address(served.address)
    log.info("metrics on http://%s/metrics", served.address)


def serve_health_port(running: RunningServer, listen: str | None = None) -> None:
    """Answer the gRPC health service alone, in plain text, on `listen` (or site.json's
    `health_listen`): for probes that speak no TLS (Kubernetes' gRPC probes, a load
    balancer). It says NOT_SERVING once the site begins to stop."""
    bind = metrics_bind(running.site.config.health_listen if listen is None else listen)
    if not bind or running.health is None:
        return
    probe = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="health"))
    health_pb2_grpc.add_HealthServicer_to_server(running.health, probe)
    try:
        port = probe.add_insecure_port(bind)
    except RuntimeError:  # grpcio's word for an address it cannot bind
        port = 0
    if port == 0:
        running.stop(grace=0)
        raise ConfigError(f"cannot answer health checks on {bind}: the address is in use (--health-listen moves it)")
    probe.start()
    running.health_address = f"{host_of(bind)}:{port}"
    running.site.data.write_health_address(running.health_address)
    health_servicer = running.health

    def stop_probe() -> None:
        health_servicer.enter_graceful_shutdown()
        probe.stop(0.5)

    running.on_stop.append(stop_probe)
    log.info("health checks in plain text on %s", running.health_address)


def host_of(listen: str) -> str:
    host = listen.rsplit(":", 1)[0]
    return "127.0.0.1" if host in ("", "0.0.0.0", "[::]") else host


# The youngest generation's threshold once a process serves (the interpreter's is 700).
YOUNG_GC_THRESHOLD = 10_000


def settle_heap() -> None:
    """Tell the cyclic garbage collector this process has started: what it holds now
    (modules, protobuf descriptors, table metadata, the site) lives as long as the
    process, so it is frozen out of every later collection (`gc.freeze`), and the
    youngest generation is collected every YOUNG_GC_THRESHOLD allocations instead of
    700. A received batch allocates hundreds of thousands of objects that reference
    counting frees; with the defaults the collector walked them, and the start-up heap,
    for about a tenth of the hub's time per offer. Collections still run: a cycle made
    later is freed."""
    gc.collect()
    gc.freeze()
    _young, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GC_THRESHOLD, middle, old)


# glibc's mallopt parameter for the number of malloc arenas (malloc.h: M_ARENA_MAX).
_M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def bound_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap the C allocator's arenas at `arenas` (glibc `mallopt(M_ARENA_MAX)`): arenas are
    made as threads first allocate, so a serving process calls this before it starts its
    threads. Uncapped, glibc gives each new thread an arena of its own, up to eight per
    core, and hands little of an arena's freed memory back, so each of a hub's receiving,
    verifying, checkpointing and job threads keeps the high-water mark of what passed
    through it and resident memory grows with a push's length. Returns whether the cap
    was set: not when the environment sets one (MALLOC_ARENA_MAX, or
    glibc.malloc.arena_max in GLIBC_TUNABLES: the operator's choice stands) nor off glibc."""
    if os.environ.get("MALLOC_ARENA_MAX") or "glibc.malloc.arena_max" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))


def wait_for_signal(running: RunningServer) -> None:
    """Settle the heap (`settle_heap`), block until SIGINT/SIGTERM, then stop gracefully."""
    settle_heap()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        running.stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not running.stopping.wait(0.5):
        pass
    running.stop()
