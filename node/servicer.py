"""The node's own admin service (sync now) and how it reports its link."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Protocol

import grpc

from sync.errors import TechbridgeError
from sync.protocol.node_side import Progress, SyncClient
from techbridge.v1 import admin_pb2, admin_pb2_grpc

_PHASES = {
    "registry": admin_pb2.SYNC_PHASE_REGISTRY,
    "push": admin_pb2.SYNC_PHASE_PUSH,
    "pull": admin_pb2.SYNC_PHASE_PULL,
    "done": admin_pb2.SYNC_PHASE_DONE,
}


def progress_pb(p: Progress) -> admin_pb2.SyncProgress:
    return admin_pb2.SyncProgress(
        phase=_PHASES[p.phase], done=p.done, total=p.total, stored=p.stored, rejected=p.rejected, message=p.message
    )


class NodeAdminServicer(admin_pb2_grpc.NodeAdminServiceServicer):
    def __init__(self, client: SyncClient) -> None:
        self._client = client

    def SyncNow(
        self, request: admin_pb2.SyncNowRequest, context: grpc.ServicerContext
    ) -> Iterator[admin_pb2.SyncProgress]:
        events: queue.Queue[Progress | BaseException | None] = queue.Queue()

        def run() -> None:
            try:
                self._client.run_round(events.put)
                events.put(None)
            except BaseException as exc:
                events.put(exc)

        threading.Thread(target=run, name="sync-now", daemon=True).start()
        while True:
            item = events.get()
            if item is None:
                return
            if isinstance(item, TechbridgeError):
                raise item
            if isinstance(item, BaseException):
                raise item
            yield progress_pb(item)


class NodeStatus:
    """The node's one peer, the hub: how far each side's log has travelled."""

    def __init__(self, client: SyncClient, hub_id: str) -> None:
        self._client = client
        self._hub = hub_id
        self.watcher: Watching | None = None

    def peer_statuses(self) -> list[admin_pb2.PeerStatus]:
        st = self._client.hub_state()
        return [
            admin_pb2.PeerStatus(
                peer=self._hub,
                last_success_ms=st.last_success_ms,
                last_attempt_ms=st.last_attempt_ms,
                last_error=st.last_error,
                last_error_ms=st.last_error_ms,
                pull_cursor=st.pull_cursor,
                push_acked=st.push_acked,
                pending_push=self._client.pending_push(),
                pending_pull=st.pending_pull,
                failures=st.failures,
                next_attempt_ms=st.next_attempt_ms,
                watching=bool(self.watcher and self.watcher.connected),
            )
        ]


class Watching(Protocol):
    connected: bool
