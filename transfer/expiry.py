"""Offers and requests that run out: expiry, archiving, and the warning before.

An offer carries its end of validity (`valid_until_ms`, set when it is
created: `offer_validity_days` after, 365 by default; moved once by an
EXTEND step). Because the date travels inside the signed record, every site
shows an offer past that date as not live at once (`admin.is_live`), before
any step arrives. The job here then makes it official, at the site allowed to:

* the owning centre writes EXPIRE for its published offers past their date,
  and ARCHIVE for its expired or withdrawn offers two years after that date;
* HQ writes EXPIRE for published requests past their deadline (a request is
  a firm's, so HQ keeps its lifecycle moving);
* offers ending within two weeks are logged as a warning, once per offer per
  process, so the centre can extend them.

Each step goes through the same checks as a staff step (`Site.step_record`);
one that raced with another change is skipped and taken up by the next run.
The job runs on APScheduler (3.x) every `expiry_every_s` seconds on hub and
nodes alike; `now` is the site's injected clock, so tests move time by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field

from apscheduler.schedulers.background import BackgroundScheduler

from sync.errors import TechbridgeError
from sync.jobs import start_job
from sync.kinds import Action
from sync.site import Site
from sync.store import RecordRow

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000
WARN_AHEAD_MS = 14 * DAY_MS
ARCHIVE_AFTER_MS = 2 * 365 * DAY_MS
JOB_ID = "expiry"
# Records the job reads at a time.
PAGE = 500


@dataclass
class ExpiryReport:
    expired: list[str] = field(default_factory=list)
    archived: list[str] = field(default_factory=list)
    expiring_soon: list[str] = field(default_factory=list)


def _rows(site: Site, kind: str, status: str, origin: str | None) -> Iterator[RecordRow]:
    """The records of `kind` in `status` (of `origin`, or any), read PAGE at a time in the
    order of their ids. A record stepped out of `status` meanwhile does not move the next
    page, which starts after the last id read."""
    after = ""
    while True:
        rows = site.records(origin=origin, limit=PAGE, after_id=after, kind=kind, status=status)
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1].record_id


def _int(row: RecordRow, name: str) -> int:
    value = row.state.content.value(name)
    return value if isinstance(value, int) else 0


class ExpiryJob:
    def __init__(self, site: Site) -> None:
        self._site = site
        self._warned: set[str] = set()

    def _step(self, record_id: str, action: Action, into: list[str]) -> None:
        try:
            self._site.step_record(record_id, action)
            into.append(record_id)
        except TechbridgeError as exc:
            log.info("%s of %s skipped: %s", action.value, record_id, exc)

    def run(self) -> ExpiryReport:
        site, now = self._site, self._site.now_ms()
        report = ExpiryReport()
        for row in _rows(site, "listing", "published", site.site_id):
            until = _int(row, "valid_until_ms")
            if until and until <= now:
                self._step(row.record_id, Action.EXPIRE, report.expired)
            elif until and until - now <= WARN_AHEAD_MS:
                report.expiring_soon.append(row.record_id)
                if row.record_id not in self._warned:
                    self._warned.add(row.record_id)
                    log.warning(
                        "offer %s expires in %s days; extend it once if it stays on offer",
                        row.record_id,
                        max(0, (until - now) // DAY_MS),
                    )
        for status in ("expired", "withdrawn"):
            for row in _rows(site, "listing", status, site.site_id):
                until = _int(row, "valid_until_ms")
                if until and until + ARCHIVE_AFTER_MS <= now:
                    self._step(row.record_id, Action.ARCHIVE, report.archived)
        if site.is_hub:
            for row in _rows(site, "request", "published", None):
                deadline = _int(row, "deadline_ms")
                if deadline and deadline <= now:
                    self._step(row.record_id, Action.EXPIRE, report.expired)
        if report.expired or report.archived:
            log.info("expiry: %s expired, %s archived", len(report.expired), len(report.archived))
        return report


def start_expiry_job(site: Site, every_s: float) -> BackgroundScheduler:
    """Run the expiry job every `every_s` seconds (one process at a time on a shared store)."""
    return start_job(site.store, JOB_ID, every_s, ExpiryJob(site).run)
