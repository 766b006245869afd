"""Protocol signals travel as codes (google.rpc.ErrorInfo), never as prose.

The hub's refusals a node acts on carry a `Reason`; the node branches on that
code alone. The status message stays the operator's text and means nothing to
the protocol: the same text without the code is not the signal, and the code
with other text is.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sync import auth
from sync.clock import system_now_ms
from sync.config import DataDir
from sync.errors import ERROR_DOMAIN, Reason
from sync.keys import SigningKey
from sync.protocol.node_side import SyncClient, SyncError
from sync.server import build_server, channel, reason_of
from sync.site import Site
from techbridge.v1 import sync_pb2, sync_pb2_grpc
from tests.harness import Hub, Node, make_node


def _error_infos(err: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    out = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            out.append((info.domain, info.reason))
    return out


def _site_of(node: Node) -> Site:
    assert node.node is not None
    return node.node.running.site


# ---- what the hub sends -------------------------------------------------------------------


def test_the_hubs_checkpoint_mismatches_carry_the_reason(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = SigningKey.load(DataDir(node.path).signing_key)
    hub.add_record("one entry in the hub's log")

    def md(method: str) -> tuple[tuple[str, str | bytes], ...]:
        return auth.site_metadata(key, "tel-aviv", method, system_now_ms())

    with channel(hub.address, node.tls, expect="hq") as ch:
        stub = sync_pb2_grpc.SyncServiceStub(ch)
        refusals = []
        for req in (
            sync_pb2.PullRequest(after_seq=999),  # past the hub's head
            sync_pb2.PullRequest(after_seq=1, after_version_id="not-the-version-at-1"),  # another log
        ):
            with pytest.raises(grpc.RpcError) as e:
                list(stub.Pull(req, metadata=md("Pull"), timeout=10))
            refusals.append(e.value)
        push = sync_pb2.PushRequest(txn_id="tel-aviv:6-5:x", through_seq=5, after_seq=5)  # acked past what it holds
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Push(iter([push]), metadata=md("Push"), timeout=10))
        refusals.append(e.value)
    for err in refusals:
        assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert _error_infos(err) == [("techbridge.v1", "CHECKPOINT_MISMATCH")]
        assert reason_of(err) == Reason.CHECKPOINT_MISMATCH
        assert (err.details() or "").startswith("checkpoint mismatch: ")  # the operator's text, as before
    node.stop()


def test_an_unregistered_key_carries_the_reason_and_other_refusals_none(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    own = SigningKey.load(DataDir(node.path).signing_key)
    stranger = SigningKey.generate()
    with channel(hub.address, node.tls, expect="hq") as ch:
        stub = sync_pb2_grpc.SyncServiceStub(ch)

        def call(key: SigningKey, at_ms: int) -> grpc.RpcError:
            with pytest.raises(grpc.RpcError) as e:
                stub.GetRegistry(
                    sync_pb2.GetRegistryRequest(),
                    metadata=auth.site_metadata(key, "tel-aviv", "GetRegistry", at_ms),
                    timeout=10,
                )
            return e.value

        unknown = call(stranger, system_now_ms())
        assert unknown.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _error_infos(unknown) == [("techbridge.v1", "KEY_NOT_REGISTERED")]
        assert reason_of(unknown) == Reason.KEY_NOT_REGISTERED
        assert unknown.details() == f"key {stranger.key_id} is not registered to site 'tel-aviv'"
        # Refused for another cause (the call's clock), the same status code carries no reason:
        # a node must not take it for "never registered" and drop a pending key.
        skewed = call(own, system_now_ms() - 10 * 60_000)
        assert skewed.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _error_infos(skewed) == [] and reason_of(skewed) is None
    node.stop()


# ---- what the node acts on: a hub that answers exactly as a test says ---------------------


def _status(code: int, message: str, reason: str = "", domain: str = ERROR_DOMAIN) -> status_pb2.Status:
    status = status_pb2.Status(code=code, message=message)
    if reason:
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.ErrorInfo(reason=reason, domain=domain))
        status.details.append(detail)
    return status


class FakeHub:
    """Serves only GetRegistry (nothing new) and Pull (an empty log) of SyncService, except:
    the first Pull answers `pull_refusal`, a call signed with `refused_key` `key_refusal`."""

    def __init__(self) -> None:
        self.pull_refusal: status_pb2.Status | None = None
        self.refused_key = ""
        self.key_refusal: status_pb2.Status | None = None
        self.pulls = 0

    def GetRegistry(
        self, request: sync_pb2.GetRegistryRequest, context: grpc.ServicerContext
    ) -> sync_pb2.GetRegistryResponse:
        key_id = dict(context.invocation_metadata()).get(auth.KEY_HEADER)
        if self.key_refusal is not None and key_id == self.refused_key:
            context.abort_with_status(rpc_status.to_status(self.key_refusal))
        return sync_pb2.GetRegistryResponse()

    def Pull(self, request: sync_pb2.PullRequest, context: grpc.ServicerContext) -> Iterator[sync_pb2.PullResponse]:
        self.pulls += 1
        if self.pulls == 1 and self.pull_refusal is not None:
            context.abort_with_status(rpc_status.to_status(self.pull_refusal))
        yield from ()


@pytest.fixture
def fake() -> Iterator[tuple[FakeHub, str]]:
    servicer = FakeHub()

    def register(server: grpc.Server) -> list[str]:
        handlers = {
            "GetRegistry": grpc.unary_unary_rpc_method_handler(
                servicer.GetRegistry,
                request_deserializer=sync_pb2.GetRegistryRequest.FromString,
                response_serializer=sync_pb2.GetRegistryResponse.SerializeToString,
            ),
            "Pull": grpc.unary_stream_rpc_method_handler(
                servicer.Pull,
                request_deserializer=sync_pb2.PullRequest.FromString,
                response_serializer=sync_pb2.PullResponse.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("techbridge.v1.SyncService", handlers),))
        return []

    bound = build_server("127.0.0.1:0", "token", register)
    yield servicer, f"127.0.0.1:{bound.port}"
    bound.server.stop(0)


# What the real hub says today: the prose alone must not be the signal.
MISMATCH_PROSE = (
    "checkpoint mismatch: cursor 999 is past this hub's log head; the hub's store is older than the node's "
    "(restored from a backup?); refusing to skip what the hub now holds"
)


@pytest.mark.parametrize(
    ("refusal", "reconciles"),
    [
        (_status(code_pb2.FAILED_PRECONDITION, MISMATCH_PROSE), False),
        (_status(code_pb2.FAILED_PRECONDITION, MISMATCH_PROSE, "CHECKPOINT_MISMATCH", domain="example.com"), False),
        (_status(code_pb2.FAILED_PRECONDITION, "start over, please", "CHECKPOINT_MISMATCH"), True),
    ],
    ids=["prose-without-reason", "reason-of-another-domain", "reason-with-other-prose"],
)
def test_the_node_reconciles_on_the_reason_not_the_text(
    hub: Hub, tmp_path: Path, fake: tuple[FakeHub, str], refusal: status_pb2.Status, reconciles: bool
) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    site = _site_of(node)
    servicer, address = fake
    servicer.pull_refusal = refusal
    client = SyncClient(site, address, "hq")
    if reconciles:
        client.run_round()
        assert servicer.pulls == 2  # refused, then the whole log again
    else:
        with pytest.raises(SyncError, match="FAILED_PRECONDITION"):
            client.run_round()
        assert servicer.pulls == 1
        assert not site.store.peer_state("hq").reconciling
    node.stop()


@pytest.mark.parametrize(
    ("refusal", "dropped"),
    [
        (_status(code_pb2.UNAUTHENTICATED, "key {key} is not registered to site 'tel-aviv'"), False),
        (_status(code_pb2.UNAUTHENTICATED, "no such signer here", "KEY_NOT_REGISTERED"), True),
    ],
    ids=["prose-without-reason", "reason-with-other-prose"],
)
def test_the_node_drops_a_pending_key_on_the_reason_not_the_text(
    hub: Hub, tmp_path: Path, fake: tuple[FakeHub, str], refusal: status_pb2.Status, dropped: bool
) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    site = _site_of(node)
    pending = SigningKey.generate()
    pending.save(site.pending_key_path)
    servicer, address = fake
    answer = status_pb2.Status()
    answer.CopyFrom(refusal)
    answer.message = refusal.message.format(key=pending.key_id)
    servicer.refused_key, servicer.key_refusal = pending.key_id, answer
    client = SyncClient(site, address, "hq")
    if dropped:
        client.run_round()
        assert site.pending_key() is None
    else:
        with pytest.raises(SyncError, match="UNAUTHENTICATED"):
            client.run_round()
        assert site.pending_key() is not None and site.pending_key_path.exists()
    node.stop()
