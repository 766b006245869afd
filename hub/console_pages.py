"""HQ's own console pages: the queues of what waits for HQ (offers and requests to
validate with their duplicate candidates beside them, validated ones to publish, open
conflicts, duplicate pairs to settle) and the curator's duplicate decisions."""

from __future__ import annotations

from pathlib import Path

from starlette.responses import Response

from console.pages import record_summary
from console.web import Ask, ConsolePage, violation
from sync.kinds import FieldValue
from transfer.duplicates import candidates, pending_pairs

TEMPLATES = Path(__file__).parent / "templates"
QUEUE_MAX = 200


def queues_page(ask: Ask) -> Response:
    site = ask.site
    now = site.now_ms()
    to_validate = []
    for kind in ("listing", "request"):
        for row in site.records(origin=None, limit=QUEUE_MAX, kind=kind, status="submitted"):
            alike = (
                [(p, record_summary(p.other, now)) for p in candidates(site, row.record_id)[:3]]
                if kind == "listing"
                else []
            )
            to_validate.append((record_summary(row, now), alike))
    to_publish = [
        record_summary(row, now)
        for kind in ("listing", "request")
        for row in site.records(origin=None, limit=QUEUE_MAX, kind=kind, status="validated")
    ]
    conflicted = [
        record_summary(row, now)
        for row in site.records(origin=None, limit=QUEUE_MAX, only_conflicted=True, include_deleted=True)
    ]
    pairs = [(p, record_summary(p.record, now), record_summary(p.other, now)) for p in pending_pairs(site)]
    names = ask.centre_names()
    return ask.render(
        "queues_hq.html",
        to_validate=to_validate,
        to_publish=to_publish,
        conflicted=conflicted,
        pairs=pairs,
        names=names,
        done=ask.done(),
    )


def duplicate_page(ask: Ask) -> Response:
    """Settle a pair: this offer is the duplicate of the other, or it is not."""
    ask.need_writer()
    record_id = ask.request.path_params["record_id"]
    other, verdict = ask.field("other"), ask.field("verdict")
    if not other:
        raise violation("other", "name the other offer of the pair")
    if verdict == "same":
        fields: tuple[tuple[str, FieldValue], ...] = (("duplicate_of", other),)
    elif verdict == "different":
        current = ask.site.record(record_id).state.content.value("not_duplicate_of")
        held = [str(x) for x in current] if isinstance(current, tuple) else []
        fields = (("not_duplicate_of", tuple(dict.fromkeys([*held, other]))),)
    else:
        raise violation("verdict", "same or different")
    version = ask.site.edit_record(record_id, fields)
    ask.noted(version.version_id, record_id)
    return ask.redirect("/queues", done="settle")


def curate_page(ask: Ask) -> Response:
    """HQ's curation of an offer or a request: its tags and whether it is featured."""
    ask.need_writer()
    record_id = ask.request.path_params["record_id"]
    row = ask.site.record(record_id)
    if row.kind not in ("listing", "request"):
        raise violation("id", f"{record_id} is a {row.kind}: HQ curates offers and requests")
    content = row.state.content
    wanted: dict[str, FieldValue] = {
        "tags": tuple(dict.fromkeys(t.strip() for t in ask.field("tags").replace(";", ",").split(",") if t.strip())),
        "featured": bool(ask.field("featured")),
    }
    changed = tuple((n, v) for n, v in wanted.items() if v != content.value(n))
    if changed:
        version = ask.site.edit_record(record_id, changed)
        ask.noted(version.version_id, record_id)
    return ask.redirect(f"/records/{record_id}", done="edit" if changed else "")


HQ_PAGES = (
    ConsolePage("/queues", queues_page, label="Queues"),
    ConsolePage("/records/{record_id}/duplicate", duplicate_page, ("POST",)),
    ConsolePage("/records/{record_id}/curate", curate_page, ("POST",)),
)
