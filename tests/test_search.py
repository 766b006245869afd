"""Search over offers and requests through the admin API and the CLI: a query and
filters, ranked, with snippets and facets; the index follows edits and deletions where
they are made and where they arrive; bad filters and queries are refused field by field.
The store's contract over a multilingual corpus is tests/test_search_store.py."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from sync.server import field_violations
from techbridge.v1 import admin_pb2, records_pb2
from tests.harness import Hub, cli, make_node


def test_search_by_words_and_filters_follows_edits_and_deletes(hub: Hub, tmp_path: Path) -> None:
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    try:
        chip = dj.add_record(
            "Edge AI chip for predictive maintenance",
            summary="Low-power neural accelerator",
            keywords=["semiconductors", "artificial-intelligence"],
            taxonomy="tt-2026.1",
            target_countries=["BE", "ES"],
            stage="lab-tested",
        )
        battery = dj.add_record(
            "Solid-state battery electrolyte", keywords=["batteries"], taxonomy="tt-2026.1", stage="lab-tested"
        )
        dj.sync()

        def found(**query: object) -> list[str]:
            req = admin_pb2.SearchRecordsRequest(**query)  # type: ignore[arg-type]
            return [v.id for v in hub.admin.SearchRecords(req, metadata=hub.md, timeout=10).records]

        assert found(text="edge chip") == [chip]
        assert found(text="EDGE") == [chip]  # case does not matter
        assert found(keywords=["batteries"]) == [battery]
        assert found(stage="lab-tested") == [battery, chip]  # no text: newest first
        assert found(text="edg*") == [chip] and found(text="chips") == [chip]  # a prefix, another form
        assert found(text="chip", countries=["be"]) == [chip]
        assert found(text="chip", countries=["KR"]) == []
        assert found(text="chip", kind="request") == []
        assert found(text="chip", status="submitted", origin="daejeon") == [chip]
        # The index follows an edit and a delete, where they are made and where they arrive.

        dj.admin.EditRecord(
            admin_pb2.EditRecordRequest(
                id=chip,
                fields=["title"],
                values=records_pb2.RecordValues(listing=records_pb2.Listing(title="Vision SoC")),
            ),
            metadata=dj.md,
            timeout=10,
        )
        dj.sync()
        assert found(text="edge") == [] and found(text="vision soc") == [chip]
        dj.admin.StepRecord(
            admin_pb2.StepRecordRequest(id=battery, action=records_pb2.LIFECYCLE_ACTION_DELETE),
            metadata=dj.md,
            timeout=10,
        )
        dj.sync()
        assert found(keywords=["batteries"]) == []
        with pytest.raises(grpc.RpcError) as e:
            found(kind="firm")
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        r = cli("search", "--data", str(hub.path), "vision", "--keyword", "semiconductors", "--json", "--facets")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert [d["id"] for d in doc["results"]] == [chip] and doc["total"] == 1
        assert doc["results"][0]["snippet"] == {"field": "title", "parts": [["Vision", True], [" SoC", False]]}
        assert doc["facets"]["keyword"] == {"artificial-intelligence": 1, "semiconductors": 1}
        assert doc["facets"]["centre"] == {"daejeon": 1}
        r = cli("search", "--data", str(hub.path), "vision")
        assert r.returncode == 0 and "1 found" in r.stdout and chip in r.stdout, r.stdout + r.stderr
        r = cli("search", "--data", str(hub.path), "vision", "-soc", "--json")  # -word among the options
        assert r.returncode == 0 and json.loads(r.stdout)["total"] == 0, r.stderr
        r = cli("search", "--data", str(hub.path), "--json", "--", "-edge", "vision")
        assert r.returncode == 0 and json.loads(r.stdout)["total"] == 1, r.stderr
        r = cli("search", "--data", str(hub.path), "vision", "--bogus")
        assert r.returncode == 2 and "unrecognized arguments: --bogus" in r.stderr
        r = cli("search", "--data", str(hub.path), "--kind", "firm")
        assert r.returncode == 2  # argparse: not a searchable kind
    finally:
        dj.stop()


def test_a_search_ranks_pages_and_counts_facets(hub: Hub) -> None:
    made = [
        hub.add_record("Seawater desalination membrane", keywords=["membranes"], taxonomy="tt-2026.1"),
        hub.add_record("Water purifier", description="Uses a desalination membrane", target_countries=["KZ"]),
        hub.add_record("低能耗海水淡化膜技术", summary="反渗透", target_countries=["KZ"]),
        hub.add_record("로봇용접 시스템"),
    ]
    title, body, zh, ko = made

    def search(**query: object) -> admin_pb2.SearchRecordsResponse:
        req = admin_pb2.SearchRecordsRequest(**query)  # type: ignore[arg-type]
        return hub.admin.SearchRecords(req, metadata=hub.md, timeout=10)

    ranked = search(text="desalination membrane")
    assert [v.id for v in ranked.records] == [title, body]  # a title match first
    assert [h.id for h in ranked.hits] == [title, body] and ranked.hits[0].score > ranked.hits[1].score
    assert [v.id for v in search(text="desalination membrane", sort=admin_pb2.SEARCH_SORT_NEWEST).records] == [
        body,
        title,
    ]
    assert [v.id for v in search(text="淡化").records] == [zh]
    assert [v.id for v in search(text="로봇").records] == [ko]
    first = search(page_size=3)
    assert first.total == 4 and len(first.records) == 3 and first.next_page_token
    rest = search(page_size=3, page_token=first.next_page_token)
    assert len(rest.records) == 1 and not rest.next_page_token
    assert {v.id for v in [*first.records, *rest.records]} == set(made)
    facets = {f.name: {v.value: v.count for v in f.values} for f in search(facets=True).facets}
    assert facets["country"] == {"KZ": 2} and facets["centre"] == {"hq": 4} and facets["kind"] == {"listing": 4}
    # Live: published and within validity; these are all submitted.
    assert search(live_only=True).total == 0
    for typed in ['"', "*", "-", "", "C02F 1/44", "e-mobility", "O'Brien", "NOT", "AND OR", "(", "a:b", "{x}", "^"]:
        search(text=typed)  # never a syntax error, never a server error


def test_bad_filters_and_queries_are_refused_field_by_field(hub: Hub) -> None:
    req = admin_pb2.SearchRecordsRequest(
        kind="firm", status="sleeping", keywords=["solar", "batteries"], countries=["Korea"], stage="ripe"
    )
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.SearchRecords(req, metadata=hub.md, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(e.value)] == ["kind", "status", "keywords[0]", "countries[0]", "stage"]
    for text, field in (("x" * 1001, "text"), (" ".join(f"w{i}" for i in range(65)), "text")):
        with pytest.raises(grpc.RpcError) as e:
            hub.admin.SearchRecords(admin_pb2.SearchRecordsRequest(text=text), metadata=hub.md, timeout=10)
        assert [f for f, _ in field_violations(e.value)] == [field]
    r = cli("search", "--data", str(hub.path), "solar", "--keyword", "sunshine", "--country", "Korea")
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: keywords[0]: 'sunshine' is not a term of the taxonomy",
        "error: countries[0]: 'Korea' is not an ISO 3166-1 alpha-2 code",
    ], r.stderr
    assert hub.admin.SearchRecords(admin_pb2.SearchRecordsRequest(), metadata=hub.md, timeout=10).total == 0
