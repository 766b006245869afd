"""The figures the console shows, counted at most once a minute per period.

A year's report over a large network takes seconds (transfer.report reads every step of
the period). The Figures page and its downloads take the report from `FiguresCache`: a
report is counted on the first visit of its period and centres, kept, and served as it was
counted (the page says when) while the site's log has not moved or for `MAX_AGE_S` after; an
older one is still served at once while a fresh count runs in the background.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from sync.site import Site
from techbridge.v1 import admin_pb2
from transfer.admin import report_to_pb
from transfer.report import Period, report

log = logging.getLogger(__name__)
MAX_AGE_S = 60
KEPT = 32

Key = tuple[int, int, str, tuple[str, ...]]


@dataclass(frozen=True)
class Counted:
    report: admin_pb2.GetReportResponse
    counted_at_ms: int
    log_head: int


class FiguresCache:
    def __init__(self, site: Site, max_age_s: float = MAX_AGE_S) -> None:
        self._site = site
        self._max_age_ms = int(max_age_s * 1000)
        self._held: OrderedDict[Key, Counted] = OrderedDict()
        self._counting: set[Key] = set()  # recounts under way
        self._first: dict[Key, threading.Event] = {}  # first counts under way, awaited by all
        self._lock = threading.Lock()

    def _count(self, key: Key, period: Period, centres: tuple[str, ...]) -> Counted:
        head = self._site.log_head()
        done = Counted(report_to_pb(report(self._site, period, centres)), self._site.now_ms(), head)
        with self._lock:
            held = self._held.get(key)
            if held is None or held.log_head <= head:  # never replace a newer count
                self._held[key] = done
                self._held.move_to_end(key)
            while len(self._held) > KEPT:
                self._held.popitem(last=False)
        return done

    def _recount(self, key: Key, period: Period, centres: tuple[str, ...]) -> None:
        try:
            self._count(key, period, centres)
        except Exception:
            log.exception("recounting the figures of %s failed", period.label)
        finally:
            with self._lock:
                self._counting.discard(key)

    def get(self, period: Period, centres: tuple[str, ...]) -> tuple[Counted, bool]:
        """The report of `period` for `centres` and whether a newer count is under way. The
        first visitors of a period wait for one count together."""
        key = (period.start_ms, period.end_ms, period.label, centres)
        while True:
            with self._lock:
                held = self._held.get(key)
                first = self._first.get(key) if held is None else None
                mine = held is None and first is None
                if mine:
                    first = self._first[key] = threading.Event()
            if held is not None:
                break
            assert first is not None
            if not mine:
                first.wait(timeout=300)
                continue  # counted by the other visitor (or failed: count again)
            try:
                return self._count(key, period, centres), False
            finally:
                with self._lock:
                    self._first.pop(key, None)
                first.set()
        if held.log_head == self._site.log_head() or self._site.now_ms() - held.counted_at_ms < self._max_age_ms:
            return held, False
        with self._lock:
            start = key not in self._counting
            self._counting.add(key)
        if start:
            threading.Thread(target=self._recount, args=(key, period, centres), daemon=True).start()
        return held, True
