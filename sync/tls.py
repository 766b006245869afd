"""Transport security: the hub's certificate authority, site certificates, and
gRPC credentials for mutual TLS.

`hub init` makes a CA (ECDSA P-256; the `cryptography` package's x509) and a
certificate for the hub. A node, at enrolment, sends a CSR for a key it made;
the hub answers with a certificate naming the node's site id (CN and DNS SAN)
that serves both as its server certificate and as its client certificate.
Every site's server asks every caller for a certificate from this CA
(`require_client_auth`), except on the hub's enrolment port, which serves
server-side TLS only because a node has no certificate before it enrols; the
policy of which method needs which peer is enforced in one place
(sync.server.ServiceBoundary). The CLI presents its own site's certificate.

Signing of records is end to end and does not depend on any of this.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sync.errors import ConfigError, FieldViolation, InvalidInput
from sync.keys import write_private

CA_DAYS = 3650
SITE_DAYS = 825


@dataclass(frozen=True)
class TlsFiles:
    """PEM bytes: the CA to trust, this site's certificate and its key."""

    ca: bytes
    cert: bytes
    key: bytes

    def server_credentials(self, *, require_client_auth: bool = True) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)], root_certificates=self.ca, require_client_auth=require_client_auth
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def make_ca(name: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a new certificate authority."""
    key = _new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"techbridge CA {name}")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), cert.public_bytes(serialization.Encoding.PEM)


def make_key_and_csr(site_id: str) -> tuple[bytes, bytes]:
    key = _new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, site_id)]))
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


def _names(site_id: str, extra: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for n in dict.fromkeys((site_id, "localhost", "127.0.0.1", *extra)):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            names.append(x509.DNSName(n))
    return names


def check_csr(csr_pem: bytes) -> x509.CertificateSigningRequest:
    """The parsed request, or InvalidInput saying what is wrong with it."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise InvalidInput([FieldViolation("tls_csr", "not a PEM certificate signing request")]) from exc
    if not csr.is_signature_valid:
        raise InvalidInput([FieldViolation("tls_csr", "its signature does not verify")])
    if not isinstance(csr.public_key(), ec.EllipticCurvePublicKey):
        raise InvalidInput([FieldViolation("tls_csr", "the key must be an EC key")])
    return csr


def issue(
    ca_key_pem: bytes,
    ca_cert_pem: bytes,
    csr_pem: bytes,
    site_id: str,
    extra_names: tuple[str, ...] = (),
    *,
    local_names: bool = False,
) -> bytes:
    """A site certificate for the key in `csr_pem`, naming `site_id` (whatever the CSR asks).

    Node certificates name only the site id (clients check it with a target
    name override), so no node's certificate can pass for the hub or for
    localhost; the hub's also names localhost, 127.0.0.1 and `extra_names`.
    """
    public = check_csr(csr_pem).public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError("the CA key is not an EC key")
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, site_id)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - datetime.timedelta(minutes=5))
        .not_valid_after(_now() + datetime.timedelta(days=SITE_DAYS))
        .add_extension(
            x509.SubjectAlternativeName(_names(site_id, extra_names) if local_names else [x509.DNSName(site_id)]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def ca_der(ca_cert_pem: bytes) -> bytes:
    return x509.load_pem_x509_certificate(ca_cert_pem).public_bytes(serialization.Encoding.DER)


def ca_pem_from_der(der: bytes) -> bytes:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM)


def peer_site(context: grpc.ServicerContext) -> str | None:
    """The site id in the caller's verified certificate, if it presented one."""
    names = context.auth_context().get("x509_common_name")
    if not names:
        return None
    first: bytes = names[0]  # type: ignore[assignment]  # grpc-stubs types the values loosely
    return first.decode()


@dataclass(frozen=True)
class TlsPaths:
    ca: Path
    cert: Path
    key: Path
    ca_key: Path

    def load(self) -> TlsFiles:
        try:
            return TlsFiles(self.ca.read_bytes(), self.cert.read_bytes(), self.key.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read TLS files: {exc}") from exc

    def check(self, site_id: str, files: TlsFiles) -> None:
        """ConfigError, in one line naming the file, unless the certificate is this key's,
        names `site_id` and is signed by the CA."""
        try:
            cert = x509.load_pem_x509_certificate(files.cert)
        except ValueError:
            raise ConfigError(f"{self.cert} is not a PEM certificate") from None
        try:
            ca = x509.load_pem_x509_certificate(files.ca)
        except ValueError:
            raise ConfigError(f"{self.ca} is not a PEM certificate") from None
        try:
            key = serialization.load_pem_private_key(files.key, password=None)
        except (ValueError, TypeError):
            raise ConfigError(f"{self.key} is not a PEM private key without a password") from None
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if key.public_key().public_bytes(*spki) != cert.public_key().public_bytes(*spki):
            raise ConfigError(f"{self.cert} does not match {self.key}: the certificate is for another key")
        names = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
        if site_id not in names:
            raise ConfigError(f"{self.cert} names {', '.join(map(str, names)) or 'nobody'}, not this site ({site_id})")
        try:
            cert.verify_directly_issued_by(ca)
        except (ValueError, TypeError, InvalidSignature):
            raise ConfigError(f"{self.cert} is not signed by {self.ca} (this network's CA)") from None

    def save(self, ca: bytes, cert: bytes, key: bytes) -> None:
        self.ca.parent.mkdir(parents=True, exist_ok=True)
        self.ca.write_bytes(ca)
        self.cert.write_bytes(cert)
        write_private(self.key, key)
