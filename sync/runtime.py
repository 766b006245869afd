"""Running a site's server until told to stop (shared by hub and node)."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import FrameType

import grpc

from sync import logs
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
        bound = build_server(
            bind, site.config.admin_token, register, site_id=site.site_id, tls=tls, enrol_listen=enrol_bind
        )
    except Exception:
        site.close()
        raise
    running = RunningServer(site, bound.server, bound.port, host_of(bind), bound.enrol_port, insecure)
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


def host_of(listen: str) -> str:
    host = listen.rsplit(":", 1)[0]
    return "127.0.0.1" if host in ("", "0.0.0.0", "[::]") else host


def wait_for_signal(running: RunningServer) -> None:
    """Block until SIGINT/SIGTERM, then stop gracefully."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signum)
        running.stopping.set()

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    while not running.stopping.wait(0.5):
        pass
    running.stop()
