"""`make demo` keeps working: the demo runs to the end and shows what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.harness import ROOT


def test_the_demo_runs_end_to_end(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "cli.demo", "--dir", str(tmp_path / "demo")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
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
