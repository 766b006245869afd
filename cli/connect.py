"""How the techbridge CLI reaches a site: staff through the admin service, a firm through its key file.

Staff commands open `Admin` on the site's data folder: its config names the
server's address, its TLS material and the admin credential. A firm's
commands open a FirmClient to any centre's firm port with the firm's key
file. A failed call becomes a CliError, one line per problem.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import grpc

from cli.common import CliError
from cli.firmclient import FirmClient, FirmKeyFile
from cli.render import err
from sync import auth
from sync.config import DataDir, SiteConfig
from sync.errors import TechbridgeError
from sync.kinds import Kind
from sync.server import channel, field_violations
from techbridge.v1 import admin_pb2, admin_pb2_grpc
from transfer.records import KINDS

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
CALL_TIMEOUT_S = 30.0
SYNC_TIMEOUT_S = 1800.0


class Admin:
    """A connection to the site's own server, with its admin credential."""

    def __init__(self, data_path: str) -> None:
        self.data = DataDir(Path(data_path))
        try:
            self.config: SiteConfig = self.data.load()
        except TechbridgeError as exc:
            raise CliError(f"error: {exc}") from exc
        self.address = self.data.server_address(self.config)
        try:
            tls = None if self.data.running_insecure() else self.data.tls.load()
        except TechbridgeError as exc:
            raise CliError(f"error: {exc}") from exc
        if tls is None:
            err.print(f"[bold red]warning: the {self.config.role} at {self.address} runs WITHOUT TLS (--insecure)[/]")
        self.channel = channel(self.address, tls, expect=self.config.site_id)
        try:
            grpc.channel_ready_future(self.channel).result(timeout=CONNECT_TIMEOUT_S)
        except grpc.FutureTimeoutError as exc:
            raise CliError(
                f"error: cannot reach the {self.config.role} at {self.address}; "
                f"is `techbridge {self.config.role} serve --data {data_path}` running?"
            ) from exc
        self.md = auth.admin_metadata(self.config.admin_token)
        self.admin = admin_pb2_grpc.AdminServiceStub(self.channel)

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.channel.close()


def rpc_error_lines(e: grpc.RpcError, what: str = "") -> list[str]:
    violations = field_violations(e)
    prefix = f"{what}: " if what else ""
    if violations:
        return [f"error: {prefix}{f}: {d}" for f, d in violations]
    return [f"error: {e.code().name}: {e.details()}"]


def kind_at(s: Admin, record_id: str) -> Kind:
    view = s.admin.GetRecord(admin_pb2.GetRecordRequest(id=record_id), metadata=s.md, timeout=CALL_TIMEOUT_S)
    return KINDS[view.record.kind or "listing"]


def call(fn: Callable[[], T], what: str = "") -> T:
    """Run one call; a gRPC error becomes a CliError (its field violations prefixed with `what`)."""
    try:
        return fn()
    except grpc.RpcError as e:
        raise CliError(*rpc_error_lines(e, what)) from e


def firm_client(a: argparse.Namespace) -> FirmClient:
    """A firm's connection to the centre at --node, with its --firm-key file."""
    try:
        keyfile = FirmKeyFile.load(Path(a.firm_key))
        return FirmClient(keyfile, a.node)
    except TechbridgeError as exc:
        raise CliError(f"error: {exc}") from exc


def as_firm(a: argparse.Namespace) -> bool:
    """Whether a command that either side may run was given a firm's options (or else staff's --data)."""
    if a.node and a.firm_key:
        return True
    if getattr(a, "data", None):
        return False
    raise CliError("error: give --data DIR (centre staff) or --node HOST:PORT --firm-key FILE (a firm)")
