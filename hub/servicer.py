"""The hub's gRPC services: enrolment, the hub side of sync, hub admin.

Thin: authenticate, decode, call a domain function, encode. Errors are
mapped to statuses in one place (sync.server.ServiceBoundary).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from hub import enrolment
from hub.registry import issue_registry, with_revoked_key, with_rotated_key
from sync import auth
from sync.auth import CALL_SKEW_MS
from sync.codec import registry_to_pb
from sync.config import SITE_ID_RE
from sync.envelope import signatures_from_pb, stored_envelope_to_pb
from sync.errors import (
    CheckpointMismatch,
    FailedPrecondition,
    FieldViolation,
    InvalidInput,
    ResourceExhausted,
    Unauthenticated,
)
from sync.keys import SigningKey, key_id_of
from sync.registry import Registry, SiteKey, SiteRole
from sync.signing import ROTATE_DOMAIN, verify
from sync.site import Site
from sync.tls import check_csr, issue, peer_site
from techbridge.v1 import admin_pb2, admin_pb2_grpc, sync_pb2, sync_pb2_grpc

log = logging.getLogger(__name__)

BATCH_MAX = 1000
# A watch stream sends a heartbeat at least this often, so either side notices a dead link.
WATCH_HEARTBEAT_S = 10.0
WATCHES_PER_NODE = 2


@dataclass
class EnrolPoint:
    """What invitations carry and enrolment needs of the hub's TLS set-up (empty with --insecure)."""

    ca_der: bytes
    ca_key: bytes
    ca_cert: bytes
    port: int = 0


class EnrolmentServicer(sync_pb2_grpc.EnrolmentServiceServicer):
    def __init__(self, site: Site, root: SigningKey, point: EnrolPoint) -> None:
        self._site = site
        self._root = root
        self._point = point

    def Enrol(self, request: sync_pb2.EnrolRequest, context: grpc.ServicerContext) -> sync_pb2.EnrolResponse:
        if not SITE_ID_RE.match(request.centre_id):
            raise InvalidInput([FieldViolation("centre_id", "not a centre id")])
        if self._point.ca_key:
            if not request.tls_csr:
                raise InvalidInput([FieldViolation("tls_csr", "required: this hub serves TLS")])
            check_csr(request.tls_csr)
        registry = enrolment.enrol(
            self._site.store,
            self._root,
            token=request.token,
            centre_id=request.centre_id,
            public_key=request.public_key,
            proof=request.proof,
            now_ms=self._site.now_ms(),
        )
        self._site.set_registry(registry)
        # Only now, with the token spent for this centre, does the CA sign anything.
        cert = (
            issue(self._point.ca_key, self._point.ca_cert, request.tls_csr, request.centre_id)
            if self._point.ca_key
            else b""
        )
        log.info("enrolled centre %s; registry version %s", request.centre_id, registry.version)
        return sync_pb2.EnrolResponse(
            registry=registry_to_pb(registry),
            root_public_key=self._root.public_bytes,
            hub_id=self._site.site_id,
            tls_certificate=cert,
        )


def rotate_in_registry(site: Site, root: SigningKey, site_id: str, public_key: bytes, at_ms: int) -> Registry:
    """Issue the registry that retires `site_id`'s key at `at_ms` and adds the new one."""
    new = SiteKey(key_id_of(public_key), public_key)

    def build(held: Registry | None) -> Registry:
        assert held is not None
        return issue_registry(root, with_rotated_key(held, site_id, new, at_ms), previous=held, now_ms=site.now_ms())

    registry = site.store.update_registry(site.now_ms(), build)
    site.set_registry(registry)
    return registry


