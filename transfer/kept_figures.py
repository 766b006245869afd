"""The network's figures, kept as versions arrive: what `transfer.report` sums for a period.

A job follows this site's log (its cursor in `job_cursors`, under `JOB`). Every record a
new log entry touches is counted again from scratch, from what this site holds of it:

* its verified, unquarantined versions' signed steps (the `versions` columns `action`,
  `status`, `hlc_wall_ms`: no body is read);
* its merged state (the centre fields fixed at its create: `via`, `from_centre`, `to_owner`,
  `for_centre`; a breakdown's field), its search document's facets (an offer's keywords
  and stage) and when it lapses;
* for a request, the home centre of the firm that filed it.

What it counts for is a set of rows (`figure_rows`): for each figure whose step it took,
each centre the figure counts it for, on the UTC day of the first version that took the
step, with that version; the figure's breakdowns likewise; a firm served, per centre and
step that served it (a request filed, an interest sent, an introduction). The job replaces
the record's old rows with the new ones and adds the difference to `figure_counts`
(figure, day, centre, breakdown: the rows added up; firms served are counted distinct from
the rows), in the transaction that moves its cursor. A published offer's first publication, first step out of it and
lapse go to `figure_offers`; an interest's first create, introduction and agreement to
`figure_interests`.

A record's rows are a function of the versions held of it (and of the firm behind a
request), whatever order they came in: a record counted again has the records it owns
counted with it (a firm's requests: their home centre, an erasure's quarantine), and when
the store's quarantine mark moves (a key revoked) every record holding a quarantined
version is counted again, with what it owns (`PASS_ENTRIES` quarantined versions a pass, in
log order, beside the pass's new entries). So
two sites that hold the same versions keep the same rows, and a report of a centre
computed at HQ equals the one computed at the centre.

`catch_up` runs passes until the cursor reaches the log's head; a report calls it first,
so a report always counts everything held. Each pass is one write transaction of at most
`PASS_ENTRIES` log entries, taken in turn with sync's writes (the store's write lock), so
counting never holds sync up for long.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, Table, delete, func, select

from sync.jobs import job_cursor, set_job_cursor, start_job
from sync.site import Site
from sync.store import Store
from sync.store.models import (
    FigureCountModel,
    FigureInterestModel,
    FigureOfferModel,
    FigureRowModel,
)
from sync.store.tables import IN_CHUNK, docs_t, insert_rows, log_t, records_t, versions_t
from sync.store.trust import QUARANTINES, read_mark

log = logging.getLogger(__name__)

rows_t = cast(Table, FigureRowModel.__table__)
counts_t = cast(Table, FigureCountModel.__table__)
offers_t = cast(Table, FigureOfferModel.__table__)
interests_t = cast(Table, FigureInterestModel.__table__)

JOB = "figures"
# The job's mark of the store's quarantines, as last counted (in `job_cursors`).
QUARANTINE_SEEN = "figures:quarantines"
# The quarantine mark being counted, and the log entry its count has reached.
QUARANTINE_COUNTING = "figures:quarantines-counting"
QUARANTINE_AT = "figures:quarantines-at"
PASS_ENTRIES = 500
# Records counted again in one catch-up before the figure tables are first analysed on
# PostgreSQL (and again each time the count doubles).
ANALYSE_FIRST = 1_000
DAY_MS = 24 * 3600 * 1000
FIRMS_SERVED = "firms.served"
# Steps that take an offer out of publication.
OUT_OF_PUBLICATION = frozenset({"expire", "withdraw", "archive", "delete"})


@dataclass(frozen=True)
class StepFigure:
    """Records of `kind` that took one of `actions` (a create only when created in one of
    `created_as`), counted for the centres named by `centre_fields` ("origin": the record's
    owner), broken down `by` fields of the record."""

    name: str
    kind: str
    actions: tuple[str, ...]
    centre_fields: tuple[str, ...] = ("origin",)
    created_as: tuple[str, ...] = ()
    by: tuple[str, ...] = ()


STEP_FIGURES: tuple[StepFigure, ...] = (
    StepFigure("offers.submitted", "listing", ("create", "submit"), created_as=("submitted",)),
    StepFigure("offers.validated", "listing", ("validate",)),
    StepFigure("offers.published", "listing", ("publish",), by=("keyword", "stage")),
    StepFigure("offers.expired", "listing", ("expire",)),
    StepFigure("offers.withdrawn", "listing", ("withdraw",)),
    StepFigure("requests.received", "request", ("create",), ("via",), by=("request_type", "home_centre")),
    StepFigure("firms.registered", "firm", ("create",)),
    StepFigure("interests.sent", "interest", ("create",), ("from_centre",)),
    StepFigure("interests.received", "interest", ("create",), ("to_owner",)),
    StepFigure("interests.forwarded", "interest", ("forward",), ("to_owner",)),
    StepFigure("interests.accepted", "interest", ("accept",), ("to_owner",)),
    StepFigure("interests.declined", "interest", ("decline",), ("to_owner",), by=("decline_reason",)),
    StepFigure("interests.introduced", "interest", ("introduce",), ("to_owner", "from_centre")),
    StepFigure("interests.negotiating", "interest", ("negotiate",), ("to_owner", "from_centre")),
    StepFigure("interests.agreed", "interest", ("agree",), ("to_owner", "from_centre")),
    StepFigure("interests.closed", "interest", ("close",), ("to_owner", "from_centre")),
    StepFigure("suggestions.made", "suggestion", ("create",), ("for_centre",)),
    StepFigure("suggestions.acted_on", "suggestion", ("accept",), ("for_centre",)),
    StepFigure("suggestions.dismissed", "suggestion", ("decline",), ("for_centre",)),
)
_BY_KIND: dict[str, tuple[StepFigure, ...]] = {}
for _spec in STEP_FIGURES:
    _BY_KIND[_spec.kind] = (*_BY_KIND.get(_spec.kind, ()), _spec)
# Breakdowns read from the record's search document (its facets), not its fields.
FACET_BREAKDOWNS = frozenset({"keyword", "stage"})


@dataclass(frozen=True)
class Step:
    """One held version's signed step."""

    version_id: str
    action: str
    status: str
    stamp_ms: int


