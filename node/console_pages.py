"""A centre's own console pages: its queues (interests it handles that wait for a step,
suggestions HQ made for its requests, its offers about to expire, alert hits, and open
conflicts on what it owns)."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response

from console.pages import record_summary, steps_here
from console.web import Ask, ConsolePage
from transfer.alerts import list_hits

TEMPLATES = Path(__file__).parent / "templates"
QUEUE_MAX = 500
EXPIRING_DAYS = 30
OPEN_INTERESTS = ("sent", "forwarded", "accepted", "introduced", "negotiating")


def queues_page(ask: Ask) -> Response:
    site = ask.site
    here = site.site_id
    now = site.now_ms()
    interests = []
    for row in site.records(origin=None, limit=QUEUE_MAX, kind="interest"):
        content = row.state.content
        if content.status in OPEN_INTERESTS and here in (content.value("to_owner"), row.origin):
            steps = steps_here(ask, row) if ask.may_write() else []
            if steps:
                interests.append((row, record_summary(row, now), steps))
    about = site.titles([str(r.state.content.value("to_record")) for r, _, _ in interests])
    suggested = [
        record_summary(row, now)
        for row in site.records(origin=None, limit=QUEUE_MAX, kind="suggestion", status="suggested")
        if row.state.content.value("for_centre") == here
    ]
    soon = now + EXPIRING_DAYS * 24 * 3600 * 1000
    expiring = []
    for row in site.records(origin=here, limit=QUEUE_MAX, kind="listing", status="published"):
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
