"""HQ's suggestions: the offers that fit each open request reach the centre handling the
request and the offer's owner as HQ-signed records (nobody else), kept up to date by a
job as records arrive, change, expire or are withdrawn; the request's centre acts on one
(`interest send --suggestion`) or dismisses it, and a dismissed pair is never suggested
again."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from sqlalchemy import delete

import hub.suggestions as suggestions_module
from hub.site import init_hub, start_hub
from hub.suggestions import SuggestionJob, pairs_t
from sync.config import DataDir
from sync.kinds import FieldValue
from sync.store import RecordRow
from techbridge.v1 import admin_pb2, records_pb2
from tests.harness import Hub, Node, Site, cli, file_request, make_node, register_firm, wait_until

T = "tt-2026.1"


def hub_with(path: Path, suggest_every_s: float) -> Hub:
    cfg = init_hub(path, listen="127.0.0.1:0")
    data = DataDir(path)
    data.save(data.load().with_updates(suggest_every_s=suggest_every_s))
    running = start_hub(path)
    return Hub(path=path, admin_token=cfg.admin_token, address=running.address, running=running)


@pytest.fixture
def quiet_hub(tmp_path: Path) -> Iterator[Hub]:
    """A hub whose suggestion job runs only when the test runs it."""
    h = hub_with(tmp_path / "hq", 0)
    yield h
    h.stop()


def job_of(hub: Hub) -> SuggestionJob:
    assert hub.running is not None
    return SuggestionJob(hub.running.site)


def add_request(
    site: Hub | Node, via: str, title: str, client: str = "Shenzhen Robotics Ltd", **fields: FieldValue
) -> str:
    """A request the firm `client`, registered at `site`, files through it."""
    return file_request(site, register_firm(site, client), via, title, confidentiality="public", **fields)


def membrane_request(hub: Hub, title: str) -> str:
    """A request HQ files for a firm that seeks desalination membranes."""
    return add_request(
        hub,
        "hq",
        title,
        request_type="technology",
        sought="A supplier of the technology for a plant in Shenzhen",
        keywords=("membranes", "water-treatment"),
    )


def step(site: Site, record_id: str, action: int, **values: object) -> admin_pb2.RecordView:
    msg = records_pb2.RecordValues(suggestion=records_pb2.OfferSuggestion(**values)) if values else None  # type: ignore[arg-type]
    return site.admin.StepRecord(
        admin_pb2.StepRecordRequest(id=record_id, action=action, fields=sorted(values), values=msg),  # type: ignore[arg-type]
        metadata=site.md,
        timeout=10,
    ).record


def publish(hub: Hub, offer: str) -> None:
    step(hub, offer, records_pb2.LIFECYCLE_ACTION_VALIDATE)
    step(hub, offer, records_pb2.LIFECYCLE_ACTION_PUBLISH)


def suggestions_at(site: Site, *extra: str) -> list[dict[str, object]]:
    r = cli("suggestion", "list", "--data", str(site.path), "--json", *extra)
    assert r.returncode == 0, r.stderr
    docs: list[dict[str, object]] = json.loads(r.stdout)
    return docs


def sync_all(hub: Hub, *nodes: Node) -> None:
    for n in nodes:
        n.sync()
    for n in nodes:
        n.sync()


def test_suggestions_reach_the_two_centres_and_are_acted_on_or_dismissed(quiet_hub: Hub, tmp_path: Path) -> None:
    hub = quiet_hub
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    bru = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv", country="IL")
    try:
        vision = dj.add_record(
            "Edge-AI machine vision for weld inspection",
            summary="Cameras and neural networks that find weld defects on car bodies",
            keywords=["robotics", "artificial-intelligence"],
            partnership_types=["joint-venture", "technical-cooperation"],
            taxonomy=T,
        )
        welding = dj.add_record(
            "Seam-tracking vision for welding robots",
            summary="Vision that follows weld seams",
            keywords=["robotics", "artificial-intelligence"],
            partnership_types=["technical-cooperation"],
            taxonomy=T,
        )
        battery = dj.add_record("Solid-state battery electrolyte", keywords=["batteries"], taxonomy=T)
        draft_like = dj.add_record(  # never published: never suggested
            "Weld inspection vision, prototype", keywords=["robotics", "artificial-intelligence"], taxonomy=T
        )
        rq = add_request(
            bru,
            "brussels",
            "Machine-vision partner for weld inspection",
            request_type="partner",
            sought="A camera system with AI that finds weld defects on car bodies",
            keywords=("robotics", "artificial-intelligence"),
        )
        sync_all(hub, dj, bru, ta)
        for offer in (vision, welding, battery):
            publish(hub, offer)
        job = job_of(hub)
        print(
            bru.show(rq).status,
            bru.show(rq).audience,
            [r.total_pushed if hasattr(r, "total_pushed") else r for r in [bru.sync()]],
        )
        done = job.run()
        assert done.created == 2 and done.withdrawn == 0
        assert job.run().created == 0  # nothing new: nothing made twice
        made = suggestions_at(hub)
        assert {d["offer"] for d in made} == {vision, welding}
        assert all(d["request"] == rq and d["for_centre"] == "brussels" and d["origin"] == "hq" for d in made)
        assert draft_like not in {d["offer"] for d in made} and battery not in {d["offer"] for d in made}
        best = made[0]
        assert best["offer"] == vision and any(str(r).startswith("keywords: ") for r in best["reasons"])  # type: ignore[attr-defined]
        sync_all(hub, dj, bru, ta)
        # Addressed to the request's centre and the offer's owner only.
        assert {d["id"] for d in suggestions_at(bru)} == {d["id"] for d in made}
        assert {d["id"] for d in suggestions_at(dj)} == {d["id"] for d in made}
        assert suggestions_at(ta) == []
        # The offer's owner takes no step on it; the request's centre does.
        with pytest.raises(grpc.RpcError) as refused:
            step(dj, str(best["id"]), records_pb2.LIFECYCLE_ACTION_DECLINE, dismiss_reason="not-relevant")
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        r = cli("interest", "send", "--data", str(bru.path), "--suggestion", str(best["id"]), "--json")
        assert r.returncode == 0, r.stderr
        interest = json.loads(r.stdout)
        assert interest["to_record"] == vision and interest["from_centre"] == "brussels"
        assert interest["private_note"] == "Shenzhen Robotics Ltd"  # the request's client, kept at Brussels
        taken = bru.show(str(best["id"]))
        assert taken.status == "taken"
        other = next(d for d in made if d["id"] != best["id"])
        r = cli("suggestion", "dismiss", "--data", str(bru.path), str(other["id"]), "--reason", "already-known")
        assert r.returncode == 0, r.stderr
        r = cli("interest", "send", "--data", str(bru.path), "--suggestion", str(other["id"]))
        assert r.returncode == 1 and "is dismissed; only a standing one is acted on" in r.stderr
        assert suggestions_at(bru) == []  # nothing standing
        sync_all(hub, dj, bru, ta)
        assert {d["status"] for d in suggestions_at(hub, "--status", "all")} == {"taken", "dismissed"}
        # The dismissed pair is never suggested again, even when its offer changes.
        hub_site = hub.running.site  # type: ignore[union-attr]
        assert hub_site.record(str(other["id"])).status == "dismissed"
        dj.admin.EditRecord(
            admin_pb2.EditRecordRequest(
                id=welding,
                fields=["summary"],
                values=records_pb2.RecordValues(listing=records_pb2.Listing(summary="Vision that follows weld seams.")),
            ),
            metadata=dj.md,
            timeout=10,
        )
        sync_all(hub, dj)
        assert job.run().created == 0
    finally:
        for n in (dj, bru, ta):
            n.stop()


def test_what_is_no_longer_open_is_withdrawn_and_what_arrives_is_suggested(quiet_hub: Hub) -> None:
    hub = quiet_hub
    job = job_of(hub)
    offer = hub.add_record("Solar desalination membrane", keywords=["membranes", "water-treatment"], taxonomy=T)
    publish(hub, offer)
    first = membrane_request(hub, "Desalination membrane supplier")
    second = membrane_request(hub, "Membranes for desalination plants")
    assert job.run().created == 2
    # A withdrawn request's suggestions go.
    step(hub, second, records_pb2.LIFECYCLE_ACTION_WITHDRAW)
    assert job.run().withdrawn == 1
    # An offer that arrives later is suggested for the open request.
    later = hub.add_record("Graphene desalination membranes", keywords=["membranes", "water-treatment"], taxonomy=T)
    publish(hub, later)
    assert job.run().created == 1
    # An expired or withdrawn offer is never left standing.
    step(hub, offer, records_pb2.LIFECYCLE_ACTION_EXPIRE)
    assert job.run().withdrawn == 1
    standing = suggestions_at(hub)
    assert [(d["request"], d["offer"]) for d in standing] == [(first, later)]
    # HQ's own staff may dismiss a suggestion for a request it handles.
    r = cli("suggestion", "dismiss", "--data", str(hub.path), str(standing[0]["id"]), "--reason", "duplicate")
    assert r.returncode == 0, r.stderr
    # The pairs ever made are rebuilt from the records (as after a crash between a
    # suggestion's commit and its pair's): nothing is suggested twice after.
    assert hub.running is not None
    with hub.running.site.store.writing() as conn:
        conn.execute(delete(pairs_t))
    assert job.rebuild_pairs() == 3
    job._move_cursor(0)  # everything read again: the open request meets its offers once more
    assert job.run().created == 0


def test_a_pass_reads_the_offers_that_changed_a_few_at_a_time(quiet_hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suggestions_module, "ROWS_AT_ONCE", 2)
    hub = quiet_hub
    job = job_of(hub)
    membrane_request(hub, "Desalination membrane supplier")
    offers = []
    for title in ("Solar", "Graphene", "Ceramic", "Osmosis"):
        offers.append(
            hub.add_record(f"{title} desalination membranes", keywords=["membranes", "water-treatment"], taxonomy=T)
        )
        publish(hub, offers[-1])
    assert job.run().created == 4
    assert sorted(str(d["offer"]) for d in suggestions_at(hub)) == sorted(offers)
    # All four expire: the pass reads them two at a time, and withdraws each one's suggestion.
    for offer in offers:
        step(hub, offer, records_pb2.LIFECYCLE_ACTION_EXPIRE)
    read: list[int] = []
    rows = job.site.rows

    def counted_rows(ids: Sequence[str]) -> list[RecordRow]:
        read.append(len(ids))
        return rows(ids)

    monkeypatch.setattr(job.site, "rows", counted_rows)
    assert job.run().withdrawn == 4
    assert read[:2] == [2, 2]  # the four offers that changed, two at a time
    assert suggestions_at(hub) == []


def test_only_hq_writes_suggestions_and_bad_input_is_named(quiet_hub: Hub, tmp_path: Path) -> None:
    bru = make_node(quiet_hub, tmp_path / "brussels", "brussels", country="BE")
    try:
        forged = records_pb2.OfferSuggestion(
            request="0190a1b2-0000-7000-8000-000000000001",
            offer="0190a1b2-0000-7000-8000-000000000002",
            for_centre="brussels",
            offer_owner="brussels",
            score=900,
        )
        with pytest.raises(grpc.RpcError) as refused:
            bru.admin.AddRecord(
                admin_pb2.AddRecordRequest(values=records_pb2.RecordValues(suggestion=forged)),
                metadata=bru.md,
                timeout=10,
            )
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        r = cli("suggestion", "dismiss", "--data", str(bru.path), "no-such-id", "--reason", "not-relevant")
        assert r.returncode == 1 and "no-such-id" in r.stderr and "Traceback" not in r.stderr
        r = cli("interest", "send", "--data", str(bru.path))
        assert r.returncode == 1 and "--to RECORD_ID or --suggestion ID" in r.stderr
    finally:
        bru.stop()


def test_the_hub_runs_the_job_on_its_own(tmp_path: Path) -> None:
    hub = hub_with(tmp_path / "hq", 0.2)
    try:
        offer = hub.add_record("Edge AI inspection camera", keywords=["artificial-intelligence"], taxonomy=T)
        publish(hub, offer)
        rq = add_request(
            hub,
            "hq",
            "AI inspection camera wanted",
            request_type="technology",
            sought="A supplier of the technology for a plant in Shenzhen",
            keywords=("artificial-intelligence",),
        )
        assert wait_until(lambda: [d["request"] for d in suggestions_at(hub)] == [rq], timeout=20)
    finally:
        hub.stop()
