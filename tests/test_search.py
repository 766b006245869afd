"""Search over offers and requests: words and filters, on every backend's store,
through the admin API and the CLI; the index follows edits and deletions."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

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
        assert found(stage="lab-tested") == [battery, chip]  # newest first
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
        r = cli("search", "--data", str(hub.path), "vision", "--keyword", "semiconductors", "--json")
        assert r.returncode == 0, r.stderr
        assert [d["id"] for d in json.loads(r.stdout)] == [chip]
        r = cli("search", "--data", str(hub.path), "--kind", "firm")
        assert r.returncode == 2  # argparse: not a searchable kind
    finally:
        dj.stop()
