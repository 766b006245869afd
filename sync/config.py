"""A site's data folder and its configuration file.

DIR/site.json          site id, role, listen address, database URL, hub address (node),
                       admin credential, root public key. Mode 0600.
DIR/keys/signing.key   the site's Ed25519 signing key (0600)
DIR/keys/root.key      the hub's root key, which signs the registry (hub only, 0600)
DIR/keys/tls.key       the site's TLS key (0600)
DIR/keys/ca.key        the network's certificate authority key (hub only, 0600)
DIR/tls/ca.pem         the CA certificate every site trusts
DIR/tls/site.pem       this site's certificate (server and client), issued by the CA
DIR/store.db           the SQLite store (default)
DIR/run/address        the address the running server actually bound (for port 0)
DIR/run/enrol_address  the hub's enrolment address (server-side TLS only)
DIR/run/insecure       present while the server runs without TLS (--insecure)
DIR/run/web_url        the staff console's address while the server runs
"""

from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sync.errors import ConfigError
from sync.tls import TlsPaths

CONFIG_NAME = "site.json"
SITE_ID_RE = re.compile(r"^[a-z][a-z0-9-]{1,62}$")


def default_web_listen(listen: str) -> str:
    """The console's address: this machine only (127.0.0.1, whatever the site's own host),
    80 ports up from the site's (7700 -> 7780), or any free port."""
    port = listen.rpartition(":")[2]
    return f"127.0.0.1:{int(port) + 80}" if port.isdigit() and int(port) and int(port) + 80 < 65536 else "127.0.0.1:0"


def default_enrol_listen(listen: str) -> str:
    """The open port (enrolment at the hub, firms at every site): the next port up, or ephemeral."""
    host, _, port = listen.rpartition(":")
    return f"{host}:{int(port) + 1}" if port.isdigit() and int(port) else f"{host}:0"


@dataclass(frozen=True)
class SiteConfig:
    site_id: str
    role: str  # "hub" or "node"
    listen: str
    db_url: str
    admin_token: str
    root_public_key: str = ""  # hex; the registry's trust anchor
    hub_address: str = ""  # nodes only
    hub_id: str = "hq"  # nodes only
    sync_every_s: float = 30.0
    # Offers: how long a new offer stays valid, and how often the expiry job runs.
    offer_validity_days: int = 365
    expiry_every_s: float = 3600.0
    # Alerts (saved searches): how often they are checked, and the webhook that gets each hit.
    alert_every_s: float = 30.0
    alert_webhook: str = ""
    # HQ's suggestions (offers for open requests): how often they are brought up to date.
    suggest_every_s: float = 30.0
    # The network's figures: how often the counts a report sums catch up with the log.
    figures_every_s: float = 30.0
    pull_batch: int = 500
    push_batch: int = 500
    # Deadline of one push or pull stream; a slow consumer resumes from its cursor next round.
    stream_deadline_s: float = 900.0
    # How far ahead of this site's clock a received version may be stamped.
    max_future_ms: int = 5 * 60 * 1000
    # The open port (server-side TLS only): nodes without a certificate yet come
    # to enrol at the hub; firms reach every site here.
    enrol_listen: str = ""
    # Node: the hub serves without TLS (it was started with --insecure).
    hub_insecure: bool = False
    # The staff console (console.web): HOST:PORT ("off": not served), and the HTTPS
    # certificate and key (PEM paths; without them plain HTTP on loopback only).
    web_listen: str = "127.0.0.1:0"
    web_cert: str = ""
    web_key: str = ""
    # Prometheus metrics (sync.metrics): HOST:PORT, or a port on loopback; "" serves none.
    metrics_listen: str = ""
    # The health service alone in plain text, for probes without TLS: HOST:PORT or a port.
    health_listen: str = ""

    def with_updates(self, **changes: object) -> SiteConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class DataDir:
    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_NAME

    @property
    def signing_key(self) -> Path:
        return self.path / "keys" / "signing.key"

    @property
    def root_key(self) -> Path:
        return self.path / "keys" / "root.key"

    @property
    def address_file(self) -> Path:
        return self.path / "run" / "address"

    @property
    def enrol_address_file(self) -> Path:
        return self.path / "run" / "enrol_address"

    @property
    def web_url_file(self) -> Path:
        return self.path / "run" / "web_url"

    @property
    def metrics_address_file(self) -> Path:
        return self.path / "run" / "metrics_address"

    @property
    def health_address_file(self) -> Path:
        return self.path / "run" / "health_address"

    @property
    def insecure_file(self) -> Path:
        return self.path / "run" / "insecure"

    @property
    def tls(self) -> TlsPaths:
        return TlsPaths(
            ca=self.path / "tls" / "ca.pem",
            cert=self.path / "tls" / "site.pem",
            key=self.path / "keys" / "tls.key",
            ca_key=self.path / "keys" / "ca.key",
        )

    def running_insecure(self) -> bool:
        return self.insecure_file.exists()

    def default_db_url(self) -> str:
        return f"sqlite:///{(self.path / 'store.db').resolve()}"

    def exists(self) -> bool:
        return self.config_file.exists()

    def prepare_new(self) -> None:
        if self.exists():
            raise ConfigError(f"{self.path} already holds a site (found {CONFIG_NAME}); refusing to overwrite")
        self.path.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)

    def load(self) -> SiteConfig:
        try:
            raw = json.loads(self.config_file.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(
                f"{self.path} is not a techbridge data folder (no {CONFIG_NAME}); run init first"
            ) from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{self.config_file} is not valid JSON: {exc}") from exc
        try:
            return SiteConfig(**raw)
        except TypeError as exc:
            raise ConfigError(f"{self.config_file}: {exc}") from exc

    def save(self, config: SiteConfig) -> None:
        tmp = self.config_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(config), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, self.config_file)

    def write_address(self, address: str, *, enrol: str = "", insecure: bool = False) -> None:
        self.address_file.parent.mkdir(parents=True, exist_ok=True)
        if insecure:
            self.insecure_file.write_text("this server runs without TLS (--insecure)\n")
        else:
            self.insecure_file.unlink(missing_ok=True)
        if enrol:
            self.enrol_address_file.write_text(enrol + "\n")
        _write_run_file(self.address_file, address)

    def write_web_url(self, url: str) -> None:
        _write_run_file(self.web_url_file, url)

    def write_metrics_address(self, address: str) -> None:
        _write_run_file(self.metrics_address_file, address)

    def write_health_address(self, address: str) -> None:
        _write_run_file(self.health_address_file, address)

    def clear_address(self) -> None:
        for f in (
            self.address_file,
            self.enrol_address_file,
            self.insecure_file,
            self.web_url_file,
            self.metrics_address_file,
            self.health_address_file,
        ):
            f.unlink(missing_ok=True)

    def server_address(self, config: SiteConfig) -> str:
        """Where the running server listens: the bound address if recorded."""
        if self.address_file.exists():
            return self.address_file.read_text().strip()
        return config.listen


def _write_run_file(path: Path, line: str) -> None:
    """Write one line to a file of run/ at once (a reader never sees it half written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(line + "\n")
    os.replace(tmp, path)


def new_admin_token() -> str:
    return secrets.token_urlsafe(32)


def check_site_id(site_id: str) -> None:
    if not SITE_ID_RE.match(site_id):
        raise ConfigError(
            f"site id {site_id!r} must be 2-63 characters: lower-case letters, digits and '-', starting with a letter"
        )
