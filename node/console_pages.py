"""A centre's own console pages: its queues (interests it handles that wait for a step,
suggestions HQ made for its requests, its offers about to expire, alert hits, and open
conflicts on what it owns)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from starlette.responses import Response

from console.pages import record_summary, steps_here
from console.web import Ask, ConsolePage
from sync.site import Site
from sync.store import RecordRow
from transfer.alerts import list_hits

TEMPLATES = Path(__file__).parent / "templates"
QUEUE_MAX = 500
PAGE = 1000
SCAN_MAX = 20_000
EXPIRING_DAYS = 30
OPEN_INTERESTS = ("sent", "forwarded", "accepted", "introduced", "negotiating")


def _held(site: Site, kind: str, status: str, origin: str | None = None) -> Iterator[RecordRow]:
    """The records of a kind and status held here, a page at a time (at most SCAN_MAX)."""
    after = ""
    for _ in range(SCAN_MAX // PAGE):
        rows = site.records(origin=origin, limit=PAGE, after_id=after, kind=kind, status=status)
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1].record_id


def queues_page(ask: Ask) -> Response:
    site = ask.site
    here = site.site_id
    now = site.now_ms()
    interests = []
    for status in OPEN_INTERESTS:
        for row in _held(site, "interest", status):
            if here in (row.state.content.value("to_owner"), row.origin):
                steps = steps_here(ask, row) if ask.may_write() else []
                interests.append((row, record_summary(row, now), steps))
    about = site.titles([str(r.state.content.value("to_record")) for r, _, _ in interests])
    suggested = [
        record_summary(row, now)
        for row in _held(site, "suggestion", "suggested")
        if row.state.content.value("for_centre") == here
    ]
    soon = now + EXPIRING_DAYS * 24 * 3600 * 1000
    expiring = []
    for row in _held(site, "listing", "published", origin=here):
        until = row.state.content.value("valid_until_ms")
        if isinstance(until, int) and 0 < until <= soon:
            expiring.append((record_summary(row, now), until))
    expiring.sort(key=lambda pair: pair[1])
    hits = list_hits(site, limit=100)
    hit_titles = site.titles([h.record_id for h in hits])
    conflicted = [
        record_summary(row, now)
        for row in site.records(origin=here, limit=QUEUE_MAX, only_conflicted=True, include_deleted=True)
    ]
    return ask.render(
        "queues_centre.html",
        interests=interests,
        about=about,
        suggested=suggested,
        expiring=expiring,
        hits=hits,
        hit_titles=hit_titles,
        conflicted=conflicted,
    )


CENTRE_PAGES = (ConsolePage("/queues", queues_page, label="Queues"),)
