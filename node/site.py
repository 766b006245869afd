"""Creating a node's data folder by enrolment, and running the node."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from apscheduler.schedulers.background import BackgroundScheduler

from console.pages import console_pages
from console.servicer import add_to_server as staff_service
from console.web import serve_console
from node.console_pages import CENTRE_PAGES
from node.console_pages import TEMPLATES as CONSOLE_TEMPLATES
from node.live import Kicker, Watcher
from node.schedule import start_schedule
from node.servicer import NodeAdminServicer, NodeStatus
from sync.clock import system_now_ms
from sync.codec import decode_registry
from sync.config import (
    DataDir,
    SiteConfig,
    check_site_id,
    default_enrol_listen,
    default_web_listen,
    new_admin_token,
)
from sync.errors import ConfigError, VerificationFailed
from sync.keys import SigningKey, key_id_of
from sync.protocol.node_side import UNARY_DEADLINE_S, SyncClient, hub_addresses
from sync.registry import check_registry_signature
from sync.runtime import RunningServer, serve_health_port, serve_site, serve_site_metrics
from sync.server import channel
from sync.signing import ENROL_DOMAIN, sign
from sync.site import Site
from sync.store import Store
from sync.tls import ca_pem_from_der, make_key_and_csr
from sync.token import JoinToken
from techbridge.v1 import admin_pb2, admin_pb2_grpc, firm_pb2, firm_pb2_grpc, sync_pb2, sync_pb2_grpc
from transfer.admin import AdminServicer
from transfer.alerts import start_alert_job
from transfer.expiry import start_expiry_job
from transfer.firms import FirmServicer
from transfer.kept_figures import start_figure_job
from transfer.records import KINDS

log = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:0"


def init_node(
    path: Path,
    *,
    hub: str,
    token: str,
    listen: str = DEFAULT_LISTEN,
    db_url: str | None = None,
    insecure: bool = False,
    web_listen: str | None = None,
) -> SiteConfig:
    """Make the node's keys, enrol it at the hub with the token (server-side TLS
    checked against the CA in the token), store its certificate and the registry."""
    parsed = JoinToken.decode(token)
    centre_id = parsed.centre_id
    check_site_id(centre_id)
    hub_tls = parsed.enrol_port != 0
    if not hub_tls and not insecure:
        raise ConfigError(
            "this token comes from a hub serving without TLS; enrol with --insecure (local development only)"
        )
    data = DataDir(path)
    fresh_folder = not path.exists()
    data.prepare_new()
    try:
        return _enrol(
            data, parsed, token=token, hub=hub, listen=listen, db_url=db_url, hub_tls=hub_tls, web_listen=web_listen
        )
    except BaseException:
        if fresh_folder:  # leave nothing half made behind a refused enrolment
            shutil.rmtree(path, ignore_errors=True)
        raise


def _enrol(
    data: DataDir,
    parsed: JoinToken,
    *,
    token: str,
    hub: str,
    listen: str,
    db_url: str | None,
    hub_tls: bool,
    web_listen: str | None,
) -> SiteConfig:
    centre_id, hub_id, root_key_id = parsed.centre_id, parsed.hub_id, parsed.root_key_id
    key = SigningKey.generate()
    tls_key, csr = make_key_and_csr(centre_id) if hub_tls else (b"", b"")
    ca_pem = ca_pem_from_der(parsed.ca_der) if hub_tls else b""
    # Several addresses (replicas of the hub): enrol at the first, on the token's open port.
    first = hub_addresses(hub)[0]
    enrol_at = f"{first.rpartition(':')[0]}:{parsed.enrol_port}" if hub_tls else first
    with channel(enrol_at, ca_only=ca_pem if hub_tls else None, expect=hub_id if hub_tls else None) as ch:
        resp = sync_pb2_grpc.EnrolmentServiceStub(ch).Enrol(
            sync_pb2.EnrolRequest(
                token=token,
                centre_id=centre_id,
                public_key=key.public_bytes,
                proof=sign(key, ENROL_DOMAIN, JoinToken.proof_bytes(token, centre_id)),
                tls_csr=csr,
            ),
            timeout=UNARY_DEADLINE_S,
        )
    if key_id_of(resp.root_public_key) != root_key_id:
        raise VerificationFailed("the hub's root key does not match the one named in the token")
    registry = decode_registry(resp.registry.body, resp.registry.signature.signature)
    check_registry_signature(registry.body, resp.registry.signature.key_id, registry.signature, resp.root_public_key)
    entry = registry.key(key.key_id)
    if entry is None or entry[0].id != centre_id:
        raise VerificationFailed("the registry returned by the hub does not hold this node's key")
    key.save(data.signing_key)
    if hub_tls:
        if not resp.tls_certificate:
            raise VerificationFailed("the hub issued no TLS certificate")
        data.tls.save(ca_pem, resp.tls_certificate, tls_key)
    config = SiteConfig(
        site_id=centre_id,
        role="node",
        listen=listen,
        db_url=db_url or data.default_db_url(),
        admin_token=new_admin_token(),
        root_public_key=resp.root_public_key.hex(),
        hub_address=hub,
        hub_id=resp.hub_id or hub_id,
        hub_insecure=not hub_tls,
        web_listen=web_listen or default_web_listen(listen),
    )
    store = Store.open(config.db_url, KINDS)
    try:
        store.save_registry(registry, registry.issued_at_ms)
    finally:
        store.close()
    data.save(config)
    log.info("node %s enrolled at %s", centre_id, hub)
    return config


@dataclass
class RunningNode:
    running: RunningServer
    client: SyncClient
    scheduler: BackgroundScheduler | None
    kicker: Kicker | None = None
    watcher: Watcher | None = None

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
        if self.watcher is not None:
            self.watcher.stop()
        if self.kicker is not None:
            self.kicker.stop()
        self.running.stop()


def start_node(
    path: Path,
    *,
    sync_every_s: float | None = None,
    listen: str | None = None,
    insecure: bool = False,
    live: bool = True,
    web_listen: str | None = None,
    metrics_listen: str | None = None,
    health_listen: str | None = None,
    now_ms: Callable[[], int] = system_now_ms,
) -> RunningNode:
    """Start the node's admin server and, if an interval is set, its sync schedule."""
    data = DataDir(path)
    site = Site.open(data, KINDS, now_ms=now_ms)
    if site.config.role != "node":
        site.close()
        raise ConfigError(f"{path} holds a {site.config.role}, not a node")
    hub_tls = None if site.config.hub_insecure else data.tls.load()
    client = SyncClient(site, site.config.hub_address, site.config.hub_id, hub_tls)
    status = NodeStatus(client, site.config.hub_id)

    def register(server: grpc.Server) -> list[str]:
        admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(site, status, rotate=client.rotate_key), server)
        admin_pb2_grpc.add_NodeAdminServiceServicer_to_server(NodeAdminServicer(client), server)
        firm_pb2_grpc.add_FirmServiceServicer_to_server(FirmServicer(site), server)
        return [
            staff_service(site, server),
            firm_pb2.DESCRIPTOR.services_by_name["FirmService"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
            admin_pb2.DESCRIPTOR.services_by_name["NodeAdminService"].full_name,
        ]

    plain = insecure or site.config.hub_insecure
    bind = listen or site.config.listen
    # The open port: firms reach it with server-side TLS only (no certificate).
    open_bind = None if plain else site.config.enrol_listen or default_enrol_listen(bind)
    running = serve_site(site, bind, register, insecure=plain, enrol_bind=open_bind)
    serve_console(
        running, status, console_pages(status, CENTRE_PAGES), listen=web_listen, template_dirs=(CONSOLE_TEMPLATES,)
    )
    serve_site_metrics(running, status.peer_statuses, metrics_listen)
    serve_health_port(running, health_listen)
    if site.config.expiry_every_s > 0:
        expiry = start_expiry_job(site, site.config.expiry_every_s)
        running.on_stop.append(lambda: expiry.shutdown(wait=False))
    if site.config.alert_every_s > 0:
        alerts = start_alert_job(site, site.config.alert_every_s, site.config.alert_webhook)
        running.on_stop.append(lambda: alerts.shutdown(wait=False))
    if site.config.figures_every_s > 0:
        counting = start_figure_job(site, site.config.figures_every_s)
        running.on_stop.append(lambda: counting.shutdown(wait=False))
    every = site.config.sync_every_s if sync_every_s is None else sync_every_s
    scheduler = start_schedule(client, every) if every > 0 else None
    kicker = watcher = None
    if live:
        kicker = Kicker(client)
        watcher = Watcher(site, client, site.config.hub_id, hub_tls, kicker)
        site.on_local_write.append(kicker.kick)
        status.watcher = watcher
        kicker.start()
        watcher.start()
    log.info(
        "node %s serving on %s, syncing with %s every %ss%s",
        site.site_id,
        running.address,
        site.config.hub_address,
        every,
        " and at once through a watch stream" if live else "",
    )
    return RunningNode(running, client, scheduler, kicker, watcher)
