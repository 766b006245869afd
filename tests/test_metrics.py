"""Prometheus metrics on `--metrics-listen`: scraped over HTTP from a real hub process and
an in-process node during a sync, the figures move as the sync goes."""

from __future__ import annotations

import re
import socket
import urllib.request
from pathlib import Path

import pytest

from hub.site import init_hub
from node.site import init_node, start_node
from sync.config import DataDir
from sync.errors import ConfigError
from tests.harness import Hub, Node, cli, preload_listings, serve_process, stop, wait_until


def scrape(address: str) -> str:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as resp:
        assert resp.status == 200
        return str(resp.read().decode())


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name{labels}` (labels in any order, others allowed); 0 if absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        if m is None or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(4))
    return 0.0


def test_a_hub_and_a_node_expose_figures_that_move_with_a_sync(tmp_path: Path) -> None:
    cfg = init_hub(tmp_path / "hq", listen="127.0.0.1:0")
    proc = serve_process("hub", tmp_path / "hq", "--metrics-listen", "127.0.0.1:0", "--health-listen", "127.0.0.1:0")
    node = None
    try:
        data = DataDir(tmp_path / "hq")
        assert wait_until(data.metrics_address_file.exists)
        hub_metrics = data.metrics_address_file.read_text().strip()
        assert hub_metrics.startswith("127.0.0.1:")
        # The plain-text health port answers probes that speak no TLS.
        assert wait_until(data.health_address_file.exists)
        probe = cli("health", "--addr", data.health_address_file.read_text().strip(), "--insecure")
        assert (probe.returncode, probe.stdout.strip()) == (0, "SERVING"), probe.stderr
        hub = Hub(path=tmp_path / "hq", admin_token=cfg.admin_token, address=data.address_file.read_text().strip())
        token = hub.invite("tel-aviv")
        ncfg = init_node(tmp_path / "ta", hub=hub.address, token=token, listen="127.0.0.1:0")
        preload_listings(tmp_path / "ta", "tel-aviv", 120, "metrics")
        running = start_node(tmp_path / "ta", sync_every_s=0, live=False, metrics_listen="127.0.0.1:0")
        node = Node(path=tmp_path / "ta", admin_token=ncfg.admin_token, address=running.running.address, node=running)
        node_metrics = running.running.metrics_address

        before_node, before_hub = scrape(node_metrics), scrape(hub_metrics)
        assert value(before_node, "techbridge_peer_versions_behind", peer="hq", direction="send") == 120
        rounds_ok = value(before_node, "techbridge_sync_rounds_total", peer="hq", outcome="ok")
        assert value(before_hub, "techbridge_versions_stored_total", peer="tel-aviv") == 0

        hub.add_record("HQ's own offer")
        result = node.sync()
        assert (result.pushed, result.pulled) == (120, 1)

        after_node, after_hub = scrape(node_metrics), scrape(hub_metrics)
        # The hub stored the node's push, verified it, answered its calls.
        assert value(after_hub, "techbridge_versions_received_total", peer="tel-aviv") == 120
        assert value(after_hub, "techbridge_versions_stored_total", peer="tel-aviv") == 120
        assert value(after_hub, "techbridge_signature_verifications_total", outcome="valid") >= 120
        push_calls = value(after_hub, "techbridge_rpcs_total", method="/techbridge.v1.SyncService/Push", code="OK")
        assert push_calls >= 1
        assert value(after_hub, "techbridge_rpc_seconds_count", method="/techbridge.v1.SyncService/Push") >= 1
        assert value(after_hub, "techbridge_store_log_head") == 121
        assert value(after_hub, "techbridge_store_size_bytes") > 0
        assert value(after_hub, "techbridge_peer_versions_behind", peer="tel-aviv", direction="send") == 0
        assert 0 <= value(after_hub, "techbridge_peer_seconds_since_success", peer="tel-aviv") < 60
        # The node: nothing left to send, its round counted, the hub's offer stored.
        assert value(after_node, "techbridge_peer_versions_behind", peer="hq", direction="send") == 0
        assert value(after_node, "techbridge_sync_rounds_total", peer="hq", outcome="ok") == rounds_ok + 1
        assert value(after_node, "techbridge_sync_round_seconds_count", peer="hq") >= 1
        assert value(after_node, "techbridge_versions_stored_total", peer="hq") >= 1
        assert value(after_node, "techbridge_store_log_head") == 121
        # Nothing secret in a label or a value.
        for text in (after_hub, after_node):
            assert cfg.admin_token not in text and ncfg.admin_token not in text and token not in text
    finally:
        if node is not None:
            node.stop()
        stop(proc)


def test_a_metrics_port_in_use_is_one_line_naming_the_flag(tmp_path: Path) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        from hub.site import start_hub

        init_hub(tmp_path / "hq", listen="127.0.0.1:0")
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as caught:
            start_hub(tmp_path / "hq", metrics_listen=f"127.0.0.1:{port}")
        assert "--metrics-listen" in str(caught.value) and "\n" not in str(caught.value)
        assert not DataDir(tmp_path / "hq").address_file.exists()  # the hub stopped, nothing left serving
    finally:
        taken.close()
