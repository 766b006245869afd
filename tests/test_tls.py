"""Transport: mutual TLS with certificates from the hub's CA; every other
client is turned away, and the servers keep serving."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sync import auth
from sync.config import DataDir
from sync.keys import SigningKey
from sync.server import channel
from sync.tls import TlsFiles, issue, make_ca, make_key_and_csr
from techbridge.v1 import admin_pb2, admin_pb2_grpc, sync_pb2, sync_pb2_grpc
from tests.harness import Hub, cli, make_node, serve_process

FOREIGN_CA_KEY, FOREIGN_CA = make_ca("elsewhere")


def _self_signed(site: str) -> TlsFiles:
    ca_key, ca = make_ca(site)
    key, csr = make_key_and_csr(site)
    return TlsFiles(ca, issue(ca_key, ca, csr, site), key)


def _registry_call(address: str, creds: grpc.ChannelCredentials, key: SigningKey) -> grpc.StatusCode:
    with grpc.secure_channel(address, creds) as ch:
        try:
            sync_pb2_grpc.SyncServiceStub(ch).GetRegistry(
                sync_pb2.GetRegistryRequest(),
                metadata=auth.site_metadata(key, "tel-aviv", "GetRegistry", time.time_ns() // 10**6),
                timeout=5,
            )
        except grpc.RpcError as e:
            return e.code()
    return grpc.StatusCode.OK


def test_only_certificates_from_the_networks_ca_get_in(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = SigningKey.load(DataDir(node.path).signing_key)
    ca = hub.tls.ca
    good = node.tls.channel_credentials()
    assert _registry_call(hub.address, good, key) == grpc.StatusCode.OK

    own_ca_self_signed = _self_signed("tel-aviv")
    foreign_key, csr = make_key_and_csr("tel-aviv")
    foreign = TlsFiles(ca, issue(FOREIGN_CA_KEY, FOREIGN_CA, csr, "tel-aviv"), foreign_key)
    refused = {
        "no certificate": grpc.ssl_channel_credentials(root_certificates=ca),
        "self-signed": grpc.ssl_channel_credentials(ca, own_ca_self_signed.key, own_ca_self_signed.cert),
        "another CA": foreign.channel_credentials(),
    }
    for name, creds in refused.items():
        code = _registry_call(hub.address, creds, key)
        assert code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED), name  # the handshake fails
    # Plain text to a TLS port gets nowhere either.
    with grpc.insecure_channel(hub.address) as ch, pytest.raises(grpc.RpcError):
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
    # ... and the hub still serves.
    assert _registry_call(hub.address, good, key) == grpc.StatusCode.OK
    assert hub.listings() == []
    node.stop()


def test_the_enrolment_port_serves_enrolment_only(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    key = SigningKey.load(DataDir(node.path).signing_key)
    assert hub.running is not None and hub.running.enrol_port
    enrol_addr = f"127.0.0.1:{hub.running.enrol_port}"
    server_tls_only = grpc.ssl_channel_credentials(root_certificates=hub.tls.ca)
    with grpc.secure_channel(enrol_addr, server_tls_only) as ch:
        with pytest.raises(grpc.RpcError) as e:
            sync_pb2_grpc.SyncServiceStub(ch).GetRegistry(
                sync_pb2.GetRegistryRequest(),
                metadata=auth.site_metadata(key, "tel-aviv", "GetRegistry", time.time_ns() // 10**6),
                timeout=5,
            )
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert "client certificate" in (e.value.details() or "")
        with pytest.raises(grpc.RpcError) as e:
            admin_pb2_grpc.AdminServiceStub(ch).ListRecords(admin_pb2.ListRecordsRequest(), metadata=hub.md, timeout=5)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    node.stop()


def test_admin_takes_the_sites_own_certificate(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    with channel(hub.address, node.tls) as ch, pytest.raises(grpc.RpcError) as e:
        admin_pb2_grpc.AdminServiceStub(ch).ListRecords(admin_pb2.ListRecordsRequest(), metadata=hub.md, timeout=5)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED and "own certificate" in (e.value.details() or "")
    node.stop()


def test_a_sites_certificate_must_match_the_site_it_signs_as(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    ta_key = SigningKey.load(DataDir(ta.path).signing_key)
    # Brussels' certificate with Tel Aviv's signed call headers (e.g. a stolen signing key).
    assert _registry_call(hub.address, br.tls.channel_credentials(), ta_key) == grpc.StatusCode.UNAUTHENTICATED
    ta.stop()
    br.stop()


def test_private_key_files_are_owner_only(hub: Hub, tmp_path: Path) -> None:
    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    for data in (DataDir(hub.path), DataDir(node.path)):
        for f in (data.signing_key, data.tls.key, data.config_file):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    for f in (DataDir(hub.path).root_key, DataDir(hub.path).tls.ca_key):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    node.stop()


def test_insecure_mode_is_explicit_and_loud(tmp_path: Path) -> None:
    import signal

    hq = tmp_path / "hq"
    assert cli("hub", "init", "--data", str(hq), "--listen", "127.0.0.1:0").returncode == 0
    proc = serve_process("hub", hq, "--insecure")
    try:
        log = (tmp_path / "hq.hub.log").read_text()
        assert "WITHOUT TLS" in log
        token = cli("hub", "invite", "--data", str(hq), "--centre", "toledo", "--name", "T", "--country", "ES")
        assert token.returncode == 0, token.stderr
        tok = token.stdout.strip().splitlines()[-1]
        addr = DataDir(hq).address_file.read_text().strip()
        r = cli("node", "init", "--data", str(tmp_path / "to"), "--hub", addr, "--token", tok)
        assert r.returncode == 1 and "--insecure" in r.stderr
        r = cli("node", "init", "--data", str(tmp_path / "to"), "--hub", addr, "--token", tok, "--insecure")
        assert r.returncode == 0, r.stderr
        assert "WITHOUT TLS" in r.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def test_certificates_name_only_their_centre_whatever_the_request_asks() -> None:
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    greedy = (
        cx509.CertificateSigningRequestBuilder()
        .subject_name(cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "hq")]))
        .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(cx509.SubjectAlternativeName([cx509.DNSName("hq"), cx509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    cert = cx509.load_pem_x509_certificate(issue(FOREIGN_CA_KEY, FOREIGN_CA, greedy, "toledo"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "toledo"
    assert cert.extensions.get_extension_for_class(cx509.BasicConstraints).value.ca is False
    assert cert.extensions.get_extension_for_class(cx509.SubjectAlternativeName).value.get_values_for_type(
        cx509.DNSName
    ) == ["toledo"]


def test_a_node_certificate_cannot_pass_for_the_hub(hub: Hub, tmp_path: Path) -> None:
    from sync.server import build_server

    node = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    # A server wearing Tel Aviv's certificate, on localhost.
    bound = build_server("127.0.0.1:0", "t", lambda s: [], site_id="tel-aviv", tls=node.tls)
    try:
        addr = f"127.0.0.1:{bound.port}"
        for expect, ok in (("hq", False), ("tel-aviv", True)):
            with channel(addr, hub.tls, expect=expect) as ch:
                try:
                    health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=3)
                    reached = True
                except grpc.RpcError:
                    reached = False
            assert reached is ok, expect
    finally:
        bound.server.stop(0)
        node.stop()


def test_enrolment_refuses_odd_centre_ids_clearly(hub: Hub) -> None:
    assert hub.running is not None
    enrol = f"127.0.0.1:{hub.running.enrol_port}"
    with channel(enrol, ca_only=hub.tls.ca, expect="hq") as ch:
        for centre in ("ééé", "", "HQ!"):
            with pytest.raises(grpc.RpcError) as e:
                sync_pb2_grpc.EnrolmentServiceStub(ch).Enrol(
                    sync_pb2.EnrolRequest(token="tbj1.e30", centre_id=centre), timeout=5
                )
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, centre
