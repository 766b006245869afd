"""The hub's half of the protocol: what it does with a node's Push, Pull and Watch.

The hub's `SyncService` authenticates the caller and hands the call here; the
rules of the exchange (batch limits, the checkpoint checks, recognising a
restored node, the watch's heartbeat) are kept in this one place, beside the
node's half (`sync.protocol.node_side`). See the package's docstring for the
protocol as a whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

from sync import metrics
from sync.envelope import stored_envelope_to_pb
from sync.errors import CheckpointMismatch, FieldViolation, InvalidInput, ResourceExhausted
from sync.protocol.receive import Entry, checked_ahead, entries_from_pb, receive
from sync.registry import SiteRole
from sync.site import Site
from techbridge.v1 import admin_pb2, sync_pb2

log = logging.getLogger(__name__)

BATCH_MAX = 1000
# A watch stream sends a heartbeat at least this often, so either side notices a dead link.
WATCH_HEARTBEAT_S = 10.0
WATCHES_PER_NODE = 2


class HubSide:
    """The hub's answers to its nodes' sync calls, for callers already authenticated."""

    def __init__(self, site: Site) -> None:
        self._site = site
        # Open watch streams per node: each holds a server thread, so one node may not hold many.
        self._watching: dict[str, int] = {}
        self._watch_lock = threading.Lock()

    # ---- push: a node's log into the hub's ------------------------------------------

    def push(self, peer: str, requests: Iterator[sync_pb2.PushRequest]) -> Iterator[sync_pb2.PushResponse]:
        """Store each pushed batch with `peer`'s cursor and acknowledge where it stands.

        A batch that starts past what the hub holds of the node's log means the
        hub was restored: CHECKPOINT_MISMATCH, and the node reconciles. One that
        starts before it, under an id not applied here, means the node was
        restored: its own entries will be sent back on its next pulls."""
        site = self._site
        store = site.store

        def entries_of(req: sync_pb2.PushRequest) -> list[Entry]:
            self._check_push(peer, req)
            return entries_from_pb(req.entries)

        # The next batch (a node sends up to PUSH_WINDOW before the first is acknowledged)
        # is checked while this one is stored.
        for req, entries, checked in checked_ahead(site, requests, entries_of):
            held = store.peer_state(peer).pull_cursor
            if req.after_seq > held:
                raise CheckpointMismatch(
                    f"checkpoint mismatch: this hub holds {peer}'s log up to {held}, not {req.after_seq} "
                    "(restored from a backup?)"
                )
            if req.after_seq < held and not store.push_applied(req.txn_id):
                # The node holds less of its own log than it once sent, or other entries at
                # those positions: it was restored. (A batch applied here whose
                # acknowledgement never reached the node, killed or cut off, comes again
                # under the same id: a retry, not a restore.)
                store.set_flags(peer, resend_own=True)
            batch = receive(
                site,
                peer,
                entries,
                through_seq=req.through_seq,
                head_seq=req.through_seq + req.remaining,
                txn_id=req.txn_id,
                checked=checked,
            )
            yield sync_pb2.PushResponse(
                txn_id=req.txn_id,
                acked_seq=batch.through,
                stored=batch.applied.stored,
                duplicates=batch.applied.duplicates,
                rejected=[sync_pb2.Rejection(version_id=r.version_id, reason=r.reason) for r in batch.rejected],
            )
            if batch.deferred is not None:
                # Cut before an entry stamped ahead of this clock: a batch the node sent
                # behind this one starts past what is held, and the node sends it again
                # in a later round.
                break
        store.record_attempt(peer, site.now_ms(), None)

    @staticmethod
    def _check_push(peer: str, req: sync_pb2.PushRequest) -> None:
        if len(req.entries) > BATCH_MAX:
            raise InvalidInput([FieldViolation("entries", f"at most {BATCH_MAX} entries per batch")])
        if not req.txn_id.startswith(f"{peer}:"):
            raise InvalidInput([FieldViolation("txn_id", f"must start with the caller's site id ({peer}:)")])
        if any(e.seq > req.through_seq for e in req.entries):
            raise InvalidInput([FieldViolation("through_seq", "must cover every entry's seq")])

    # ---- pull: the hub's log out to a node ----------------------------------------------

    def pull(
        self, peer: str, request: sync_pb2.PullRequest, is_active: Callable[[], bool]
    ) -> Iterator[sync_pb2.PullResponse]:
        """Stream the hub's log after the node's cursor, in bounded batches, up to the
        head as it stood when the pull began, skipping (but covering) what `peer` may
        not receive and what it sent itself."""
        site = self._site
        store = site.store
        head = store.log_head()
        if request.after_seq > head:
            raise CheckpointMismatch(
                f"checkpoint mismatch: cursor {request.after_seq} is past this hub's log head; the hub's store is "
                "older than the node's (restored from a backup?); refusing to skip what the hub now holds"
            )
        checkpoint = request.after_seq and request.after_version_id
        if checkpoint and store.version_at(request.after_seq) != request.after_version_id:
            raise CheckpointMismatch(
                f"checkpoint mismatch: this hub's log differs from the node's checkpoint at "
                f"{request.after_seq} (restored from a backup?)"
            )
        store.set_push_acked(peer, request.after_seq)
        batch = min(request.batch_size or 500, BATCH_MAX)
        after = request.after_seq
        head_at_start = -1
        # A node that holds less of its own log than the hub received from it was restored
        # from a backup: send its own entries back too (it skips what it still holds), in
        # every pull until it has confirmed, by pulling from there on, the head of the first
        # such pull sent to its end (it may read batches ahead of what it has stored).
        state = store.peer_state(peer)
        confirmed = state.resend_own and 0 < state.resend_until <= request.after_seq
        if confirmed:
            store.set_flags(peer, resend_own=False)
        pending = state.resend_own and not confirmed
        restored = pending or state.pull_cursor > request.own_head
        if restored and not pending:
            store.set_flags(peer, resend_own=True)
        if restored:
            log.warning("%s was restored from a backup: sending its own entries back", peer)
        while True:
            rows, through, head = store.log_after(
                after, batch, exclude_from=None if restored else peer, audience_of=peer
            )
            if head_at_start < 0:
                head_at_start = head
            msg = sync_pb2.PullResponse(
                through_seq=through, head_seq=head, through_version_id=store.version_at(through) or ""
            )
            for r in rows:
                msg.entries.add(seq=r.seq).envelope.CopyFrom(stored_envelope_to_pb(r.body, r.signatures))
            yield msg
            after = through
            if not is_active():
                return
            if through >= head_at_start:
                break
        # Sent to its end, not yet stored: the node may still be storing batches it read
        # ahead. Its next Pull's after_seq says what it holds (and corrects push_acked).
        store.set_push_acked(peer, after)
        if restored and store.peer_state(peer).resend_until == 0:
            store.set_resend_until(peer, head_at_start)
        store.record_attempt(peer, site.now_ms(), None)

    # ---- watch: the hub's head, as it moves ---------------------------------------------

    def watch(
        self,
        peer: str,
        request: sync_pb2.WatchRequest,
        is_active: Callable[[], bool],
        on_leave: Callable[[Callable[[], None]], object],
    ) -> Iterator[sync_pb2.WatchEvent]:
        """The head of the hub's log as `peer` may see it: at once, then on every commit
        and at least every WATCH_HEARTBEAT_S. At most WATCHES_PER_NODE streams per node."""
        with self._watch_lock:
            if self._watching.get(peer, 0) >= WATCHES_PER_NODE:
                raise ResourceExhausted(f"{peer} already has {WATCHES_PER_NODE} watch streams open")
            self._watching[peer] = self._watching.get(peer, 0) + 1
        metrics.WATCH_STREAMS.inc()
        try:
            store = self._site.store
            on_leave(store.wake)  # a caller that leaves frees its thread at once
            last = request.after_seq
            log.info("%s is watching from %s", peer, last)
            # Answer at once: the node learns the link is up without waiting for a change.
            yield sync_pb2.WatchEvent(head_seq=store.visible_head(peer))
            while is_active():
                head = store.wait_for_head(last, WATCH_HEARTBEAT_S)
                # Only what this node may receive: the watch says nothing of the rest.
                yield sync_pb2.WatchEvent(head_seq=store.visible_head(peer))
                last = max(last, head)
        finally:
            metrics.WATCH_STREAMS.dec()
            with self._watch_lock:
                self._watching[peer] -= 1

    # ---- status: where each node's exchange stands ------------------------------------

    def peer_statuses(self) -> list[admin_pb2.PeerStatus]:
        """Per node: last contact, how far each side's log has travelled."""
        store = self._site.store
        states = {p.peer: p for p in store.peers()}
        nodes = [c.id for c in self._site.registry().centres if c.role == SiteRole.NODE]
        out = []
        for peer in sorted(set(nodes) | set(states)):
            st = states.get(peer)
            acked = st.push_acked if st else 0
            out.append(
                admin_pb2.PeerStatus(
                    peer=peer,
                    last_success_ms=st.last_success_ms if st else 0,
                    last_attempt_ms=st.last_attempt_ms if st else 0,
                    last_error=st.last_error if st else "",
                    last_error_ms=st.last_error_ms if st else 0,
                    pull_cursor=st.pull_cursor if st else 0,
                    push_acked=acked,
                    pending_push=store.count_pending(acked, exclude_from=peer, audience_of=peer),
                    pending_pull=st.pending_pull if st else 0,
                    watching=self.watching(peer),
                )
            )
        return out

    def watching(self, peer: str) -> bool:
        """Whether `peer` holds a watch stream open to this hub now."""
        with self._watch_lock:
            return self._watching.get(peer, 0) > 0
