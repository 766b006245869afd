"""Hybrid logical clocks.

A stamp is (wall milliseconds, counter). `tick` stamps a local event: it never
goes backwards even if the wall clock does. `observe` folds in a stamp received
from another site so that whatever this site writes next sorts after what it
has seen. The wall clock is injected (`now_ms`), never read deep inside.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Stamp:
    wall_ms: int
    counter: int


def system_now_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridClock:
    def __init__(self, now_ms: Callable[[], int] = system_now_ms) -> None:
        self._now_ms = now_ms
        self._last = Stamp(0, 0)
        self._lock = threading.Lock()

    def tick(self) -> Stamp:
        with self._lock:
            wall = self._now_ms()
            if wall > self._last.wall_ms:
                self._last = Stamp(wall, 0)
            else:
                self._last = Stamp(self._last.wall_ms, self._last.counter + 1)
            return self._last

    def observe(self, remote: Stamp) -> None:
        with self._lock:
            if remote > self._last:
                self._last = remote
