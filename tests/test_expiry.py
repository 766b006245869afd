"""Offers run out at every site at once, are extended once, expired and archived
by their owner's job; requests expire at their deadline. One injected clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import transfer.expiry as expiry_module
from hub.site import init_hub, start_hub
from sync.clock import system_now_ms
from techbridge.v1 import admin_pb2, records_pb2
from tests.harness import Hub, Node, Site, make_node
from transfer.expiry import DAY_MS, ExpiryJob

A = records_pb2


class Clock:
    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return system_now_ms() + self.offset


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Clock, Hub, Node, Node]]:
    clock = Clock()
    cfg = init_hub(tmp_path / "hq", listen="127.0.0.1:0")
    running = start_hub(tmp_path / "hq", now_ms=clock)
    hub = Hub(path=tmp_path / "hq", admin_token=cfg.admin_token, address=running.address, running=running)
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR", now_ms=clock)
    br = make_node(hub, tmp_path / "brussels", "brussels", country="BE", now_ms=clock)
    yield clock, hub, dj, br
    for s in (br, dj, hub):
        s.stop()


def step(site: Site, rid: str, action: int, until: int = 0) -> admin_pb2.RecordView:
    req = admin_pb2.StepRecordRequest(id=rid, action=action)  # type: ignore[arg-type]
    if until:
        req.fields.append("valid_until_ms")
        req.values.listing.valid_until_ms = until
    return site.admin.StepRecord(req, metadata=site.md, timeout=10).record


def job(node: Node) -> ExpiryJob:
    assert node.node is not None
    return ExpiryJob(node.node.running.site)


def test_an_offer_expires_everywhere_is_extended_once_and_archived(world: tuple[Clock, Hub, Node, Node]) -> None:
    clock, hub, dj, br = world
    rid = dj.add_record("Edge AI chip")
    created = dj.show(rid)
    until = created.values.listing.valid_until_ms
    assert until - created.updated_at_ms == pytest.approx(365 * DAY_MS, abs=5_000)  # the default validity
    dj.sync()
    step(hub, rid, A.LIFECYCLE_ACTION_VALIDATE)
    dj.sync()
    step(dj, rid, A.LIFECYCLE_ACTION_PUBLISH)
    dj.sync()
    br.sync()
    assert br.show(rid).live and br.show(rid).values.listing.valid_until_ms == until

    clock.offset = until - system_now_ms() - 10 * DAY_MS  # ten days before the end
    report = job(dj).run()
    assert report.expiring_soon == [rid] and report.expired == []

    clock.offset = until - system_now_ms() + DAY_MS  # a day after: no site shows it live, before any step
    for site in (hub, dj, br):
        view = site.show(rid)
        assert view.status == "published" and not view.live, site.path.name
    report = job(dj).run()
    assert report.expired == [rid]
    dj.sync()
    br.sync()
    assert br.show(rid).status == "expired"

    later = clock() + 180 * DAY_MS
    with pytest.raises(grpc.RpcError) as e:
        step(dj, rid, A.LIFECYCLE_ACTION_EXTEND, until=clock() - DAY_MS)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    extended = step(dj, rid, A.LIFECYCLE_ACTION_EXTEND, until=later)
    assert extended.status == "published" and extended.live and extended.extended
    with pytest.raises(grpc.RpcError) as e:
        step(dj, rid, A.LIFECYCLE_ACTION_EXTEND, until=later + DAY_MS)
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "extended once" in (e.value.details() or "")
    # The valid_until date is moved only by the extension, never by an edit.
    with pytest.raises(grpc.RpcError) as e:
        dj.admin.EditRecord(
            admin_pb2.EditRecordRequest(
                id=rid,
                fields=["valid_until_ms"],
                values=records_pb2.RecordValues(listing=records_pb2.Listing(valid_until_ms=later * 2)),
            ),
            metadata=dj.md,
            timeout=10,
        )
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED

    clock.offset = later - system_now_ms() + DAY_MS
    assert job(dj).run().expired == [rid]
    clock.offset = later - system_now_ms() + 2 * 365 * DAY_MS + DAY_MS
    assert job(dj).run().archived == [rid]
    dj.sync()
    br.sync()
    assert br.show(rid).status == "archived" and hub.show(rid).status == "archived"


def test_only_the_owner_expires_its_offers(world: tuple[Clock, Hub, Node, Node]) -> None:
    clock, hub, dj, br = world
    rid = dj.add_record("Solid-state electrolyte")
    dj.sync()
    step(hub, rid, A.LIFECYCLE_ACTION_VALIDATE)
    dj.sync()
    step(dj, rid, A.LIFECYCLE_ACTION_PUBLISH)
    dj.sync()
    br.sync()
    clock.offset = dj.show(rid).values.listing.valid_until_ms - system_now_ms() + DAY_MS
    assert job(br).run().expired == []  # Brussels does not own it
    assert job(dj).run().expired == [rid]


def test_the_job_reads_a_page_at_a_time_and_expires_every_offer_past_its_end(
    world: tuple[Clock, Hub, Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(expiry_module, "PAGE", 2)
    clock, hub, dj, _ = world
    ids = [dj.add_record(f"Edge AI chip {i}") for i in range(5)]
    dj.sync()
    for rid in ids:
        step(hub, rid, A.LIFECYCLE_ACTION_VALIDATE)
    dj.sync()
    for rid in ids:
        step(dj, rid, A.LIFECYCLE_ACTION_PUBLISH)
    until = max(dj.show(rid).values.listing.valid_until_ms for rid in ids)
    clock.offset = until - system_now_ms() + DAY_MS
    # Three pages of published offers, each offer stepped out of them as it is read.
    assert sorted(job(dj).run().expired) == sorted(ids)
    assert {dj.show(rid).status for rid in ids} == {"expired"}
