"""The techbridge CLI as a user runs it: separate processes, real servers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import Hub, cli


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"title": "x", ', "not valid JSON: line 1 column"),
        ('{"summary": "no title"}', "title: required field is missing"),
        ('{"title": "x", "trl": "six"}', "trl: must be an integer from 1 to 9 (got str)"),
        ('{"title": ["x"]}', "title: must be a string (got list)"),
    ],
    ids=["not-json", "missing-title", "trl-wrong-type", "title-wrong-type"],
)
def test_bad_listing_file_one_line_and_nothing_stored(hub: Hub, tmp_path: Path, content: str, expected: str) -> None:
    f = tmp_path / "listing.json"
    f.write_text(content)
    r = cli("listing", "add", "--data", str(hub.path), "--file", str(f))
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert expected in lines[0] and "listing.json" in lines[0]
    assert hub.listings() == []


def test_several_problems_one_line_each(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "l.json"
    f.write_text('{"title": 1, "trl": 10, "colour": "red"}')
    r = cli("listing", "add", "--data", str(hub.path), "--file", str(f))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"error: {f}: colour: unknown field",
        f"error: {f}: title: must be a string (got int)",
        f"error: {f}: trl: must be an integer from 1 to 9 (got 10)",
    ]


def test_add_list_show_json(hub: Hub, tmp_path: Path) -> None:
    sample = Path(__file__).parent.parent / "deploy" / "samples" / "tel-aviv" / "drip-irrigation-flow-sensor.json"
    r = cli("listing", "add", "--data", str(hub.path), "--file", str(sample))
    assert r.returncode == 0, r.stderr
    new_id = r.stdout.strip().splitlines()[-1]

    r = cli("listing", "list", "--data", str(hub.path), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 1
    assert {"id", "title", "origin", "status", "updated_at", "verified"} <= rows[0].keys()
    assert rows[0]["id"] == new_id and rows[0]["origin"] == "hq" and rows[0]["verified"] is True

    r = cli("listing", "show", "--data", str(hub.path), new_id, "--json")
    doc = json.loads(r.stdout)
    assert doc["title"] == "Drip-irrigation flow sensor"
    assert doc["key_id"] and doc["provenance"]["key_id"] == doc["key_id"]
    assert doc["provenance"]["origin"] == "hq" and doc["provenance"]["verified"] is True

    r = cli("listing", "show", "--data", str(hub.path), "nope")
    assert r.returncode == 1 and "NOT_FOUND" in r.stderr


def test_invite_prints_token_last_and_enrol_reuse_is_clear(hub: Hub, tmp_path: Path) -> None:
    r = cli("hub", "invite", "--data", str(hub.path), "--centre", "tel-aviv", "--name", "Tel Aviv", "--country", "IL")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip().splitlines()[-1]
    assert token.startswith("tbj1.")
    r = cli("node", "init", "--data", str(tmp_path / "ta"), "--hub", hub.address, "--token", token)
    assert r.returncode == 0, r.stderr
    r = cli("node", "init", "--data", str(tmp_path / "ta2"), "--hub", hub.address, "--token", token)
    assert r.returncode == 1
    assert "join token has already been used" in r.stderr
    assert not (tmp_path / "ta2").exists()  # nothing half made is left behind


def test_commands_say_when_the_server_is_not_running(tmp_path: Path) -> None:
    r = cli("hub", "init", "--data", str(tmp_path / "hq"), "--listen", "127.0.0.1:1")
    assert r.returncode == 0
    r = cli("listing", "list", "--data", str(tmp_path / "hq"))
    assert r.returncode == 1
    assert "cannot reach the hub at 127.0.0.1:1" in r.stderr and "hub serve" in r.stderr
    r = cli("listing", "list", "--data", str(tmp_path / "nothing"))
    assert r.returncode == 1 and "not a techbridge data folder" in r.stderr


def test_processes_end_to_end_with_sync_now_and_status(tmp_path: Path) -> None:
    """hub serve and node serve as real processes, driven only through the CLI."""
    import signal

    from sync.config import DataDir
    from tests.harness import serve_process

    hq, ta = tmp_path / "hq", tmp_path / "ta"
    assert cli("hub", "init", "--data", str(hq), "--listen", "127.0.0.1:0").returncode == 0
    hub_proc = serve_process("hub", hq)
    node_proc = None
    try:
        hub_addr = DataDir(hq).address_file.read_text().strip()
        token = cli("hub", "invite", "--data", str(hq), "--centre", "tel-aviv", "--name", "TA", "--country", "IL")
        assert token.returncode == 0, token.stderr
        r = cli("node", "init", "--data", str(ta), "--hub", hub_addr, "--token", token.stdout.strip().splitlines()[-1])
        assert r.returncode == 0, r.stderr
        node_proc = serve_process("node", ta, "--sync-every", "0")
        f = tmp_path / "l.json"
        f.write_text(json.dumps({"title": "Process listing", "trl": 3}))
        new_id = cli("listing", "add", "--data", str(ta), "--file", str(f)).stdout.strip().splitlines()[-1]

        r = cli("sync", "now", "--data", str(ta))
        assert r.returncode == 0, r.stderr
        assert "sync done:" in r.stdout  # the node may already have pushed it on its own (watch stream)
        assert "pull from hub" in r.stderr  # the progress display

        r = cli("sync", "status", "--data", str(ta), "--json")
        st = json.loads(r.stdout)
        assert st["site"] == "tel-aviv" and st["versions"] == 1
        (peer,) = st["peers"]
        assert peer["peer"] == "hq" and peer["last_success"] and peer["last_error"] is None
        assert peer["cursors"]["push_acked"] == 1 and peer["pending"] == {"push": 0, "pull": 0}

        r = cli("sync", "status", "--data", str(hq), "--json")
        st = json.loads(r.stdout)
        assert [p["peer"] for p in st["peers"]] == ["tel-aviv"] and st["versions"] == 1

        r = cli("listing", "show", "--data", str(hq), new_id, "--json")
        assert json.loads(r.stdout)["provenance"]["received_from"] == "tel-aviv"

        r = cli("sync", "now", "--data", str(hq))
        assert r.returncode == 1 and "runs on a node" in r.stderr
    finally:
        for p in (node_proc, hub_proc):
            if p is not None:
                p.send_signal(signal.SIGTERM)
                assert p.wait(timeout=15) == 0
    assert not DataDir(hq).address_file.exists()  # a clean stop removes the address


def test_a_draft_then_submitted(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "d.json"
    f.write_text(json.dumps({"title": "Draft first", "status": "draft"}))
    rid = cli("listing", "add", "--data", str(hub.path), "--file", str(f)).stdout.strip().splitlines()[-1]
    assert json.loads(cli("listing", "show", "--data", str(hub.path), rid, "--json").stdout)["status"] == "draft"
    r = cli("listing", "submit", "--data", str(hub.path), rid, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "submitted"
    f.write_text(json.dumps({"title": 3, "status": "published", "audience": "everyone"}))
    r = cli("listing", "add", "--data", str(hub.path), "--file", str(f))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 3  # every problem at once, one line each
