"""Bulk intake: AddRecords stores many new records in one transaction (all or none);
ImportRecords takes a stream of them, checks every one as it arrives and stores them only
once all are good; `listing import` streams a CSV through it, each row's problem named by
row, whichever side found it."""

from __future__ import annotations

import csv
import logging
import threading
import time
from collections.abc import Iterator
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


def test_add_records_names_the_problems_that_fit_in_a_status(hub: Hub) -> None:
    # A thousand records each with a problem: named in full, they outgrew the call's trailers.
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.AddRecords(admin_pb2.AddRecordsRequest(records=[offer("")] * 1000), metadata=hub.md, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(e.value)
    assert violations[0] == ("records[0].title", "required, must not be empty")
    assert violations[-1] == ("(more)", f"and {1000 - len(violations) + 1} more problems")
    assert hub.listings() == []


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


def stream(
    *batches: list[admin_pb2.AddRecordRequest], check_only: bool = False
) -> list[admin_pb2.ImportRecordsRequest]:
    """The messages of an import: the last marked last (and check_only, if asked)."""
    last = len(batches) - 1
    return [
        admin_pb2.ImportRecordsRequest(records=b, check_only=check_only and i == last, last=i == last)
        for i, b in enumerate(batches)
    ]


def test_import_records_checks_the_whole_stream_before_storing_any(hub: Hub) -> None:
    batches = [[offer(f"Offer {i}-{j}") for j in range(400)] for i in range(3)]
    late = offer("Published at once")
    late.status = "published"
    batches[2][399] = late  # the 1,200th record, after two messages the site has checked
    with pytest.raises(grpc.RpcError) as e:
        list(hub.admin.ImportRecords(iter(stream(*batches)), metadata=hub.md, timeout=60))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(e.value)] == ["records[1199].status"]
    assert hub.listings() == []  # nothing half stored
    batches[2][399] = offer("Offer 2-399")
    answers = list(hub.admin.ImportRecords(iter(stream(*batches)), metadata=hub.md, timeout=60))
    # Stored a transaction of 1,000 at a time, each answered in the order sent.
    assert [len(a.ids) for a in answers] == [1000, 200]
    ids = [i for a in answers for i in a.ids]
    assert len(set(ids)) == 1200 and len(hub.listings()) == 1200
    assert hub.show(ids[0]).values.listing.title == "Offer 0-0"
    assert hub.show(ids[1199]).values.listing.title == "Offer 2-399"


def test_import_records_check_only_stores_nothing_and_counts(hub: Hub) -> None:
    batches = [[offer(f"Offer {i}-{j}") for j in range(3)] for i in range(2)]
    answers = list(hub.admin.ImportRecords(iter(stream(*batches, check_only=True)), metadata=hub.md, timeout=30))
    assert [(list(a.ids), a.checked) for a in answers] == [([], 6)]
    # Set on the first message only, it holds for the whole stream.
    first_only = stream(*batches)
    first_only[0].check_only = True
    answers = list(hub.admin.ImportRecords(iter(first_only), metadata=hub.md, timeout=30))
    assert [(list(a.ids), a.checked) for a in answers] == [([], 6)]
    assert hub.listings() == []


