"""`techbridge health`: whether a site's server answers SERVING (the gRPC health service),
for a container's HEALTHCHECK, a service manager or a script. Exit 0 when it does, 1 when
it answers otherwise or not at all."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cli.common import CliError, Groups
from sync.config import DataDir
from sync.server import channel


def cmd_health(a: argparse.Namespace) -> None:
    expect = None
    if a.data:
        data = DataDir(Path(a.data))
        config = data.load()
        address = a.addr or data.server_address(config)
        tls = None if data.running_insecure() else data.tls.load()
        expect = config.site_id
        ch = channel(address, tls, expect=expect)
    elif not a.addr:
        raise CliError("error: give --addr HOST:PORT, or --data DIR for a site of this machine")
    elif a.insecure:
        address, ch = a.addr, channel(a.addr)
    elif a.ca:
        try:
            ca = Path(a.ca).read_bytes()
        except OSError as exc:
            raise CliError(f"error: {a.ca}: cannot read: {exc.strerror}") from exc
        address, ch = a.addr, channel(a.addr, ca_only=ca)
    else:
        raise CliError("error: say how to reach it: --data DIR (mutual TLS), --ca PEM (the open port) or --insecure")
    with ch:
        try:
            answer = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=""), timeout=a.timeout)
        except grpc.RpcError as e:
            raise CliError(f"error: {address} does not answer: {e.code().name}: {e.details()}") from e
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    sys.stdout.write(status + "\n")
    if answer.status != health_pb2.HealthCheckResponse.SERVING:
        raise SystemExit(1)


def add_parser(groups: Groups) -> None:
    sp = groups.add_parser("health", help="exit 0 when a site's server answers SERVING (for health checks)")
    sp.add_argument("--addr", default="", metavar="HOST:PORT", help="the server (default with --data: the site's own)")
    sp.add_argument("--data", default="", metavar="DIR", help="a site of this machine: its address and certificate")
    sp.add_argument("--ca", default="", metavar="PEM", help="the network's CA, for the open (enrolment) port")
    sp.add_argument("--insecure", action="store_true", help="plain text (a server started with --insecure)")
    sp.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the answer (default 5)")
    sp.set_defaults(func=cmd_health)
