"""A record reaches only its audience: the hub holds everything, a node only what it may see."""

from __future__ import annotations

import json
from pathlib import Path

from techbridge.v1 import admin_pb2, records_pb2
from tests.harness import Hub, Node, cli, make_node
from transfer.records import KINDS


def add(node: Node, title: str, audience: list[str]) -> str:
    resp = node.admin.AddRecord(
        admin_pb2.AddRecordRequest(
            values=records_pb2.RecordValues(listing=records_pb2.Listing(title=title)), audience=audience
        ),
        metadata=node.md,
        timeout=10,
    )
    return resp.record.id


def test_records_travel_only_to_their_audience(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    everyone = add(ta, "For the whole network", [])
    for_brussels = add(ta, "For Brussels", ["brussels"])
    for_hq = add(ta, "For HQ only", ["hq"])
    ta.sync()
    for n in (br, dj):
        n.sync()
    assert {v.id for v in hub.listings()} == {everyone, for_brussels, for_hq}
    assert {v.id for v in br.listings()} == {everyone, for_brussels}
    assert {v.id for v in dj.listings()} == {everyone}
    assert list(hub.show(for_brussels).audience) == ["brussels"]
    # Later versions of a restricted record follow its audience too.
    hub.admin.StepRecord(
        admin_pb2.StepRecordRequest(id=for_brussels, action=records_pb2.LIFECYCLE_ACTION_VALIDATE),
        metadata=hub.md,
        timeout=10,
    )
    br.sync()
    dj.sync()
    assert br.show(for_brussels).status == "validated"
    assert {v.id for v in dj.listings()} == {everyone}
    # The watch stream tells Daejeon nothing about what it may not see.
    assert hub.running is not None
    store = hub.running.site.store
    assert store.visible_head("daejeon") < store.log_head()
    assert dj.node is not None
    assert dj.node.running.site.store.peer_state("hq").pull_cursor == store.log_head()
    for n in (ta, br, dj):
        n.stop()


def test_the_audience_in_a_listing_file(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "l.json"
    f.write_text(json.dumps({"title": "Named", "audience": ["tel-aviv", "brussels"]}))
    r = cli("listing", "add", "--data", str(hub.path), "--file", str(f), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["audience"] == ["brussels", "tel-aviv"]
    f.write_text(json.dumps({"title": "Bad", "audience": "everyone"}))
    r = cli("listing", "add", "--data", str(hub.path), "--file", str(f))
    assert r.returncode == 1 and "audience" in r.stderr
    f.write_text(json.dumps({"title": "Bad", "audience": ["Not A Centre"]}))
    r = cli("listing", "add", "--data", str(hub.path), "--file", str(f))
    assert r.returncode == 1 and "audience" in r.stderr


def test_a_version_whose_create_is_not_here_never_goes_wider(tmp_path: Path) -> None:
    """The hub may hold a record's later versions without its create (a restore, a
    quarantine): they go to the owner and the hub only, never to the whole network."""
    from sync.clock import Stamp
    from sync.keys import SigningKey
    from sync.kinds import Change, create_change
    from sync.store import Store
    from tests.harness import signed_version
    from transfer.records import listing_content

    key = SigningKey.generate()
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}", KINDS)
    create = signed_version(key, "tel-aviv", create_change(listing_content(title="Secret"), ("brussels",)))
    record = (create.record_id, create.record_nonce)
    edit = signed_version(
        key,
        "tel-aviv",
        Change((("summary", "secret summary"),)),
        record=record,
        parents=(create.version_id,),
        hlc=Stamp(create.hlc.wall_ms + 1, 0),
    )
    store.apply_batch("tel-aviv", [edit], [], through_seq=1, now_ms=1)  # the create is not here
    assert store.visible_head("daejeon") == 0 and store.visible_head("tel-aviv") == 1
    store.apply_batch("tel-aviv", [create], [], through_seq=2, now_ms=1)
    assert store.visible_head("brussels") == 2 and store.visible_head("daejeon") == 0
    # Everything of the record quarantined, then a later version: still not for Daejeon.
    store.quarantine(key.key_id, 0 + 1, "test")
    later = signed_version(
        SigningKey.generate(),
        "tel-aviv",
        Change((("trl", 5),)),
        record=record,
        parents=(edit.version_id,),
        hlc=Stamp(create.hlc.wall_ms + 2, 0),
    )
    store.apply_batch("tel-aviv", [later], [], through_seq=3, now_ms=1)
    assert store.visible_head("daejeon") == 0 and store.visible_head("brussels") == 3
    store.close()
