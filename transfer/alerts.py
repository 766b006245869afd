"""Alerts: searches centre staff save for a client, and the records that came to match them.

An alert is a search (the same query and filters as `techbridge search`) kept at one site
(table `alerts`; never sent). A job on every site reads the log after each alert's cursor,
so whatever arrived since — by sync, while the link was down, or written here — is
checked: the new records that match are recorded once each (table `alert_hits`, keyed by
alert and record) and the cursor moves on, in one transaction. An alert sees what arrives
after it is saved, not what was held before.

When the site has a webhook (`alert_webhook` in `site.json`), each hit is posted to it as
JSON; a hit that fails is tried again later, waiting twice as long each time (from
`RETRY_FIRST_S` up to `RETRY_MAX_S`). The job runs on its own thread: a webhook that hangs
costs it `WEBHOOK_TIMEOUT_S` per try and never holds up a sync round.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from typing import Any, cast

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Table, delete, func, insert, select, update

from sync.errors import FieldViolation, InvalidInput, NotFound
from sync.jobs import start_job
from sync.site import Site
from sync.store.models import AlertHitModel, AlertModel
from sync.store.tables import log_t, versions_t
from transfer.search import search_query

log = logging.getLogger(__name__)

alerts_t = cast(Table, AlertModel.__table__)
hits_t = cast(Table, AlertHitModel.__table__)
NAME_MAX = 200
SCAN_BATCH = 2_000
# Arrived records an alert's search is asked about at once (the answer holds each match's row).
ROWS_AT_ONCE = 200
WEBHOOK_TIMEOUT_S = 5.0
RETRY_FIRST_S = 30
RETRY_MAX_S = 3600
# The filters an alert keeps (those of `search_query`, but the page and the sort).
FILTERS = ("kind", "status", "keywords", "countries", "stage", "partnership", "origin")


@dataclass(frozen=True)
class Alert:
    alert_id: str
    name: str
    text: str
    filters: dict[str, Any]
    created_at_ms: int


@dataclass(frozen=True)
class Hit:
    alert_id: str
    alert_name: str
    record_id: str
    hit_at_ms: int
    delivered_at_ms: int
    attempts: int


def _alert(row: Any) -> Alert:
    doc = json.loads(row.query_json)
    return Alert(row.alert_id, row.name, doc.get("text", ""), doc.get("filters", {}), row.created_at_ms)


def add_alert(site: Site, name: str, text: str, **filters: Any) -> Alert:
    """Save a search as an alert, or InvalidInput naming what is wrong (the search's own
    checks). It sees records that arrive from now on."""
    unknown = sorted(set(filters) - set(FILTERS))
    problems = [FieldViolation(f, "not a filter an alert keeps") for f in unknown]
    if not name.strip() or len(name) > NAME_MAX:
        problems.append(FieldViolation("name", f"required, at most {NAME_MAX} characters"))
    if problems:
        raise InvalidInput(problems)
    kept = {k: v for k, v in filters.items() if v}
    search_query(text, **kept)  # refuses what a search refuses
    alert = Alert(str(uuid.uuid4()), name.strip(), text, kept, site.now_ms())
    with site.store.writing() as conn:
        head = conn.execute(select(func.coalesce(func.max(log_t.c.seq), 0))).scalar_one()
        conn.execute(
            insert(alerts_t).values(
                alert_id=alert.alert_id,
                name=alert.name,
                query_json=json.dumps({"text": text, "filters": kept}, ensure_ascii=False, sort_keys=True),
                checked_seq=head,
                created_at_ms=alert.created_at_ms,
            )
        )
    return alert


def list_alerts(site: Site) -> list[Alert]:
    with site.store.engine.connect() as conn:
        return [
            _alert(r) for r in conn.execute(select(alerts_t).order_by(alerts_t.c.created_at_ms, alerts_t.c.alert_id))
        ]


def remove_alert(site: Site, alert_id: str) -> None:
    with site.store.writing() as conn:
        gone = conn.execute(delete(alerts_t).where(alerts_t.c.alert_id == alert_id)).rowcount
        conn.execute(delete(hits_t).where(hits_t.c.alert_id == alert_id))
    if not gone:
        raise NotFound(f"no alert with id {alert_id}")


def list_hits(site: Site, limit: int = 1000) -> list[Hit]:
    with site.store.engine.connect() as conn:
        rows = conn.execute(
            select(hits_t, alerts_t.c.name)
            .join(alerts_t, alerts_t.c.alert_id == hits_t.c.alert_id)
            .order_by(hits_t.c.hit_at_ms.desc(), hits_t.c.record_id)
            .limit(limit)
        ).all()
    return [Hit(r.alert_id, r.name, r.record_id, r.hit_at_ms, r.delivered_at_ms, r.attempts) for r in rows]


class AlertJob:
    """Checks each alert against what arrived since its cursor, and delivers new hits."""

    def __init__(self, site: Site, webhook: str = "") -> None:
        self.site = site
        self.webhook = webhook
        if webhook and not webhook.startswith(("http://", "https://")):
            log.warning("alert_webhook is not an http:// or https:// URL; hits are kept but not posted")
            self.webhook = ""

    def run(self) -> int:
        """One pass: new hits recorded (returned), then deliveries due."""
        found = sum(self._check(a) for a in list_alerts(self.site))
        if self.webhook:
            self._deliver()
        return found

    def _check(self, alert: Alert) -> int:
        store = self.site.store
        with store.engine.connect() as conn:
            after = conn.execute(select(alerts_t.c.checked_seq).where(alerts_t.c.alert_id == alert.alert_id)).scalar()
            if after is None:
                return 0
            rows = conn.execute(
                select(log_t.c.seq, versions_t.c.record_id)
                .join(versions_t, versions_t.c.version_id == log_t.c.version_id)
                .where(log_t.c.seq > after)
                .order_by(log_t.c.seq)
                .limit(SCAN_BATCH)
            ).all()
        if not rows:
            return 0
        arrived = sorted({r.record_id for r in rows})
        query = dataclasses.replace(search_query(alert.text, **alert.filters, limit=ROWS_AT_ONCE), snippets=False)
        matched: list[str] = []
        for start in range(0, len(arrived), ROWS_AT_ONCE):  # a page of records held at a time
            chunk = tuple(arrived[start : start + ROWS_AT_ONCE])
            found = self.site.search(dataclasses.replace(query, record_ids=chunk)).hits
            matched.extend(h.record.record_id for h in found)
        now = self.site.now_ms()
        with store.writing() as conn:
            held = set(
                conn.execute(
                    select(hits_t.c.record_id).where(
                        hits_t.c.alert_id == alert.alert_id,
                        hits_t.c.record_id.in_(matched),
                    )
                ).scalars()
            )
            fresh = [rid for rid in matched if rid not in held]
            if fresh:
                conn.execute(
                    insert(hits_t),
                    [{"alert_id": alert.alert_id, "record_id": rid, "hit_at_ms": now} for rid in fresh],
                )
            conn.execute(update(alerts_t).where(alerts_t.c.alert_id == alert.alert_id).values(checked_seq=rows[-1].seq))
        if fresh:
            log.info("alert %s: %s new records", alert.alert_id, len(fresh))
        return len(fresh)

    def _deliver(self) -> None:
        now = self.site.now_ms()
        with self.site.store.engine.connect() as conn:
            due = conn.execute(
                select(hits_t, alerts_t.c.name)
                .join(alerts_t, alerts_t.c.alert_id == hits_t.c.alert_id)
                .where(hits_t.c.delivered_at_ms == 0, hits_t.c.next_try_ms <= now)
                .order_by(hits_t.c.hit_at_ms)
                .limit(100)
            ).all()
        titles = self.site.titles([r.record_id for r in due])
        for r in due:
            doc = {
                "site": self.site.site_id,
                "alert_id": r.alert_id,
                "alert": r.name,
                "record_id": r.record_id,
                "title": titles.get(r.record_id, ""),
            }
            ok = self._post(doc)
            values: dict[str, int] = {"attempts": r.attempts + 1}
            if ok:
                values["delivered_at_ms"] = self.site.now_ms()
            else:
                values["next_try_ms"] = now + min(RETRY_MAX_S, RETRY_FIRST_S * 2**r.attempts) * 1000
            with self.site.store.writing() as conn:
                conn.execute(
                    update(hits_t)
                    .where(hits_t.c.alert_id == r.alert_id, hits_t.c.record_id == r.record_id)
                    .values(**values)
                )

    def _post(self, doc: dict[str, Any]) -> bool:
        req = urllib.request.Request(
            self.webhook,
            data=json.dumps(doc, ensure_ascii=False).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=WEBHOOK_TIMEOUT_S) as resp:
                return bool(200 <= resp.status < 300)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log.warning("alert webhook failed (%s); tried again later", exc.__class__.__name__)
            return False


def start_alert_job(site: Site, every_s: float, webhook: str = "") -> BackgroundScheduler:
    """Run the alert job every `every_s` seconds (one process at a time on a shared store)."""
    return start_job(site.store, "alerts", every_s, AlertJob(site, webhook).run)
