"""The receive step's check ahead (sync.protocol.receive.checked_ahead), on a real site:
batches in order, errors in order after the batches before them, bounded read-ahead,
and a consumer that stops early cancels the stream and leaves no thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.site import init_hub
from sync.config import DataDir
from sync.protocol.receive import Entry, checked_ahead
from sync.site import Site
from techbridge.v1 import sync_pb2
from transfer.records import KINDS


class Stream:
    """A server stream as gRPC hands it over: an iterator that can be cancelled."""

    def __init__(self, count: int, fail_after: int | None = None) -> None:
        self.count, self.fail_after = count, fail_after
        self.produced = 0
        self.cancelled = threading.Event()

    def __iter__(self) -> Iterator[sync_pb2.PullResponse]:
        for i in range(1, self.count + 1):
            if self.cancelled.is_set():
                raise RuntimeError("cancelled")
            if self.fail_after is not None and i > self.fail_after:
                raise ConnectionError("the hub went away")
            self.produced = i
            yield sync_pb2.PullResponse(through_seq=i)

    def cancel(self) -> bool:
        self.cancelled.set()
        return True


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    init_hub(tmp_path / "hq", listen="127.0.0.1:0")
    s = Site.open(DataDir(tmp_path / "hq"), KINDS)
    yield s
    s.store.close()


def checkers() -> int:
    return sum(t.name == "check-ahead" for t in threading.enumerate())


def test_batches_arrive_in_order_checked_and_the_thread_ends(site: Site) -> None:
    s = Stream(50)
    got = [(m.through_seq, checked) for m, _entries, checked in checked_ahead(site, s, lambda m: [], depth=2)]
    assert got == [(i, []) for i in range(1, 51)]
    assert not s.cancelled.is_set()
    assert checkers() == 0


def test_an_error_arrives_after_the_batches_before_it(site: Site) -> None:
    s = Stream(10, fail_after=4)
    got = []
    with pytest.raises(ConnectionError, match="went away"):
        for m, _, _ in checked_ahead(site, s, lambda m: [], depth=2, cancel=s.cancel):
            got.append(m.through_seq)
    assert got == [1, 2, 3, 4]
    assert checkers() == 0


def test_a_batch_that_fails_its_check_fails_in_order(site: Site) -> None:
    s = Stream(10)

    def entries_of(m: sync_pb2.PullResponse) -> list[Entry]:
        if m.through_seq == 3:
            raise ValueError("batch 3 is malformed")
        return []

    got = []
    with pytest.raises(ValueError, match="batch 3"):
        for m, _, _ in checked_ahead(site, s, entries_of, cancel=s.cancel):
            got.append(m.through_seq)
    assert got == [1, 2]


def test_reading_ahead_is_bounded_and_stopping_early_cancels_the_stream(site: Site) -> None:
    s = Stream(1000)
    batches = checked_ahead(site, s, lambda m: [], depth=2, cancel=s.cancel)
    assert next(batches)[0].through_seq == 1
    time.sleep(0.3)  # the thread runs ahead as far as it may
    assert s.produced <= 1 + 2 + 1  # taken, queued, in the thread's hands
    batches.close()  # the consumer stops (an error while storing, a deferral)
    assert s.cancelled.is_set()
    assert checkers() == 0
