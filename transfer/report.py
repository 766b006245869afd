"""The network's figures: what each centre achieved in a period, counted from signed versions.

**The period rule.** A figure counts the records whose counted step was signed in the period:
the HLC wall time (UTC) of the version that took it, `start <= stamp < end`. An offer is
"published" in the period its PUBLISH version was stamped, an agreement in the period its
AGREE was, a request "received" in the period it was created. Events count by the day they were
held (`held_on_ms`, signed in the event's record). "Live at the end" is an offer published
before the period's end with no step out of publication (expire, withdraw, archive, delete)
stamped before it, and not lapsed at the end (its `valid_until_ms` as merged here).

A record counts once per figure and centre however many versions took the step (the same step
taken at two sites at once). Only versions this site verified and holds outside quarantine
count (`versions.verified`, not `quarantined`). A firm that was erased still counts as a firm
served: the figures read ids and signed steps, never personal data.

**Who a figure counts for** is a field of the record that is fixed at its create (so the same
versions give the same figures at every site): an offer's and an event's owner, the centre a
request came through (`via`), an interest's sender's centre (`from_centre`, for "sent") and
the centre handling its target (`to_owner`, for what that centre does with it), both of them
for introductions, negotiations, agreements and closures; a suggestion's request centre. A
**firm served** in the period is a firm that filed a request (for the centre it came through),
sent an interest (for its sender's centre), or was introduced (for both centres of the interest).

**Targets** are HQ-signed `target` records, one per centre and year, sent to that centre; the
report shows each target beside the figure it is set for (the whole year's target, whatever the
period).

`report(site, period, centres, explain=FIGURE)` returns a `Report`; with `explain` it lists the
records and versions behind that figure (`Report.explained`), so anyone holding the same
versions can check it.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, select, text

from sync.errors import FieldViolation, InvalidInput
from sync.kinds import KindSet
from sync.merge import state_from_json
from sync.site import Site
from sync.store.tables import records_t

DAY_MS = 24 * 3600 * 1000
_YEAR = re.compile(r"^([0-9]{4})$")
_QUARTER = re.compile(r"^([0-9]{4})-[Qq]([1-4])$")
_MONTH = re.compile(r"^([0-9]{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Period:
    """[start_ms, end_ms) in UTC, how it was asked for, and the year its targets are of."""

    start_ms: int
    end_ms: int
    label: str

    @property
    def year(self) -> int:
        return datetime.fromtimestamp(self.start_ms / 1000, tz=UTC).year


def _ms(d: date) -> int:
    return int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp() * 1000)


def parse_period(text: str) -> Period:
    """`2026`, `2026-Q4` or `2026-11`, or InvalidInput naming `period`."""
    t = text.strip()
    year = re.match(r"^([0-9]{4})", t)
    if year and not 1970 <= int(year.group(1)) <= 9998:
        raise InvalidInput([FieldViolation("period", f"{text!r}: a year from 1970 to 9998")])
    if m := _YEAR.match(t):
        y = int(m.group(1))
        return Period(_ms(date(y, 1, 1)), _ms(date(y + 1, 1, 1)), t)
    if m := _QUARTER.match(t):
        y, q = int(m.group(1)), int(m.group(2))
        end = date(y + 1, 1, 1) if q == 4 else date(y, 3 * q + 1, 1)
        return Period(_ms(date(y, 3 * q - 2, 1)), _ms(end), f"{y}-Q{q}")
    if m := _MONTH.match(t):
        y, mo = int(m.group(1)), int(m.group(2))
        end = date(y + 1, 1, 1) if mo == 12 else date(y, mo + 1, 1)
        return Period(_ms(date(y, mo, 1)), _ms(end), t)
    raise InvalidInput(
        [FieldViolation("period", f"{text!r} is not a year (2026), a quarter (2026-Q4) or a month (2026-11)")]
    )


def period_between(start: str, end: str) -> Period:
    """From the start of day `start` to the end of day `end` (YYYY-MM-DD, UTC), or
    InvalidInput naming `from` / `to`."""
    problems: list[FieldViolation] = []
    days: dict[str, date] = {}
    for given, name in ((start, "from"), (end, "to")):
        try:
            days[name] = date.fromisoformat(given.strip())
        except ValueError:
            problems.append(FieldViolation(name, f"{given!r} is not a date (YYYY-MM-DD)"))
    if problems:
        raise InvalidInput(problems)
    if days["from"] > days["to"]:
        raise InvalidInput([FieldViolation("from", f"{days['from']} is after --to {days['to']}")])
    return Period(_ms(days["from"]), _ms(days["to"]) + DAY_MS, f"{days['from']}..{days['to']}")


@dataclass(frozen=True)
class StepFigure:
    """Records of `kind` that took one of `actions` in the period (a create only when
    created in one of `created_as`), counted for the centres named by `centre_fields`."""

    name: str
    kind: str
    actions: tuple[str, ...]
    centre_fields: tuple[str, ...] = ("origin",)
    created_as: tuple[str, ...] = ()
    # Fields of the record (fixed at its create) a breakdown of this figure is by.
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
# Figures counted otherwise than by one step (see the module's doc).
OTHER_FIGURES = ("offers.live_at_end", "firms.served", "events.held")
_STEP_NAMES = tuple(f.name for f in STEP_FIGURES)
# Every figure, in the order a report shows them.
FIGURES = (
    *_STEP_NAMES[:5],
    "offers.live_at_end",
    *_STEP_NAMES[5:7],
    "firms.served",
    *_STEP_NAMES[7:],
    "events.held",
)
assert sorted(FIGURES) == sorted((*_STEP_NAMES, *OTHER_FIGURES))
# The funnel of interests, in order: each stage's share of the one before is its conversion.
FUNNEL = ("interests.received", "interests.accepted", "interests.introduced", "interests.agreed")
# A target record's fields and the figure each is set for.
TARGET_FIGURES = {
    "offers_published": "offers.published",
    "requests_received": "requests.received",
    "firms_served": "firms.served",
    "interests_sent": "interests.sent",
    "introductions": "interests.introduced",
    "agreements": "interests.agreed",
    "events": "events.held",
}


@dataclass(frozen=True)
class Counted:
    """One record behind a figure: the version whose signed stamp counted it."""

    centre: str
    record_id: str
    version_id: str
    stamp_ms: int


@dataclass
class CentreFigures:
    centre: str
    name: str
    counts: dict[str, int] = field(default_factory=dict)
    # figure -> (field, value) -> count
    breakdowns: dict[str, dict[tuple[str, str], int]] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)
    median_days_to_introduction: float | None = None
    median_days_to_agreement: float | None = None

    def conversion(self) -> list[tuple[str, str, float | None]]:
        """Each funnel stage over the one before it (None when the one before is 0)."""
        out: list[tuple[str, str, float | None]] = []
        for before, after in itertools.pairwise(FUNNEL):
            n = self.counts.get(before, 0)
            out.append((before, after, round(self.counts.get(after, 0) / n, 4) if n else None))
        return out


@dataclass(frozen=True)
class Report:
    period: Period
    site: str
    centres: tuple[CentreFigures, ...]
    # The figure asked to be explained ("" if none) and what it counted, oldest first.
    explain: str = ""
    explained: tuple[Counted, ...] = ()


def _centres(site: Site, wanted: Sequence[str]) -> dict[str, str]:
    known = {c.id: c.name for c in site.registry().centres}
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise InvalidInput([FieldViolation("centre", f"{c!r} is not a centre of the network") for c in unknown])
    if not site.is_hub:
        others = [c for c in wanted if c != site.site_id]
        if others:
            raise InvalidInput([FieldViolation("centre", f"a centre reports its own figures only ({site.site_id})")])
        return {site.site_id: known.get(site.site_id, site.site_id)}
    return {c: known[c] for c in (wanted or sorted(known))}


# A record id's shape (8-4-4-4-12): the owner of a firm's record, where a centre's id is a name.
_FIRM_SHAPE = "________-____-____-____-____________"


class _Counter:
    """The report's SQL, for SQLite or PostgreSQL, over one connection (one snapshot).

    Each figure is one grouped query: the (centre, record) pairs it counts, distinct, per
    centre. With `explain` the same pairs come back with the version and stamp that counted
    them, for that figure only."""

    def __init__(self, conn: Connection, period: Period) -> None:
        self.conn = conn
        self.pg = conn.dialect.name == "postgresql"
        self.params: dict[str, Any] = {"start": period.start_ms, "end": period.end_ms, "yes": True, "no": False}

    def field(self, alias: str, name: str) -> str:
        """A text field of a record's merged state (names are the specs', never input)."""
        assert re.fullmatch(r"[a-z_]+", name)
        if self.pg:
            return f"(CAST({alias}.state_json AS jsonb) #>> '{{fields,{name}}}')"
        return f"json_extract({alias}.state_json, '$.fields.{name}')"

    @staticmethod
    def join_records(*uses: str) -> str:
        return "LEFT JOIN records r ON r.record_id = v.record_id" if any("r.state_json" in u for u in uses) else ""

    def kind_counts(self, kind: str, fields: Sequence[str]) -> list[tuple[str, str, tuple[str, ...], int]]:
        """(action, status, the centre fields' values, records) for every step of `kind` in
        the period, grouped: one scan of the kind's versions counts all its step figures."""
        cols = [self.centre_of(f) for f in fields]
        keys = ", ".join(["v.action", "v.status", *cols])
        where = (
            f"v.kind = '{kind}' AND v.action <> '' AND v.hlc_wall_ms >= :start AND v.hlc_wall_ms < :end"
            " AND v.verified = :yes AND v.quarantined = :no"
        )
        sql = (
            f"SELECT {keys}, count(DISTINCT v.record_id) FROM versions v {self.join_records(*cols)} "
            f"WHERE {where} GROUP BY {keys}"
        )
        n = len(cols)
        return [
            (str(r[0]), str(r[1]), tuple("" if x is None else str(x) for x in r[2 : 2 + n]), int(r[2 + n]))
            for r in self.conn.execute(text(sql), self.params)
        ]

    def centre_of(self, name: str) -> str:
        return "v.origin" if name == "origin" else self.field("r", name)

    def steps(self, kind: str, actions: Sequence[str], created_as: Sequence[str] = ()) -> str:
        """The WHERE of the versions of `kind` taking one of `actions` in the period."""
        acts = ", ".join(f"'{a}'" for a in actions)
        where = (
            f"v.kind = '{kind}' AND v.action IN ({acts}) AND v.hlc_wall_ms >= :start AND v.hlc_wall_ms < :end"
            " AND v.verified = :yes AND v.quarantined = :no"
        )
        if created_as:
            statuses = ", ".join(f"'{st}'" for st in created_as)
            where += f" AND (v.action <> 'create' OR v.status IN ({statuses}))"
        return where

    def pairs(self, parts: Sequence[tuple[str, str, str]], explain: bool) -> str:
        """A union of (centre, counted id[, version, stamp]) selects, each (centre, id, where)."""
        cols = ", v.version_id AS version_id, v.hlc_wall_ms AS stamp" if explain else ""
        selects = [
            f"SELECT {centre} AS centre, {counted} AS counted{cols} FROM versions v "
            f"{self.join_records(centre)} WHERE {where}"
            for centre, counted, where in parts
        ]
        return (" UNION ALL " if explain else " UNION ").join(selects)

    def count(self, parts: Sequence[tuple[str, str, str]]) -> dict[str, int]:
        sql = f"SELECT centre, count(DISTINCT counted) AS n FROM ({self.pairs(parts, False)}) AS p GROUP BY centre"
        return {str(r.centre): int(r.n) for r in self.conn.execute(text(sql), self.params) if r.centre is not None}

    def rows(self, parts: Sequence[tuple[str, str, str]]) -> list[Counted]:
        sql = f"SELECT * FROM ({self.pairs(parts, True)}) AS p ORDER BY stamp, version_id"
        out: list[Counted] = []
        seen: set[tuple[str, str]] = set()
        for r in self.conn.execute(text(sql), self.params):
            if r.centre is not None and (r.centre, r.counted) not in seen:
                seen.add((r.centre, r.counted))
                out.append(Counted(str(r.centre), str(r.counted), str(r.version_id), int(r.stamp)))
        return out

    def grouped(self, sql: str) -> list[tuple[str, str, int]]:
        return [
            (str(r[0]), str(r[1]), int(r[2])) for r in self.conn.execute(text(sql), self.params) if r[0] is not None
        ]


def _step_counts(c: _Counter, figures: dict[str, CentreFigures]) -> None:
    """Every step figure, one grouped scan per kind. A record's centre fields are fixed,
    so it falls in one group per step: the groups' counts add up to distinct records."""
    for kind in dict.fromkeys(s.kind for s in STEP_FIGURES):
        specs = [s for s in STEP_FIGURES if s.kind == kind]
        fields = list(dict.fromkeys(f for s in specs for f in s.centre_fields))
        for action, status, where, n in c.kind_counts(kind, fields):
            at = dict(zip(fields, where, strict=True))
            for spec in specs:
                if action not in spec.actions or (
                    action == "create" and spec.created_as and status not in spec.created_as
                ):
                    continue
                for centre in dict.fromkeys(at[f] for f in spec.centre_fields):
                    if centre in figures:
                        figures[centre].counts[spec.name] += n


def _parts(c: _Counter, spec: StepFigure) -> list[tuple[str, str, str]]:
    where = c.steps(spec.kind, spec.actions, spec.created_as)
    return [(c.centre_of(name), "v.record_id", where) for name in spec.centre_fields]


def _served_parts(c: _Counter) -> list[tuple[str, str, str]]:
    """A firm served: it filed a request, sent an interest, or was introduced."""
    firm = f"v.origin LIKE '{_FIRM_SHAPE}'"
    return [
        (c.field("r", "via"), "v.origin", f"{c.steps('request', ('create',))} AND {firm}"),
        (c.field("r", "from_centre"), "v.origin", f"{c.steps('interest', ('create',))} AND {firm}"),
        (c.field("r", "to_owner"), "v.origin", f"{c.steps('interest', ('introduce',))} AND {firm}"),
        (c.field("r", "from_centre"), "v.origin", f"{c.steps('interest', ('introduce',))} AND {firm}"),
    ]


def _live_parts(c: _Counter) -> list[tuple[str, str, str]]:
    """Offers published before the end, with no step out of publication stamped before it,
    not lapsed at the end."""
    where = (
        "v.kind = 'listing' AND v.action = 'publish' AND v.hlc_wall_ms < :end"
        " AND v.verified = :yes AND v.quarantined = :no"
        " AND NOT EXISTS (SELECT 1 FROM versions o WHERE o.record_id = v.record_id"
        " AND o.action IN ('expire', 'withdraw', 'archive', 'delete') AND o.hlc_wall_ms < :end AND o.quarantined = :no)"
        " AND NOT EXISTS (SELECT 1 FROM search_docs d WHERE d.record_id = v.record_id"
        " AND d.lapses_at_ms > 0 AND d.lapses_at_ms < :end)"
    )
    return [("v.origin", "v.record_id", where)]


def _breakdowns(c: _Counter, spec: StepFigure) -> list[tuple[str, str, str, int]]:
    """(centre, by, value, records) for each of the figure's breakdowns."""
    where = c.steps(spec.kind, spec.actions, spec.created_as)
    centre = c.centre_of(spec.centre_fields[0])
    out: list[tuple[str, str, str, int]] = []
    facets = [by for by in spec.by if by in ("keyword", "stage")]
    if facets:  # the offer's facets, as indexed for search: one pass for all of them
        each = (
            "CROSS JOIN LATERAL jsonb_array_elements_text(CAST(d.facets AS jsonb)) AS j(value)"
            if c.pg
            else "CROSS JOIN json_each(d.facets) AS j"
        )
        wanted = " OR ".join(f"j.value LIKE '{by}=%'" for by in facets)
        sql = (
            f"SELECT {centre}, j.value, count(DISTINCT v.record_id) FROM versions v "
            f"{c.join_records(centre)} JOIN search_docs d ON d.record_id = v.record_id "
            f"{each} WHERE {where} AND ({wanted}) GROUP BY {centre}, j.value"
        )
        for ctr, value, n in c.grouped(sql):
            by, _, got = value.partition("=")
            out.append((ctr, by, got, n))
    for by in spec.by:
        if by in facets:
            continue
        if by == "home_centre":  # the centre the request's firm registered at
            value = "coalesce(f.origin, '(unknown)')"
            join = "LEFT JOIN records f ON f.record_id = v.origin"
        else:
            value = f"coalesce({c.field('r', by)}, '(none)')"
            join = ""
        sql = (
            f"SELECT {centre}, {value}, count(DISTINCT v.record_id) FROM versions v "
            f"{c.join_records(centre, value)} {join} WHERE {where} GROUP BY {centre}, {value}"
        )
        out.extend((ctr, by, val, n) for ctr, val, n in c.grouped(sql))
    return out


def _medians(c: _Counter, figures: dict[str, CentreFigures]) -> None:
    """Median days from interest to introduction (introductions in the period) and from
    introduction to agreement (agreements in the period), for the centre handling the target."""
    ok = "verified = :yes AND quarantined = :no"

    def spans(step: str, since: str) -> dict[str, list[float]]:
        sql = (
            f"SELECT {c.field('r', 'to_owner')}, x.at, x.since FROM ("
            f"SELECT v.record_id AS rid, min(v.hlc_wall_ms) AS at, "
            f"(SELECT min(s.hlc_wall_ms) FROM versions s WHERE s.record_id = v.record_id AND s.action = '{since}' "
            f"AND s.{ok}) AS since FROM versions v WHERE {c.steps('interest', (step,))} GROUP BY v.record_id"
            f") AS x JOIN records r ON r.record_id = x.rid"
        )
        out: dict[str, list[float]] = defaultdict(list)
        for centre, at, before in c.conn.execute(text(sql), c.params):
            if centre is not None and before is not None:
                out[str(centre)].append((int(at) - int(before)) / DAY_MS)
        return out

    to_intro = spans("introduce", "create")
    to_agree = spans("agree", "introduce")
    for centre, f in figures.items():
        if to_intro.get(centre):
            f.median_days_to_introduction = round(statistics.median(to_intro[centre]), 2)
        if to_agree.get(centre):
            f.median_days_to_agreement = round(statistics.median(to_agree[centre]), 2)


def _held(conn: Connection, kinds: KindSet, kind: str) -> Iterator[tuple[Any, dict[str, object]]]:
    """Every record of `kind` held and not deleted, with its merged values."""
    rows = conn.execute(
        select(
            records_t.c.record_id,
            records_t.c.origin,
            records_t.c.head_version_id,
            records_t.c.head_wall_ms,
            records_t.c.head_counter,
            records_t.c.state_json,
        ).where(records_t.c.kind == kind, records_t.c.deleted.is_(False))
    )
    for r in rows:
        yield r, dict(state_from_json(r.state_json, kinds).content.as_dict())


def _events(conn: Connection, kinds: KindSet, period: Period) -> list[tuple[str, str, str, int, str]]:
    """(owner, record, version, held on, type) of each event held in the period."""
    out = []
    for r, values in _held(conn, kinds, "event"):
        held = values.get("held_on_ms")
        if isinstance(held, int) and period.start_ms <= held < period.end_ms:
            out.append((r.origin, r.record_id, r.head_version_id, held, str(values.get("event_type") or "")))
    return sorted(out, key=lambda e: (e[3], e[1]))


def _targets(conn: Connection, kinds: KindSet, year: int) -> dict[str, dict[str, int]]:
    """Each centre's targets for `year`: the most recently changed target record for the pair."""
    best: dict[str, tuple[tuple[int, int, str], dict[str, int]]] = {}
    for r, values in _held(conn, kinds, "target"):
        if values.get("year") != year:
            continue
        centre = str(values.get("centre") or "")
        figures = {TARGET_FIGURES[k]: v for k, v in values.items() if k in TARGET_FIGURES and isinstance(v, int)}
        order = (int(r.head_wall_ms), int(r.head_counter), r.record_id)
        if centre not in best or order > best[centre][0]:
            best[centre] = (order, {k: v for k, v in figures.items() if v > 0})
    return {c: t for c, (_, t) in best.items()}


def report(site: Site, period: Period, centres: Sequence[str] = (), *, explain: str = "") -> Report:
    """Each centre's figures for `period` (every centre of the registry at HQ, or those
    named; at a centre, its own), from the versions this site holds; with `explain`, the
    records and versions behind that figure."""
    if explain and explain not in FIGURES:
        raise InvalidInput([FieldViolation("explain", f"{explain!r} is not a figure: {', '.join(FIGURES)}")])
    names = _centres(site, centres)
    figures = {c: CentreFigures(c, n, dict.fromkeys(FIGURES, 0)) for c, n in names.items()}
    # One read transaction: every figure from the same snapshot, beside sync's writes.
    with site.store.engine.connect() as conn, conn.begin():
        c = _Counter(conn, period)
        _step_counts(c, figures)
        parts: dict[str, list[tuple[str, str, str]]] = {s.name: _parts(c, s) for s in STEP_FIGURES}
        parts["firms.served"] = _served_parts(c)
        parts["offers.live_at_end"] = _live_parts(c)
        for name in ("firms.served", "offers.live_at_end"):
            for centre, n in c.count(parts[name]).items():
                if centre in figures:
                    figures[centre].counts[name] = n
        for spec in STEP_FIGURES:
            for centre, by, value, n in _breakdowns(c, spec):
                if centre in figures:
                    figures[centre].breakdowns.setdefault(spec.name, {})[(by, value)] = n
        events = _events(conn, site.kinds, period)
        for owner, _, _, _, event_type in events:
            if owner in figures:
                figures[owner].counts["events.held"] += 1
                cell = figures[owner].breakdowns.setdefault("events.held", {})
                cell[("event_type", event_type)] = cell.get(("event_type", event_type), 0) + 1
        _medians(c, figures)
        for centre, targets in _targets(conn, site.kinds, period.year).items():
            if centre in figures:
                figures[centre].targets = targets
        explained: tuple[Counted, ...] = ()
        if explain == "events.held":
            explained = tuple(Counted(o, rid, vid, held) for o, rid, vid, held, _ in events if o in figures)
        elif explain:
            explained = tuple(e for e in c.rows(parts[explain]) if e.centre in figures)
    return Report(period, site.site_id, tuple(figures.values()), explain, explained)