@dataclass(frozen=True)
class Held:
    """What a site holds of one record that its figures are counted from."""

    record_id: str
    kind: str
    origin: str
    steps: tuple[Step, ...]
    # The merged state's fields (None when the record has no merged row here).
    fields: Mapping[str, object] | None
    facets: tuple[str, ...] = ()
    lapses_ms: int = 0
    # For a request: the centre its firm registered at ("" when the firm is not held).
    home_centre: str = ""


@dataclass(frozen=True)
class FigureRow:
    figure: str
    centre: str
    by: str
    value: str
    day: int
    version_id: str
    stamp_ms: int


@dataclass(frozen=True)
class Counted:
    """What one record counts for: its figure rows, and its offer and interest spans."""

    rows: tuple[FigureRow, ...]
    offer: tuple[str, int, str, int | None, int] | None = None  # origin, published, version, out, lapses
    interest: tuple[str, int | None, int | None, int | None] | None = None  # to_owner, created, introduced, agreed


def is_firm_id(origin: str) -> bool:
    """Whether an owner is a firm (a record id, 8-4-4-4-12) rather than a centre (a name)."""
    return len(origin) == 36 and all(origin[i] == "-" for i in (8, 13, 18, 23))


def _first(steps: Iterable[Step]) -> Step | None:
    return min(steps, key=lambda s: (s.stamp_ms, s.version_id), default=None)


