"""A hub and a node on separate network hosts (Linux network namespaces joined
by a veth pair): a long, lossy link that duplicates packets, then a cut link.
During the partition both sides keep working; after it heals they converge,
within two rounds. Traffic stays between the two namespaces each test creates;
everything is removed afterwards.

The impairments, since this machine's kernel has no `tc netem`:
- delay: the node reaches the hub through a relay on its own loopback that
  holds every byte for the set time each way (tests/delay_relay.py), so all of
  the node's sync traffic still crosses the veth link;
- loss and duplication: nftables rules on both ends of the veth (`numgen
  random` drops a share of the packets arriving, `dup` sends a share twice),
  where `nft` exists (`.ci/run` installs it);
- a slow link: a token bucket (tbf) on the node's side;
- a cut: the node's end of the veth taken down."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import ROOT, stop, wait_until

IP = shutil.which("ip")
TC = shutil.which("tc")
NFT = shutil.which("nft")
DELAY_MS = 80
LOSS_PCT = 5
DUP_PCT = 5


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
        self.relay: subprocess.Popen[bytes] | None = None
        self.procs: list[subprocess.Popen[bytes]] = []  # every site started here, stopped in down()
        self.delay_file = Path(f"/tmp/tbdelay{tag}")

    def start_relay(self, *pairs: str) -> None:
        """The node's way to the hub: a relay on the node's loopback, across the veth."""
        assert IP is not None
        self.delay_file.write_text("0")
        ready = Path(f"{self.delay_file}.ready")
        relay = [sys.executable, "-m", "tests.delay_relay", "--delay-file", str(self.delay_file)]
        relay += ["--ready-file", str(ready), *pairs]
        self.relay = subprocess.Popen([IP, "netns", "exec", self.node_ns, *relay], cwd=ROOT)
        assert wait_until(lambda: ready.exists() or self.relay is None or self.relay.poll() is not None, timeout=30)
        assert ready.exists(), "the relay did not start"
        ready.unlink()

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
            # One packet per TCP segment, as on a real wire (no 64 KB offload bundles), so
            # a share of packets lost or doubled means a share of segments.
            subprocess.run([IP, "-n", ns, "link", "set", dev, "gso_max_size", "1500", "gso_max_segs", "1"], timeout=30)
            _run(IP, "netns", "exec", ns, "ip", "link", "set", "lo", "up")

    def impair(self) -> str:
        """A long link: DELAY_MS each way through the relay; LOSS_PCT of the packets
        arriving at either end dropped and DUP_PCT of those leaving sent twice."""
        self.delay_file.write_text(str(DELAY_MS))
        if NFT is None:
            return f"delay {DELAY_MS} ms each way (no nft here: no loss or duplication)"
        for ns, dev, peer in ((self.hub_ns, self.hub_if, self.node_ip), (self.node_ns, self.node_if, self.hub_ip)):
            rules = (
                "add table ip tbimp\n"
                "add chain ip tbimp pre { type filter hook prerouting priority 0; policy accept; }\n"
                "add chain ip tbimp out { type filter hook output priority 0; policy accept; }\n"
                f"add rule ip tbimp pre ip saddr {peer} numgen random mod 100 < {LOSS_PCT} counter drop\n"
                f"add rule ip tbimp out ip daddr {peer} numgen random mod 100 < {DUP_PCT} counter "
                f"dup to {peer} device {dev}\n"
            )
            assert IP is not None
            subprocess.run([IP, "netns", "exec", ns, NFT, "-f", "-"], input=rules.encode(), check=True, timeout=30)
        return f"delay {DELAY_MS} ms each way, {LOSS_PCT}% loss and {DUP_PCT}% duplication at both ends"

    def impaired_packets(self) -> tuple[int, int]:
        """(packets dropped, packets sent twice) by the rules so far, both ends."""
        dropped = duplicated = 0
        if NFT is None or IP is None:
            return 0, 0
        for ns in (self.hub_ns, self.node_ns):
            r = subprocess.run(
                [IP, "netns", "exec", ns, NFT, "-j", "list", "table", "ip", "tbimp"], capture_output=True, timeout=30
            )
            for item in json.loads(r.stdout or b"{}").get("nftables", []):
                expr = item.get("rule", {}).get("expr", [])
                packets = sum(e["counter"]["packets"] for e in expr if "counter" in e)
                if any("drop" in e for e in expr):
                    dropped += packets
                elif any("dup" in e for e in expr):
                    duplicated += packets
        return dropped, duplicated

    def unimpair(self) -> None:
        self.delay_file.write_text("0")
        if NFT is not None and IP is not None:
            for ns in (self.hub_ns, self.node_ns):
                subprocess.run([IP, "netns", "exec", ns, NFT, "delete", "table", "ip", "tbimp"], capture_output=True)

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
        _stop(self.procs)  # deleting a namespace does not stop what runs in it
        if self.relay is not None:
            self.relay.kill()
            self.relay.wait(timeout=10)
        self.delay_file.unlink(missing_ok=True)
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
        self.procs.append(proc)
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


def _setup(net: Net, tmp_path: Path, *node_args: str) -> tuple[Path, Path, list[subprocess.Popen[bytes]]]:
    """A hub in one namespace, a node in the other reaching it through the relay."""
    hq, to = tmp_path / "hq", tmp_path / "toledo"
    r = net.tb(net.hub_ns, "hub", "init", "--data", str(hq), "--listen", f"{net.hub_ip}:7800")
    assert r.returncode == 0, r.stderr
    procs = [net.serve(net.hub_ns, "hub", hq)]
    r = net.tb(net.hub_ns, "hub", "invite", "--data", str(hq), "--centre", "toledo", "--name", "T", "--country", "ES")
    token = r.stdout.strip().splitlines()[-1]
    # The node dials the hub at 7800 and enrols at the next port up, both through the relay.
    net.start_relay(f"127.0.0.1:7800={net.hub_ip}:7800", f"127.0.0.1:7801={net.hub_ip}:7801")
    r = net.tb(net.node_ns, "node", "init", "--data", str(to), "--hub", "127.0.0.1:7800", "--token", token)
    assert r.returncode == 0, r.stderr
    procs.append(net.serve(net.node_ns, "node", to, *node_args))
    return hq, to, procs


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        stop(p)


def _import(net: Net, ns: str, data: Path, prefix: str, count: int) -> None:
    f = data.parent / f"{uuid.uuid4().hex}.csv"
    f.write_text("title,summary\n" + "".join(f"{prefix} {i},Made during the test\n" for i in range(count)))
    r = net.tb(ns, "listing", "import", "--data", str(data), "--file", str(f), timeout=120)
    assert r.returncode == 0, r.stderr


def _digest(net: Net, ns: str, data: Path) -> tuple[int, str]:
    r = net.tb(ns, "sync", "digest", "--data", str(data), "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    return int(d["versions"]), str(d["digest"])


def test_partition_slow_link_and_healing_between_two_hosts(net: Net, tmp_path: Path) -> None:
    hq, to, procs = _setup(net, tmp_path, "--sync-every", "2s")
    try:
        # A long link that loses and duplicates packets: things still arrive, both ways.
        print("impaired link:", net.impair())
        at_hq = _add(net, net.hub_ns, hq, "Written at HQ over a long, lossy link")
        at_to = _add(net, net.node_ns, to, "Written at Toledo over a long, lossy link")
        t = time.monotonic()
        assert wait_until(
            lambda: {at_hq, at_to} <= _ids(net, net.node_ns, to) and {at_hq, at_to} <= _ids(net, net.hub_ns, hq),
            timeout=60,
            step=0.5,
        )
        print(f"both ways across the impaired link in {time.monotonic() - t:.1f} s")
        net.unimpair()
        # A slow link (a token bucket on the node's side).
        print("slow link:", net.slow())
        slow = _add(net, net.hub_ns, hq, "Written at HQ over a slow link")
        assert wait_until(lambda: slow in _ids(net, net.node_ns, to), timeout=60, step=0.5)
        net.clear_netem()

        # Cut the link: each side keeps working on its own.
        net.link(False)
        during_hq = _add(net, net.hub_ns, hq, "HQ during the partition")
        during_to = _add(net, net.node_ns, to, "Toledo during the partition")
        time.sleep(3)
        assert during_hq not in _ids(net, net.node_ns, to)
        assert during_to not in _ids(net, net.hub_ns, hq)

        def says_why() -> bool:
            st = json.loads(net.tb(net.node_ns, "sync", "status", "--data", str(to), "--json").stdout)
            return bool(st["peers"][0]["last_error"])

        # And it says why, once a round across the cut link has failed (its connect times out).
        assert wait_until(says_why, timeout=30, step=0.5)

        # Heal: both converge without anyone running sync by hand.
        net.link(True)
        want = {at_hq, at_to, slow, during_hq, during_to}
        assert wait_until(lambda: _ids(net, net.node_ns, to) == want == _ids(net, net.hub_ns, hq), timeout=90, step=1)
    finally:
        _stop(procs)


def test_after_a_partition_two_rounds_converge_over_an_impaired_link(net: Net, tmp_path: Path) -> None:
    """No schedule and no watch stream: every round is one `sync now`, so the rounds are counted."""
    hq, to, procs = _setup(net, tmp_path, "--sync-every", "0", "--no-live")
    try:
        _import(net, net.node_ns, to, "Toledo before", 50)
        r = net.tb(net.node_ns, "sync", "now", "--data", str(to))
        assert r.returncode == 0, r.stderr
        net.link(False)
        _import(net, net.node_ns, to, "Toledo during the partition", 300)
        _import(net, net.hub_ns, hq, "HQ during the partition", 100)
        r = net.tb(net.node_ns, "sync", "now", "--data", str(to), timeout=120)
        assert r.returncode != 0 and "error: UNAVAILABLE: hub 127.0.0.1:7800" in r.stderr, (r.returncode, r.stderr)
        assert _digest(net, net.hub_ns, hq)[0] == 150 and _digest(net, net.node_ns, to)[0] == 350

        net.link(True)
        print("impaired link:", net.impair())
        rounds = 0
        while rounds < 2 and _digest(net, net.hub_ns, hq) != _digest(net, net.node_ns, to):
            r = net.tb(net.node_ns, "sync", "now", "--data", str(to), timeout=120)
            rounds += 1
            print(f"round {rounds}: exit {r.returncode} {r.stdout.strip().splitlines()[-1:]} {r.stderr.strip()}")
        held = _digest(net, net.hub_ns, hq)
        assert held == _digest(net, net.node_ns, to) and held[0] == 450, f"not converged after {rounds} rounds"
        dropped, duplicated = net.impaired_packets()
        print(f"packets dropped {dropped}, sent twice {duplicated}")
        assert NFT is None or (dropped > 0 and duplicated > 0)  # the link really was impaired
    finally:
        _stop(procs)
