"""The network's figures: what each centre achieved in a period, counted from signed versions.

**The period rule.** A figure counts the records whose counted step was signed in the period:
the HLC wall time (UTC) of the first version that took it (the earliest stamp, then the
smallest version id), `start <= stamp < end`. An offer is "published" in the period its PUBLISH
version was stamped, an agreement in the period its AGREE was, a request "received" in the
period it was created. The same step taken again (two sites at once) counts once, in the
period of its first version. Events count by the day they were held (`held_on_ms`, signed in
the event's record). "Live at the end" is an offer published before the period's end with no
step out of publication (expire, withdraw, archive, delete) stamped before it, and not lapsed
at the end (its `valid_until_ms` as merged here). Periods are whole UTC days.

A record counts once per figure and centre. Only versions this site verified and holds
outside quarantine count (`versions.verified`, not `quarantined`). A firm that was erased
still counts as a firm served: the figures read ids and signed steps, never personal data.

**Who a figure counts for** is a field of the record that is fixed at its create (so the same
versions give the same figures at every site): an offer's and an event's owner, the centre a
request came through (`via`), an interest's sender's centre (`from_centre`, for "sent") and
the centre handling its target (`to_owner`, for what that centre does with it), both of them
for introductions, negotiations, agreements and closures; a suggestion's request centre. A
**firm served** in the period is a firm that filed a request (for the centre it came through),
sent an interest (for its sender's centre), or was introduced (for both centres of the interest).

**How they are counted.** What each record counts for is kept as versions arrive
(`transfer.kept_figures`: a row per record, figure, centre and breakdown on the day it counts,
and those rows added up per day); a report first lets the keeper catch up with the log, then
sums the period's days. So a report reads a few rows per day and centre, not the period's
versions, and its time does not grow with the number of records.

**Targets** are HQ-signed `target` records, one per centre and year, sent to that centre; the
report shows each target beside the figure it is set for (the whole year's target, whatever the
period).

`report(site, period, centres, explain=FIGURE)` returns a `Report`; with `explain` it lists the
records and versions behind that figure (`Report.explained`: the kept rows themselves), so
anyone holding the same versions can check it.
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

from sqlalchemy import BigInteger, ColumnElement, Connection, and_, bindparam, distinct, func, or_, select

from sync.errors import FieldViolation, InvalidInput
from sync.kinds import KindSet
from sync.merge import state_from_json
from sync.site import Site
from sync.store.tables import records_t
from transfer.kept_figures import (
    DAY_MS,
    FIRMS_SERVED,
    STEP_FIGURES,
    FigureKeeper,
    counts_t,
    interests_t,
    offers_t,
    rows_t,
)

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


def _days(period: Period) -> dict[str, int]:
    """The period as UTC days [first, end) (periods start and end at midnight UTC)."""
    return {
        "d0": period.start_ms // DAY_MS,
        "d1": -(-period.end_ms // DAY_MS),
        "start": period.start_ms,
        "end": period.end_ms,
    }


def _kept_counts(conn: Connection, period: Period, figures: dict[str, CentreFigures]) -> None:
    """The step figures and their breakdowns: the kept counts of the period's days."""
    rows = conn.execute(
        select(counts_t.c.figure, counts_t.c.centre, counts_t.c.by, counts_t.c.value, func.sum(counts_t.c.n))
        .where(counts_t.c.day >= bindparam("d0"), counts_t.c.day < bindparam("d1"))
        .group_by(counts_t.c.figure, counts_t.c.centre, counts_t.c.by, counts_t.c.value),
        _days(period),
    )
    for figure, centre, by, value, n in rows:
        if centre not in figures or not n:
            continue
        if by:
            figures[centre].breakdowns.setdefault(figure, {})[(by, value)] = int(n)
        else:
            figures[centre].counts[figure] += int(n)


def _firms_served(conn: Connection, period: Period, figures: dict[str, CentreFigures]) -> None:
    """Distinct firms served per centre: the kept rows of the period's days."""
    rows = conn.execute(
        select(rows_t.c.centre, func.count(distinct(rows_t.c.value)))
        .where(rows_t.c.figure == FIRMS_SERVED, rows_t.c.day >= bindparam("d0"), rows_t.c.day < bindparam("d1"))
        .group_by(rows_t.c.centre),
        _days(period),
    )
    for centre, n in rows:
        if centre in figures:
            figures[centre].counts[FIRMS_SERVED] = int(n)


def _live_where() -> ColumnElement[bool]:
    """Offers published before the end, with no step out of publication before it, not lapsed at the end."""
    end = bindparam("end", type_=BigInteger())
    return and_(
        offers_t.c.published_ms < end,
        or_(offers_t.c.out_ms.is_(None), offers_t.c.out_ms >= end),
        or_(offers_t.c.lapses_ms == 0, offers_t.c.lapses_ms >= end),
    )


def _live_at_end(conn: Connection, period: Period, figures: dict[str, CentreFigures]) -> None:
    rows = conn.execute(
        select(offers_t.c.origin, func.count()).where(_live_where()).group_by(offers_t.c.origin), _days(period)
    )
    for origin, n in rows:
        if origin in figures:
            figures[origin].counts["offers.live_at_end"] = int(n)


