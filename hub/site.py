"""Creating a hub's data folder and running the hub."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import grpc

from console.pages import console_pages
from console.servicer import add_to_server as staff_service
from console.web import serve_console
from hub.console_pages import HQ_PAGES
from hub.console_pages import TEMPLATES as CONSOLE_TEMPLATES
from hub.registry import issue_registry
from hub.servicer import (
    EnrolmentServicer,
    EnrolPoint,
    HubAdminServicer,
    SyncServicer,
    rotate_in_registry,
)
from hub.suggestions import start_suggestion_job
from sync.clock import system_now_ms
from sync.config import (
    DataDir,
    SiteConfig,
    check_site_id,
    default_enrol_listen,
    default_web_listen,
    new_admin_token,
)
from sync.errors import ConfigError
from sync.keys import SigningKey, write_private
from sync.protocol.hub_side import HubSide
from sync.registry import Centre, CentreStatus, SiteKey, SiteRole
from sync.runtime import RunningServer, serve_health_port, serve_site, serve_site_metrics
from sync.site import Site
from sync.store import Store
from sync.tls import ca_der, issue, make_ca, make_key_and_csr
from techbridge.v1 import admin_pb2, admin_pb2_grpc, firm_pb2, firm_pb2_grpc, sync_pb2, sync_pb2_grpc
from transfer.admin import AdminServicer
from transfer.alerts import start_alert_job
from transfer.expiry import start_expiry_job
from transfer.firms import FirmServicer
from transfer.kept_figures import start_figure_job
from transfer.records import KINDS

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:7700"


def init_hub(
    path: Path,
    *,
    site_id: str = "hq",
    listen: str = DEFAULT_LISTEN,
    enrol_listen: str | None = None,
    db_url: str | None = None,
    names: tuple[str, ...] = (),
    web_listen: str | None = None,
    country: str = "CN",
) -> SiteConfig:
    """Make the root key, the hub's signing key, the CA and the hub's TLS
    certificate (for `names` besides its id, localhost and 127.0.0.1), the
    store and registry version 1."""
    check_site_id(site_id)
    if not (len(country) == 2 and country.isascii() and country.isupper()):
        raise ConfigError(f"HQ's country {country!r}: an ISO 3166-1 alpha-2 code such as CN")
    data = DataDir(path)
    fresh_folder = not path.exists()
    data.prepare_new()
    try:
        root, key = SigningKey.generate(), SigningKey.generate()
        root.save(data.root_key)
        key.save(data.signing_key)
        ca_key, ca_cert = make_ca(site_id)
        write_private(data.tls.ca_key, ca_key)
        tls_key, csr = make_key_and_csr(site_id)
        host = listen.rpartition(":")[0]
        extra = tuple(n for n in (*names, host) if n and n not in ("0.0.0.0", "[::]", "::"))
        data.tls.save(ca_cert, issue(ca_key, ca_cert, csr, site_id, extra, local_names=True), tls_key)
        config = SiteConfig(
            site_id=site_id,
            role="hub",
            listen=listen,
            enrol_listen=enrol_listen or default_enrol_listen(listen),
            db_url=db_url or data.default_db_url(),
            admin_token=new_admin_token(),
            root_public_key=root.public_bytes.hex(),
            web_listen=web_listen or default_web_listen(listen),
        )
        now = system_now_ms()
        store = Store.open(config.db_url, KINDS)
        try:
            hub = Centre(
                id=site_id,
                name="Headquarters",
                country=country,
                role=SiteRole.HUB,
                status=CentreStatus.ACTIVE,
                keys=(SiteKey(key.key_id, key.public_bytes),),
            )
            store.save_registry(issue_registry(root, (hub,), previous=None, now_ms=now), now)
        finally:
            store.close()
        data.save(config)
    except BaseException:
        if fresh_folder:  # leave nothing half made behind a failed start (a database that is down)
            shutil.rmtree(path, ignore_errors=True)
        raise
    log.info("hub %s initialised in %s", site_id, path)
    return config


def make_replica(
    source: Path,
    path: Path,
    *,
    listen: str,
    enrol_listen: str | None = None,
    web_listen: str | None = None,
) -> SiteConfig:
    """A data folder for another process of the hub at `source` on the same PostgreSQL
    database: the same keys, certificates and configuration, its own addresses. A hub on
    SQLite has no replicas (its store is a file of one process)."""
    src = DataDir(source)
    config = src.load()
    if config.role != "hub":
        raise ConfigError(f"{source} holds a {config.role}, not a hub: only a hub has replicas")
    if config.db_url.startswith("sqlite"):
        raise ConfigError(
            f"the hub at {source} keeps its store in SQLite, which one process owns: replicas need a "
            "PostgreSQL hub (hub init --db postgresql+psycopg://...)"
        )
    data = DataDir(path)
    data.prepare_new()
    try:
        for name in ("keys", "tls"):
            if (source / name).exists():
                shutil.copytree(source / name, path / name)
        for extra in source.iterdir():  # the console's HTTPS files and the like, but nothing of a running process
            if extra.is_file() and extra.name != data.config_file.name:
                shutil.copy2(extra, path / extra.name)
        replica = config.with_updates(
            listen=listen,
            enrol_listen=enrol_listen or default_enrol_listen(listen),
            web_listen=web_listen or default_web_listen(listen),
        )
        data.save(replica)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    log.info("replica of hub %s in %s", config.site_id, path)
    return replica


def start_hub(
    path: Path,
    *,
    listen: str | None = None,
    insecure: bool = False,
    web_listen: str | None = None,
    metrics_listen: str | None = None,
    health_listen: str | None = None,
    now_ms: Callable[[], int] = system_now_ms,
) -> RunningServer:
    """Open the hub's store and start serving, with its staff console and, if asked, its
    metrics (returns at once). `now_ms` is the site's clock. On PostgreSQL the hub follows
    the writes of other replicas on the same database (`Store.follow_other_writers`)."""
    data = DataDir(path)
    site = Site.open(data, KINDS, now_ms=now_ms)
    if site.pending_key() is not None:  # the hub's own registry is the authority
        site.drop_pending_key()
        log.warning("dropped a pending signing key this hub's registry never registered")
    root = SigningKey.load(data.root_key)
    enrol = EnrolPoint(
        ca_der=b"" if insecure else ca_der(data.tls.ca.read_bytes()),
        ca_key=b"" if insecure else data.tls.ca_key.read_bytes(),
        ca_cert=b"" if insecure else data.tls.ca.read_bytes(),
    )

    protocol = HubSide(site)

    def register(server: grpc.Server) -> list[str]:
        sync_pb2_grpc.add_SyncServiceServicer_to_server(SyncServicer(site, root, protocol), server)
        sync_pb2_grpc.add_EnrolmentServiceServicer_to_server(EnrolmentServicer(site, root, enrol), server)
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            AdminServicer(
                site,
                protocol,
                rotate=lambda: site.rotate_key(
                    lambda new, at: rotate_in_registry(site, root, site.site_id, new.public_bytes, at)
                ),
            ),
            server,
        )
        admin_pb2_grpc.add_HubAdminServiceServicer_to_server(HubAdminServicer(site, enrol, root), server)
        firm_pb2_grpc.add_FirmServiceServicer_to_server(FirmServicer(site), server)
        return [
            staff_service(site, server),
            firm_pb2.DESCRIPTOR.services_by_name["FirmService"].full_name,
            sync_pb2.DESCRIPTOR.services_by_name["SyncService"].full_name,
            sync_pb2.DESCRIPTOR.services_by_name["EnrolmentService"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["HubAdminService"].full_name,
        ]

    running = serve_site(
        site,
        listen or site.config.listen,
        register,
        insecure=insecure,
        enrol_bind=None if insecure else site.config.enrol_listen or default_enrol_listen(site.config.listen),
    )
    enrol.port = running.enrol_port
    serve_console(
        running, protocol, console_pages(protocol, HQ_PAGES), listen=web_listen, template_dirs=(CONSOLE_TEMPLATES,)
    )
    serve_site_metrics(running, protocol.peer_statuses, metrics_listen)
    serve_health_port(running, health_listen)
    if site.store.follow_other_writers(on_registry=site.reload_registry):
        log.info("following the writes of other hub replicas on this database")
    if site.config.expiry_every_s > 0:
        expiry = start_expiry_job(site, site.config.expiry_every_s)
        running.on_stop.append(lambda: expiry.shutdown(wait=False))
    if site.config.alert_every_s > 0:
        alerts = start_alert_job(site, site.config.alert_every_s, site.config.alert_webhook)
        running.on_stop.append(lambda: alerts.shutdown(wait=False))
    if site.config.figures_every_s > 0:
        counting = start_figure_job(site, site.config.figures_every_s)
        running.on_stop.append(lambda: counting.shutdown(wait=False))
    if site.config.suggest_every_s > 0:
        _, suggesting = start_suggestion_job(site, site.config.suggest_every_s)
        running.on_stop.append(lambda: suggesting.shutdown(wait=False))
    log.info("hub %s serving on %s (enrolment and firms on port %s)", site.site_id, running.address, running.enrol_port)
    return running
