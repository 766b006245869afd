"""`techbridge match` and the admin API's MatchRecord: the offers that fit a request and
the requests an offer fits, ranked, with why; what lapsed or was withdrawn is never
suggested; bad ids are refused by name."""

from __future__ import annotations

import json

import grpc
import pytest

from sync.kinds import FieldValue
from sync.server import field_violations
from techbridge.v1 import admin_pb2, records_pb2
from tests.harness import Hub, cli, file_request, register_firm

T = "tt-2026.1"


def add_offer(hub: Hub, title: str, **fields: object) -> str:
    return hub.add_record(title, taxonomy=T, **fields)


def add_request(hub: Hub, title: str, **fields: FieldValue) -> str:
    """A request a firm registered at HQ files through HQ."""
    firm = register_firm(hub, "Shenzhen Robotics Ltd")
    return file_request(hub, firm, "hq", title, confidentiality="public", **fields)


def test_a_request_meets_the_offers_that_fit_it_and_why(hub: Hub) -> None:
    fit = add_offer(
        hub,
        "Seam-tracking vision for robotic welding",
        summary="Cameras and AI that follow weld seams on car bodies",
        keywords=["robotics", "artificial-intelligence"],
        market_keywords=["automotive"],
        partnership_types=["joint-venture"],
    )
    zh = add_offer(hub, "焊缝跟踪机器视觉系统", keywords=["robotics", "artificial-intelligence"])
    negative = add_offer(hub, "Welding robots for shipyards", keywords=["robotics"], partnership_types=["acquisition"])
    unrelated = add_offer(hub, "Solid-state battery electrolyte", keywords=["batteries"])
    withdrawn = add_offer(hub, "Weld seam vision, older model", keywords=["robotics", "artificial-intelligence"])
    hub.admin.StepRecord(
        admin_pb2.StepRecordRequest(id=withdrawn, action=records_pb2.LIFECYCLE_ACTION_WITHDRAW),
        metadata=hub.md,
        timeout=10,
    )
    rq = add_request(
        hub,
        "Machine-vision partner for welding robots",
        request_type="partner",
        sought="A camera system that finds weld seams on car bodies",
        keywords=("robotics", "artificial-intelligence"),
        sectors=("automotive",),
    )
    resp = hub.admin.MatchRecord(admin_pb2.MatchRecordRequest(id=rq), metadata=hub.md, timeout=10)
    order = [s.record.id for s in resp.suggestions]
    assert order[0] == fit and zh in order and negative in order
    assert order.index(fit) < order.index(negative)
    assert unrelated not in order and withdrawn not in order
    why = {r.part: r.detail for r in resp.suggestions[0].reasons}
    assert why["keywords"] == "artificial-intelligence, robotics" and "welding" in why["words"]
    assert resp.of.id == rq and resp.suggestions[0].score > resp.suggestions[-1].score
    # The other way round: the requests an offer fits, with the same score for the pair.
    back = hub.admin.MatchRecord(admin_pb2.MatchRecordRequest(id=fit), metadata=hub.md, timeout=10)
    assert [s.record.id for s in back.suggestions] == [rq]
    assert back.suggestions[0].score == resp.suggestions[0].score
    assert (
        hub.admin.MatchRecord(
            admin_pb2.MatchRecordRequest(id=rq, published_only=True), metadata=hub.md, timeout=10
        ).suggestions
        == []
    )  # nothing here is published yet
    r = cli("match", "--data", str(hub.path), rq, "--limit", "2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [s["id"] for s in doc["suggestions"]] == order[:2] and doc["suggestions"][0]["why"][0]["part"]
    r = cli("match", "--data", str(hub.path), rq)
    assert r.returncode == 0 and "Seam-tracking" in r.stdout, r.stdout + r.stderr


def test_an_edited_offer_is_matched_as_it_is_now(hub: Hub) -> None:
    offer = add_offer(hub, "Seam-tracking vision for robotic welding", keywords=["robotics"])
    rq = add_request(
        hub, "Hull welding for shipyards", request_type="partner", sought="Hull welding", keywords=("robotics",)
    )

    def words() -> str:
        resp = hub.admin.MatchRecord(admin_pb2.MatchRecordRequest(id=rq), metadata=hub.md, timeout=10)
        assert [s.record.id for s in resp.suggestions] == [offer]
        return {r.part: r.detail for r in resp.suggestions[0].reasons}.get("words", "")

    assert words() == "welding" and words() == "welding"  # the second time from what was remembered
    hub.admin.EditRecord(
        admin_pb2.EditRecordRequest(
            id=offer,
            fields=["title"],
            values=records_pb2.RecordValues(listing=records_pb2.Listing(title="Welding robots for hulls in shipyards")),
        ),
        metadata=hub.md,
        timeout=10,
    )
    assert words() == "Hull, shipyards, welding"


def test_matching_what_is_not_an_offer_or_request_is_refused_by_name(hub: Hub) -> None:
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.MatchRecord(admin_pb2.MatchRecordRequest(id="no-such-id"), metadata=hub.md, timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND and "no-such-id" in (e.value.details() or "")
    offer = add_offer(hub, "Anything")
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.MatchRecord(admin_pb2.MatchRecordRequest(id=offer, limit=500), metadata=hub.md, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(e.value)] == ["limit"]
    r = cli("match", "--data", str(hub.path), "no-such-id")
    assert r.returncode == 1 and r.stderr.strip() == "error: NOT_FOUND: no record with id no-such-id", r.stderr


def test_duplicates_are_listed_for_an_offer_and_for_those_waiting_for_validation(hub: Hub) -> None:
    original = add_offer(
        hub,
        "Solar-driven desalination membrane",
        summary="Graphene-oxide membrane",
        patents=["EP3100000B1"],
        ipr_status="granted",
    )
    copy = add_offer(hub, "Solar-driven desalination membrane (EU)", summary="Graphene-oxide membrane")
    patent = add_offer(hub, "太阳能驱动的海水淡化膜", patents=["EP 3100000 B1"], ipr_status="granted")
    other = add_offer(hub, "Hollow-fibre dialysis membrane", summary="For kidney care")
    pairs = hub.admin.ListDuplicates(admin_pb2.ListDuplicatesRequest(id=original), metadata=hub.md, timeout=10).pairs
    assert {p.other.id for p in pairs} == {copy, patent}
    assert all(p.record.id == original for p in pairs)
    assert any(r.startswith("the same patent") for p in pairs if p.other.id == patent for r in p.reasons)
    assert other not in {p.other.id for p in pairs}
    waiting = hub.admin.ListDuplicates(admin_pb2.ListDuplicatesRequest(), metadata=hub.md, timeout=10).pairs
    assert {frozenset((p.record.id, p.other.id)) for p in waiting} >= {
        frozenset((original, copy)),
        frozenset((original, patent)),
    }
    r = cli("duplicates", "list", "--data", str(hub.path), original, "--json")
    assert r.returncode == 0, r.stderr
    assert {d["other_id"] for d in json.loads(r.stdout)} == {copy, patent}
    r = cli("duplicates", "list", "--data", str(hub.path))
    assert r.returncode == 0 and "may be the same as" in r.stdout, r.stdout + r.stderr
    r = cli("duplicates", "list", "--data", str(hub.path), "no-such-offer")
    assert r.returncode == 1 and "no-such-offer" in r.stderr


def test_hq_settles_a_pair_with_a_signed_curation_edit(hub: Hub) -> None:
    original = add_offer(hub, "Cold-sintered glass tiles", summary="Tiles from recycled glass powder")
    copy = add_offer(hub, "Cold-sintered glass tiles (Brussels)", summary="Tiles from recycled glass powder")
    third = add_offer(hub, "Cold-sintered glass tiles, v2", summary="Tiles from recycled glass powder")

    def listed(of: str) -> set[str]:
        req = admin_pb2.ListDuplicatesRequest(id=of)
        return {p.other.id for p in hub.admin.ListDuplicates(req, metadata=hub.md, timeout=10).pairs}

    assert listed(original) == {copy, third}
    r = cli("duplicates", "mark", "--data", str(hub.path), copy, "--of", original)
    assert r.returncode == 0 and "marked the duplicate of" in r.stdout, r.stderr
    r = cli("duplicates", "dismiss", "--data", str(hub.path), third, "--of", original)
    assert r.returncode == 0, r.stderr
    assert listed(original) == set() and listed(copy) == {third}
    shown = hub.show(copy).values.listing
    assert shown.duplicate_of == original  # linked, not deleted
    assert list(hub.show(third).values.listing.not_duplicate_of) == [original]
    assert hub.show(copy).status == "submitted"
    r = cli("duplicates", "mark", "--data", str(hub.path), copy, "--of", copy)
    assert r.returncode == 1 and "cannot duplicate itself" in r.stderr
    r = cli("duplicates", "mark", "--data", str(hub.path), copy, "--of", "no-such-offer")
    assert r.returncode == 1 and "no-such-offer" in r.stderr
