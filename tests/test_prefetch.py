"""The pull prefetch (sync.protocol.node_side.prefetched): messages in order, errors in order,
bounded read-ahead, and a consumer that stops early cancels the stream and leaves
no reader thread behind."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from sync.protocol.node_side import prefetched
from techbridge.v1 import sync_pb2


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


def readers() -> int:
    return sum(t.name == "pull-prefetch" for t in threading.enumerate())


def test_messages_arrive_in_order_and_the_reader_ends() -> None:
    s = Stream(50)
    assert [m.through_seq for m in prefetched(s, 2, s.cancel)] == list(range(1, 51))
    assert not s.cancelled.is_set()
    assert readers() == 0


def test_an_error_arrives_after_the_messages_before_it() -> None:
    s = Stream(10, fail_after=4)
    got = []
    with pytest.raises(ConnectionError, match="went away"):
        for m in prefetched(s, 2, s.cancel):
            got.append(m.through_seq)
    assert got == [1, 2, 3, 4]
    assert readers() == 0


def test_reading_ahead_is_bounded_and_stopping_early_cancels_the_stream() -> None:
    s = Stream(1000)
    messages = prefetched(s, 2, s.cancel)
    assert next(messages).through_seq == 1
    time.sleep(0.3)  # the reader runs ahead as far as it may
    assert s.produced <= 1 + 2 + 1  # taken, queued, in the reader's hands
    messages.close()  # the consumer stops (an error while storing, a deferral)
    assert s.cancelled.is_set()
    assert readers() == 0
