"""`make demo` keeps working: the demo runs to the end and shows what it promises."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT


def test_the_demo_runs_end_to_end(tmp_path: Path) -> None:
    # Every process of the demo logs at DEBUG, one JSON object a line (checked at the end).
    env = dict(os.environ, TECHBRIDGE_LOG_LEVEL="DEBUG", TECHBRIDGE_LOG_FORMAT="json")
    r = subprocess.run(
        [sys.executable, "-m", "cli.demo", "--dir", str(tmp_path / "demo")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "listings at hq (8)" in out
    assert "lifecycle rank" in out  # the offline conflict, seen at HQ
    assert out.count("│ yes      │") >= 8  # every listing verified at HQ
    assert re.search(r"received_from +│ hq", out)  # Daejeon holds Tel Aviv's listing through the hub
    # The domain story: a firm's request through Brussels, its interest routed to Daejeon and introduced.
    assert "interests at daejeon (1)" in out
    assert re.search(r"via +│ brussels", out)
    assert re.search(r"status +│ introduced", out)
    assert "Hanbit Microsystems" in out  # the anonymous offer's client, revealed to the firm only now
    # It ends with HQ's figures for the year, with Daejeon's targets beside its own.
    assert re.search(r"offers\.published +│", out) and re.search(r"events\.held .*1 / 4", out)
    # And the staff console's addresses, each with a one-time code to set a password.
    assert re.search(r"hq: open http://127\.0\.0\.1:\d+/welcome, set li\.wei's password with the code \S{20,}", out)
    assert re.search(r"daejeon: open http://127\.0\.0\.1:\d+/welcome, set kim's password", out)
    check_logs_hold_no_secrets(tmp_path / "demo", out, r.stderr)


def check_logs_hold_no_secrets(base: Path, out: str, cli_stderr: str) -> None:
    """The servers' logs and the commands' log lines: JSON objects with the fields asked,
    and not one admin token, private key, join token or one-time code among them."""
    logs = {p.name: p.read_text() for p in base.glob("*.log")}
    logs["the commands' stderr"] = cli_stderr
    records = [json.loads(line) for text in logs.values() for line in text.splitlines() if line.startswith("{")]
    assert len(records) > 100
    assert all({"time", "level", "logger", "site", "message"} <= set(r) for r in records)
    assert {r["level"] for r in records} >= {"DEBUG", "INFO"}
    assert any(r.get("peer") and r.get("call") for r in records)  # a call's lines name the calling site
    assert {r["site"] for r in records} >= {"hq", "tel-aviv", "daejeon"}
    secrets = [json.loads(p.read_text())["admin_token"] for p in base.glob("*/site.json")]
    for key in [*base.glob("*/keys/*.key"), *base.glob("*.key")]:
        secrets.append("".join(line for line in key.read_text().splitlines() if not line.startswith("-----"))[:40])
    tokens = re.findall(r"^(\S{60,})$", out, re.M)  # `hub invite` prints each join token on a line of its own
    codes = re.findall(r"with the code (\S+)", out)
    assert len(tokens) >= 4 and len(codes) >= 2
    secrets += tokens + codes
    for name, text in logs.items():
        for secret in secrets:
            assert secret not in text, f"{name} holds a secret"
