"""Building a site's gRPC server, and the one place errors become statuses.

Every handler is wrapped by `ServiceBoundary`:

* requests are decoded here, so a malformed message answers
  INVALID_ARGUMENT (gRPC's default would be INTERNAL) and the server keeps
  serving; oversized messages are refused by gRPC itself with
  RESOURCE_EXHAUSTED (MAX_MESSAGE_BYTES);
* the admin services require the site's admin credential;
* domain errors (`sync.errors`) map to status codes, with field violations
  attached as google.rpc.BadRequest details;
* anything unexpected is logged (never with payloads) and answers INTERNAL.

The standard health service and server reflection are always registered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from sync import auth, logs, metrics
from sync.errors import (
    ERROR_DOMAIN,
    ConfigError,
    FailedPrecondition,
    FieldViolation,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Reason,
    ResourceExhausted,
    TechbridgeError,
    Unauthenticated,
    Unavailable,
    VerificationFailed,
)
from sync.tls import TlsFiles, peer_site

log = logging.getLogger(__name__)

_Detail = TypeVar("_Detail", bound=Message)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
ADMIN_SERVICES = (
    "techbridge.v1.AdminService",
    "techbridge.v1.HubAdminService",
    "techbridge.v1.NodeAdminService",
    "techbridge.v1.StaffService",
)

# The same keepalive policy on both ends (a client pinging more often than the
# server permits ends in GOAWAY too_many_pings).
KEEPALIVE_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
SERVER_OPTIONS = [
    *KEEPALIVE_OPTIONS,
    ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", 4 * MAX_MESSAGE_BYTES),
    # A port another server holds is refused, not shared (gRPC's default SO_REUSEPORT would
    # let a second site start on it and take half the connections).
    ("grpc.so_reuseport", 0),
]
CHANNEL_OPTIONS = [
    *KEEPALIVE_OPTIONS,
    ("grpc.max_receive_message_length", 4 * MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

_CODES: list[tuple[type[TechbridgeError], grpc.StatusCode]] = [
    (InvalidInput, grpc.StatusCode.INVALID_ARGUMENT),
    (VerificationFailed, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (ConfigError, grpc.StatusCode.FAILED_PRECONDITION),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
]


class _BadMessage(Exception):
    pass


class _CallerLeft(Exception):
    """The caller cancelled (or went away) while the handler read its stream."""


def abort_for(context: grpc.ServicerContext, exc: TechbridgeError) -> NoReturn:
    code = next((c for cls, c in _CODES if isinstance(exc, cls)), grpc.StatusCode.INTERNAL)
    status = status_pb2.Status(code=code.value[0], message=str(exc))
    if isinstance(exc, InvalidInput):
        shown = fitting_violations(exc.violations)
        status.message = "; ".join(str(v) for v in shown)
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description) for v in shown
                ]
            )
        )
        status.details.append(detail)
    if exc.reason is not None:
        info = any_pb2.Any()
        info.Pack(error_details_pb2.ErrorInfo(reason=exc.reason.value, domain=ERROR_DOMAIN))
        status.details.append(info)
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable")  # abort_with_status raises


# The field violations a status names: as many as fit in VIOLATIONS_BYTES, each description
# cut to DESCRIPTION_MAX characters, then how many more.
VIOLATIONS_BYTES = 1500
DESCRIPTION_MAX = 160


def fitting_violations(violations: Sequence[FieldViolation]) -> list[FieldViolation]:
    """The first violations while they fit in VIOLATIONS_BYTES, each description cut to
    DESCRIPTION_MAX characters, then a `(more)` one counting the rest. A status travels in
    the call's trailers, twice (its message percent-encoded, its details base64), and a
    client takes at most 16 KiB of them: a thousand records each with a problem, or fifty
    echoing Korean values, ran past that and reached the client as RESOURCE_EXHAUSTED."""
    shown: list[FieldViolation] = []
    used = 0
    for v in violations:
        description = v.description[:DESCRIPTION_MAX]
        used += len(v.field.encode()) + len(description.encode()) + 4
        if used > VIOLATIONS_BYTES:
            break
        shown.append(FieldViolation(v.field, description))
    if len(shown) < len(violations):
        shown.append(FieldViolation("(more)", f"and {len(violations) - len(shown)} more problems"))
    return shown


def _details(err: grpc.RpcError, message_type: type[_Detail]) -> Iterator[_Detail]:
    """The status details of a client-side error that are of `message_type`, unpacked."""
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    for detail in status.details if status is not None else ():
        if detail.Is(message_type.DESCRIPTOR):
            message = message_type()
            detail.Unpack(message)
            yield message


def field_violations(err: grpc.RpcError) -> list[tuple[str, str]]:
    """Read BadRequest field violations from a client-side error, if any."""
    return [(v.field, v.description) for br in _details(err, error_details_pb2.BadRequest) for v in br.field_violations]


def reason_of(err: grpc.RpcError) -> Reason | None:
    """The protocol signal a client-side error carries (an ErrorInfo of our domain), if any."""
    for info in _details(err, error_details_pb2.ErrorInfo):
        if info.domain == ERROR_DOMAIN and info.reason in Reason.__members__:
            return Reason(info.reason)
    return None


def _abort_bad_message(context: grpc.ServicerContext) -> NoReturn:
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="request is not a valid protobuf message")
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable")


# Methods any caller may reach: the standard services, enrolment (a node has
# no certificate before it enrols; its join token is the credential) and the
# firm service (a firm has no certificate; it signs every call with its key).
OPEN_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/techbridge.v1.EnrolmentService/",
    "/techbridge.v1.FirmService/",
)


@dataclass
class _CallScope:
    finished: bool = False


class ServiceBoundary(grpc.ServerInterceptor):  # type: ignore[type-arg]
    def __init__(self, admin_token: str, site_id: str = "", *, tls: bool = False) -> None:
        self._admin_token = admin_token
        self._site_id = site_id
        self._tls = tls
        # Each method's handler as wrapped here, beside the handler it wraps: the wrapping
        # depends on the method alone (each call's own state is its context), so it is made
        # once per method rather than on every call.
        self._wrapped: dict[str, tuple[Any, Any]] = {}

    def intercept_service(self, continuation: Callable[[Any], Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method: str = details.method
        made = self._wrapped.get(method)
        if made is not None and made[0] is handler:
            return made[1]
        wrapped = self._wrap(method, handler)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        """`handler` answering as the module docstring says: decoded here, guarded, errors
        mapped to statuses, logged and counted."""
        service = method.lstrip("/").split("/")[0]
        needs_admin = service in ADMIN_SERVICES
        needs_peer = self._tls and not method.startswith(OPEN_PREFIXES)
        deser = handler.request_deserializer
        token = self._admin_token
        own_site = self._site_id

        def decode(raw: bytes, context: grpc.ServicerContext) -> Any:
            if deser is None:
                return raw
            try:
                return deser(raw)
            except DecodeError:
                _abort_bad_message(context)

        def guard(context: grpc.ServicerContext) -> None:
            if needs_peer:
                peer = peer_site(context)
                logs.set_peer(peer or "")
                if peer is None:
                    raise Unauthenticated("a client certificate from this network's CA is required here")
                if needs_admin and peer != own_site:
                    raise Unauthenticated(f"the admin service takes this site's own certificate, not {peer!r}'s")
            if needs_admin:
                auth.check_admin(context.invocation_metadata(), token)

        def fail(context: grpc.ServicerContext, exc: Exception) -> NoReturn:
            if isinstance(exc, TechbridgeError):
                abort_for(context, exc)
            if isinstance(exc, _BadMessage):
                _abort_bad_message(context)
            log.error("unexpected error in %s", method, exc_info=exc)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
            raise AssertionError("unreachable")

        @contextmanager
        def call_scope(context: grpc.ServicerContext) -> Iterator[_CallScope]:
            """Log lines inside a call name it; its code and time are counted when it ends."""
            scope = _CallScope()
            started = time.monotonic()
            with logs.in_call(logs.new_call_id()):
                try:
                    yield scope
                finally:
                    code = context.code()  # type: ignore[attr-defined]  # grpc >= 1.38; missing from grpc-stubs
                    # No code and not finished: the caller left (a cancelled stream).
                    name = code.name if code is not None else ("OK" if scope.finished else "CANCELLED")
                    metrics.RPCS.labels(method=method, code=name).inc()
                    metrics.RPC_SECONDS.labels(method=method).observe(time.monotonic() - started)

        def request_iter(it: Iterator[bytes]) -> Iterator[Any]:
            while True:
                try:
                    raw = next(it)
                except StopIteration:
                    return
                except grpc.RpcError as exc:  # grpc's signal that the caller cancelled
                    raise _CallerLeft() from exc
                if deser is None:
                    yield raw
                    continue
                try:
                    yield deser(raw)
                except DecodeError as exc:
                    raise _BadMessage() from exc

        if handler.unary_unary:
            fn = handler.unary_unary

            def unary_unary(raw: bytes, context: grpc.ServicerContext) -> Any:
                with call_scope(context) as scope:
                    try:
                        req = decode(raw, context)
                        guard(context)
                        out = fn(req, context)
                        scope.finished = True
                        return out
                    except Exception as exc:
                        if _aborted(context):
                            raise
                        fail(context, exc)

            return handler._replace(unary_unary=unary_unary, request_deserializer=None)
        if handler.unary_stream:
            fn_us = handler.unary_stream

            def unary_stream(raw: bytes, context: grpc.ServicerContext) -> Iterator[Any]:
                with call_scope(context) as scope:
                    try:
                        req = decode(raw, context)
                        guard(context)
                        yield from fn_us(req, context)
                        scope.finished = True
                    except Exception as exc:
                        if _aborted(context):
                            raise
                        fail(context, exc)

            return handler._replace(unary_stream=unary_stream, request_deserializer=None)
        if handler.stream_unary:
            fn_su = handler.stream_unary

            def stream_unary(it: Iterator[bytes], context: grpc.ServicerContext) -> Any:
                with call_scope(context) as scope:
                    try:
                        guard(context)
                        out = fn_su(request_iter(it), context)
                        scope.finished = True
                        return out
                    except _CallerLeft:
                        log.info("%s: the caller left before its stream ended", method)
                        return None
                    except Exception as exc:
                        if _aborted(context):
                            raise
                        fail(context, exc)

            return handler._replace(stream_unary=stream_unary, request_deserializer=None)
        fn_ss = handler.stream_stream

        def stream_stream(it: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[Any]:
            with call_scope(context) as scope:
                try:
                    guard(context)
                    yield from fn_ss(request_iter(it), context)
                    scope.finished = True
                except _CallerLeft:
                    log.info("%s: the caller left before its stream ended", method)
                except Exception as exc:
                    if _aborted(context):
                        raise
                    fail(context, exc)

        return handler._replace(stream_stream=stream_stream, request_deserializer=None)


def _aborted(context: grpc.ServicerContext) -> bool:
    """True once the handler (or we) called context.abort: grpc then raises a
    bare Exception that must travel on untouched."""
    code = context.code()  # type: ignore[attr-defined]  # grpc >= 1.38; missing from grpc-stubs
    return code is not None and code != grpc.StatusCode.OK


@dataclass(frozen=True)
class Bound:
    server: grpc.Server
    port: int
    enrol_port: int
    health: health.HealthServicer


def build_server(
    listen: str,
    admin_token: str,
    register: Callable[[grpc.Server], list[str]],
    *,
    site_id: str = "",
    tls: TlsFiles | None = None,
    enrol_listen: str | None = None,
    # Each open stream (a node's watch) holds a thread: room for tens of centres.
    max_workers: int = 128,
) -> Bound:
    """Create, register and start a server.

    With `tls`, `listen` requires a client certificate from the CA (mutual
    TLS) and `enrol_listen`, if given, serves server-side TLS only. Without
    it the server is plain text (--insecure, local development only).
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        interceptors=[ServiceBoundary(admin_token, site_id, tls=tls is not None)],
        options=SERVER_OPTIONS,
    )
    names = register(server)
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in names:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME], server
    )
    try:
        if tls is None:
            port = server.add_insecure_port(listen)
        else:
            port = server.add_secure_port(listen, tls.server_credentials(require_client_auth=True))
    except RuntimeError:  # grpcio's word for an address it cannot bind
        port = 0
    if port == 0:
        raise ConfigError(
            f"cannot listen on {listen}: the address is in use or not this machine's "
            "(serve --listen HOST:PORT, or listen in site.json, moves it)"
        )
    enrol_port = 0
    if enrol_listen:
        try:
            if tls is None:
                enrol_port = server.add_insecure_port(enrol_listen)
            else:
                enrol_port = server.add_secure_port(enrol_listen, tls.server_credentials(require_client_auth=False))
        except RuntimeError:
            enrol_port = 0
        if enrol_port == 0:
            server.stop(0)
            raise ConfigError(
                f"cannot listen on {enrol_listen} (the open port for enrolment and firms): the address is in use "
                "or not this machine's (enrol_listen in site.json moves it)"
            )
    server.start()
    return Bound(server, port, enrol_port, health_servicer)


def channel(
    address: str, tls: TlsFiles | None = None, *, ca_only: bytes | None = None, expect: str | None = None
) -> grpc.Channel:
    """A channel to another site: mutual TLS with `tls`, server-side TLS trusting
    `ca_only` (enrolment), or plain text when neither is given (--insecure).
    `expect` is the site id the server's certificate must name."""
    options: list[tuple[str, object]] = list(CHANNEL_OPTIONS)
    if expect:
        options.append(("grpc.ssl_target_name_override", expect))
    if tls is not None:
        return grpc.secure_channel(address, tls.channel_credentials(), options=options)
    if ca_only is not None:
        return grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca_only), options=options)
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
