"""`techbridge staff` against real servers: accounts by site role, one-time codes printed
once, disabling and resetting, bad input named on one line, and the admin credential needed."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from console.staff import set_password, sign_in
from techbridge.v1 import staff_pb2, staff_pb2_grpc
from tests.harness import Hub, cli, make_node


def test_staff_accounts_at_hq_and_at_a_centre(hub: Hub, tmp_path: Path) -> None:
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    try:
        r = cli("staff", "add", "--data", str(hub.path), "--name", "li.wei", "--role", "curator")
        assert r.returncode == 0, r.stderr
        code = r.stdout.strip().splitlines()[-1]
        assert "one-time code for li.wei" in r.stderr and len(code) >= 20
        assert hub.running is not None
        store = hub.running.site.store
        set_password(store, "li.wei", code, "a long enough password", now_ms=hub.running.site.now_ms())
        assert sign_in(store, "li.wei", "a long enough password", now_ms=hub.running.site.now_ms()).role == "curator"
        r = cli("staff", "add", "--data", str(dj.path), "--name", "kim", "--role", "curator")
        assert r.returncode == 1 and r.stderr.startswith(
            "error: role: 'curator': staff at a centre are staff or viewer"
        )
        r = cli("staff", "add", "--data", str(dj.path), "--name", "kim", "--role", "staff", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["code"], r.stderr
        listed = json.loads(cli("staff", "list", "--data", str(hub.path), "--json").stdout)
        assert [(a["name"], a["role"], a["has_password"]) for a in listed] == [("li.wei", "curator", True)]
        assert cli("staff", "disable", "--data", str(hub.path), "li.wei").returncode == 0
        with pytest.raises(Exception, match="do not match"):
            sign_in(store, "li.wei", "a long enough password", now_ms=hub.running.site.now_ms())
        r = cli("staff", "reset", "--data", str(hub.path), "li.wei", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["code"] != code
        r = cli("staff", "reset", "--data", str(hub.path), "nobody")
        assert r.returncode == 1 and "no staff member 'nobody'" in r.stderr and "Traceback" not in r.stderr
        # Another site's credential does not reach this site's accounts.
        with pytest.raises(grpc.RpcError) as refused:
            staff_pb2_grpc.StaffServiceStub(hub.ch).ListStaff(staff_pb2.ListStaffRequest(), metadata=dj.md, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        dj.stop()
