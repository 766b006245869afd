"""HQ's suggestions: the offers that fit each open request, as HQ-signed records sent to
the centres concerned.

A job at HQ follows the hub's log (its cursor in `job_cursors`, under `JOB`). For every
offer or request that changed since — arrived by sync, written here, stepped, expired —
it brings the suggestions up to date:

* a request that is open (submitted, validated or published): the best `PER_REQUEST`
  published, unlapsed offers for it by `transfer.matching.suggestions`, scoring at least
  `MIN_SCORE`, each get a suggestion record unless that pair ever had one (a dismissed
  pair is never suggested again, an acted-on one never twice);
* an offer that is published: the requests it fits are brought up to date as above;
* a request or an offer that is no longer open (withdrawn, expired, archived, deleted):
  its suggestions still standing are withdrawn (an HQ-signed step), so an expired offer
  is never suggested and a withdrawn request's suggestions go away.

A suggestion (kind `suggestion`, `transfer.records.SUGGESTION`) names the request, the
offer, the centre handling the request (`for_centre`) and the offer's owner; its audience
is those two centres, so only they (and HQ) receive it. It carries the score in
thousandths and the reasons as the matcher wrote them. The request's centre dismisses it
with a reason (`techbridge suggestion dismiss`) or acts on it by sending an expression of
interest (`techbridge interest send --suggestion ID`), which steps it to `taken` naming
the interest. Suggestions already standing are not re-ranked when better offers arrive:
what centre staff have seen stays put until it is acted on, dismissed or withdrawn.

Which pairs were ever suggested is kept in `suggested_pairs` (HQ only), derived from the
suggestion records: the job rebuilds it from them when it starts, so a crash between a
suggestion's commit and its pair's leaves nothing to suggest twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Table, delete, insert, select

from sync.errors import NotFound, TechbridgeError
from sync.jobs import job_cursor, run_job_once, set_job_cursor, start_job
from sync.kinds import Action, FieldValue, make_content
from sync.site import Site
from sync.store import RecordRow
from sync.store.models import SuggestedPairModel
from sync.store.tables import log_t, versions_t
from transfer.matching import OPEN, PairScore, suggestions
from transfer.records import SUGGESTION, SuggestionStatus

log = logging.getLogger(__name__)

pairs_t = cast(Table, SuggestedPairModel.__table__)
JOB = "suggestions"
PER_REQUEST = 5
MIN_SCORE = 0.3
SCAN_BATCH = 2_000
PAGE = 1_000
# Changed offers read at once: their rows hold every field (a few KB each), so a pass
# over SCAN_BATCH new offers holds a few hundred at a time, not all of them.
ROWS_AT_ONCE = 200


@dataclass(frozen=True)
class SuggestionPass:
    """What one pass of the job did."""

    created: int
    withdrawn: int
    through_seq: int


def reasons_text(score: PairScore) -> tuple[str, ...]:
    """A score's reasons as lines: `keywords: solar-energy (+0.35)`."""
    return tuple(
        f"{r.part}: {r.detail} (+{r.points:.2f})" if r.detail else f"{r.part} (+{r.points:.2f})" for r in score.reasons
    )


def handling_centre(request: RecordRow) -> str:
    """The centre that handles a request: the one it came through, else its owner."""
    via = request.state.content.as_dict().get("via")
    return via if isinstance(via, str) and via else request.origin


def _offer_live(row: RecordRow | None) -> bool:
    return row is not None and not row.deleted and row.status == "published"


def _request_live(row: RecordRow | None) -> bool:
    return row is not None and not row.deleted and row.status in OPEN


