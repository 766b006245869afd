"""The console pages every site serves: Network, Search, Record, Intake, Firms, Interests
and Figures. Each handler reads through the site and the transfer wing, as the admin API
does, and writes through the same domain operations (console.web has the rules)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from starlette.responses import Response

from console.figures import Counted, FiguresCache
from console.imports import IMPORT_PAGES
from console.sessions import actions_on
from console.steps import step_field
from console.web import Ask, ConsolePage, StatusSource, problems_by_field, violation
from sync.errors import FieldViolation, InvalidInput, NotFound, PermissionDenied
from sync.kinds import Action, Content, FieldValue, Kind
from sync.registry import SiteRole
from sync.store import RecordRow
from techbridge.v1 import admin_pb2
from transfer import taxonomy
from transfer.admin import is_live
from transfer.bulk import number_or_text
from transfer.duplicates import candidates
from transfer.matching import suggestions
from transfer.records import (
    CONFIDENTIALITY,
    FACILITIES,
    INSTRUMENTS,
    IPR_STATUSES,
    KINDS,
    LISTING,
    PARTNER_TYPES,
    PARTNERSHIPS,
    REQUEST,
    REQUEST_TYPES,
    SIZES,
    STAGES,
    content_from_json,
)
from transfer.report import FIGURES, Period, parse_period, period_between
from transfer.report_files import csv_text, xlsx_bytes
from transfer.search import FACET_NAMES, search_query

DAY_MS = 24 * 3600 * 1000
PAGE_SIZE = 20


# ---- Network -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """A centre of the network as this site sees its link, for the Network page."""

    centre: str
    name: str
    country: str
    role: str
    status: str
    key_ids: tuple[str, ...]
    health: str  # up, behind, down, never, self
    last_success_ms: int
    last_attempt_ms: int
    pending_push: int
    pending_pull: int
    watching: bool
    failures: int
    next_attempt_ms: int
    last_error: str
    last_error_ms: int
    counts: dict[str, int]


def health_of(p: object, now_ms: int, stale_ms: int) -> str:
    """up: in contact (a watch stream, or a round within `stale_ms`) and nothing waiting;
    behind: in contact with versions still to move; down: no stream and no round lately,
    or the last attempt failed; never: no round yet."""
    last_success = getattr(p, "last_success_ms", 0)
    watching = getattr(p, "watching", False)
    failed = getattr(p, "last_error_ms", 0) > last_success
    if not last_success and not watching:
        return "down" if failed else "never"
    if failed or (not watching and now_ms - last_success > stale_ms):
        return "down"
    if getattr(p, "pending_push", 0) or getattr(p, "pending_pull", 0):
        return "behind"
    return "up"


def network_links(ask: Ask, status: StatusSource) -> list[Link]:
    site = ask.site
    now = site.now_ms()
    stale_ms = int(3 * site.config.sync_every_s * 1000)
    peers = {p.peer: p for p in status.peer_statuses()}
    counts = site.store.counts_by_origin()
    out = []
    for c in site.registry().centres:
        if c.id != site.site_id and c.id not in peers:
            continue
        p = peers.get(c.id)
        out.append(
            Link(
                centre=c.id,
                name=c.name,
                country=c.country,
                role="hub" if c.role == SiteRole.HUB else "centre",
                status=str(c.status.value if hasattr(c.status, "value") else c.status),
                key_ids=tuple(k.key_id for k in c.keys),
                health="self" if c.id == site.site_id else health_of(p, now, stale_ms),
                last_success_ms=p.last_success_ms if p else 0,
                last_attempt_ms=p.last_attempt_ms if p else 0,
                pending_push=p.pending_push if p else 0,
                pending_pull=p.pending_pull if p else 0,
                watching=bool(p and p.watching),
                failures=p.failures if p else 0,
                next_attempt_ms=p.next_attempt_ms if p else 0,
                last_error=p.last_error if p else "",
                last_error_ms=p.last_error_ms if p else 0,
                counts=counts.get(c.id, {}),
            )
        )
    return out


def network_page(status: StatusSource) -> ConsolePage:
    def page(ask: Ask) -> Response:
        links = network_links(ask, status)
        template = "network_live.html" if ask.arg("part") == "live" else "network.html"
        versions, rejected = ask.site.counts()
        return ask.render(
            template,
            links=links,
            registry=ask.site.registry(),
            versions=versions,
            rejected=rejected,
            kinds=("listing", "request", "firm", "interest"),
        )

    return ConsolePage("/network", page, label="Network")


# ---- Search --------------------------------------------------------------------------------

# The facets a person may click to filter by, and the search parameter each one sets.
FACET_FILTERS = {
    "kind": "kind",
    "status": "status",
    "keyword": "keyword",
    "country": "country",
    "stage": "stage",
    "partnership": "partnership",
    "centre": "origin",
}


def search_page(ask: Ask) -> Response:
    params: dict[str, str | list[str]] = {
        "q": ask.arg("q"),
        "kind": ask.arg("kind"),
        "status": ask.arg("status"),
        "keyword": ask.args("keyword"),
        "country": ask.args("country"),
        "stage": ask.arg("stage"),
        "partnership": ask.arg("partnership"),
        "origin": ask.arg("origin"),
        "live": ask.arg("live"),
        "sort": ask.arg("sort"),
    }
    asked = number_or_text(ask.arg("page", "1"))
    page_no = asked if isinstance(asked, int) else 1
    page_no = max(1, min(page_no, 500))
    problems: list[str] = []
    result = None
    now = ask.site.now_ms()
    try:
        query = search_query(
            str(params["q"]),
            kind=str(params["kind"]),
            status=str(params["status"]),
            keywords=params["keyword"],
            countries=params["country"],
            stage=str(params["stage"]),
            partnership=str(params["partnership"]),
            origin=str(params["origin"]),
            live_at_ms=now if params["live"] else None,
            sort="newest" if params["sort"] == "newest" else "relevance",
            limit=PAGE_SIZE,
            offset=(page_no - 1) * PAGE_SIZE,
        )
        result = ask.site.search(query, with_facets=True)
    except InvalidInput as exc:
        problems = [f"{v.field}: {v.description}" for v in exc.violations]
    hits = []
    facets: list[tuple[str, str, list[tuple[str, int, bool]]]] = []
    total = 0
    if result is not None:
        total = result.total
        names = ask.centre_names()
        for h in result.hits:
            hits.append((h, record_summary(h.record, now), names.get(h.record.origin, h.record.origin)))
        for name, counts in result.facets.items():
            shown = FACET_NAMES.get(name, name)
            param = FACET_FILTERS.get(shown, "")
            chosen = params.get(param)
            facets.append(
                (
                    shown,
                    param,
                    [(v, n, v in chosen if isinstance(chosen, list) else v == chosen) for v, n in counts],
                )
            )
    return ask.render(
        "search.html",
        params=params,
        hits=hits,
        total=total,
        facets=facets,
        problems=problems,
        page_no=page_no,
        pages=(total + PAGE_SIZE - 1) // PAGE_SIZE,
        stages=STAGES,
        partnerships=PARTNERSHIPS,
        centres=[c for c in ask.site.registry().centres],
    )


@dataclass(frozen=True)
class Summary:
    record_id: str
    kind: str
    title: str
    status: str
    live: bool
    origin: str
    updated_at_ms: int
    conflicts: int


def record_summary(row: RecordRow, now_ms: int) -> Summary:
    content = row.state.content
    kind = KINDS[row.kind]
    title = str(content.value(kind.title_field)) if kind.title_field in content.as_dict() else row.record_id
    return Summary(
        row.record_id,
        row.kind,
        title,
        content.status,
        is_live(content, now_ms),
        row.origin,
        row.updated_at_ms,
        row.open_conflicts,
    )


# ---- Record --------------------------------------------------------------------------------


def steps_here(ask: Ask, row: RecordRow) -> list[str]:
    """The lifecycle steps this site may take on the record now, for the buttons staff see
    (the expiry job's and a firm's own steps aside)."""
    kind = KINDS[row.kind]
    return [
        action.value
        for action in kind.transitions
        if action not in (Action.EXPIRE, Action.ERASE) and ask.site.may_step(row, action)
    ]


def field_rows(kind: Kind, content: Content) -> list[tuple[str, str]]:
    """The record's fields that hold something, as (name, text), translations aside."""
    values = content.as_dict()
    rows = []
    for name in kind.defaults:
        if name == "translations":
            continue
        value = values.get(name)
        if value in ("", 0, (), False, None):
            continue
        if name.endswith("_ms") and isinstance(value, int):
            rows.append((name, datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d")))
        elif isinstance(value, tuple):
            rows.append((name, ", ".join(str(v) for v in value)))
        else:
            rows.append((name, str(value)))
    return rows


def changed_fields(change_fields: Sequence[tuple[str, FieldValue]]) -> list[str]:
    """The names of the fields a version sets (shown translated)."""
    return [name for name, _ in change_fields]


# Fields that name another record: shown as a link with its title.
LINKED_FIELDS = ("to_record", "duplicate_of", "request", "offer", "interest")


def record_page(ask: Ask) -> Response:
    record_id = ask.request.path_params["record_id"]
    site = ask.site
    detail = site.record_detail(record_id)
    row = site.record(record_id)
    kind = KINDS[row.kind]
    state = row.state
    content = state.content
    values = content.as_dict()
    held = values.get("translations", ())
    translations = [t for t in held if isinstance(t, tuple)] if isinstance(held, tuple) else []
    shown_language = ask.arg("tr")
    translation = next((t for t in translations if t[0] == shown_language), None)
    by_staff = actions_on(site.store, record_id)
    history = [
        (h, by_staff.get(h.version.version_id, ""), changed_fields(h.version.change.fields))
        for h in site.history(record_id)
    ]
    now = site.now_ms()
    matches = []
    duplicates = []
    if site.is_hub and row.kind in ("listing", "request") and not state.deleted:  # HQ's work
        matches = [(s, record_summary(s.record, now)) for s in suggestions(site, record_id, limit=5)]
    if site.is_hub and row.kind == "listing" and not state.deleted:
        duplicates = [(p, record_summary(p.other, now)) for p in candidates(site, record_id)]
    interests = []
    if row.kind in ("listing", "request"):
        interests = [record_summary(r, now) for r in site.records_titled("interest", record_id)]
    names = {**ask.centre_names(), **site.titles([str(values.get(f, "")) for f in LINKED_FIELDS if values.get(f)])}
    private_note = detail.private_note if row.origin == site.site_id else ""
    return ask.render(
        "record.html",
        row=row,
        kind=kind,
        state=state,
        detail=detail,
        title=record_summary(row, now).title,
        fields=field_rows(kind, content),
        translations=translations,
        translation=translation,
        history=history,
        conflicts=state.conflicts,
        matches=matches,
        duplicates=duplicates,
        interests=interests,
        steps=steps_here(ask, row) if ask.may_write() else [],
        can_edit=ask.may_write()
        and row.kind == "listing"
        and row.origin == site.site_id
        and not state.deleted
        and content.status not in ("archived",),
        live=is_live(content, now),
        names=names,
        private_note=private_note,
        done=ask.done(),
    )


def step_page(ask: Ask) -> Response:
    ask.need_writer()
    record_id = ask.request.path_params["record_id"]
    try:
        action = Action(ask.field("action"))
    except ValueError as exc:
        raise violation("action", f"{ask.field('action')!r} is not a step") from exc
    fields: tuple[tuple[str, FieldValue], ...] = ()
    wanted = step_field(ask.site.record(record_id).kind, action.value)
    if wanted == "valid_until_ms":
        fields = ((wanted, end_of_day_ms(ask.field("valid_until"), "valid_until")),)
    elif wanted:
        fields = ((wanted, ask.field(wanted)),)
    version = ask.site.step_record(record_id, action, fields)
    ask.noted(version.version_id, record_id)
    return ask.redirect(f"/records/{record_id}", done=action.value)


def resolve_page(ask: Ask) -> Response:
    ask.need_writer()
    record_id = ask.request.path_params["record_id"]
    field_name, take = ask.field("field"), ask.field("take")
    if not field_name or not take:
        raise violation("take", "choose the value to keep")
    version = ask.site.resolve_conflict(f"{record_id}/{field_name}", take=take, value=None)
    ask.noted(version.version_id, record_id)
    return ask.redirect(f"/records/{record_id}", done="settle")


def end_of_day_ms(text: str, name: str) -> int:
    try:
        d = date.fromisoformat(text)
    except ValueError as exc:
        raise violation(name, f"a date as YYYY-MM-DD (got {text!r})") from exc
    return int(datetime(d.year, d.month, d.day, 23, 59, 59, tzinfo=UTC).timestamp() * 1000)


# ---- Intake --------------------------------------------------------------------------------

OFFER_TEXT = ("title", "summary", "description", "advantages", "partner_role", "client_name")
OFFER_LISTS = ("target_countries", "languages", "ipc_codes", "nace_codes", "patents")
OFFER_CHOICES = ("partnership_types", "partner_types", "partner_sizes")
REQUEST_TEXT = ("title", "sought", "programme", "call_id", "instrument", "use_of_funds", "facility", "at_centre")
REQUEST_NUMBERS = ("amount_min", "amount_max", "area_m2", "headcount", "duration_months", "budget")
REQUEST_DATES = ("deadline_ms", "call_deadline_ms", "start_ms")


def _words(text: str) -> list[str]:
    return [w.strip() for w in text.replace(";", ",").split(",") if w.strip()]


def offer_document(ask: Ask) -> dict[str, object]:
    """The offer the form describes, as the JSON document `listing add --file` takes."""
    doc: dict[str, object] = {}
    for name in OFFER_TEXT:
        if ask.field(name):
            doc[name] = ask.field(name)
    for name in OFFER_LISTS:
        if ask.field(name):
            doc[name] = _words(ask.field(name))
    for name in OFFER_CHOICES:
        if ask.fields(name):
            doc[name] = ask.fields(name)
    if ask.fields("keywords"):
        doc["keywords"] = ask.fields("keywords")
    for name in ("stage", "ipr_status"):
        if ask.field(name):
            doc[name] = ask.field(name)
    trl = ask.field("trl")
    if trl:
        doc["trl"] = number_or_text(trl)
    if ask.field("anonymous"):
        doc["anonymous"] = True
    doc["status"] = "submitted" if ask.field("submit") else "draft"
    return doc


def request_document(ask: Ask) -> dict[str, object]:
    doc: dict[str, object] = {}
    for name in REQUEST_TEXT:
        if ask.field(name):
            doc[name] = ask.field(name)
    for name in ("request_type", "confidentiality"):
        if ask.field(name):
            doc[name] = ask.field(name)
    if ask.field("target_countries"):
        doc["target_countries"] = _words(ask.field("target_countries"))
    for name in ("keywords", "sectors"):
        if ask.fields(name):
            doc[name] = ask.fields(name)
    problems: list[FieldViolation] = []
    for name in REQUEST_NUMBERS:
        text = ask.field(name)
        if text:
            doc[name] = number_or_text(text)
    for name in REQUEST_DATES:
        text = ask.field(name)
        if text:
            try:
                doc[name] = end_of_day_ms(text, name)
            except InvalidInput as exc:
                problems.extend(exc.violations)
    if problems:
        raise InvalidInput(problems)
    doc["status"] = "submitted"
    return doc


def _intake_choices(ask: Ask) -> dict[str, object]:
    return {
        "terms": sorted(taxonomy.technology_terms(taxonomy.CURRENT) or ()),
        "sectors": sorted(taxonomy.market_terms(taxonomy.CURRENT) or ()),
        "stages": STAGES,
        "ipr_statuses": IPR_STATUSES,
        "partnerships": PARTNERSHIPS,
        "partner_types": PARTNER_TYPES,
        "partner_sizes": SIZES,
        "request_types": REQUEST_TYPES,
        "confidentialities": CONFIDENTIALITY,
        "instruments": INSTRUMENTS,
        "facilities": FACILITIES,
        "centres": list(ask.site.registry().centres),
    }


def _typed(ask: Ask) -> dict[str, str | list[str]]:
    """The form as typed, to show it again beside its problems."""
    multi = ("keywords", "sectors", *OFFER_CHOICES)
    return {k: ask.fields(k) if k in multi else ask.field(k) for k in ask.form or {}}


def offer_intake_page(ask: Ask) -> Response:
    """A new offer of this centre, checked by the rules `listing add` follows; every
    problem is shown beside its field and nothing is stored until all are fixed."""
    ask.need_writer()
    if ask.request.method == "GET":
        return ask.render("intake_offer.html", problems={}, form={}, action="/intake/offer", **_intake_choices(ask))
    try:
        content = content_from_json(LISTING, offer_document(ask))
        version = ask.site.add_record(content, (), private_note=ask.field("private_note"))
    except InvalidInput as exc:
        return ask.render(
            "intake_offer.html",
            400,
            problems=problems_by_field(exc),
            form=_typed(ask),
            action="/intake/offer",
            **_intake_choices(ask),
        )
    ask.noted(version.version_id, version.record_id)
    return ask.redirect(f"/records/{version.record_id}", done="create")


# The offer's fields the intake form shows, and so the fields an edit through it may change.
OFFER_FORM_FIELDS = (*OFFER_TEXT, *OFFER_LISTS, *OFFER_CHOICES, "keywords", "stage", "ipr_status", "trl", "anonymous")


def offer_form_values(content: Content) -> dict[str, object]:
    """An offer as its form shows it."""
    out: dict[str, object] = {}
    for name in OFFER_FORM_FIELDS:
        value = content.value(name)
        if name in ("keywords", *OFFER_CHOICES):
            out[name] = list(value) if isinstance(value, tuple) else []
        elif isinstance(value, tuple):
            out[name] = ", ".join(str(v) for v in value)
        elif isinstance(value, bool):
            out[name] = "1" if value else ""
        elif isinstance(value, int):
            out[name] = str(value) if value else ""
        else:
            out[name] = value
    return out


def offer_edit_page(ask: Ask) -> Response:
    """Edit an offer this centre owns through the intake form: the fields that changed are
    signed as one edit; problems are shown beside their fields."""
    ask.need_writer()
    record_id = ask.request.path_params["record_id"]
    row = ask.site.record(record_id)
    if row.kind != "listing" or row.origin != ask.site.site_id:
        raise PermissionDenied(f"{record_id} is not an offer of this centre: its owner edits it")
    current = row.state.content
    note = ask.site.store.private_note(record_id)
    shown = {"action": f"/records/{record_id}/edit", "editing": row, **_intake_choices(ask)}
    if ask.request.method == "GET":
        form = {**offer_form_values(current), "private_note": note}
        return ask.render("intake_offer.html", problems={}, form=form, **shown)
    try:
        wanted = content_from_json(LISTING, {**offer_document(ask), "status": "draft"})
    except InvalidInput as exc:
        return ask.render("intake_offer.html", 400, problems=problems_by_field(exc), form=_typed(ask), **shown)
    changed = tuple(
        (name, wanted.value(name)) for name in OFFER_FORM_FIELDS if wanted.value(name) != current.value(name)
    )
    if changed:
        try:
            version = ask.site.edit_record(record_id, changed)
        except InvalidInput as exc:
            return ask.render("intake_offer.html", 400, problems=problems_by_field(exc), form=_typed(ask), **shown)
        ask.noted(version.version_id, record_id)
    if ask.field("private_note") != note:
        ask.site.store.set_private_note(record_id, ask.field("private_note"), ask.site.now_ms())
    return ask.redirect(f"/records/{record_id}", done="edit" if changed else "")


def request_intake_page(ask: Ask) -> Response:
    """A firm's request prepared with its centre: checked by the rules `request submit`
    follows, then handed over as the JSON file the firm signs and submits with its own key
    (`techbridge request submit --file`); a centre never signs for a firm."""
    ask.need_writer()
    if ask.request.method == "GET":
        return ask.render("intake_request.html", problems={}, form={}, **_intake_choices(ask))
    try:
        doc = request_document(ask)
        content_from_json(REQUEST, doc, writable=REQUEST.owner_fields - {"via"})
    except InvalidInput as exc:
        return ask.render(
            "intake_request.html", 400, problems=problems_by_field(exc), form=_typed(ask), **_intake_choices(ask)
        )
    title = str(doc.get("title", "request")).lower()
    slug = "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in title)[:40].strip("-")
    return Response(
        json.dumps(doc, ensure_ascii=False, indent=2) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="request-{slug or "new"}.json"'},
    )


# ---- Firms and Interests -------------------------------------------------------------------


def firms_page(ask: Ask) -> Response:
    now = ask.site.now_ms()
    rows = ask.site.records(origin=None, limit=500, kind="firm")
    return ask.render("firms.html", firms=[(r, record_summary(r, now)) for r in rows])


INTEREST_ORDER = ("sent", "forwarded", "accepted", "introduced", "negotiating", "agreed", "declined", "closed")


def interests_page(ask: Ask) -> Response:
    now = ask.site.now_ms()
    rows = ask.site.records(origin=None, limit=1000, kind="interest")
    about = ask.site.titles([str(r.state.content.value("to_record")) for r in rows])
    by_status: dict[str, list[tuple[RecordRow, Summary, list[str]]]] = {s: [] for s in INTEREST_ORDER}
    for r in rows:
        steps = steps_here(ask, r) if ask.may_write() else []
        by_status.setdefault(r.state.content.status, []).append((r, record_summary(r, now), steps))
    return ask.render(
        "interests.html",
        by_status=by_status,
        about=about,
    )


# ---- Figures -------------------------------------------------------------------------------


def _period(ask: Ask) -> Period:
    start, end, label = ask.arg("from"), ask.arg("to"), ask.arg("period")
    if start or end:
        return period_between(start, end)
    return parse_period(label or str(datetime.fromtimestamp(ask.site.now_ms() / 1000, UTC).year))


def _counted(ask: Ask) -> tuple[Counted, bool]:
    centres = tuple(sorted(set(ask.args("centre")))) if ask.site.is_hub else (ask.site.site_id,)
    cache = ask.console.kept.get("figures")
    if not isinstance(cache, FiguresCache):
        cache = ask.console.kept.setdefault("figures", FiguresCache(ask.site))
    return cache.get(_period(ask), centres)


def _report(ask: Ask) -> admin_pb2.GetReportResponse:
    return _counted(ask)[0].report


def figures_page(ask: Ask) -> Response:
    problems: list[str] = []
    done = None
    counted_at_ms, recounting = 0, False
    try:
        counted, recounting = _counted(ask)
        done, counted_at_ms = counted.report, counted.counted_at_ms
    except InvalidInput as exc:
        problems = [f"{v.field}: {v.description}" for v in exc.violations]
    return ask.render(
        "figures.html",
        report=done,
        counted_at_ms=counted_at_ms,
        recounting=recounting,
        problems=problems,
        figures=FIGURES,
        params={
            "period": ask.arg("period"),
            "from": ask.arg("from"),
            "to": ask.arg("to"),
            "centre": ask.args("centre"),
        },
    )


def figures_download(ask: Ask) -> Response:
    r = _report(ask)
    fmt = ask.request.path_params["fmt"]
    name = "".join(
        ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "-" for ch in f"figures-{r.site}-{r.period}"
    )
    if fmt == "csv":
        return Response(
            csv_text(r),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if fmt == "xlsx":
        return Response(
            xlsx_bytes(r),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    raise NotFound(f"no download as {fmt}: csv or xlsx")


def console_pages(status: StatusSource, own: Sequence[ConsolePage] = ()) -> list[ConsolePage]:
    """The pages of every site in menu order, the site's `own` pages after Network."""
    return [
        network_page(status),
        *own,
        ConsolePage("/search", search_page, label="Search"),
        ConsolePage("/records/{record_id}", record_page),
        ConsolePage("/records/{record_id}/step", step_page, ("POST",)),
        ConsolePage("/records/{record_id}/resolve", resolve_page, ("POST",)),
        ConsolePage("/records/{record_id}/edit", offer_edit_page, ("GET", "POST")),
        ConsolePage("/intake/offer", offer_intake_page, ("GET", "POST"), label="New offer"),
        ConsolePage("/intake/request", request_intake_page, ("GET", "POST"), label="New request"),
        *IMPORT_PAGES,
        ConsolePage("/firms", firms_page, label="Firms"),
        ConsolePage("/interests", interests_page, label="Interests"),
        ConsolePage("/figures", figures_page, label="Figures"),
        ConsolePage("/figures.{fmt}", figures_download),
    ]
