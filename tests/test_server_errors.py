"""Bad input gets a clear status and the server keeps serving."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sync import auth
from sync.config import DataDir
from sync.keys import SigningKey
from sync.server import MAX_MESSAGE_BYTES, build_server, channel, field_violations
from techbridge.v1 import admin_pb2, admin_pb2_grpc, records_pb2
from tests.harness import Hub, make_node

GARBAGE = b"\xff\xff\xff\xff\x0f"


def _serving(hub: Hub) -> bool:
    resp = health_pb2_grpc.HealthStub(hub.ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def test_garbage_bytes_are_invalid_argument(hub: Hub) -> None:
    with pytest.raises(DecodeError):
        admin_pb2.AddRecordRequest.FromString(GARBAGE)
    raw = hub.ch.unary_unary(
        "/techbridge.v1.AdminService/AddRecord", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as e:
        raw(GARBAGE, metadata=hub.md, timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _serving(hub)


def test_oversized_message_is_resource_exhausted_by_the_server(hub: Hub) -> None:
    big = admin_pb2.AddRecordRequest(
        values=records_pb2.RecordValues(
            listing=records_pb2.Listing(title="x", description="y" * (MAX_MESSAGE_BYTES + 10))
        )
    )
    # A client that would send anything, so the refusal is the server's own.
    unlimited = grpc.secure_channel(
        hub.address, hub.tls.channel_credentials(), options=[("grpc.max_send_message_length", -1)]
    )
    with unlimited as ch, pytest.raises(grpc.RpcError) as e:
        admin_pb2_grpc.AdminServiceStub(ch).AddRecord(big, metadata=hub.md, timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "CLIENT" not in (e.value.details() or "")
    assert _serving(hub)
    assert hub.listings() == []


def test_garbage_on_streaming_calls_is_invalid_argument(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = SigningKey.load(DataDir(node.path).signing_key)
    now = time.time_ns() // 1_000_000
    as_node = channel(hub.address, node.tls)
    pull = as_node.unary_stream("/techbridge.v1.SyncService/Pull", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        list(pull(GARBAGE, metadata=auth.site_metadata(key, "tel-aviv", "Pull", now), timeout=5))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    push = as_node.stream_stream("/techbridge.v1.SyncService/Push", request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as e:
        list(push(iter([GARBAGE]), metadata=auth.site_metadata(key, "tel-aviv", "Push", now), timeout=5))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    as_node.close()
    assert _serving(hub)
    node.stop()


def test_a_new_listing_cannot_claim_a_curation_status(hub: Hub) -> None:
    req = admin_pb2.AddRecordRequest(
        values=records_pb2.RecordValues(listing=records_pb2.Listing(title="T")), status="published"
    )
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.AddRecord(req, metadata=hub.md, timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(e.value)] == ["status"]


def test_a_handlers_own_abort_passes_through_the_boundary() -> None:
    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(grpc.StatusCode.NOT_FOUND, "nothing here")
        return b""

    def register(server: grpc.Server) -> list[str]:
        rpc = grpc.unary_unary_rpc_method_handler(handler)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("test.Echo", {"Get": rpc}),))
        return []

    bound = build_server("127.0.0.1:0", "token", register)
    server, port = bound.server, bound.port
    try:
        with channel(f"127.0.0.1:{port}") as ch:
            call = ch.unary_unary("/test.Echo/Get", request_serializer=None, response_deserializer=None)
            with pytest.raises(grpc.RpcError) as e:
                call(b"", timeout=5)
        assert e.value.code() == grpc.StatusCode.NOT_FOUND and e.value.details() == "nothing here"
    finally:
        server.stop(0)


def test_invalid_listing_names_each_field(hub: Hub) -> None:
    bad = admin_pb2.AddRecordRequest(
        values=records_pb2.RecordValues(
            listing=records_pb2.Listing(title="", summary="s" * 501, keywords=["a"] * 6, trl=12)
        )
    )
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.AddRecord(bad, metadata=hub.md, timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [f for f, _ in field_violations(e.value)]
    assert fields == ["title", "summary", "keywords", "trl"]
    assert hub.listings() == []


def test_admin_needs_the_credential(hub: Hub) -> None:
    for md in [(), (("authorization", "Bearer wrong"),)]:
        with pytest.raises(grpc.RpcError) as e:
            hub.admin.ListRecords(admin_pb2.ListRecordsRequest(), metadata=md, timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_unknown_listing_is_not_found(hub: Hub) -> None:
    with pytest.raises(grpc.RpcError) as e:
        hub.show("no-such-id")
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_and_reflection(hub: Hub) -> None:
    assert _serving(hub)
    health = health_pb2_grpc.HealthStub(hub.ch)
    for svc in ("techbridge.v1.SyncService", "techbridge.v1.AdminService"):
        assert health.Check(health_pb2.HealthCheckRequest(service=svc), timeout=5).status == 1
    with channel(hub.address, hub.tls) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"techbridge.v1.SyncService", "techbridge.v1.EnrolmentService", "grpc.health.v1.Health"} <= names


def test_calls_of_one_method_at_once_each_get_their_own_answer(hub: Hub) -> None:
    # The boundary wraps a method's handler once and every call of it runs through that
    # wrapper: concurrent calls, some without the credential and some malformed, must each
    # be answered for themselves.
    raw = hub.ch.unary_unary(
        "/techbridge.v1.AdminService/ListRecords", request_serializer=None, response_deserializer=None
    )
    good = admin_pb2.ListRecordsRequest(page_size=5).SerializeToString()

    def call(i: int) -> grpc.StatusCode:
        payload, metadata = [(good, hub.md), (good, ()), (GARBAGE, hub.md)][i % 3]
        try:
            raw(payload, metadata=metadata, timeout=10)
        except grpc.RpcError as e:
            return e.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(call, range(60)))
    expected = [grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT]
    assert codes == [expected[i % 3] for i in range(60)]
    assert _serving(hub)