def count_record(held: Held) -> Counted:
    """What `held` counts for: a pure function of what the site holds of the record."""
    fields = held.fields

    def centre(name: str) -> str:
        if name == "origin":
            return held.origin
        value = fields.get(name) if fields is not None else None
        return value if isinstance(value, str) else ""

    def breakdown(by: str) -> list[str]:
        if by in FACET_BREAKDOWNS:
            return [f[len(by) + 1 :] for f in held.facets if f.startswith(by + "=")]
        if by == "home_centre":
            return [held.home_centre or "(unknown)"]
        if fields is None:
            return []  # no merged state here: no field to break down by
        if by not in fields:
            return ["(none)"]
        value = fields[by]
        return [value if isinstance(value, str) else orjson.dumps(value).decode()]

    rows: list[FigureRow] = []

    def add(figure: str, where: str, by: str, value: str, step: Step) -> None:
        if where:
            rows.append(FigureRow(figure, where, by, value, step.stamp_ms // DAY_MS, step.version_id, step.stamp_ms))

    firsts: dict[str, Step] = {}
    for spec in _BY_KIND.get(held.kind, ()):
        first = _first(
            s
            for s in held.steps
            if s.action in spec.actions
            and not (s.action == "create" and spec.created_as and s.status not in spec.created_as)
        )
        if first is None:
            continue
        firsts[spec.name] = first
        for where in dict.fromkeys(centre(f) for f in spec.centre_fields):
            add(spec.name, where, "", "", first)
        lead = centre(spec.centre_fields[0])
        for by in spec.by:
            for value in dict.fromkeys(breakdown(by)):
                add(spec.name, lead, by, value, first)
    if is_firm_id(held.origin):  # a firm served: it filed a request, sent an interest or was introduced
        served: list[tuple[str, str]] = []
        if held.kind == "request":
            served.append(("requests.received", centre("via")))
        if held.kind == "interest":
            served.append(("interests.sent", centre("from_centre")))
            served.extend(("interests.introduced", centre(f)) for f in ("to_owner", "from_centre"))
        for figure, where in served:
            if figure in firsts:  # one row per step that served it ("firm:interests.sent", ...)
                add(FIRMS_SERVED, where, f"firm:{figure}", held.origin, firsts[figure])
    offer = None
    if held.kind == "listing":
        published = _first(s for s in held.steps if s.action == "publish")
        out = _first(s for s in held.steps if s.action in OUT_OF_PUBLICATION)
        if published is not None:
            offer = (
                held.origin,
                published.stamp_ms,
                published.version_id,
                out.stamp_ms if out else None,
                held.lapses_ms,
            )
    interest = None
    if held.kind == "interest" and centre("to_owner"):

        def at(action: str) -> int | None:
            s = _first(x for x in held.steps if x.action == action)
            return s.stamp_ms if s else None

        interest = (centre("to_owner"), at("create"), at("introduce"), at("agree"))
    # One row per figure, centre and breakdown: the first.
    firsts_of: dict[tuple[str, str, str, str], FigureRow] = {}
    for row in sorted(rows, key=lambda r: (r.stamp_ms, r.version_id)):
        firsts_of.setdefault((row.figure, row.centre, row.by, row.value), row)
    return Counted(tuple(firsts_of.values()), offer, interest)


class FigureKeeper:
    """Keeps a store's figure tables in step with the versions it holds (the module's doc)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def run(self) -> int:
        """One run of the job: catch up with the log. Returns the records counted again."""
        return self.catch_up()

    def catch_up(self) -> int:
        """Passes until the cursor reaches the log's head as it stood at the start and no
        quarantine is left to count; returns the records counted again."""
        head = self.store.log_head()
        done = 0
        analyse_at = ANALYSE_FIRST
        while True:
            counted, through, quarantine_left = self._pass(head)
            done += counted
            if done >= analyse_at:  # the tables have grown by half since: plan their lookups anew
                self._analyse()
                analyse_at = 2 * done
            if through >= head and not quarantine_left:
                return done

    def _analyse(self) -> None:
        """Fresh planner statistics for the figure tables (PostgreSQL): a catch-up over a
        large sync grows them faster than autovacuum looks, and a lookup by record planned
        on an empty table's statistics scans the whole table."""
        if self.store.engine.dialect.name != "postgresql":
            return
        with self.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE figure_rows, figure_counts, figure_offers, figure_interests")

    def _pass(self, head: int) -> tuple[int, int, bool]:
        """Count again the records of at most `PASS_ENTRIES` new log entries and, while a
        quarantine is being counted, of at most as many quarantined versions; returns the
        records counted, the cursor, and whether quarantined versions are left to count."""
        store = self.store
        with store.writing() as conn:
            after = job_cursor(conn, JOB)
            top = conn.execute(select(func.coalesce(func.max(log_t.c.seq), 0))).scalar_one()
            if after > top:  # a store restored behind what was counted: count everything again
                after = 0
                _clear(conn)
            mark = read_mark(conn, QUARANTINES)
            quarantined = mark != job_cursor(conn, QUARANTINE_SEEN)
            if after >= head and not quarantined:  # another catch-up (the job, a report) got there first
                return 0, after, False
            entries = conn.execute(
                select(log_t.c.seq, versions_t.c.record_id)
                .join(versions_t, versions_t.c.version_id == log_t.c.version_id)
                .where(log_t.c.seq > after, log_t.c.seq <= head)
                .order_by(log_t.c.seq)
                .limit(PASS_ENTRIES)
            ).all()
            through = entries[-1].seq if len(entries) == PASS_ENTRIES else max(head, after)
            touched = {e.record_id for e in entries}
            quarantine_left = False
            if quarantined:  # a quarantine: what it took out counts again, a part a pass
                quarantine_left = self._quarantined_part(conn, mark, touched)
            # What a firm owns counts again with it (a request's home centre, an erasure): the
            # records whose owner is a touched record.
            owners = sorted(touched)
            for i in range(0, len(owners), IN_CHUNK):
                touched.update(
                    conn.execute(
                        select(records_t.c.record_id).where(records_t.c.origin.in_(owners[i : i + IN_CHUNK]))
                    ).scalars()
                )
            recount(conn, sorted(touched))
            set_job_cursor(conn, JOB, through)
        if touched:
            log.debug("counted the figures of %s records again, through log entry %s", len(touched), through)
        return len(touched), through, quarantine_left

    @staticmethod
    def _quarantined_part(conn: Connection, mark: int, touched: set[str]) -> bool:
        """Add to `touched` the records of the next `PASS_ENTRIES` quarantined versions (in
        log order, after where the count of this quarantine mark stands); when none are
        left, note the mark as counted. A mark that moved meanwhile starts the count over.
        Returns whether any are left."""
        if job_cursor(conn, QUARANTINE_COUNTING) != mark:
            set_job_cursor(conn, QUARANTINE_COUNTING, mark)
            set_job_cursor(conn, QUARANTINE_AT, 0)
        at = job_cursor(conn, QUARANTINE_AT)
        part = conn.execute(
            select(log_t.c.seq, versions_t.c.record_id)
            .join(versions_t, versions_t.c.version_id == log_t.c.version_id)
            .where(versions_t.c.quarantined.is_(True), log_t.c.seq > at)
            .order_by(log_t.c.seq)
            .limit(PASS_ENTRIES)
        ).all()
        touched.update(p.record_id for p in part)
        if len(part) == PASS_ENTRIES:
            set_job_cursor(conn, QUARANTINE_AT, part[-1].seq)
            return True
        set_job_cursor(conn, QUARANTINE_SEEN, mark)
        return False

    def rebuild(self) -> int:
        """Count every record again from nothing (after a restore, or to check the kept rows)."""
        with self.store.writing() as conn:
            _clear(conn)
            set_job_cursor(conn, JOB, 0)
        return self.catch_up()


def _clear(conn: Connection) -> None:
    for table in (rows_t, counts_t, offers_t, interests_t):
        conn.execute(delete(table))


def _chunks(ids: Sequence[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), IN_CHUNK):
        yield list(ids[i : i + IN_CHUNK])


def read_held(conn: Connection, ids: Sequence[str]) -> list[Held]:
    """What this site holds of each record of `ids` that its figures are counted from."""
    steps: dict[str, list[Step]] = {rid: [] for rid in ids}
    kinds: dict[str, tuple[str, str]] = {}
    fields: dict[str, Mapping[str, object]] = {}
    facets: dict[str, tuple[str, ...]] = {}
    lapses: dict[str, int] = {}
    for chunk in _chunks(ids):
        for v in conn.execute(
            select(
                versions_t.c.record_id,
                versions_t.c.version_id,
                versions_t.c.kind,
                versions_t.c.origin,
                versions_t.c.action,
                versions_t.c.status,
                versions_t.c.hlc_wall_ms,
                versions_t.c.verified,
            ).where(versions_t.c.record_id.in_(chunk), versions_t.c.quarantined.is_(False))
        ):
            kinds.setdefault(v.record_id, (v.kind, v.origin))
            if v.action and v.verified:
                steps[v.record_id].append(Step(v.version_id, v.action, v.status, v.hlc_wall_ms))
        for r in conn.execute(
            select(records_t.c.record_id, records_t.c.kind, records_t.c.origin, records_t.c.state_json).where(
                records_t.c.record_id.in_(chunk)
            )
        ):
            kinds[r.record_id] = (r.kind, r.origin)
            fields[r.record_id] = orjson.loads(r.state_json)["fields"]
        for d in conn.execute(
            select(docs_t.c.record_id, docs_t.c.facets, docs_t.c.lapses_at_ms).where(docs_t.c.record_id.in_(chunk))
        ):
            facets[d.record_id] = tuple(orjson.loads(d.facets))
            lapses[d.record_id] = int(d.lapses_at_ms)
    firms = sorted({origin for kind, origin in kinds.values() if kind == "request" and is_firm_id(origin)})
    home: dict[str, str] = {}
    for chunk in _chunks(firms):
        found = conn.execute(select(records_t.c.record_id, records_t.c.origin).where(records_t.c.record_id.in_(chunk)))
        home.update((r.record_id, r.origin) for r in found)
    out = []
    for rid in ids:
        if rid not in kinds:
            continue  # nothing held of it that counts (every version quarantined)
        kind, origin = kinds[rid]
        out.append(
            Held(
                rid,
                kind,
                origin,
                tuple(steps[rid]),
                fields.get(rid),
                facets.get(rid, ()),
                lapses.get(rid, 0),
                home.get(origin, "") if kind == "request" else "",
            )
        )
    return out


def recount(conn: Connection, ids: Sequence[str]) -> None:
    """Replace the figure rows of `ids` with what they count for now, and move the counts
    by the difference, in `conn`'s transaction."""
    if not ids:
        return
    delta: Counter[tuple[str, int, str, str, str]] = Counter()
    for chunk in _chunks(ids):
        for r in conn.execute(
            select(rows_t.c.figure, rows_t.c.day, rows_t.c.centre, rows_t.c.by, rows_t.c.value).where(
                rows_t.c.record_id.in_(chunk), rows_t.c.figure != FIRMS_SERVED
            )
        ):
            delta[(r.figure, r.day, r.centre, r.by, r.value)] -= 1
        for table in (rows_t, offers_t, interests_t):
            conn.execute(delete(table).where(table.c.record_id.in_(chunk)))
    new_rows: list[dict[str, Any]] = []
    offers: list[dict[str, Any]] = []
    interests: list[dict[str, Any]] = []
    for held in read_held(conn, ids):
        counted = count_record(held)
        for row in counted.rows:
            new_rows.append({"record_id": held.record_id, **row.__dict__})
            if row.figure != FIRMS_SERVED:
                delta[(row.figure, row.day, row.centre, row.by, row.value)] += 1
        if counted.offer is not None:
            origin, published, version, out, lapses_ms = counted.offer
            offers.append(
                {
                    "record_id": held.record_id,
                    "origin": origin,
                    "published_ms": published,
                    "publish_version_id": version,
                    "out_ms": out,
                    "lapses_ms": lapses_ms,
                }
            )
        if counted.interest is not None:
            to_owner, created, introduced, agreed = counted.interest
            interests.append(
                {
                    "record_id": held.record_id,
                    "to_owner": to_owner,
                    "created_ms": created,
                    "introduced_ms": introduced,
                    "agreed_ms": agreed,
                }
            )
    for table, values in ((rows_t, new_rows), (offers_t, offers), (interests_t, interests)):
        insert_rows(conn, table, values)
    moves = [
        {"figure": f, "day": d, "centre": c, "by": b, "value": v, "n": n}
        for (f, d, c, b, v), n in sorted(delta.items())
        if n
    ]
    insert_rows(
        conn,
        counts_t,
        moves,
        on_conflict="ON CONFLICT (figure, day, centre, by, value) DO UPDATE SET n = figure_counts.n + excluded.n",
    )


def start_figure_job(site: Site, every_s: float) -> BackgroundScheduler:
    """Keep the figures in step every `every_s` seconds (and at once)."""
    return start_job(site.store, JOB, every_s, FigureKeeper(site.store).run, now=True)
