"""The node's half of the protocol: one sync round between a node and the hub.

`SyncClient.run_round` settles a cut-short key rotation, refreshes the
registry, pushes what the hub has not acknowledged and pulls what it has not
sent, reconciling when the hub answers CHECKPOINT_MISMATCH; see the
package's docstring for the protocol as a whole.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc

from sync import auth, logs, metrics
from sync.codec import decode_registry
from sync.envelope import stored_envelope_to_pb
from sync.errors import Reason, TechbridgeError, Unavailable, VerificationFailed
from sync.keys import SigningKey
from sync.protocol.receive import Entry, checked_ahead, entries_from_pb, receive
from sync.registry import Registry
from sync.server import channel, reason_of
from sync.signing import ROTATE_DOMAIN, sign
from sync.site import Received, Site
from sync.store import PeerState
from sync.tls import TlsFiles
from techbridge.v1 import sync_pb2, sync_pb2_grpc

log = logging.getLogger(__name__)

UNARY_DEADLINE_S = 15.0
ACK_WAIT_S = 120.0


@dataclass(frozen=True)
class Progress:
    phase: str  # "registry" | "push" | "pull" | "done"
    done: int = 0
    total: int = 0
    stored: int = 0
    rejected: int = 0
    message: str = ""


@dataclass
class RoundResult:
    pushed: int = 0
    push_rejected: int = 0
    pulled: int = 0
    pull_duplicates: int = 0
    pull_rejected: int = 0
    registry_version: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)


class SyncError(Unavailable):
    """A round could not complete; the message says at which step and why."""


PULL_PREFETCH = 2  # pull batches read off the stream ahead of the one being stored
PUSH_WINDOW = 2  # push batches sent before the first of them is acknowledged


def hub_addresses(text: str) -> list[str]:
    """The hub's addresses in a node's `hub_address`: one HOST:PORT, or several separated
    by commas (replicas of one hub; a name that resolves to several addresses is one entry,
    and gRPC itself tries each of them)."""
    found = [a.strip() for a in text.split(",") if a.strip()]
    return found or [text]


def push_txn_id(site: str, first: int, through: int, version_ids: list[str]) -> str:
    """Idempotency key of a push batch. The digest of its version ids makes a
    batch at the same positions but with other content (a site restored from a
    backup that wrote anew) a different transaction."""
    digest = hashlib.sha256("\n".join(version_ids).encode()).hexdigest()[:16]
    return f"{site}:{first}-{through}:{digest}"


class SyncClient:
    def __init__(self, site: Site, hub_address: str, hub_id: str = "hq", tls: TlsFiles | None = None) -> None:
        self._site = site
        # One address, or several (hub replicas): a round goes to the one that answered
        # last and moves to the next when it is unreachable.
        self._addresses = hub_addresses(hub_address)
        self._current = 0
        self._address_lock = threading.Lock()
        self._tls = tls
        self._hub = hub_id
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """The hub address rounds and the watch stream use now."""
        with self._address_lock:
            return self._addresses[self._current]

    def failed_over_from(self, address: str) -> None:
        """`address` did not answer: move to the next hub address, unless another caller
        already moved on from it."""
        with self._address_lock:
            if len(self._addresses) < 2 or self._addresses[self._current] != address:
                return
            self._current = (self._current + 1) % len(self._addresses)
            log.warning("hub %s does not answer; turning to %s", address, self._addresses[self._current])

    def _md(self, method: str) -> tuple[tuple[str, str | bytes], ...]:
        return auth.site_metadata(self._site.key, self._site.site_id, method, self._site.now_ms())

    def in_backoff(self) -> bool:
        st = self._site.store.peer_state(self._hub)
        return st.next_attempt_ms > self._site.now_ms()

    def hub_state(self) -> PeerState:
        """Where this node's exchange with the hub stands: cursors, last contact, backoff."""
        return self._site.store.peer_state(self._hub)

    def pending_push(self) -> int:
        """Versions written here that the hub has not acknowledged yet."""
        return self._site.store.count_pending(self.hub_state().push_acked, only_local=True)

    def clear_backoff(self) -> None:
        """The hub answers again: the next round need not wait."""
        self._site.store.clear_backoff(self._hub)

    def rotate_key(self) -> tuple[str, str, Registry, int]:
        """Replace this node's signing key: the hub registers the new one (the call is
        signed with the current key), then the node switches."""

        def register(new: SigningKey, at: int) -> Registry:
            with channel(self.address, self._tls, expect=self._hub) as ch:
                resp = sync_pb2_grpc.SyncServiceStub(ch).RotateKey(
                    sync_pb2.RotateKeyRequest(
                        public_key=new.public_bytes,
                        at_ms=at,
                        proof=sign(new, ROTATE_DOMAIN, f"{self._site.site_id}|{at}".encode()),
                    ),
                    timeout=UNARY_DEADLINE_S,
                    metadata=self._md("RotateKey"),
                )
            reg = decode_registry(resp.registry.body, resp.registry.signature.signature)
            self._site.accept_registry(reg)
            return reg

        with self._lock:
            try:
                return self._site.rotate_key(register)
            except grpc.RpcError as err:
                raise SyncError(f"hub {self.address}: {err.code().name}: {err.details()}") from err

    def _finish_rotation(self, stub: sync_pb2_grpc.SyncServiceStub) -> None:
        """A pending key the local registry does not name yet: ask the hub, signing with it.
        If the hub answers, its root-signed registry decides; if the hub says the key is not
        registered, the rotation never reached it and the pending key is dropped."""
        pending = self._site.pending_key()
        if pending is None or self._site.settle_pending_key():
            return
        md = auth.site_metadata(pending, self._site.site_id, "GetRegistry", self._site.now_ms())
        try:
            resp = stub.GetRegistry(
                sync_pb2.GetRegistryRequest(have_version=self._site.registry().version),
                timeout=UNARY_DEADLINE_S,
                metadata=md,
            )
        except grpc.RpcError as err:
            if reason_of(err) == Reason.KEY_NOT_REGISTERED:
                self._site.drop_pending_key()
                log.warning("dropped a pending key the hub never registered")
                return
            raise
        if resp.HasField("registry"):
            self._site.accept_registry(decode_registry(resp.registry.body, resp.registry.signature.signature))
        self._site.settle_pending_key()

    def run_round(self, progress: Callable[[Progress], None] = lambda p: None) -> RoundResult:
        """Run one round; rounds never overlap (a second caller waits)."""
        started = time.monotonic()
        outcome = "failed"
        try:
            with logs.in_call(logs.new_call_id("round-"), self._hub):
                result = self._run_round(progress)
            outcome = "ok"
            return result
        finally:
            metrics.ROUNDS.labels(peer=self._hub, outcome=outcome).inc()
            metrics.ROUND_SECONDS.labels(peer=self._hub).observe(time.monotonic() - started)

    def _exchange(self, address: str, result: RoundResult, progress: Callable[[Progress], None]) -> None:
        """A round's calls to the hub at `address`: registry, then push and pull (or the
        reconciliation)."""
        with channel(address, self._tls, expect=self._hub) as ch:
            stub = sync_pb2_grpc.SyncServiceStub(ch)
            self._finish_rotation(stub)
            self._registry(stub, result, progress)
            if self._site.store.peer_state(self._hub).reconciling:
                self._reconcile(stub, result, progress, resume=True)
                return
            try:
                self._push(stub, result, progress)
                self._pull(stub, result, progress)
            except grpc.RpcError as err:
                if reason_of(err) != Reason.CHECKPOINT_MISMATCH:
                    raise
                self._reconcile(stub, result, progress)

    def _run_round(self, progress: Callable[[Progress], None]) -> RoundResult:
        with self._lock:
            result = RoundResult()
            attempts = len(self._addresses)
            for attempt in range(attempts):
                address = self.address
                try:
                    self._exchange(address, result, progress)
                    break
                except grpc.RpcError as err:
                    if err.code() == grpc.StatusCode.UNAVAILABLE and attempt + 1 < attempts:
                        # Another replica of the hub takes the round; what was acknowledged stays so.
                        self.failed_over_from(address)
                        continue
                    message = f"hub {address}: {err.code().name}: {err.details()}"
                    self._site.store.record_attempt(self._hub, self._site.now_ms(), message)
                    log.warning("sync round failed: %s", message)
                    raise SyncError(message) from err
                except TechbridgeError as exc:
                    self._site.store.record_attempt(self._hub, self._site.now_ms(), str(exc))
                    raise
            self._site.store.record_attempt(self._hub, self._site.now_ms(), None)
            progress(
                Progress(
                    "done",
                    done=result.pushed,
                    stored=result.pulled,
                    rejected=result.pull_rejected + result.push_rejected,
                    message=f"registry version {result.registry_version}",
                )
            )
            return result

    # ---- 1. registry --------------------------------------------------------

    def refresh_registry(self, stub: sync_pb2_grpc.SyncServiceStub) -> bool:
        have = self._site.registry().version
        resp = stub.GetRegistry(
            sync_pb2.GetRegistryRequest(have_version=have), timeout=UNARY_DEADLINE_S, metadata=self._md("GetRegistry")
        )
        if not resp.HasField("registry"):
            return False
        reg = decode_registry(resp.registry.body, resp.registry.signature.signature)
        if resp.registry.signature.key_id != reg.root_key_id:
            raise VerificationFailed("registry signature names a different key than its body")
        return self._site.accept_registry(reg)

    def _registry(
        self, stub: sync_pb2_grpc.SyncServiceStub, result: RoundResult, progress: Callable[[Progress], None]
    ) -> None:
        progress(Progress("registry", message="checking the registry"))
        self.refresh_registry(stub)
        result.registry_version = self._site.registry().version

    # ---- 2. push ----------------------------------------------------------------

    def _reconcile(
        self,
        stub: sync_pb2_grpc.SyncServiceStub,
        result: RoundResult,
        progress: Callable[[Progress], None],
        *,
        resume: bool = False,
    ) -> None:
        """The hub's log ends before our cursor: it was restored from an older backup.

        Never skip and never trust either side's checkpoint: push every version
        held here (not only our own; the hub keeps what it lacks and skips the
        rest by hash, so versions it lost from other sites come back too), then
        pull the hub's whole log again (we skip what we hold by hash)."""
        store = self._site.store
        if not resume:
            log.warning("the hub's log does not match this node's checkpoints: reconciling by what each holds")
            store.reset_cursors(self._hub)  # also marks the reconciliation, so a crash resumes it
        self._push(stub, result, progress, everything=True)
        self._pull(stub, result, progress)
        store.set_flags(self._hub, reconciling=False)

    def _push(
        self,
        stub: sync_pb2_grpc.SyncServiceStub,
        result: RoundResult,
        progress: Callable[[Progress], None],
        *,
        everything: bool = False,
    ) -> None:
        store, cfg = self._site.store, self._site.config
        only_local = not everything
        acked = store.peer_state(self._hub).push_acked
        total = store.count_pending(acked, only_local=only_local)
        progress(Progress("push", 0, total))
        if total == 0:
            return
        outbox: queue.Queue[sync_pb2.PushRequest | None] = queue.Queue(maxsize=PUSH_WINDOW)

        def requests() -> Iterator[sync_pb2.PushRequest]:
            while True:
                item = outbox.get()
                if item is None:
                    return
                yield item

        responses = stub.Push(requests(), timeout=self._site.config.stream_deadline_s, metadata=self._md("Push"))
        done = 0
        sent = 0

        def batch(after: int) -> tuple[sync_pb2.PushRequest, int, int, int] | None:
            nonlocal sent
            rows, through, head = store.log_after(after, cfg.push_batch, only_local=only_local)
            if not rows:
                return None  # the acknowledged position stays where the hub put it: the hub checks it
            sent += len(rows)
            txn = push_txn_id(self._site.site_id, rows[0].seq, through, [r.version_id for r in rows])
            remaining = max(0, total - sent)  # derived: no count query per batch
            req = sync_pb2.PushRequest(txn_id=txn, through_seq=through, remaining=remaining, after_seq=after)
            for r in rows:
                req.entries.add(seq=r.seq).envelope.CopyFrom(stored_envelope_to_pb(r.body, r.signatures))
            return req, len(rows), through, head

        # Up to PUSH_WINDOW batches in flight: the hub checks the next while it stores one,
        # and this site reads and encodes the one after while both are on their way.
        in_flight: deque[tuple[sync_pb2.PushRequest, int, int]] = deque()
        next_after: int | None = acked

        def send_more() -> None:
            nonlocal next_after
            while next_after is not None and len(in_flight) < PUSH_WINDOW:
                ahead = batch(next_after)
                if ahead is None:
                    next_after = None
                    return
                req, count, through, head = ahead
                try:
                    outbox.put(req, timeout=ACK_WAIT_S)
                except queue.Full as exc:
                    raise SyncError("the push stream stopped taking batches") from exc
                in_flight.append((req, count, through))
                next_after = through if through < head else None

        try:
            send_more()
            while in_flight:
                req, count, through = in_flight.popleft()
                resp = next(iter(responses))
                if resp.txn_id != req.txn_id:
                    raise SyncError(f"hub acknowledged {resp.txn_id!r} while {req.txn_id!r} was in flight")
                acked = resp.acked_seq
                store.set_push_acked(self._hub, acked)
                if acked < through:
                    raise SyncError(
                        f"the hub deferred this site's log after entry {acked} (stamped ahead of its clock); "
                        "the next round sends it again"
                    )
                done += count
                result.pushed += resp.stored
                result.push_rejected += len(resp.rejected)
                result.rejections.extend((r.version_id, r.reason) for r in resp.rejected)
                progress(Progress("push", done, total, result.pushed, result.push_rejected))
                send_more()
        finally:
            try:
                outbox.put_nowait(None)
            except queue.Full:
                responses.cancel()  # type: ignore[no-untyped-call]
        for _ in responses:  # drain so the call completes cleanly
            pass

    # ---- 3. pull ------------------------------------------------------------------

    def _pull(
        self, stub: sync_pb2_grpc.SyncServiceStub, result: RoundResult, progress: Callable[[Progress], None]
    ) -> None:
        store, cfg = self._site.store, self._site.config
        after = store.peer_state(self._hub).pull_cursor
        stream = stub.Pull(
            sync_pb2.PullRequest(
                after_seq=after,
                batch_size=cfg.pull_batch,
                own_head=store.log_head(),
                after_version_id=store.peer_state(self._hub).pull_cursor_version,
            ),
            timeout=self._site.config.stream_deadline_s,
            metadata=self._md("Pull"),
        )
        # Read off the stream and checked up to PULL_PREFETCH batches ahead of the one being stored.
        messages = checked_ahead(
            self._site,
            stream,
            lambda msg: entries_from_pb(msg.entries),
            depth=PULL_PREFETCH,
            cancel=stream.cancel,
        )
        try:
            self._pull_from(messages, after, result, progress, stub)
        finally:
            messages.close()

    def _pull_from(
        self,
        messages: Iterator[tuple[sync_pb2.PullResponse, list[Entry], list[Received]]],
        after: int,
        result: RoundResult,
        progress: Callable[[Progress], None],
        stub: sync_pb2_grpc.SyncServiceStub,
    ) -> None:
        done = 0
        total = -1
        for msg, entries, checked in messages:
            if total < 0:
                total = max(0, msg.head_seq - after)
            batch = receive(
                self._site,
                self._hub,
                entries,
                checked=checked,
                through_seq=msg.through_seq,
                head_seq=msg.head_seq,
                through_version=msg.through_version_id,
                newer_registry=lambda: self.refresh_registry(stub),
            )
            result.pulled += batch.applied.stored
            result.pull_duplicates += batch.applied.duplicates
            result.pull_rejected += batch.applied.rejected
            result.rejections.extend((r.version_id, r.reason) for r in batch.rejected)
            done = batch.through - after
            progress(Progress("pull", done, total, result.pulled, result.pull_rejected))
            if batch.deferred is not None:
                raise SyncError(  # closing `messages` cancels the stream
                    f"stopped before hub log entry {batch.deferred}: it is stamped ahead of this site's clock; "
                    "the next round takes it again"
                )
