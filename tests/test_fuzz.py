"""Fuzzed input at every RPC: random bytes and mutated valid messages. No crash,
no hang, a clear status, and the server keeps serving.

Bounded for CI (TECHBRIDGE_FUZZ_EXAMPLES per method, default 25); raise it to
fuzz longer, e.g. TECHBRIDGE_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/test_fuzz.py
"""

from __future__ import annotations

import os
import time

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli.firmclient import FirmKeyFile
from sync import auth
from sync.clock import Stamp
from sync.config import DataDir
from sync.envelope import envelope_to_pb, make_version
from sync.ids import new_record_id
from sync.keys import SigningKey
from sync.kinds import create_change, make_content, pins_of
from sync.server import CHANNEL_OPTIONS, channel
from techbridge.v1 import admin_pb2, firm_pb2, records_pb2, sync_pb2
from tests.harness import Hub, Node, make_node
from transfer.records import REQUEST

EXAMPLES = int(os.environ.get("TECHBRIDGE_FUZZ_EXAMPLES", "25"))
CLEAR = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAVAILABLE,  # sync now, when the round itself cannot finish
}

SEEDS: dict[str, bytes] = {
    "AddListing": admin_pb2.AddRecordRequest(
        values=records_pb2.RecordValues(listing=records_pb2.Listing(title="T", trl=3))
    ).SerializeToString(),
    "EditRecord": admin_pb2.EditRecordRequest(
        id="x", fields=["summary"], values=records_pb2.RecordValues(listing=records_pb2.Listing(summary="s"))
    ).SerializeToString(),
    "Invite": admin_pb2.InviteRequest(centre_id="fuzz-centre", name="F", country="FR").SerializeToString(),
    "Pull": sync_pb2.PullRequest(after_seq=0, batch_size=5).SerializeToString(),
    "Push": sync_pb2.PushRequest(txn_id="tel-aviv:1-1:x", through_seq=1).SerializeToString(),
    "Enrol": sync_pb2.EnrolRequest(token="tbj1.e30", centre_id="x").SerializeToString(),
}


def _targets() -> list[tuple[str, MethodDescriptor]]:
    out = []
    for module, services in (
        (sync_pb2, ("SyncService", "EnrolmentService")),
        (admin_pb2, ("AdminService", "HubAdminService", "NodeAdminService")),
        (firm_pb2, ("FirmService",)),
    ):
        for name in services:
            for m in module.DESCRIPTOR.services_by_name[name].methods:
                out.append((name, m))
    return out


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> object:
    from tests.harness import make_hub

    base = tmp_path_factory.mktemp("fuzz")
    hub = make_hub(base / "hq")
    node = make_node(hub, base / "tel-aviv", "tel-aviv")
    key = SigningKey.generate()
    firm_id = hub.admin.AddRecord(
        admin_pb2.AddRecordRequest(
            values=records_pb2.RecordValues(
                firm=records_pb2.Firm(name="Fuzz Ltd", country="FR", public_key=key.public_bytes.hex())
            )
        ),
        metadata=hub.md,
        timeout=10,
    ).record.id
    firm = FirmKeyFile(firm_id, "Fuzz Ltd", "hq", key, DataDir(hub.path).tls.ca.read_text())
    yield hub, node, firm
    node.stop()
    hub.stop()


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int, extra: bytes) -> bytes:
    buf = bytearray(data)
    for pos, val in flips:
        if buf:
            buf[pos % len(buf)] = val
    return bytes(buf[: max(0, len(buf) - cut)]) + extra


def _firm_seed(firm: FirmKeyFile) -> bytes:
    """A valid Submit: a request the firm signed, sent through the hub."""
    now = time.time_ns() // 1_000_000
    content = make_content(REQUEST, {"title": "T", "request_type": "partner", "sought": "s", "via": "hq"}, "submitted")
    record_id, nonce = new_record_id(firm.firm_id, now, pins_of(REQUEST, create_change(content, ())))
    v = make_version(
        firm.key,
        site=firm.firm_id,
        record_id=record_id,
        hlc=Stamp(now, 0),
        change=create_change(content, ()),
        record_nonce=nonce,
        kind=REQUEST,
    )
    return firm_pb2.SubmitRequest(envelope=envelope_to_pb(v)).SerializeToString()


@pytest.mark.parametrize(("service", "method"), _targets(), ids=lambda x: x if isinstance(x, str) else x.name)
def test_fuzzed_requests_get_a_clear_status(
    sites: tuple[Hub, Node, FirmKeyFile], service: str, method: MethodDescriptor
) -> None:
    hub, node, firm = sites
    on_node = service == "NodeAdminService"
    target = node if on_node else hub
    key = SigningKey.load(DataDir(node.path).signing_key)
    tls = node.tls if service == "SyncService" else target.tls
    path = f"/techbridge.v1.{service}/{method.name}"
    if service == "FirmService":  # the open port: server-side TLS, calls signed by the firm
        assert hub.running is not None
        creds = grpc.ssl_channel_credentials(root_certificates=firm.ca_pem.encode())
        options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", "hq")]
        ch = grpc.secure_channel(f"127.0.0.1:{hub.running.enrol_port}", creds, options=options)
    else:
        ch = channel(target.address, tls, expect="tel-aviv" if on_node else "hq")
    seed = _firm_seed(firm) if method.name == "Submit" else SEEDS.get(method.name, b"")

    def metadata() -> tuple[tuple[str, str | bytes], ...]:
        if service == "SyncService":
            return auth.site_metadata(key, "tel-aviv", method.name, time.time_ns() // 1_000_000)
        if service == "FirmService":
            return auth.firm_metadata(firm.key, firm.firm_id, path, time.time_ns() // 1_000_000)
        return target.md

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.one_of(
            st.binary(max_size=300),
            st.builds(
                _mutate,
                st.just(seed),
                st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
                st.integers(0, 8),
                st.binary(max_size=16),
            ),
        )
    )
    def check(raw: bytes) -> None:
        # A watch stream that starts stays open until its deadline: that is its job.
        limit = 1.0 if method.name == "Watch" else 15.0
        try:
            if method.server_streaming and method.client_streaming:
                call = ch.stream_stream(path, request_serializer=None, response_deserializer=None)
                list(call(iter([raw]), metadata=metadata(), timeout=limit))
            elif method.server_streaming:
                call_us = ch.unary_stream(path, request_serializer=None, response_deserializer=None)
                list(call_us(raw, metadata=metadata(), timeout=limit))
            else:
                call_uu = ch.unary_unary(path, request_serializer=None, response_deserializer=None)
                call_uu(raw, metadata=metadata(), timeout=limit)
        except grpc.RpcError as e:
            watch_ran = method.name == "Watch" and e.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert watch_ran or e.code() in CLEAR, f"{path}: {e.code()} {e.details()} for {raw!r}"

    try:
        check()
    finally:
        ch.close()
    health = health_pb2_grpc.HealthStub(hub.ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_the_targets_cover_every_rpc() -> None:
    names = {(s, m.name) for s, m in _targets()}
    assert ("SyncService", "Push") in names and ("AdminService", "ResolveConflict") in names
    assert ("FirmService", "Submit") in names
    assert len(names) >= 22
