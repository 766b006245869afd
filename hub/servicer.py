"""The hub's gRPC services: enrolment, sync (handed to sync.protocol.hub_side), hub admin.

Thin: authenticate, decode, call a domain function, encode. Errors are
mapped to statuses in one place (sync.server.ServiceBoundary).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from hub import enrolment
from hub.registry import issue_registry, with_revoked_key, with_rotated_key
from sync import auth
from sync.auth import CALL_SKEW_MS
from sync.codec import registry_to_pb
from sync.config import SITE_ID_RE
from sync.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidInput,
    Unauthenticated,
)
from sync.keys import SigningKey, key_id_of
from sync.protocol.hub_side import HubSide
from sync.registry import Registry, SiteKey
from sync.signing import ROTATE_DOMAIN, verify
from sync.site import Site
from sync.tls import check_csr, issue, peer_site
from techbridge.v1 import admin_pb2, admin_pb2_grpc, sync_pb2, sync_pb2_grpc

log = logging.getLogger(__name__)


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

    registry, _ = site.update_registry(build)
    return registry


class SyncServicer(sync_pb2_grpc.SyncServiceServicer):
    """Authenticates each sync call and hands it to the hub's half of the protocol
    (sync.protocol.hub_side); rotating a node's key is the hub's own."""

    def __init__(self, site: Site, root: SigningKey, protocol: HubSide) -> None:
        self._site = site
        self._root = root
        self._protocol = protocol

    def Watch(self, request: sync_pb2.WatchRequest, context: grpc.ServicerContext) -> Iterator[sync_pb2.WatchEvent]:
        peer = self._caller(context, "Watch")
        yield from self._protocol.watch(peer, request, context.is_active, context.add_callback)

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
        yield from self._protocol.push(peer, request_iterator)

    def Pull(self, request: sync_pb2.PullRequest, context: grpc.ServicerContext) -> Iterator[sync_pb2.PullResponse]:
        peer = self._caller(context, "Pull")
        yield from self._protocol.pull(peer, request, context.is_active)


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

        registry, quarantined = self._site.update_registry(build)
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
