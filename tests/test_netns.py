"""A hub and a node on separate network hosts (Linux network namespaces joined
by a veth pair): a slow, lossy link, then a cut link. During the partition both
sides keep working; after it heals they converge. Traffic stays between the
two namespaces this test creates; everything is removed afterwards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ROOT, wait_until

IP = shutil.which("ip")
TC = shutil.which("tc")


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)


def _can_netns() -> str | None:
    if os.geteuid() != 0 or IP is None or TC is None:
        return "network namespace tests need root and iproute2 (ip, tc)"
    name = f"tbprobe{uuid.uuid4().hex[:6]}"
    try:
        _run(IP, "netns", "add", name)
        _run(IP, "netns", "del", name)
    except (subprocess.CalledProcessError, OSError) as exc:
        return f"cannot create network namespaces here: {exc}"
    return None


SKIP = _can_netns()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


class Net:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.hub_ns, self.node_ns = f"tbh{tag}", f"tbn{tag}"
        self.hub_if, self.node_if = f"vh{tag}", f"vn{tag}"
        octet = 100 + int(tag[:2], 16) % 100
        self.hub_ip, self.node_ip = f"10.{octet}.7.1", f"10.{octet}.7.2"

    def up(self) -> None:
        assert IP is not None
        _run(IP, "netns", "add", self.hub_ns)
        _run(IP, "netns", "add", self.node_ns)
        _run(IP, "link", "add", self.hub_if, "type", "veth", "peer", "name", self.node_if)
        _run(IP, "link", "set", self.hub_if, "netns", self.hub_ns)
        _run(IP, "link", "set", self.node_if, "netns", self.node_ns)
        for ns, dev, ip in ((self.hub_ns, self.hub_if, self.hub_ip), (self.node_ns, self.node_if, self.node_ip)):
            _run(IP, "netns", "exec", ns, "ip", "addr", "add", f"{ip}/24", "dev", dev)
            _run(IP, "netns", "exec", ns, "ip", "link", "set", dev, "up")
            _run(IP, "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def link(self, up: bool) -> None:
        assert IP is not None
        _run(IP, "netns", "exec", self.node_ns, "ip", "link", "set", self.node_if, "up" if up else "down")

    def slow(self) -> str:
        """Make the node's link slow: netem delay and loss where the kernel has it, else a
        token bucket (tbf) rate limit. Returns which."""
        assert TC is not None
        base = [TC, "-n", self.node_ns, "qdisc", "replace", "dev", self.node_if, "root"]
        netem = subprocess.run([*base, "netem", "delay", "80ms", "loss", "5%"], capture_output=True, timeout=30)
        if netem.returncode == 0:
            return "netem delay 80ms loss 5%"
        _run(*base, "tbf", "rate", "256kbit", "burst", "16kbit", "latency", "400ms")
        return "tbf rate 256kbit (this kernel has no netem)"

    def clear_netem(self) -> None:
        assert TC is not None
        subprocess.run([TC, "-n", self.node_ns, "qdisc", "del", "dev", self.node_if, "root"], capture_output=True)

    def down(self) -> None:
        assert IP is not None
        for ns in (self.hub_ns, self.node_ns):
            subprocess.run([IP, "netns", "del", ns], capture_output=True, timeout=30)

    def tb(self, ns: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        assert IP is not None
        return subprocess.run(
            [IP, "netns", "exec", ns, sys.executable, "-m", "cli.main", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def serve(self, ns: str, role: str, data: Path, *extra: str) -> subprocess.Popen[bytes]:
        assert IP is not None
        log = open(data.parent / f"{data.name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        proc = subprocess.Popen(
            [IP, "netns", "exec", ns, sys.executable, "-m", "cli.main", role, "serve", "--data", str(data), *extra],
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        assert wait_until(lambda: (data / "run" / "address").exists() or proc.poll() is not None, timeout=30)
        assert proc.poll() is None, (data.parent / f"{data.name}.log").read_text()
        return proc


@pytest.fixture
def net() -> Iterator[Net]:
    n = Net()
    try:
        n.up()
        yield n
    finally:
        n.down()


def _ids(net: Net, ns: str, data: Path) -> set[str]:
    r = net.tb(ns, "listing", "list", "--data", str(data), "--json")
    assert r.returncode == 0, r.stderr
    return {d["id"] for d in json.loads(r.stdout)}


def _add(net: Net, ns: str, data: Path, title: str) -> str:
    f = data.parent / f"{uuid.uuid4().hex}.json"
    f.write_text(json.dumps({"title": title}))
    r = net.tb(ns, "listing", "add", "--data", str(data), "--file", str(f))
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_partition_slow_link_and_healing_between_two_hosts(net: Net, tmp_path: Path) -> None:
    hq, to = tmp_path / "hq", tmp_path / "toledo"
    r = net.tb(net.hub_ns, "hub", "init", "--data", str(hq), "--listen", f"{net.hub_ip}:7800")
    assert r.returncode == 0, r.stderr
    procs = [net.serve(net.hub_ns, "hub", hq)]
    try:
        r = net.tb(
            net.hub_ns, "hub", "invite", "--data", str(hq), "--centre", "toledo", "--name", "T", "--country", "ES"
        )
        token = r.stdout.strip().splitlines()[-1]
        r = net.tb(net.node_ns, "node", "init", "--data", str(to), "--hub", f"{net.hub_ip}:7800", "--token", token)
        assert r.returncode == 0, r.stderr
        procs.append(net.serve(net.node_ns, "node", to, "--sync-every", "2s"))

        # A slow (and, with netem, lossy) link. Things still arrive.
        print("slow link:", net.slow())
        at_hq = _add(net, net.hub_ns, hq, "Written at HQ over a slow link")
        assert wait_until(lambda: at_hq in _ids(net, net.node_ns, to), timeout=60, step=0.5)
        net.clear_netem()

        # Cut the link: each side keeps working on its own.
        net.link(False)
        during_hq = _add(net, net.hub_ns, hq, "HQ during the partition")
        during_to = _add(net, net.node_ns, to, "Toledo during the partition")
        time.sleep(3)
        assert during_hq not in _ids(net, net.node_ns, to)
        assert during_to not in _ids(net, net.hub_ns, hq)
        st = json.loads(net.tb(net.node_ns, "sync", "status", "--data", str(to), "--json").stdout)
        assert st["peers"][0]["last_error"]  # and it says why

        # Heal: both converge without anyone running sync by hand.
        net.link(True)
        want = {at_hq, during_hq, during_to}
        assert wait_until(lambda: _ids(net, net.node_ns, to) == want == _ids(net, net.hub_ns, hq), timeout=90, step=1)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