class SuggestionJob:
    """Keeps HQ's suggestion records in step with the offers and requests it holds."""

    def __init__(self, site: Site) -> None:
        if not site.is_hub:
            raise ValueError("suggestions are made at HQ")
        self.site = site

    # ---- the pairs ever suggested ---------------------------------------------------

    def rebuild_pairs(self) -> int:
        """Derive `suggested_pairs` from the suggestion records held; returns how many."""
        pairs: list[dict[str, str]] = []
        after = ""
        while True:
            page = self.site.records(kind=SUGGESTION.name, limit=PAGE, after_id=after, include_deleted=True)
            for row in page:
                values = row.state.content.as_dict()
                pairs.append(
                    {
                        "request_id": str(values["request"]),
                        "offer_id": str(values["offer"]),
                        "suggestion_id": row.record_id,
                    }
                )
            if len(page) < PAGE:
                break
            after = page[-1].record_id
        unique = list({(p["request_id"], p["offer_id"]): p for p in pairs}.values())
        with self.site.store.writing() as conn:
            conn.execute(delete(pairs_t))
            if unique:
                conn.execute(insert(pairs_t), unique)
        return len(unique)

    def _suggested(self, *, requests: Iterable[str] = (), offers: Iterable[str] = ()) -> dict[tuple[str, str], str]:
        """(request, offer) -> suggestion id, for the pairs naming any of these records."""
        out: dict[tuple[str, str], str] = {}
        with self.site.store.engine.connect() as conn:
            for column, ids in (
                (pairs_t.c.request_id, sorted(set(requests))),
                (pairs_t.c.offer_id, sorted(set(offers))),
            ):
                for i in range(0, len(ids), 500):
                    for r in conn.execute(select(pairs_t).where(column.in_(ids[i : i + 500]))):
                        out[(r.request_id, r.offer_id)] = r.suggestion_id
        return out

    # ---- one pass -------------------------------------------------------------------

    def _cursor(self) -> int:
        with self.site.store.engine.connect() as conn:
            return job_cursor(conn, JOB)

    def _move_cursor(self, seq: int) -> None:
        with self.site.store.writing() as conn:
            set_job_cursor(conn, JOB, seq)

    def run(self) -> SuggestionPass:
        """Bring the suggestions up to date with what changed since the cursor (at most
        `SCAN_BATCH` log entries a pass)."""
        after = self._cursor()
        # The head first: every entry up to it is committed (one writer assigns positions in order).
        head = self.site.log_head()
        with self.site.store.engine.connect() as conn:
            rows = conn.execute(
                select(log_t.c.seq, versions_t.c.record_id, versions_t.c.kind)
                .join(versions_t, versions_t.c.version_id == log_t.c.version_id)
                .where(log_t.c.seq > after, log_t.c.seq <= head, versions_t.c.kind.in_(("listing", "request")))
                .order_by(log_t.c.seq)
                .limit(SCAN_BATCH)
            ).all()
        through = int(rows[-1].seq) if len(rows) == SCAN_BATCH else head
        changed_requests = sorted({r.record_id for r in rows if r.kind == "request"})
        changed_offers = sorted({r.record_id for r in rows if r.kind == "listing"})
        created = withdrawn = 0
        requests = set(changed_requests)
        dead_offers: list[str] = []
        for start in range(0, len(changed_offers), ROWS_AT_ONCE):
            chunk = changed_offers[start : start + ROWS_AT_ONCE]
            offers = {row.record_id: row for row in self.site.rows(chunk)}
            for offer_id in chunk:
                if not _offer_live(offers.get(offer_id)):
                    dead_offers.append(offer_id)
                    continue
                try:
                    requests.update(s.record.record_id for s in suggestions(self.site, offer_id, limit=PER_REQUEST * 4))
                except TechbridgeError as exc:
                    log.warning("suggestions: offer %s not matched: %s", offer_id, exc)
        withdrawn += self._withdraw(self._suggested(offers=dead_offers).values())
        for request_id in sorted(requests):
            c, w = self._bring_up_to_date(request_id)
            created += c
            withdrawn += w
        if through > after:
            self._move_cursor(through)
        if created or withdrawn:
            log.info("suggestions: %s made, %s withdrawn (log through %s)", created, withdrawn, through)
        return SuggestionPass(created, withdrawn, through)

    def _bring_up_to_date(self, request_id: str) -> tuple[int, int]:
        try:
            request = self.site.record(request_id)
        except NotFound:
            return 0, 0
        made = self._suggested(requests=[request_id])
        if not _request_live(request):
            return 0, self._withdraw(made.values())
        # Standing suggestions whose offer is no longer published go.
        offer_rows = {r.record_id: r for r in self.site.rows([offer for _, offer in made])}
        withdrawn = self._withdraw(sid for (_, offer), sid in made.items() if not _offer_live(offer_rows.get(offer)))
        try:
            found = suggestions(self.site, request_id, limit=PER_REQUEST, published_only=True)
        except TechbridgeError as exc:
            log.warning("suggestions: request %s not matched: %s", request_id, exc)
            return 0, withdrawn
        centre = handling_centre(request)
        items = []
        pairs = []
        for s in found:
            offer = s.record
            if s.score.score < MIN_SCORE or (request_id, offer.record_id) in made:
                continue
            values: dict[str, FieldValue] = {
                "request": request_id,
                "offer": offer.record_id,
                "for_centre": centre,
                "offer_owner": offer.origin,
                "title": f"{offer.title[:256]} -> {request.title[:256]}",
                "score": max(1, min(1000, round(s.score.score * 1000))),
                "reasons": reasons_text(s.score)[:12],
            }
            content = make_content(SUGGESTION, values, SuggestionStatus.SUGGESTED)
            items.append((content, tuple(sorted({centre, offer.origin})), ""))
            pairs.append((request_id, offer.record_id))
        if not items:
            return 0, withdrawn
        versions = self.site.add_records(items)
        with self.site.store.writing() as conn:
            conn.execute(
                insert(pairs_t),
                [
                    {"request_id": r, "offer_id": o, "suggestion_id": v.record_id}
                    for (r, o), v in zip(pairs, versions, strict=True)
                ],
            )
        return len(versions), withdrawn

    def _withdraw(self, suggestion_ids: Iterable[str]) -> int:
        ids = sorted(set(suggestion_ids))
        done = 0
        for row in self.site.rows(ids):
            if row.status != SuggestionStatus.SUGGESTED or row.deleted:
                continue
            try:
                self.site.step_record(row.record_id, Action.WITHDRAW)
                done += 1
            except TechbridgeError as exc:  # a concurrent step got there first
                log.info("suggestion %s not withdrawn: %s", row.record_id, exc)
        return done


def start_suggestion_job(site: Site, every_s: float) -> tuple[SuggestionJob, BackgroundScheduler]:
    """Rebuild the pairs from the records held, then run the job every `every_s` seconds
    (and once now) on its own thread; both in one process at a time on a shared store
    (a hub replica that does not get the turn leaves the pairs to the one that has it)."""
    job = SuggestionJob(site)
    run_job_once(site.store, JOB, job.rebuild_pairs)
    return job, start_job(site.store, JOB, every_s, job.run, now=True)
