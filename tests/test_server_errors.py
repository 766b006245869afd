"""Bad input gets a clear status and the server keeps serving."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sync.server import MAX_MESSAGE_BYTES, channel, field_violations
from techbridge.v1 import admin_pb2, records_pb2
from tests.harness import Hub

GARBAGE = b"\xff\xff\xff\xff\x0f"


def _serving(hub: Hub) -> bool:
    resp = health_pb2_grpc.HealthStub(hub.ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return bool(resp.status == health_pb2.HealthCheckResponse.SERVING)


def test_garbage_bytes_are_invalid_argument(hub: Hub) -> None:
    with pytest.raises(DecodeError):
        admin_pb2.AddListingRequest.FromString(GARBAGE)
    raw = hub.ch.unary_unary(
        "/techbridge.v1.AdminService/AddListing", request_serializer=None, response_deserializer=None
    )
    with pytest.raises(grpc.RpcError) as e:
        raw(GARBAGE, metadata=hub.md, timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _serving(hub)


def test_oversized_message_is_resource_exhausted(hub: Hub) -> None:
    big = admin_pb2.AddListingRequest(
        listing=records_pb2.Listing(title="x", description="y" * (MAX_MESSAGE_BYTES + 10))
    )
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.AddListing(big, metadata=hub.md, timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _serving(hub)
    assert hub.listings() == []


def test_invalid_listing_names_each_field(hub: Hub) -> None:
    bad = admin_pb2.AddListingRequest(
        listing=records_pb2.Listing(title="", summary="s" * 501, keywords=["a"] * 6, trl=12)
    )
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.AddListing(bad, metadata=hub.md, timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = [f for f, _ in field_violations(e.value)]
    assert fields == ["title", "summary", "keywords", "trl"]
    assert hub.listings() == []


def test_admin_needs_the_credential(hub: Hub) -> None:
    for md in [(), (("authorization", "Bearer wrong"),)]:
        with pytest.raises(grpc.RpcError) as e:
            hub.admin.ListListings(admin_pb2.ListListingsRequest(), metadata=md, timeout=5)
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
    with channel(hub.address) as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
        )
        names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"techbridge.v1.SyncService", "techbridge.v1.EnrolmentService", "grpc.health.v1.Health"} <= names
