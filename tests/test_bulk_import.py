"""Bulk intake: AddRecords stores many new records in one transaction (all or none), and
`listing import` sends a CSV in batches of that call, each row's problem named by row."""

from __future__ import annotations

import csv
from pathlib import Path

import grpc
import pytest

from sync.server import field_violations
from techbridge.v1 import admin_pb2, records_pb2
from tests.harness import Hub, cli


def offer(title: str, **fields: object) -> admin_pb2.AddRecordRequest:
    return admin_pb2.AddRecordRequest(
        values=records_pb2.RecordValues(listing=records_pb2.Listing(title=title, **fields))  # type: ignore[arg-type]
    )


def test_add_records_stores_all_or_none(hub: Hub) -> None:
    good = [offer(f"Offer {i}") for i in range(3)]
    bad = offer("Published at once")
    bad.status = "published"
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.AddRecords(admin_pb2.AddRecordsRequest(records=[*good, bad]), metadata=hub.md, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(e.value)] == ["records[3].status"]
    assert hub.listings() == []  # nothing half stored
    ids = hub.admin.AddRecords(admin_pb2.AddRecordsRequest(records=good), metadata=hub.md, timeout=10).ids
    assert sorted(v.id for v in hub.listings()) == sorted(ids) and len(set(ids)) == 3
    assert [hub.show(i).values.listing.title for i in ids] == ["Offer 0", "Offer 1", "Offer 2"]


def test_listing_import_sends_batches_and_names_the_row(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "offers.csv"
    with f.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["title", "keywords", "taxonomy", "private_note"])
        for i in range(1_205):  # three calls: 500, 500, 205
            w.writerow([f"Imported offer {i}", "membranes;desalination", "tt-2026.1", "client: Acme" if i == 7 else ""])
    r = cli("listing", "import", "--data", str(hub.path), "--file", str(f), timeout=300)
    assert r.returncode == 0, r.stderr
    ids = r.stdout.split()
    assert len(ids) == 1_205 and len(set(ids)) == 1_205
    assert hub.show(ids[7]).private_note == "client: Acme"
    assert hub.show(ids[1_204]).values.listing.title == "Imported offer 1204"
    bad = tmp_path / "bad.csv"
    bad.write_text("title,status\nFine,submitted\nNot yet,published\n", encoding="utf-8")
    r = cli("listing", "import", "--data", str(hub.path), "--file", str(bad))
    assert r.returncode == 1
    assert "row 3: status" in r.stderr, r.stderr
    assert len(hub.listings()) == 1_205  # the bad file stored nothing


def test_listing_import_names_every_bad_row_of_every_batch_in_order(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "offers.csv"
    with f.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["title", "status", "trl"])
        for i in range(1_100):  # three batches; bad rows in the first and the last
            w.writerow(
                [f"Imported offer {i}", "published" if i == 1 else "submitted", "12" if i in (600, 1_050) else "4"]
            )
    r = cli("listing", "import", "--data", str(hub.path), "--file", str(f), timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    named = [line.split(": ")[2] for line in r.stderr.splitlines()]
    assert named == ["row 3", "row 602", "row 1052"], r.stderr
    assert hub.listings() == []  # nothing stored
