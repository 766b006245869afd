"""AdminService: what a site's own staff do through the CLI, on hub and node alike.

Thin: decode the request, call the site, encode the answer. Errors are
mapped to statuses by sync.server.ServiceBoundary.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

import grpc
from google.protobuf.message import Message

from sync.codec import action_from_pb, content_to_pb, values_from_pb
from sync.envelope import Version
from sync.errors import FieldViolation, InvalidInput, ResourceExhausted
from sync.fulltext import Snippet
from sync.kinds import Content, FieldValue, Kind, make_content
from sync.merge import Candidate, RecordState
from sync.registry import Registry
from sync.site import RecordDetail, Site
from sync.store import RecordRow, SearchResult
from techbridge.v1 import admin_pb2, admin_pb2_grpc, records_pb2
from transfer.alerts import Alert, add_alert, list_alerts, list_hits, remove_alert
from transfer.duplicates import candidates, pending_pairs
from transfer.matching import suggestions
from transfer.records import KINDS, kind_of
from transfer.report import Report, parse_period, period_between, report
from transfer.search import FACET_NAMES, search_query

log = logging.getLogger(__name__)
PAGE_MAX = 1000
# Records one AddRecords call creates at most (and one ImportRecords message carries).
ADD_MANY_MAX = 1000
# What one ImportRecords call takes at most: records, and their bytes (the site holds
# them, checked and signed, until the stream ends).
IMPORT_MAX = 20_000
IMPORT_BYTES_MAX = 64 * 1024 * 1024


def values_pb(content: Content) -> records_pb2.RecordValues:
    out = records_pb2.RecordValues()
    getattr(out, content.kind).CopyFrom(content_to_pb(content))
    return out


def values_of(values: records_pb2.RecordValues, what: str = "values") -> tuple[Kind, Message]:
    """The kind and message a RecordValues holds, or InvalidInput naming the field."""
    slot = values.WhichOneof("values")
    if slot is None:
        raise InvalidInput([FieldViolation(what, "required: the record's values (listing, request, firm or interest)")])
    return kind_of(slot), getattr(values, slot)


def _new_records(
    records: Sequence[admin_pb2.AddRecordRequest], first: int = 0
) -> tuple[list[tuple[Content, tuple[str, ...], str]], list[FieldViolation]]:
    """The (content, audience, private note) of each new record whose values read, and the
    problems of the others, named `records[first + i].field`."""
    items = []
    problems: list[FieldViolation] = []
    for i, one in enumerate(records, start=first):
        try:
            kind, msg = values_of(one.values)
            status = one.status or sorted(kind.initial, key=lambda s: kind.rank[s])[-1]
            content = make_content(kind, dict(values_from_pb(kind, msg)), status)
        except InvalidInput as exc:
            problems.extend(FieldViolation(f"records[{i}].{v.field}", v.description) for v in exc.violations)
            continue
        items.append((content, tuple(one.audience), one.private_note))
    return items, problems


def is_live(content: Content, now_ms: int) -> bool:
    """Published, and (for an offer) within its validity, here and now."""
    if content.status != "published":
        return False
    until = content.as_dict().get("valid_until_ms", 0)
    return not (isinstance(until, int) and until and until <= now_ms)


def _json(value: FieldValue) -> str:
    return json.dumps(list(value) if isinstance(value, tuple) else value, ensure_ascii=False)


def candidate_view(c: Candidate) -> admin_pb2.ConflictCandidate:
    return admin_pb2.ConflictCandidate(
        version_id=c.version_id,
        author=c.author,
        hlc_wall_ms=c.hlc.wall_ms,
        hlc_counter=c.hlc.counter,
        value_json=_json(c.value),
    )


def conflict_views(record_id: str, state: RecordState) -> list[admin_pb2.ConflictView]:
    return [
        admin_pb2.ConflictView(
            id=f"{record_id}/{c.field}",
            record_id=record_id,
            field=c.field,
            winner=candidate_view(c.winner),
            others=[candidate_view(o) for o in c.others],
            rule=c.rule,
        )
        for c in state.conflicts
    ]


def with_names(site: Site, view: admin_pb2.RecordView) -> admin_pb2.RecordView:
    return all_with_names(site, [view])[0]


def all_with_names(site: Site, views: list[admin_pb2.RecordView]) -> list[admin_pb2.RecordView]:
    """Fill in the names staff and firms read (a firm owner's name, what an interest is
    about), with one lookup for the whole page."""
    names = site.titles([x for v in views for x in (v.provenance.origin, v.values.interest.to_record)])
    for view in views:
        view.origin_name = names.get(view.provenance.origin, "")
        if view.kind == "interest":
            view.about = names.get(view.values.interest.to_record, "")
    return views


def alert_view(alert: Alert) -> admin_pb2.AlertView:
    return admin_pb2.AlertView(
        id=alert.alert_id,
        name=alert.name,
        text=alert.text,
        filters_json=json.dumps(alert.filters, ensure_ascii=False, sort_keys=True),
        created_at_ms=alert.created_at_ms,
    )


def page_offset(token: str) -> int:
    """The offset a search page token stands for (the token is the offset, in decimal)."""
    if not token:
        return 0
    if not token.isdigit() or len(token) > 9:
        raise InvalidInput([FieldViolation("page_token", "not a token this search returned")])
    return int(token)


def snippet_view(snippet: Snippet | None) -> admin_pb2.Snippet | None:
    if snippet is None:
        return None
    return admin_pb2.Snippet(
        field=snippet.field, parts=[admin_pb2.SnippetPart(text=t, match=m) for t, m in snippet.parts]
    )


def search_response(site: Site, result: SearchResult, now_ms: int, offset: int) -> admin_pb2.SearchRecordsResponse:
    """A search's answer as the admin API gives it: the page's records and hits, the total,
    and the facets under the names staff read (the owning site is the "centre")."""
    views = all_with_names(site, [record_view(h.record, now_ms) for h in result.hits])
    end = offset + len(result.hits)
    return admin_pb2.SearchRecordsResponse(
        records=views,
        next_page_token=str(end) if end < result.total and result.hits else "",
        hits=[
            admin_pb2.SearchHit(id=h.record.record_id, score=h.score, snippet=snippet_view(h.snippet))
            for h in result.hits
        ],
        total=result.total,
        facets=[
            admin_pb2.Facet(
                name=FACET_NAMES.get(name, name),
                values=[admin_pb2.FacetValue(value=v, count=n) for v, n in counts],
            )
            for name, counts in result.facets.items()
        ],
    )


def record_view(row: RecordRow, now_ms: int, note: str = "") -> admin_pb2.RecordView:
    state = row.state
    return admin_pb2.RecordView(
        id=row.record_id,
        kind=row.kind,
        status=state.content.status,
        values=values_pb(state.content),
        extended=state.extended,
        live=is_live(state.content, now_ms),
        private_note=note,
        updated_at_ms=row.updated_at_ms,
        version_count=row.version_count,
        provenance=admin_pb2.Provenance(
            origin=row.origin, version_id=row.head_version_id, verified=row.verified, key_id=row.key_id
        ),
        heads=list(state.heads),
        conflicts=conflict_views(row.record_id, state),
        deleted=state.deleted,
        waiting=len(state.waiting),
        audience=list(state.audience),
    )


def detail_view(detail: RecordDetail, now_ms: int) -> admin_pb2.RecordView:
    v, head, state = detail.version, detail.head, detail.state
    return admin_pb2.RecordView(
        id=v.record_id,
        kind=v.kind,
        status=state.content.status,
        values=values_pb(state.content),
        extended=state.extended,
        live=is_live(state.content, now_ms),
        private_note=detail.private_note,
        record_nonce=v.record_nonce,
        updated_at_ms=head.record.updated_at_ms,
        version_count=head.record.version_count,
        provenance=admin_pb2.Provenance(
            origin=v.origin,
            author=v.author,
            key_id=v.author_key_id,
            verified=detail.verified,
            version_id=v.version_id,
            received_from=head.received_from or "",
            received_at_ms=head.received_at_ms,
            hlc_wall_ms=v.hlc.wall_ms,
            hlc_counter=v.hlc.counter,
            parents=list(v.parents),
            relay=detail.relay,
        ),
        heads=list(state.heads),
        conflicts=conflict_views(v.record_id, state),
        deleted=state.deleted,
        waiting=len(state.waiting),
        audience=list(state.audience),
    )


def _value_from_json(site: Site, conflict_id: str, text: str) -> FieldValue:
    record_id, _, name = conflict_id.rpartition("/")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raw = text  # a bare word is a string
    kind = KINDS[site.record(record_id).kind] if record_id else KINDS["listing"]
    default = kind.defaults.get(name)
    if isinstance(default, tuple) and isinstance(raw, list) and all(isinstance(w, str) for w in raw):
        return tuple(raw)
    if isinstance(default, bool) and isinstance(raw, bool):
        return raw
    if (
        isinstance(default, int)
        and not isinstance(default, bool)
        and isinstance(raw, int)
        and not isinstance(raw, bool)
    ):
        return raw
    if isinstance(default, str) and isinstance(raw, str):
        return raw
    if name == "status" and isinstance(raw, str):
        return raw
    raise InvalidInput([FieldViolation("value", f"not a valid value for {name or 'the field'}: {text!r}")])


class StatusSource(Protocol):
    """How a site reports its peers; the hub and the node each say it their way."""

    def peer_statuses(self) -> list[admin_pb2.PeerStatus]: ...


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(
        self,
        site: Site,
        status: StatusSource,
        rotate: Callable[[], tuple[str, str, Registry, int]],
    ) -> None:
        self._site = site
        self._status = status
        self._rotate = rotate
        self._importing = threading.Lock()

    def RotateKey(
        self, request: admin_pb2.RotateOwnKeyRequest, context: grpc.ServicerContext
    ) -> admin_pb2.RotateOwnKeyResponse:
        old, new, registry, at = self._rotate()
        return admin_pb2.RotateOwnKeyResponse(
            old_key_id=old, new_key_id=new, registry_version=registry.version, at_ms=at
        )

    def ListQuarantine(
        self, request: admin_pb2.ListQuarantineRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListQuarantineResponse:
        out = admin_pb2.ListQuarantineResponse()
        for vid, rid, key_id, reason in self._site.quarantined():
            out.entries.add(version_id=vid, record_id=rid, key_id=key_id, reason=reason, kind="held")
        for vid, peer, reason in self._site.rejections(limit=PAGE_MAX):
            if "revoked" in reason:  # refused on receipt because of a revocation (envelope.KeyRevoked)
                out.entries.add(version_id=vid, reason=reason, kind="refused", peer=peer)
        return out

    def GetDigest(
        self, request: admin_pb2.GetDigestRequest, context: grpc.ServicerContext
    ) -> admin_pb2.GetDigestResponse:
        held = self._site.digest()
        out = admin_pb2.GetDigestResponse(site_id=self._site.site_id, versions=held.versions, digest=held.digest)
        for o in held.origins:
            out.origins.add(origin=o.origin, versions=o.versions, digest=o.digest)
        return out

    def GetReport(
        self, request: admin_pb2.GetReportRequest, context: grpc.ServicerContext
    ) -> admin_pb2.GetReportResponse:
        if request.period and (request.from_date or request.to_date):
            raise InvalidInput([FieldViolation("period", "give a period or from_date and to_date, not both")])
        if request.from_date or request.to_date:
            period = period_between(request.from_date, request.to_date)
        else:
            period = parse_period(request.period or str(datetime.fromtimestamp(self._site.now_ms() / 1000, UTC).year))
        return report_to_pb(
            report(self._site, period, tuple(request.centres), explain=request.explain, recount=request.recount)
        )

    def _view(self, record_id: str) -> admin_pb2.RecordView:
        return with_names(self._site, detail_view(self._site.record_detail(record_id), self._site.now_ms()))

    def AddRecord(
        self, request: admin_pb2.AddRecordRequest, context: grpc.ServicerContext
    ) -> admin_pb2.AddRecordResponse:
        kind, msg = values_of(request.values)
        status = request.status or sorted(kind.initial, key=lambda s: kind.rank[s])[-1]
        if status not in kind.initial:
            initial = " or ".join(sorted(kind.initial))
            raise InvalidInput(
                [FieldViolation("status", f"a new {kind.name} is {initial}; later steps are lifecycle changes")]
            )
        fields = dict(values_from_pb(kind, msg))
        content = make_content(kind, fields, status)
        version = self._site.add_record(content, tuple(request.audience), private_note=request.private_note)
        detail = self._site.written_detail(version, request.private_note)
        return admin_pb2.AddRecordResponse(record=with_names(self._site, detail_view(detail, self._site.now_ms())))

    def AddRecords(
        self, request: admin_pb2.AddRecordsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.AddRecordsResponse:
        if len(request.records) > ADD_MANY_MAX:
            raise InvalidInput([FieldViolation("records", f"at most {ADD_MANY_MAX} (got {len(request.records)})")])
        items, problems = _new_records(request.records)
        if problems:
            raise InvalidInput(problems)
        return admin_pb2.AddRecordsResponse(ids=[v.record_id for v in self._site.add_records(items)])

    def ImportRecords(
        self, request_iterator: Iterator[admin_pb2.ImportRecordsRequest], context: grpc.ServicerContext
    ) -> Iterator[admin_pb2.ImportRecordsResponse]:
        """Check each message's records as it arrives, and sign them while every record so
        far is good (the client reads and sends the next meanwhile). Only a stream that
        ended with its last message marked, every record good and the caller still there is
        stored: every transaction of ADD_MANY_MAX first, whether or not the caller stays,
        then each one's ids. What is signed and never stored is dropped. One import at a
        time at a site: each holds its records until its stream ends."""
        if not self._importing.acquire(blocking=False):
            raise ResourceExhausted("another import is running at this site; send this one when it has finished")
        try:
            yield from self._import(request_iterator, context)
        finally:
            self._importing.release()

    def _import(
        self, request_iterator: Iterator[admin_pb2.ImportRecordsRequest], context: grpc.ServicerContext
    ) -> Iterator[admin_pb2.ImportRecordsResponse]:
        signed: list[Version] = []
        notes: dict[str, str] = {}
        problems: list[FieldViolation] = []
        count = size = 0
        check_only = ended = False
        for request in request_iterator:
            if ended:
                raise InvalidInput([FieldViolation("last", "set on a message that was not the stream's last")])
            ended = request.last
            check_only = check_only or request.check_only
            count += len(request.records)
            size += request.ByteSize()
            if len(request.records) > ADD_MANY_MAX:
                raise InvalidInput(
                    [FieldViolation("records", f"at most {ADD_MANY_MAX} a message (got {len(request.records)})")]
                )
            if count > IMPORT_MAX or size > IMPORT_BYTES_MAX:
                raise InvalidInput(
                    [FieldViolation("records", f"at most {IMPORT_MAX} records and {IMPORT_BYTES_MAX >> 20} MiB a call")]
                )
            first = count - len(request.records)
            items, bad = _new_records(request.records, first)
            good, broken = self._site.checked_creates(items, first)
            problems.extend(bad)
            problems.extend(broken)
            if not problems and not check_only:
                versions, their_notes = self._site.signed_creates(good)
                signed.extend(versions)
                notes.update(their_notes)
        if not context.is_active():
            log.info("an import's caller left before its stream ended (%s records): nothing stored", count)
            return
        if not ended:  # grpc may also end a cancelled caller's stream as if it had finished
            raise InvalidInput(
                [FieldViolation("last", "the stream ended without its last message marked: nothing stored")]
            )
        if problems:
            raise InvalidInput(problems)  # the server names those that fit in a status
        if check_only:
            yield admin_pb2.ImportRecordsResponse(checked=count)
            return
        stored: list[list[str]] = []
        failure: Exception | None = None
        for start in range(0, len(signed), ADD_MANY_MAX):
            batch = signed[start : start + ADD_MANY_MAX]
            try:
                self._site.store_signed_creates(
                    batch, {v.record_id: notes[v.record_id] for v in batch if v.record_id in notes}
                )
            except Exception as exc:  # what was stored before it is answered, then the error
                failure = exc
                break
            stored.append([v.record_id for v in batch])
        for ids in stored:
            yield admin_pb2.ImportRecordsResponse(ids=ids)
        if failure is not None:
            raise failure

    def ListRecords(
        self, request: admin_pb2.ListRecordsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListRecordsResponse:
        if request.kind:
            kind_of(request.kind)
        size = min(request.page_size or 100, PAGE_MAX)
        rows = self._site.records(
            origin=request.origin or None,
            limit=size + 1,
            after_id=request.page_token,
            include_deleted=request.include_deleted,
            kind=request.kind or None,
            status=request.status or None,
        )
        more = len(rows) > size
        rows = rows[:size]
        now = self._site.now_ms()
        return admin_pb2.ListRecordsResponse(
            records=all_with_names(self._site, [record_view(r, now) for r in rows]),
            next_page_token=rows[-1].record_id if more else "",
        )

    def SearchRecords(
        self, request: admin_pb2.SearchRecordsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.SearchRecordsResponse:
        size = min(request.page_size or 20, PAGE_MAX)
        offset = page_offset(request.page_token)
        now = self._site.now_ms()
        query = search_query(
            request.text,
            kind=request.kind,
            status=request.status,
            keywords=request.keywords,
            countries=request.countries,
            stage=request.stage,
            partnership=request.partnership,
            origin=request.origin,
            live_at_ms=now if request.live_only else None,
            sort="newest" if request.sort == admin_pb2.SEARCH_SORT_NEWEST else "relevance",
            limit=size,
            offset=offset,
        )
        result = self._site.search(query, with_facets=request.facets)
        return search_response(self._site, result, now, offset)

    def MatchRecord(
        self, request: admin_pb2.MatchRecordRequest, context: grpc.ServicerContext
    ) -> admin_pb2.MatchRecordResponse:
        if not request.id:
            raise InvalidInput([FieldViolation("id", "required")])
        found = suggestions(self._site, request.id, limit=request.limit or 10, published_only=request.published_only)
        now = self._site.now_ms()
        views = all_with_names(self._site, [record_view(s.record, now) for s in found])
        return admin_pb2.MatchRecordResponse(
            of=self._view(request.id),
            suggestions=[
                admin_pb2.Suggestion(
                    record=view,
                    score=s.score.score,
                    reasons=[
                        admin_pb2.MatchReason(part=r.part, detail=r.detail, points=r.points) for r in s.score.reasons
                    ],
                )
                for view, s in zip(views, found, strict=True)
            ],
        )

    def ListDuplicates(
        self, request: admin_pb2.ListDuplicatesRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListDuplicatesResponse:
        pairs = candidates(self._site, request.id) if request.id else pending_pairs(self._site)
        now = self._site.now_ms()
        views = all_with_names(self._site, [record_view(r, now) for p in pairs for r in (p.record, p.other)])
        return admin_pb2.ListDuplicatesResponse(
            pairs=[
                admin_pb2.DuplicatePair(
                    record=views[2 * i],
                    other=views[2 * i + 1],
                    similarity=p.similarity.score,
                    reasons=p.similarity.reasons,
                )
                for i, p in enumerate(pairs)
            ]
        )

    def AddAlert(self, request: admin_pb2.AddAlertRequest, context: grpc.ServicerContext) -> admin_pb2.AlertView:
        q = request.search
        alert = add_alert(
            self._site,
            request.name,
            q.text,
            kind=q.kind,
            status=q.status,
            keywords=list(q.keywords),
            countries=list(q.countries),
            stage=q.stage,
            partnership=q.partnership,
            origin=q.origin,
        )
        return alert_view(alert)

    def ListAlerts(
        self, request: admin_pb2.ListAlertsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListAlertsResponse:
        return admin_pb2.ListAlertsResponse(alerts=[alert_view(a) for a in list_alerts(self._site)])

    def RemoveAlert(
        self, request: admin_pb2.RemoveAlertRequest, context: grpc.ServicerContext
    ) -> admin_pb2.RemoveAlertResponse:
        if not request.id:
            raise InvalidInput([FieldViolation("id", "required")])
        remove_alert(self._site, request.id)
        return admin_pb2.RemoveAlertResponse()

    def ListAlertHits(
        self, request: admin_pb2.ListAlertHitsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListAlertHitsResponse:
        hits = list_hits(self._site)
        now = self._site.now_ms()
        held = {r.record_id: r for r in self._site.rows([h.record_id for h in hits])}
        views = all_with_names(self._site, [record_view(held[h.record_id], now) for h in hits if h.record_id in held])
        by_id = {v.id: v for v in views}
        return admin_pb2.ListAlertHitsResponse(
            hits=[
                admin_pb2.AlertHitView(
                    alert_id=h.alert_id,
                    alert_name=h.alert_name,
                    record=by_id[h.record_id],
                    hit_at_ms=h.hit_at_ms,
                    delivered_at_ms=h.delivered_at_ms,
                    attempts=h.attempts,
                )
                for h in hits
                if h.record_id in by_id
            ]
        )

    def GetRecord(
        self, request: admin_pb2.GetRecordRequest, context: grpc.ServicerContext
    ) -> admin_pb2.GetRecordResponse:
        if not request.id:
            raise InvalidInput([FieldViolation("id", "required")])
        return admin_pb2.GetRecordResponse(record=self._view(request.id))

    def EditRecord(
        self, request: admin_pb2.EditRecordRequest, context: grpc.ServicerContext
    ) -> admin_pb2.EditRecordResponse:
        if not request.id:
            raise InvalidInput([FieldViolation("id", "required")])
        kind = KINDS[self._site.record(request.id).kind]
        msg = getattr(request.values, kind.name)
        version = self._site.edit_record(request.id, values_from_pb(kind, msg, request.fields))
        return admin_pb2.EditRecordResponse(record=self._view(version.record_id))

    def StepRecord(
        self, request: admin_pb2.StepRecordRequest, context: grpc.ServicerContext
    ) -> admin_pb2.StepRecordResponse:
        action = action_from_pb(request.action)
        if action is None:
            raise InvalidInput([FieldViolation("action", "required")])
        if not request.id:
            raise InvalidInput([FieldViolation("id", "required")])
        kind = KINDS[self._site.record(request.id).kind]
        fields = values_from_pb(kind, getattr(request.values, kind.name), request.fields) if request.fields else ()
        version = self._site.step_record(request.id, action, fields)
        return admin_pb2.StepRecordResponse(record=self._view(version.record_id))

    def ListConflicts(
        self, request: admin_pb2.ListConflictsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListConflictsResponse:
        out = admin_pb2.ListConflictsResponse()
        if request.record_id:
            row = self._site.record(request.record_id)
            out.conflicts.extend(conflict_views(row.record_id, row.state))
            return out
        after = ""
        while True:  # every conflicted record, a bounded page at a time
            rows = self._site.records(
                origin=None, limit=PAGE_MAX, after_id=after, only_conflicted=True, include_deleted=True
            )
            for row in rows:
                out.conflicts.extend(conflict_views(row.record_id, row.state))
            if len(rows) < PAGE_MAX:
                return out
            after = rows[-1].record_id

    def ResolveConflict(
        self, request: admin_pb2.ResolveConflictRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ResolveConflictResponse:
        choice = request.WhichOneof("choice")
        value: FieldValue | None = None
        if choice == "value_json":
            value = _value_from_json(self._site, request.conflict_id, request.value_json)
        version = self._site.resolve_conflict(
            request.conflict_id, take=request.take_version if choice == "take_version" else None, value=value
        )
        return admin_pb2.ResolveConflictResponse(record=self._view(version.record_id))

    def GetSyncStatus(
        self, request: admin_pb2.GetSyncStatusRequest, context: grpc.ServicerContext
    ) -> admin_pb2.GetSyncStatusResponse:
        versions, rejected = self._site.counts()
        return admin_pb2.GetSyncStatusResponse(
            site_id=self._site.site_id,
            log_head=self._site.log_head(),
            versions=versions,
            rejected=rejected,
            peers=self._status.peer_statuses(),
        )


def report_to_pb(done: Report) -> admin_pb2.GetReportResponse:
    out = admin_pb2.GetReportResponse(
        site=done.site,
        period=done.period.label,
        start_ms=done.period.start_ms,
        end_ms=done.period.end_ms,
        explain=done.explain,
        explained=[
            admin_pb2.CountedVersion(
                centre=c.centre, record_id=c.record_id, version_id=c.version_id, stamp_ms=c.stamp_ms
            )
            for c in done.explained
        ],
    )
    for c in done.centres:
        one = out.centres.add(centre=c.centre, name=c.name)
        for name, count in c.counts.items():
            target = c.targets.get(name)
            one.figures.add(name=name, count=count, target=target or 0, has_target=target is not None)
        for figure, cells in c.breakdowns.items():
            for (by, value), count in sorted(cells.items(), key=lambda kv: (kv[0][0], -kv[1], kv[0][1])):
                one.breakdowns.add(figure=figure, by=by, value=value, count=count)
        for before, after, rate in c.conversion():
            one.funnel.add(from_figure=before, to_figure=after, rate=rate or 0.0, has_rate=rate is not None)
        if c.median_days_to_introduction is not None:
            one.median_days_to_introduction = c.median_days_to_introduction
            one.has_median_to_introduction = True
        if c.median_days_to_agreement is not None:
            one.median_days_to_agreement = c.median_days_to_agreement
            one.has_median_to_agreement = True
    return out