class SyncServicer(sync_pb2_grpc.SyncServiceServicer):
    def __init__(self, site: Site, root: SigningKey) -> None:
        self._site = site
        self._root = root
        # Open watch streams per node: each holds a server thread, so one node may not hold many.
        self._watching: dict[str, int] = {}
        self._watch_lock = threading.Lock()

    def Watch(self, request: sync_pb2.WatchRequest, context: grpc.ServicerContext) -> Iterator[sync_pb2.WatchEvent]:
        peer = self._caller(context, "Watch")
        with self._watch_lock:
            if self._watching.get(peer, 0) >= WATCHES_PER_NODE:
                raise ResourceExhausted(f"{peer} already has {WATCHES_PER_NODE} watch streams open")
            self._watching[peer] = self._watching.get(peer, 0) + 1
        try:
            store = self._site.store
            context.add_callback(store.wake)  # a caller that leaves frees its thread at once
            last = request.after_seq
            log.info("%s is watching from %s", peer, last)
            # Answer at once: the node learns the link is up without waiting for a change.
            yield sync_pb2.WatchEvent(head_seq=store.visible_head(peer))
            while context.is_active():
                head = store.wait_for_head(last, WATCH_HEARTBEAT_S)
                # Only what this node may receive: the watch says nothing of the rest.
                yield sync_pb2.WatchEvent(head_seq=store.visible_head(peer))
                last = max(last, head)
        finally:
            with self._watch_lock:
                self._watching[peer] -= 1

    def RotateKey(
        self, request: sync_pb2.RotateKeyRequest, context: grpc.ServicerContext
    ) -> sync_pb2.RotateKeyResponse:
        peer = self._caller(context, "RotateKey")
        now = self._site.now_ms()
        problems = []
        if len(request.public_key) != 32:
            problems.append(FieldViolation("public_key", "must be a raw 32-byte Ed25519 public key"))
        elif not verify(request.public_key, ROTATE_DOMAIN, f"{peer}|{request.at_ms}".encode(), request.proof):
            problems.append(FieldViolation("proof", "is not the new key's signature over the site and instant"))
        if abs(request.at_ms - now) > CALL_SKEW_MS:
            problems.append(FieldViolation("at_ms", "must be within 5 minutes of the hub's clock"))
        if problems:
            raise InvalidInput(problems)
        registry = rotate_in_registry(self._site, self._root, peer, request.public_key, request.at_ms)
        log.info("rotated the signing key of %s; registry version %s", peer, registry.version)
        return sync_pb2.RotateKeyResponse(registry=registry_to_pb(registry))

    def _caller(self, context: grpc.ServicerContext, method: str) -> str:
        site = auth.authenticate_site(context.invocation_metadata(), method, self._site.registry(), self._site.now_ms())
        peer = peer_site(context)
        if peer is not None and peer != site:
            raise Unauthenticated(f"the call is signed by {site!r} but the TLS certificate names {peer!r}")
        return site

    def GetRegistry(
        self, request: sync_pb2.GetRegistryRequest, context: grpc.ServicerContext
    ) -> sync_pb2.GetRegistryResponse:
        self._caller(context, "GetRegistry")
        registry = self._site.registry()
        if request.have_version >= registry.version:
            return sync_pb2.GetRegistryResponse()
        return sync_pb2.GetRegistryResponse(registry=registry_to_pb(registry))

    def Push(
        self, request_iterator: Iterator[sync_pb2.PushRequest], context: grpc.ServicerContext
    ) -> Iterator[sync_pb2.PushResponse]:
        peer = self._caller(context, "Push")
        store = self._site.store
        for req in request_iterator:
            if len(req.entries) > BATCH_MAX:
                raise InvalidInput([FieldViolation("entries", f"at most {BATCH_MAX} entries per batch")])
            if not req.txn_id.startswith(f"{peer}:"):
                raise InvalidInput([FieldViolation("txn_id", f"must start with the caller's site id ({peer}:)")])
            if any(e.seq > req.through_seq for e in req.entries):
                raise InvalidInput([FieldViolation("through_seq", "must cover every entry's seq")])
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
            checked = self._site.check_entries(
                [(e.seq, e.envelope.body, signatures_from_pb(e.envelope)) for e in req.entries]
            )
            checked, deferred = self._site.until_deferred(checked)
            through = req.through_seq if deferred is None else deferred - 1
            accepted = [c.version for c in checked if c.version is not None]
            rejected = [c.rejection for c in checked if c.rejection is not None]
            for r in rejected:
                log.warning("refused version %s from %s: %s", r.version_id, peer, r.reason)
            res = store.apply_batch(
                peer,
                accepted,
                rejected,
                through_seq=through,
                head_seq=req.through_seq + req.remaining,
                # A cut batch is not the batch its id names: the retry must not be skipped.
                txn_id=req.txn_id if deferred is None else None,
                now_ms=self._site.now_ms(),
            )
            self._site.requarantine(accepted)
            yield sync_pb2.PushResponse(
                txn_id=req.txn_id,
                acked_seq=through,
                stored=res.stored,
                duplicates=res.duplicates,
                rejected=[sync_pb2.Rejection(version_id=r.version_id, reason=r.reason) for r in rejected],
            )
        store.record_attempt(peer, self._site.now_ms(), None)

    def Pull(self, request: sync_pb2.PullRequest, context: grpc.ServicerContext) -> Iterator[sync_pb2.PullResponse]:
        peer = self._caller(context, "Pull")
        store = self._site.store
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
            if not context.is_active():
                return
            if through >= head_at_start:
                break
        # Sent to its end, not yet stored: the node may still be storing batches it read
        # ahead. Its next Pull's after_seq says what it holds (and corrects push_acked).
        store.set_push_acked(peer, after)
        if restored and store.peer_state(peer).resend_until == 0:
            store.set_resend_until(peer, head_at_start)
        store.record_attempt(peer, self._site.now_ms(), None)


