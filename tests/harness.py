"""Real sites for tests: hubs and nodes with real gRPC servers on 127.0.0.1:0,
real SQLite files under the test's tmp_path, and real keys."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from cli.firmclient import FirmClient, FirmKeyFile
from hub.site import init_hub, start_hub
from node.site import RunningNode, init_node, start_node
from sync import auth
from sync.clock import Stamp, system_now_ms
from sync.config import DataDir
from sync.envelope import Version, make_version
from sync.ids import new_record_id
from sync.keys import SigningKey
from sync.kinds import Change, FieldValue, create_change, make_content, pins_of
from sync.protocol.node_side import RoundResult
from sync.runtime import RunningServer
from sync.server import channel
from sync.store import Store
from sync.tls import TlsFiles
from techbridge.v1 import admin_pb2, admin_pb2_grpc, envelope_pb2, records_pb2, sync_pb2, sync_pb2_grpc
from transfer.records import KINDS, LISTING, REQUEST, listing_content

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Site:
    path: Path
    admin_token: str
    address: str
    _channel: grpc.Channel | None = field(default=None, repr=False)

    @property
    def ch(self) -> grpc.Channel:
        if self._channel is None:
            self._channel = channel(self.address, self.tls, expect=DataDir(self.path).load().site_id)
        return self._channel

    @property
    def tls(self) -> TlsFiles:
        """This site's own certificate: what its CLI presents."""
        return DataDir(self.path).tls.load()

    @property
    def md(self) -> tuple[tuple[str, str | bytes], ...]:
        return auth.admin_metadata(self.admin_token)

    @property
    def admin(self) -> admin_pb2_grpc.AdminServiceStub:
        return admin_pb2_grpc.AdminServiceStub(self.ch)

    def add_record(self, title: str, **fields: Any) -> str:
        resp = self.admin.AddRecord(
            admin_pb2.AddRecordRequest(
                values=records_pb2.RecordValues(listing=records_pb2.Listing(title=title, **fields))
            ),
            metadata=self.md,
            timeout=10,
        )
        return resp.record.id

    def listings(self, origin: str = "") -> list[admin_pb2.RecordView]:
        out: list[admin_pb2.RecordView] = []
        token = ""
        while True:
            resp = self.admin.ListRecords(
                admin_pb2.ListRecordsRequest(origin=origin, page_size=1000, page_token=token),
                metadata=self.md,
                timeout=10,
            )
            out.extend(resp.records)
            token = resp.next_page_token
            if not token:
                return out

    def show(self, record_id: str) -> admin_pb2.RecordView:
        return self.admin.GetRecord(admin_pb2.GetRecordRequest(id=record_id), metadata=self.md, timeout=10).record

    def close_channel(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None


@dataclass
class Hub(Site):
    running: RunningServer | None = None

    def invite(self, centre: str, name: str = "", country: str = "IL", ttl_s: int = 0) -> str:
        resp = admin_pb2_grpc.HubAdminServiceStub(self.ch).Invite(
            admin_pb2.InviteRequest(centre_id=centre, name=name or centre.title(), country=country, ttl_seconds=ttl_s),
            metadata=self.md,
            timeout=10,
        )
        return resp.token

    def stop(self) -> None:
        self.close_channel()
        if self.running is not None:
            self.running.stop(grace=0.5)
            self.running = None


@dataclass
class Node(Site):
    node: RunningNode | None = None

    def sync(self) -> RoundResult:
        assert self.node is not None
        return self.node.client.run_round()

    def stop(self) -> None:
        self.close_channel()
        if self.node is not None:
            self.node.stop()
            self.node = None


def make_hub(path: Path) -> Hub:
    cfg = init_hub(path, listen="127.0.0.1:0")
    running = start_hub(path)
    return Hub(path=path, admin_token=cfg.admin_token, address=running.address, running=running)


def make_node(
    hub: Hub,
    path: Path,
    centre: str,
    *,
    country: str = "IL",
    sync_every_s: float = 0,
    now_ms: Callable[[], int] = system_now_ms,
    live: bool = False,
    name: str = "",
) -> Node:
    """A node; by default it syncs only when the test says so (live=True adds the watch stream)."""
    token = hub.invite(centre, name=name, country=country)
    cfg = init_node(path, hub=hub.address, token=token, listen="127.0.0.1:0")
    return start_existing_node(path, cfg.admin_token, sync_every_s, now_ms=now_ms, live=live)


def start_existing_node(
    path: Path,
    admin_token: str,
    sync_every_s: float = 0,
    *,
    now_ms: Callable[[], int] = system_now_ms,
    live: bool = False,
) -> Node:
    running = start_node(path, sync_every_s=sync_every_s, now_ms=now_ms, live=live)
    return Node(path=path, admin_token=admin_token, address=running.running.address, node=running)


def wait_until(cond: Callable[[], bool], timeout: float = 20.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the techbridge CLI as a separate process."""
    env = dict(os.environ, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env
    )


def serve_process(role: str, path: Path, *extra: str) -> subprocess.Popen[bytes]:
    """Start `techbridge <role> serve` as a real process and wait for its address."""
    data = DataDir(path)
    data.clear_address()
    log = open(path.parent / f"{path.name}.{role}.log", "ab")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", role, "serve", "--data", str(path), *extra],
        cwd=ROOT,
        stdout=log,
        stderr=log,
    )
    if not wait_until(lambda: data.address_file.exists() or proc.poll() is not None, timeout=30):
        proc.kill()
        raise RuntimeError(f"{role} at {path} did not start")
    if proc.poll() is not None:
        raise RuntimeError(f"{role} at {path} exited with {proc.returncode}")
    return proc


def signed_version(
    key: SigningKey,
    site: str,
    change: Change,
    *,
    origin: str | None = None,
    hlc: Stamp | None = None,
    record: tuple[str, bytes] | None = None,
    parents: tuple[str, ...] = (),
) -> Version:
    """A version signed with `key` for a record owned by `origin` (a new record unless `record` is given)."""
    now = system_now_ms()
    rid, nonce = record or new_record_id(origin or site, now, pins_of(LISTING, change))
    return make_version(
        key,
        site=site,
        origin=origin or site,
        record_id=rid,
        record_nonce=nonce,
        hlc=hlc or Stamp(now, 0),
        change=change,
        parents=parents,
        kind=LISTING,
    )


def hub_process(path: Path) -> tuple[Hub, subprocess.Popen[bytes]]:
    """A new hub as a real process on ephemeral ports, pinned so that every later start
    comes back on the same ports (where its nodes look for it)."""
    cfg = init_hub(path, listen="127.0.0.1:0")
    proc = serve_process("hub", path)
    data = DataDir(path)
    address = data.address_file.read_text().strip()
    data.save(data.load().with_updates(listen=address, enrol_listen=data.enrol_address_file.read_text().strip()))
    return Hub(path=path, admin_token=cfg.admin_token, address=address), proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """Stop a site's process: SIGTERM, then SIGKILL if it has not stopped in `timeout` s."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def preload_listings(path: Path, site: str, count: int, prefix: str, description: str = "") -> None:
    """`count` listings written at `site` straight into its store while it is stopped,
    as if its staff had entered them offline (in bulk, so a test spends its time syncing)."""
    data = DataDir(path)
    key = SigningKey.load(data.signing_key)
    store = Store.open(data.load().db_url, KINDS)
    try:
        now = system_now_ms()
        for start in range(0, count, 2000):
            batch = [
                signed_version(
                    key,
                    site,
                    create_change(
                        listing_content(
                            title=f"{prefix} technology {i}", summary=f"{prefix} {i} " * 20, description=description
                        )
                    ),
                    hlc=Stamp(now, i),
                )
                for i in range(start, min(count, start + 2000))
            ]
            store.append_local_batch(batch, now)
    finally:
        store.close()


def push_raw(
    hub: Hub, tls: TlsFiles, key: SigningKey, site: str, txn: str, envelopes: list[envelope_pb2.Envelope]
) -> sync_pb2.PushResponse:
    """One push batch sent by hand, as `site` over `tls`, the call signed with `key` (attacks, faults)."""
    req = sync_pb2.PushRequest(txn_id=txn, through_seq=len(envelopes))
    for i, env in enumerate(envelopes, 1):
        req.entries.add(seq=i).envelope.CopyFrom(env)
    (resp,) = push_stream(hub, tls, key, site, [req])
    return resp


def push_stream(
    hub: Hub, tls: TlsFiles, key: SigningKey, site: str, requests: list[sync_pb2.PushRequest]
) -> list[sync_pb2.PushResponse]:
    """Push batches sent by hand on one stream, as `site` over `tls`, the call signed with
    `key`; every answer the hub gives before it ends the stream."""
    with channel(hub.address, tls) as ch:
        md = auth.site_metadata(key, site, "Push", system_now_ms())
        return list(sync_pb2_grpc.SyncServiceStub(ch).Push(iter(requests), metadata=md, timeout=10))


def register_firm(site: Site, name: str, country: str = "CN") -> FirmKeyFile:
    key = SigningKey.generate()
    resp = site.admin.AddRecord(
        admin_pb2.AddRecordRequest(
            values=records_pb2.RecordValues(
                firm=records_pb2.Firm(name=name, country=country, public_key=key.public_bytes.hex())
            ),
            private_note=f"{name} contact: someone@example.com",
        ),
        metadata=site.md,
        timeout=10,
    )
    ca = DataDir(site.path).tls.ca.read_text()
    return FirmKeyFile(resp.record.id, name, resp.record.provenance.origin, key, ca)


def open_port(site: Hub | Node) -> str:
    if isinstance(site, Hub):
        assert site.running is not None
        return f"127.0.0.1:{site.running.enrol_port}"
    assert site.node is not None
    return f"127.0.0.1:{site.node.running.enrol_port}"


def file_request(site: Site, firm: FirmKeyFile, via: str, title: str, **values: FieldValue) -> str:
    """A request `firm` files through `site` (a node or the hub), signed with its key."""
    content = make_content(REQUEST, {"title": title, "via": via, "taxonomy": "tt-2026.1", **values}, "submitted")
    with FirmClient(firm, open_port(site)) as c:  # type: ignore[arg-type]
        return c.create("request", create_change(content)).id
