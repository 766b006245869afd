"""What an operator runs into: `techbridge health` for health checks, and mistakes (a port in
use, a database that is down, a driver not installed) answered in one line, exit 1, no
traceback and nothing half made."""

from __future__ import annotations

import socket
from pathlib import Path

from hub.site import init_hub
from sync.config import DataDir
from tests.harness import Hub, cli


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_health_answers_serving_for_a_running_site(hub: Hub) -> None:
    r = cli("health", "--data", str(hub.path))
    assert r.returncode == 0 and r.stdout.strip() == "SERVING", r.stderr
    assert hub.running is not None
    ca = DataDir(hub.path).tls.ca
    r = cli("health", "--addr", f"127.0.0.1:{hub.running.enrol_port}", "--ca", str(ca))
    assert r.returncode == 0 and r.stdout.strip() == "SERVING", r.stderr
    r = cli("health", "--addr", f"127.0.0.1:{_closed_port()}", "--insecure", "--timeout", "2")
    assert r.returncode == 1 and r.stderr.startswith("error: 127.0.0.1:") and "does not answer" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli("health", "--addr", "127.0.0.1:1")
    assert r.returncode == 1 and "--insecure" in r.stderr


def test_the_open_port_in_use_is_one_line(hub: Hub, tmp_path: Path) -> None:
    assert hub.running is not None
    path = tmp_path / "hq2"
    init_hub(path, listen="127.0.0.1:0", enrol_listen=f"127.0.0.1:{hub.running.enrol_port}")
    r = cli("hub", "serve", "--data", str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "cannot listen on 127.0.0.1:" in r.stderr and "enrol_listen in site.json" in r.stderr
    assert not DataDir(path).address_file.exists()
    r = cli("hub", "serve", "--data", str(path), "--listen", f"127.0.0.1:{hub.running.port}")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "serve --listen" in r.stderr


def test_a_database_that_is_down_or_a_driver_not_installed_is_one_line(tmp_path: Path) -> None:
    down = f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/techbridge"
    r = cli("hub", "init", "--data", str(tmp_path / "hq"), "--db", down)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"error: cannot open the database {down}: ")
    assert not (tmp_path / "hq").exists(), "nothing half made"
    r = cli("hub", "init", "--data", str(tmp_path / "hq"), "--db", "postgresql+pg8000://nobody@127.0.0.1/x")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "no module pg8000" in r.stderr and "pip install 'techbridge[postgres]'" in r.stderr
    assert not (tmp_path / "hq").exists()


def test_a_certificate_that_does_not_match_and_a_folder_that_is_not_one_are_one_line(tmp_path: Path) -> None:
    init_hub(tmp_path / "hq", listen="127.0.0.1:0")
    init_hub(tmp_path / "other", listen="127.0.0.1:0", site_id="hq2")
    hq, other = DataDir(tmp_path / "hq"), DataDir(tmp_path / "other")
    mine_key, mine_cert, mine_ca = (p.read_bytes() for p in (hq.tls.key, hq.tls.cert, hq.tls.ca))
    cases = [
        (hq.tls.key, other.tls.key.read_bytes(), "does not match"),  # another key for this certificate
        (hq.tls.cert, other.tls.cert.read_bytes(), "names hq2, not this site (hq)"),
        (hq.tls.cert, b"not a certificate", "is not a PEM certificate"),
    ]
    for path, content, words in cases:
        path.chmod(0o600)
        path.write_bytes(content)
        if path == hq.tls.cert:  # the other site's certificate with its own key: names the wrong site
            hq.tls.key.write_bytes(other.tls.key.read_bytes() if b"BEGIN" in content else mine_key)
        r = cli("hub", "serve", "--data", str(hq.path))
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1 and words in lines[0], r.stderr
        assert "Traceback" not in r.stderr
        for p, original in ((hq.tls.key, mine_key), (hq.tls.cert, mine_cert), (hq.tls.ca, mine_ca)):
            p.write_bytes(original)
    # A CA that did not sign the certificate.
    hq.tls.ca.write_bytes(other.tls.ca.read_bytes())
    r = cli("hub", "serve", "--data", str(hq.path))
    assert r.returncode == 1 and "is not signed by" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    # A folder that is not a data folder.
    (tmp_path / "empty").mkdir()
    for args in (("hub", "serve"), ("node", "serve"), ("backup", "--out", str(tmp_path / "b.tar.gz"))):
        r = cli(*args, "--data", str(tmp_path / "empty"))
        assert r.returncode == 1 and "not a techbridge data folder" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
