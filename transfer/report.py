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

`report(site, period, centres)` returns a `Report`; `Report.explain(figure)` lists the records
and versions behind a figure, so anyone holding the same versions can check it.
"""

from __future__ import annotations

import itertools
import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, func, or_, select
from sqlalchemy.orm import aliased

from sync.errors import FieldViolation, InvalidInput
from sync.kinds import KindSet
from sync.merge import state_from_json
from sync.site import Site
from sync.store.tables import IN_CHUNK, docs_t, records_t, versions_t
from transfer.records import is_record_id

DAY_MS = 24 * 3600 * 1000
_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


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
    for text, name in ((start, "from"), (end, "to")):
        try:
            days[name] = date.fromisoformat(text.strip())
        except ValueError:
            problems.append(FieldViolation(name, f"{text!r} is not a date (YYYY-MM-DD)"))
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
    StepFigure("offers.published", "listing", ("publish",), by=("keywords", "stage")),
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
    counted: Mapping[str, tuple[Counted, ...]]

    def explain(self, figure: str) -> tuple[Counted, ...]:
        if figure not in FIGURES:
            raise InvalidInput([FieldViolation("explain", f"{figure!r} is not a figure: {', '.join(FIGURES)}")])
        return self.counted.get(figure, ())


class _Records:
    """The fixed fields of the records a report reads, decoded once each."""

    def __init__(self, conn: Connection, kinds: KindSet) -> None:
        self.conn = conn
        self.kinds = kinds
        self.rows: dict[str, tuple[str, str, dict[str, object]]] = {}

    def load(self, record_ids: Iterable[str]) -> None:
        ids = sorted(set(record_ids) - set(self.rows))
        for i in range(0, len(ids), IN_CHUNK):
            for r in self.conn.execute(
                select(records_t.c.record_id, records_t.c.kind, records_t.c.origin, records_t.c.state_json).where(
                    records_t.c.record_id.in_(ids[i : i + IN_CHUNK])
                )
            ):
                values: dict[str, object] = dict(state_from_json(r.state_json, self.kinds).content.as_dict())
                self.rows[r.record_id] = (str(r.kind), str(r.origin), values)

    def value(self, record_id: str, name: str) -> object:
        row = self.rows.get(record_id)
        if row is None:
            return None
        return row[1] if name == "origin" else row[2].get(name)


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


def _steps(conn: Connection, period: Period) -> list[tuple[str, str, str, int, str, str]]:
    """(record, version, kind, stamp, action, status) of each counted version in the period."""
    kinds = sorted({f.kind for f in STEP_FIGURES})
    actions = sorted({a for f in STEP_FIGURES for a in f.actions})
    rows = conn.execute(
        select(
            versions_t.c.record_id,
            versions_t.c.version_id,
            versions_t.c.kind,
            versions_t.c.hlc_wall_ms,
            versions_t.c.action,
            versions_t.c.status,
        )
        .where(
            versions_t.c.hlc_wall_ms >= period.start_ms,
            versions_t.c.hlc_wall_ms < period.end_ms,
            versions_t.c.kind.in_(kinds),
            versions_t.c.action.in_(actions),
            versions_t.c.verified.is_(True),
            versions_t.c.quarantined.is_(False),
        )
        .order_by(versions_t.c.hlc_wall_ms, versions_t.c.hlc_counter, versions_t.c.version_id)
    ).all()
    return [(r.record_id, r.version_id, r.kind, int(r.hlc_wall_ms), r.action, r.status) for r in rows]


def _stamps(conn: Connection, record_ids: Sequence[str], action: str) -> dict[str, int]:
    """The earliest stamp of `action` on each record (verified, not quarantined)."""
    out: dict[str, int] = {}
    ids = sorted(set(record_ids))
    for i in range(0, len(ids), IN_CHUNK):
        for r in conn.execute(
            select(versions_t.c.record_id, func.min(versions_t.c.hlc_wall_ms))
            .where(
                versions_t.c.record_id.in_(ids[i : i + IN_CHUNK]),
                versions_t.c.action == action,
                versions_t.c.verified.is_(True),
                versions_t.c.quarantined.is_(False),
            )
            .group_by(versions_t.c.record_id)
        ):
            out[r[0]] = int(r[1])
    return out


def _live_at_end(conn: Connection, period: Period) -> list[tuple[str, str, str, int]]:
    """(owner, record, version, stamp) of each offer live at the period's end."""
    out_of = aliased(versions_t)
    rows = conn.execute(
        select(versions_t.c.origin, versions_t.c.record_id, versions_t.c.version_id, versions_t.c.hlc_wall_ms)
        .join(docs_t, docs_t.c.record_id == versions_t.c.record_id, isouter=True)
        .where(
            versions_t.c.kind == "listing",
            versions_t.c.action == "publish",
            versions_t.c.hlc_wall_ms < period.end_ms,
            versions_t.c.verified.is_(True),
            versions_t.c.quarantined.is_(False),
            or_(func.coalesce(docs_t.c.lapses_at_ms, 0) == 0, docs_t.c.lapses_at_ms >= period.end_ms),
            ~exists().where(
                and_(
                    out_of.c.record_id == versions_t.c.record_id,
                    out_of.c.action.in_(("expire", "withdraw", "archive", "delete")),
                    out_of.c.hlc_wall_ms < period.end_ms,
                    out_of.c.quarantined.is_(False),
                )
            ),
        )
        .order_by(versions_t.c.hlc_wall_ms, versions_t.c.version_id)
    ).all()
    return [(r.origin, r.record_id, r.version_id, int(r.hlc_wall_ms)) for r in rows]


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