def test_import_records_stores_nothing_of_a_stream_without_its_last_message(hub: Hub) -> None:
    unmarked = stream([offer("Offer 1")], [offer("Offer 2")])
    unmarked[-1].last = False
    with pytest.raises(grpc.RpcError) as e:
        list(hub.admin.ImportRecords(iter(unmarked), metadata=hub.md, timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(e.value)] == ["last"]
    early = stream([offer("Offer 1")], [offer("Offer 2")])
    early[0].last = True
    with pytest.raises(grpc.RpcError) as e:
        list(hub.admin.ImportRecords(iter(early), metadata=hub.md, timeout=30))
    assert [f for f, _ in field_violations(e.value)] == ["last"]
    assert hub.listings() == []


def test_import_records_names_the_first_problems_and_counts_the_rest(hub: Hub) -> None:
    # 1,500 bad records: their violations would outgrow the call's trailers.
    bad = [offer("") for _ in range(1500)]
    with pytest.raises(grpc.RpcError) as e:
        list(hub.admin.ImportRecords(iter(stream(bad[:1000], bad[1000:])), metadata=hub.md, timeout=60))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(e.value)
    assert [f for f, _ in violations[:2]] == ["records[0].title", "records[1].title"]
    assert violations[-1] == ("(more)", f"and {1500 - len(violations) + 1} more problems")
    assert 10 < len(violations) < 60
    # Long problems that repeat what was sent, in Korean: cut, and the status still arrives whole.
    word = "대전" * 40
    echoing = [offer(f"Offer {j}", keywords=[word], taxonomy="tt-2026.1") for j in range(300)]
    with pytest.raises(grpc.RpcError) as e:
        list(hub.admin.ImportRecords(iter(stream(echoing)), metadata=hub.md, timeout=60))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(e.value)
    assert violations[0][0] == "records[0].keywords[0]" and len(violations[0][1]) <= 160
    assert violations[-1] == ("(more)", f"and {300 - len(violations) + 1} more problems")
    assert hub.add_record("Still serving")  # the server kept serving


def test_import_records_refuses_a_stream_over_its_limits(hub: Hub) -> None:
    big = [offer(f"Offer {j}") for j in range(1001)]
    with pytest.raises(grpc.RpcError) as e:
        list(hub.admin.ImportRecords(iter(stream(big)), metadata=hub.md, timeout=30))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(e.value) == [("records", "at most 1000 a message (got 1001)")]
    many = [offer(f"Offer {j}") for j in range(1000)]
    with pytest.raises(grpc.RpcError) as e:
        list(hub.admin.ImportRecords(iter(stream(*([many] * 21))), metadata=hub.md, timeout=120))
    assert field_violations(e.value) == [("records", "at most 20000 records and 64 MiB a call")]
    assert hub.listings() == []


def test_import_records_left_by_its_caller_stores_nothing(hub: Hub, caplog: pytest.LogCaptureFixture) -> None:
    sent = threading.Event()
    hold = threading.Event()

    def requests() -> Iterator[admin_pb2.ImportRecordsRequest]:
        yield admin_pb2.ImportRecordsRequest(records=[offer(f"Offer {j}") for j in range(500)])
        sent.set()
        hold.wait(30)  # the caller goes away before the stream ends
        yield admin_pb2.ImportRecordsRequest(records=[offer("Offer 500")], last=True)

    call = hub.admin.ImportRecords(requests(), metadata=hub.md, timeout=60)
    assert sent.wait(10)
    # Whichever the site sees first, the cancel or the stream's end, the stream ended without
    # its last message: nothing is stored. The pause makes it likelier the site has read the first.
    time.sleep(0.2)
    call.cancel()  # type: ignore[no-untyped-call]  # missing from grpc-stubs
    hold.set()
    with pytest.raises(grpc.RpcError) as e:
        list(call)
    assert e.value.code() == grpc.StatusCode.CANCELLED
    assert hub.add_record("Still serving")
    assert [v.values.listing.title for v in hub.listings()] == ["Still serving"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_listing_import_names_rows_only_the_site_refuses_and_stores_none(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "offers.csv"
    with f.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["title", "status", "private_note"])
        for i in range(1_100):
            # Row 3's status the file shows wrong; row 1,052's note only the site measures.
            w.writerow(
                [f"Imported offer {i}", "published" if i == 1 else "submitted", "x" * 2001 if i == 1_050 else ""]
            )
    r = cli("listing", "import", "--data", str(hub.path), "--file", str(f), timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert [line.split(": ")[2:4] for line in r.stderr.splitlines()] == [
        ["row 3", "status"],
        ["row 1052", "private_note"],
    ], r.stderr
    assert hub.listings() == []  # the first 1,000 rows were good, and not one is stored
    with f.open("w", newline="", encoding="utf-8") as out:
        w = csv.writer(out)
        w.writerow(["title", "private_note"])
        w.writerows([[f"Imported offer {i}", "x" * 2001 if i == 1_050 else ""] for i in range(1_100)])
    r = cli("listing", "import", "--data", str(hub.path), "--file", str(f), timeout=300)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [f"error: {f}: row 1052: private_note: at most 2000 characters (got 2001)"]
    assert hub.listings() == []


def test_listing_import_check_stores_nothing(hub: Hub, tmp_path: Path) -> None:
    f = tmp_path / "offers.csv"
    f.write_text("title,keywords\nOne,membranes\nTwo,desalination;membranes\n", encoding="utf-8")
    r = cli("listing", "import", "--check", "--data", str(hub.path), "--file", str(f))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and f"checked 2 offers in {f}: all good, none stored" in r.stderr
    assert hub.listings() == []
    f.write_text("title,trl\nOne,4\nTwo,12\n", encoding="utf-8")
    r = cli("listing", "import", "--check", "--data", str(hub.path), "--file", str(f))
    assert r.returncode == 1 and "row 3: trl" in r.stderr, r.stderr


def test_a_site_takes_one_import_at_a_time(hub: Hub) -> None:
    sent = threading.Event()
    go_on = threading.Event()

    def requests() -> Iterator[admin_pb2.ImportRecordsRequest]:
        yield admin_pb2.ImportRecordsRequest(records=[offer("First import")])
        sent.set()
        go_on.wait(30)
        yield admin_pb2.ImportRecordsRequest(records=[offer("First import, last")], last=True)

    first = hub.admin.ImportRecords(requests(), metadata=hub.md, timeout=60)
    assert sent.wait(10)
    deadline = time.monotonic() + 10
    while True:  # until the site has taken the first import's stream
        try:
            list(hub.admin.ImportRecords(iter(stream([offer("Second")])), metadata=hub.md, timeout=10))
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, e
            break
        assert time.monotonic() < deadline, "the second import was never refused"
        # Taken before the first had begun: stored, and tried again.
        assert {v.values.listing.title for v in hub.listings()} <= {"Second"}
    go_on.set()
    assert sum(len(a.ids) for a in first) == 2
    titles = {v.values.listing.title for v in hub.listings()}
    assert {"First import", "First import, last"} <= titles <= {"First import", "First import, last", "Second"}
