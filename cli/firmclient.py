"""A firm's client: its key file, its connection to any centre, the versions it signs.

The key file (written by `techbridge firm register` at the firm's home
centre, mode 0600) holds the firm's id, its private key and the network's CA
certificate: all the firm needs to reach any centre securely. The client
learns which centre it reached from that centre's certificate (checked
against the CA), signs every call and every change with the firm's key, and
lets the centre countersign and sync it.
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509

from sync import auth
from sync.clock import Stamp
from sync.envelope import Version, envelope_to_pb, make_version
from sync.errors import ConfigError
from sync.ids import new_record_id
from sync.keys import SigningKey, write_private
from sync.kinds import Change, pins_of
from sync.server import CHANNEL_OPTIONS
from techbridge.v1 import admin_pb2, firm_pb2, firm_pb2_grpc
from transfer.records import KINDS, kind_of

FORMAT = "techbridge-firm-key/1"


@dataclass(frozen=True)
class FirmKeyFile:
    firm_id: str
    name: str
    home: str
    key: SigningKey
    # The network's CA (PEM); empty when the network runs --insecure (development).
    ca_pem: str

    def save(self, path: Path) -> None:
        doc = {
            "format": FORMAT,
            "firm_id": self.firm_id,
            "name": self.name,
            "home": self.home,
            "private_key": self.key.seed.hex(),
            "ca_pem": self.ca_pem,
        }
        write_private(path, (json.dumps(doc, indent=2) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> FirmKeyFile:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read firm key file {path}: {exc.strerror}") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path} is not a firm key file (not JSON)") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise ConfigError(f"{path} is not a firm key file (format {FORMAT})")
        try:
            key = SigningKey.from_seed(bytes.fromhex(str(doc["private_key"])))
            return cls(str(doc["firm_id"]), str(doc["name"]), str(doc["home"]), key, str(doc.get("ca_pem", "")))
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"{path} is a damaged firm key file ({exc})") from exc


def centre_of(address: str, ca_pem: str, timeout_s: float = 5.0) -> str:
    """The centre id the server at `address` proves with a certificate from the CA."""
    host, _, port = address.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=ca_pem)
    ctx.check_hostname = False  # the name is read from the verified certificate below
    ctx.set_alpn_protocols(["h2"])
    try:
        with (
            socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as raw,
            ctx.wrap_socket(raw, server_hostname=host.strip("[]")) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot reach a centre of this network at {address}: {exc}") from exc
    if der is None:
        raise ConfigError(f"{address} presented no certificate")
    cert = x509.load_der_x509_certificate(der)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    if not names:
        raise ConfigError(f"the certificate at {address} names no centre")
    return names[0]


class FirmClient:
    """A connection from a firm to one centre."""

    def __init__(self, keyfile: FirmKeyFile, address: str, timeout_s: float = 30.0) -> None:
        self.keyfile = keyfile
        self.timeout_s = timeout_s
        if keyfile.ca_pem:
            site = centre_of(address, keyfile.ca_pem)
            creds = grpc.ssl_channel_credentials(root_certificates=keyfile.ca_pem.encode())
            options = [*CHANNEL_OPTIONS, ("grpc.ssl_target_name_override", site)]
            self.channel = grpc.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = firm_pb2_grpc.FirmServiceStub(self.channel)
        hello = self.stub.Hello(firm_pb2.HelloRequest(), metadata=self._md("Hello"), timeout=timeout_s)
        self.site_id = hello.site_id

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> FirmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _md(self, method: str) -> tuple[tuple[str, str | bytes], ...]:
        return auth.firm_metadata(
            self.keyfile.key, self.keyfile.firm_id, f"/techbridge.v1.FirmService/{method}", int(time.time() * 1000)
        )

    def get(self, record_id: str) -> admin_pb2.RecordView:
        req = firm_pb2.FirmGetRecordRequest(id=record_id)
        return self.stub.GetRecord(req, metadata=self._md("GetRecord"), timeout=self.timeout_s).record

    def list(self, kind: str = "", mine: bool = False) -> list[admin_pb2.RecordView]:
        out: list[admin_pb2.RecordView] = []
        token = ""
        while True:
            req = firm_pb2.FirmListRecordsRequest(kind=kind, mine=mine, page_size=500, page_token=token)
            resp = self.stub.ListRecords(req, metadata=self._md("ListRecords"), timeout=self.timeout_s)
            out.extend(resp.records)
            token = resp.next_page_token
            if not token:
                return out

    def submit(self, version: Version) -> admin_pb2.RecordView:
        req = firm_pb2.SubmitRequest(envelope=envelope_to_pb(version))
        return self.stub.Submit(req, metadata=self._md("Submit"), timeout=self.timeout_s).record

    def create(self, kind: str, change: Change) -> admin_pb2.RecordView:
        """Sign and submit a new record the firm owns."""
        now = int(time.time() * 1000)
        record_id, nonce = new_record_id(self.keyfile.firm_id, now, pins_of(KINDS[kind], change))
        version = make_version(
            self.keyfile.key,
            site=self.keyfile.firm_id,
            record_id=record_id,
            hlc=Stamp(now, 0),
            change=change,
            record_nonce=nonce,
            kind=KINDS[kind],
        )
        return self.submit(version)

    def change(self, view: admin_pb2.RecordView, change: Change) -> admin_pb2.RecordView:
        """Sign and submit a change on top of the record as the centre holds it now."""
        now = int(time.time() * 1000)
        newest = max(view.updated_at_ms, view.provenance.hlc_wall_ms)
        stamp = Stamp(now, 0) if now > newest else Stamp(newest, view.provenance.hlc_counter + 1)
        version = make_version(
            self.keyfile.key,
            site=self.keyfile.firm_id,
            origin=view.provenance.origin,
            record_id=view.id,
            hlc=stamp,
            change=change,
            parents=tuple(view.heads),
            record_nonce=view.record_nonce,
            kind=kind_of(view.kind),
        )
        return self.submit(version)