def _medians(conn: Connection, period: Period, figures: dict[str, CentreFigures]) -> None:
    """Median days from interest to introduction (introductions in the period) and from
    introduction to agreement (agreements in the period), for the centre handling the target."""
    days = _days(period)

    def spans(at: Any, since: Any) -> dict[str, list[float]]:
        out: dict[str, list[float]] = defaultdict(list)
        for centre, when, before in conn.execute(
            select(interests_t.c.to_owner, at, since).where(
                at >= bindparam("start"), at < bindparam("end"), since.is_not(None)
            ),
            days,
        ):
            out[str(centre)].append((int(when) - int(before)) / DAY_MS)
        return out

    to_intro = spans(interests_t.c.introduced_ms, interests_t.c.created_ms)
    to_agree = spans(interests_t.c.agreed_ms, interests_t.c.introduced_ms)
    for centre, f in figures.items():
        if to_intro.get(centre):
            f.median_days_to_introduction = round(statistics.median(to_intro[centre]), 2)
        if to_agree.get(centre):
            f.median_days_to_agreement = round(statistics.median(to_agree[centre]), 2)


def _explained(conn: Connection, period: Period, figure: str, centres: Sequence[str]) -> tuple[Counted, ...]:
    """The records (firms, for firms served) and versions behind `figure`, oldest first."""
    days = _days(period)
    if figure == "offers.live_at_end":
        found = [
            Counted(r.origin, r.record_id, r.publish_version_id, int(r.published_ms))
            for r in conn.execute(
                select(
                    offers_t.c.origin, offers_t.c.record_id, offers_t.c.publish_version_id, offers_t.c.published_ms
                ).where(_live_where(), offers_t.c.origin.in_(centres)),
                days,
            )
        ]
    else:
        rows = conn.execute(
            select(rows_t.c.centre, rows_t.c.record_id, rows_t.c.value, rows_t.c.version_id, rows_t.c.stamp_ms).where(
                rows_t.c.figure == figure,
                rows_t.c.by.startswith("firm:") if figure == FIRMS_SERVED else rows_t.c.by == "",
                rows_t.c.day >= bindparam("d0"),
                rows_t.c.day < bindparam("d1"),
                rows_t.c.centre.in_(centres),
            ),
            days,
        )
        found = [
            Counted(r.centre, r.value if figure == FIRMS_SERVED else r.record_id, r.version_id, int(r.stamp_ms))
            for r in rows
        ]
    out: list[Counted] = []
    seen: set[tuple[str, str]] = set()
    for c in sorted(found, key=lambda c: (c.stamp_ms, c.version_id, c.centre, c.record_id)):
        if (c.centre, c.record_id) not in seen:  # a firm served twice: its first
            seen.add((c.centre, c.record_id))
            out.append(c)
    return tuple(out)


def _held(conn: Connection, kinds: KindSet, kind: str) -> Iterator[tuple[Any, dict[str, object]]]:
    """Every record of `kind` held and not deleted, with its merged values. Looked up by
    kind alone (the kind's index): with the deletion in the query, SQLite went through the
    index of every record not deleted (a million offers for a handful of events)."""
    rows = conn.execute(
        select(
            records_t.c.record_id,
            records_t.c.origin,
            records_t.c.head_version_id,
            records_t.c.head_wall_ms,
            records_t.c.head_counter,
            records_t.c.deleted,
            records_t.c.state_json,
        ).where(records_t.c.kind == kind)
    )
    for r in rows:
        if not r.deleted:
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


def report(
    site: Site, period: Period, centres: Sequence[str] = (), *, explain: str = "", recount: bool = False
) -> Report:
    """Each centre's figures for `period` (every centre of the registry at HQ, or those
    named; at a centre, its own), from the versions this site holds; with `explain`, the
    records and versions behind that figure. With `recount`, every record's kept figures
    are first counted again from nothing (`FigureKeeper.rebuild`)."""
    if explain and explain not in FIGURES:
        raise InvalidInput([FieldViolation("explain", f"{explain!r} is not a figure: {', '.join(FIGURES)}")])
    names = _centres(site, centres)
    figures = {c: CentreFigures(c, n, dict.fromkeys(FIGURES, 0)) for c, n in names.items()}
    keeper = FigureKeeper(site.store)
    if recount:
        keeper.rebuild()
    else:
        keeper.catch_up()  # the kept figures count everything held by now
    # One read transaction: every figure from the same snapshot, beside sync's writes (on
    # PostgreSQL repeatable read, so a keeper's pass committed meanwhile is not half seen).
    engine = site.store.engine
    snapshot = {"isolation_level": "REPEATABLE READ"} if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**snapshot) as conn, conn.begin():
        _kept_counts(conn, period, figures)
        _firms_served(conn, period, figures)
        _live_at_end(conn, period, figures)
        events = _events(conn, site.kinds, period)
        for owner, _, _, _, event_type in events:
            if owner in figures:
                figures[owner].counts["events.held"] += 1
                cell = figures[owner].breakdowns.setdefault("events.held", {})
                cell[("event_type", event_type)] = cell.get(("event_type", event_type), 0) + 1
        _medians(conn, period, figures)
        for centre, targets in _targets(conn, site.kinds, period.year).items():
            if centre in figures:
                figures[centre].targets = targets
        explained: tuple[Counted, ...] = ()
        if explain == "events.held":
            explained = tuple(Counted(o, rid, vid, held) for o, rid, vid, held, _ in events if o in figures)
        elif explain:
            explained = _explained(conn, period, explain, sorted(figures))
    return Report(period, site.site_id, tuple(figures.values()), explain, explained)
