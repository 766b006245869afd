"""Through real servers: Tel Aviv and HQ change the same listing while the link
is down; once it is back, hub, Tel Aviv and Daejeon show the same listing and
the same conflict, and settling it travels like any other version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import grpc
import pytest

from techbridge.v1 import admin_pb2, records_pb2
from tests.harness import Hub, Node, cli, make_node

A = records_pb2


def step(site: Hub | Node, rid: str, action: int) -> admin_pb2.RecordView:
    return site.admin.StepRecord(
        admin_pb2.StepRecordRequest(id=rid, action=action),  # type: ignore[arg-type]
        metadata=site.md,
        timeout=10,
    ).record


def edit(site: Hub | Node, rid: str, **values: Any) -> admin_pb2.RecordView:
    return site.admin.EditRecord(
        admin_pb2.EditRecordRequest(
            id=rid, fields=sorted(values), values=records_pb2.RecordValues(listing=records_pb2.Listing(**values))
        ),
        metadata=site.md,
        timeout=10,
    ).record


def test_offline_edits_converge_with_the_same_conflict(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    rid = ta.add_record("Drip-irrigation flow sensor", summary="first")
    ta.sync()
    step(hub, rid, A.LIFECYCLE_ACTION_VALIDATE)
    ta.sync()
    assert ta.show(rid).status == "validated"

    # The link is down: nobody syncs. Tel Aviv edits content and withdraws;
    # HQ tags it and publishes it.
    edit(ta, rid, summary="rewritten in Tel Aviv")
    step(ta, rid, A.LIFECYCLE_ACTION_WITHDRAW)
    edit(hub, rid, tags=["irrigation"], featured=True)
    published = step(hub, rid, A.LIFECYCLE_ACTION_PUBLISH)
    assert published.status == "published"

    # The link is back.
    ta.sync()
    dj.sync()
    ta.sync()
    views = [s.show(rid) for s in (hub, ta, dj)]
    for v in views:
        assert v.status == "withdrawn"  # the withdrawal is not undone
        assert v.values.listing.summary == "rewritten in Tel Aviv" and list(v.values.listing.tags) == ["irrigation"]
        assert v.values.listing.featured
        (c,) = v.conflicts
        assert c.field == "status" and c.rule == "lifecycle rank"
        assert json.loads(c.winner.value_json) == "withdrawn" and json.loads(c.others[0].value_json) == "published"
    assert len({(tuple(v.heads), v.conflicts[0].SerializeToString()) for v in views}) == 1

    # HQ can't settle it to "published"; it settles by keeping the rank's choice, and that travels.
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.ResolveConflict(
            admin_pb2.ResolveConflictRequest(conflict_id=f"{rid}/status", take_version=c.others[0].version_id),
            metadata=hub.md,
            timeout=10,
        )
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    settled = hub.admin.ResolveConflict(
        admin_pb2.ResolveConflictRequest(conflict_id=f"{rid}/status", take_version=c.winner.version_id[:10]),
        metadata=hub.md,
        timeout=10,
    ).record
    assert not settled.conflicts and len(settled.heads) == 1
    ta.sync()
    dj.sync()
    for s in (ta, dj):
        v = s.show(rid)
        assert not v.conflicts and list(v.heads) == list(settled.heads)
    ta.stop()
    dj.stop()


def test_tombstone_travels_and_a_late_edit_does_not_revive(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    rid = ta.add_record("To be deleted")
    ta.sync()
    step(ta, rid, A.LIFECYCLE_ACTION_DELETE)
    edit(hub, rid, tags=["late"])  # HQ has not seen the tombstone
    ta.sync()
    assert hub.listings() == [] and ta.listings() == []
    with pytest.raises(grpc.RpcError) as e:
        edit(ta, rid, summary="x")
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    step(ta, rid, A.LIFECYCLE_ACTION_UNDELETE)
    ta.sync()
    assert [v.id for v in hub.listings()] == [rid] and list(hub.show(rid).values.listing.tags) == ["late"]
    ta.stop()


def test_cli_steps_and_conflicts(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    rid = ta.add_record("CLI listing")
    ta.sync()
    r = cli("listing", "validate", "--data", str(ta.path), rid)
    assert r.returncode == 1 and "PERMISSION_DENIED" in r.stderr and "only HQ may validate" in r.stderr
    r = cli("listing", "publish", "--data", str(hub.path), rid)
    assert r.returncode == 1 and "FAILED_PRECONDITION" in r.stderr and "only from: validated" in r.stderr
    r = cli("listing", "validate", "--data", str(hub.path), rid, "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "validated"
    ta.sync()
    assert cli("listing", "withdraw", "--data", str(ta.path), rid).returncode == 0
    r = cli("listing", "publish", "--data", str(hub.path), rid)
    assert r.returncode == 0, r.stderr
    r = cli("listing", "edit", "--data", str(hub.path), rid, "--set", "title=HQ title")
    assert r.returncode == 1 and "content fields (title)" in r.stderr
    r = cli("listing", "edit", "--data", str(ta.path), rid, "--set", "trl=seven")
    assert r.returncode == 1 and r.stderr.strip() == "error: trl: must be an integer (got 'seven')"
    ta.sync()
    r = cli("conflicts", "list", "--data", str(hub.path), "--json")
    (c,) = json.loads(r.stdout)
    assert c["id"] == f"{rid}/status" and c["winner"]["value"] == "withdrawn"
    r = cli("listing", "show", "--data", str(ta.path), rid, "--json")
    doc = json.loads(r.stdout)
    assert doc["status"] == "withdrawn" and len(doc["heads"]) == 2 and doc["conflicts"][0]["field"] == "status"
    r = cli("conflicts", "resolve", "--data", str(hub.path), c["id"], "--take", c["winner"]["version_id"][:12])
    assert r.returncode == 0, r.stderr
    assert json.loads(cli("conflicts", "list", "--data", str(hub.path), "--json").stdout) == []
    ta.stop()