def _values(v: object) -> tuple[str, ...]:
    if isinstance(v, tuple):
        return tuple(str(x) for x in v if isinstance(x, str) and x)
    return (str(v),) if v not in (None, "") else ()


def report(site: Site, period: Period, centres: Sequence[str] = ()) -> Report:
    """Each centre's figures for `period` (every centre of the registry at HQ, or those
    named; at a centre, its own), from the versions this site holds."""
    names = _centres(site, centres)
    figures = {c: CentreFigures(c, n, {f: 0 for f in FIGURES}) for c, n in names.items()}
    # One read transaction: every figure from the same snapshot, beside sync's writes.
    with site.store.engine.connect() as conn, conn.begin():
        return _report(site, conn, period, figures)


def _report(site: Site, conn: Connection, period: Period, figures: dict[str, CentreFigures]) -> Report:
    counted: dict[str, list[Counted]] = defaultdict(list)
    seen: set[tuple[str, str, str]] = set()

    def count(figure: str, centre: str, record_id: str, version_id: str, stamp: int) -> bool:
        key = (figure, centre, record_id)
        if centre not in figures or key in seen:
            return False
        seen.add(key)
        figures[centre].counts[figure] += 1
        counted[figure].append(Counted(centre, record_id, version_id, stamp))
        return True

    steps = _steps(conn, period)
    records = _Records(conn, site.kinds)
    records.load(r[0] for r in steps)
    # A request's firm and the firm's home centre; an interest's target, for introductions.
    firm_ids = {records.value(r[0], "origin") for r in steps if r[2] == "request"}
    records.load(str(f) for f in firm_ids if f)
    specs: dict[tuple[str, str], list[StepFigure]] = defaultdict(list)
    for spec in STEP_FIGURES:
        for action in spec.actions:
            specs[(spec.kind, action)].append(spec)
    served: list[tuple[str, str, str, int]] = []  # (centre, firm, version, stamp)
    introduced: list[str] = []
    agreed: list[str] = []
    for record_id, version_id, kind, stamp, action, status in steps:
        for spec in specs.get((kind, action), ()):
            if action == "create" and spec.created_as and status not in spec.created_as:
                continue
            for centre in dict.fromkeys(str(records.value(record_id, n) or "") for n in spec.centre_fields):
                if not count(spec.name, centre, record_id, version_id, stamp):
                    continue
                for by in spec.by:
                    if by == "home_centre":
                        firm = str(records.value(record_id, "origin") or "")
                        got: tuple[str, ...] = _values(records.value(firm, "origin")) or ("(unknown)",)
                    else:
                        got = _values(records.value(record_id, by)) or ("(none)",)
                    for value in got:
                        cell = figures[centre].breakdowns.setdefault(spec.name, {})
                        cell[(by, value)] = cell.get((by, value), 0) + 1
        origin = str(records.value(record_id, "origin") or "")
        # A firm owns it when its owner is a record (the firm's), not a centre: read from
        # the ids alone, so every site decides alike whatever registry it holds.
        firm_owned = is_record_id(origin)
        if kind == "request" and action == "create" and firm_owned:
            served.append((str(records.value(record_id, "via") or ""), origin, version_id, stamp))
        if kind == "interest" and action == "create" and firm_owned:
            served.append((str(records.value(record_id, "from_centre") or ""), origin, version_id, stamp))
        if kind == "interest" and action == "introduce":
            introduced.append(record_id)
            if firm_owned:
                for n in ("to_owner", "from_centre"):
                    served.append((str(records.value(record_id, n) or ""), origin, version_id, stamp))
        if kind == "interest" and action == "agree":
            agreed.append(record_id)
    for centre, firm, version_id, stamp in served:
        count("firms.served", centre, firm, version_id, stamp)
    for owner, record_id, version_id, stamp in _live_at_end(conn, period):
        count("offers.live_at_end", owner, record_id, version_id, stamp)
    for owner, record_id, version_id, held, event_type in _events(conn, site.kinds, period):
        if count("events.held", owner, record_id, version_id, held):
            cell = figures[owner].breakdowns.setdefault("events.held", {})
            cell[("event_type", event_type)] = cell.get(("event_type", event_type), 0) + 1
    _medians(conn, figures, records, introduced, agreed)
    for centre, targets in _targets(conn, site.kinds, period.year).items():
        if centre in figures:
            figures[centre].targets = targets
    return Report(
        period,
        site.site_id,
        tuple(figures.values()),
        {k: tuple(v) for k, v in counted.items()},
    )


def _medians(
    conn: Connection, figures: dict[str, CentreFigures], records: _Records, introduced: list[str], agreed: list[str]
) -> None:
    """Median days from interest to introduction (introductions in the period) and from
    introduction to agreement (agreements in the period), per centre handling the target."""
    created = _stamps(conn, introduced, "create")
    intro_at = _stamps(conn, introduced + agreed, "introduce")
    to_intro: dict[str, list[float]] = defaultdict(list)
    to_agree: dict[str, list[float]] = defaultdict(list)
    for rid in dict.fromkeys(introduced):
        if rid in created and rid in intro_at:
            to_intro[str(records.value(rid, "to_owner"))].append((intro_at[rid] - created[rid]) / DAY_MS)
    agreed_at = _stamps(conn, agreed, "agree")
    for rid in dict.fromkeys(agreed):
        if rid in intro_at and rid in agreed_at:
            to_agree[str(records.value(rid, "to_owner"))].append((agreed_at[rid] - intro_at[rid]) / DAY_MS)
    for centre, f in figures.items():
        if to_intro.get(centre):
            f.median_days_to_introduction = round(statistics.median(to_intro[centre]), 2)
        if to_agree.get(centre):
            f.median_days_to_agreement = round(statistics.median(to_agree[centre]), 2)