class HubStatus:
    """Per node: last contact, how far each side's log has travelled."""

    def __init__(self, site: Site) -> None:
        self._site = site

    def peer_statuses(self) -> list[admin_pb2.PeerStatus]:
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
                )
            )
        return out


class HubAdminServicer(admin_pb2_grpc.HubAdminServiceServicer):
    def __init__(self, site: Site, point: EnrolPoint, root: SigningKey) -> None:
        self._site = site
        self._point = point
        self._root = root

    def RevokeKey(
        self, request: admin_pb2.RevokeKeyRequest, context: grpc.ServicerContext
    ) -> admin_pb2.RevokeKeyResponse:
        now = self._site.now_ms()
        at = request.compromised_since_ms or now
        if at > now:
            raise InvalidInput([FieldViolation("compromised_since_ms", "must not be in the future")])
        if request.key_id == self._site.key.key_id:
            raise FailedPrecondition("this is the hub's signing key in use: rotate it first (techbridge keys rotate)")
        if request.key_id == self._site.registry().root_key_id:
            raise FailedPrecondition("the root key cannot be revoked from the registry it signs")

        def build(held: Registry | None) -> Registry:
            assert held is not None
            return issue_registry(self._root, with_revoked_key(held, request.key_id, at), previous=held, now_ms=now)

        registry = self._site.store.update_registry(now, build)
        quarantined = self._site.set_registry(registry)
        log.warning("revoked key %s from %s ms; registry version %s", request.key_id, at, registry.version)
        return admin_pb2.RevokeKeyResponse(registry_version=registry.version, quarantined=quarantined, revoked_at_ms=at)

    def Invite(self, request: admin_pb2.InviteRequest, context: grpc.ServicerContext) -> admin_pb2.InviteResponse:
        token, expires = enrolment.invite(
            self._site.store,
            self._site.registry(),
            self._site.site_id,
            centre_id=request.centre_id,
            name=request.name,
            country=request.country,
            ttl_s=request.ttl_seconds,
            now_ms=self._site.now_ms(),
            ca_der=self._point.ca_der,
            enrol_port=self._point.port,
        )
        log.info("invited centre %s", request.centre_id)
        return admin_pb2.InviteResponse(token=token, expires_at_ms=expires)
