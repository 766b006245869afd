"""AdminService: what a site's own staff do through the CLI, on hub and node alike.

Thin: decode the request, call the site, encode the answer. Errors are
mapped to statuses by sync.server.ServiceBoundary.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Protocol

import grpc

from sync.codec import action_from_pb, fields_from_pb, listing_from_pb, listing_to_pb
from sync.errors import FieldViolation, InvalidInput
from sync.merge import Candidate, RecordState
from sync.records import FIELD_DEFAULTS, FieldValue, ListingStatus
from sync.registry import Registry
from sync.site import ListingDetail, Site
from sync.store.store import RecordRow
from techbridge.v1 import admin_pb2, admin_pb2_grpc, records_pb2

PAGE_MAX = 1000
ADDABLE_STATUSES = (
    records_pb2.LISTING_STATUS_UNSPECIFIED,
    records_pb2.LISTING_STATUS_DRAFT,
    records_pb2.LISTING_STATUS_SUBMITTED,
)


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


def record_view(row: RecordRow) -> admin_pb2.ListingView:
    state = row.state
    return admin_pb2.ListingView(
        id=row.record_id,
        listing=listing_to_pb(state.content),
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


def detail_view(detail: ListingDetail) -> admin_pb2.ListingView:
    v, head, state = detail.version, detail.head, detail.state
    return admin_pb2.ListingView(
        id=v.record_id,
        listing=listing_to_pb(state.content),
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
        ),
        heads=list(state.heads),
        conflicts=conflict_views(v.record_id, state),
        deleted=state.deleted,
        waiting=len(state.waiting),
        audience=list(state.audience),
    )


def _value_from_json(conflict_id: str, text: str) -> FieldValue:
    name = conflict_id.rpartition("/")[2]
    try:
        raw = json.loads(text)
    except json.JSONDecodeError:
        raw = text  # a bare word is a string
    default = FIELD_DEFAULTS.get(name)
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
        for vid, rid, key_id, reason in self._site.store.quarantined():
            out.entries.add(version_id=vid, record_id=rid, key_id=key_id, reason=reason, kind="held")
        for vid, peer, reason in self._site.store.rejections(limit=PAGE_MAX):
            if "revoked" in reason:  # refused on receipt because of a revocation (envelope.KeyRevoked)
                out.entries.add(version_id=vid, reason=reason, kind="refused", peer=peer)
        return out

    def AddListing(
        self, request: admin_pb2.AddListingRequest, context: grpc.ServicerContext
    ) -> admin_pb2.AddListingResponse:
        if not request.HasField("listing"):
            raise InvalidInput([FieldViolation("listing", "required")])
        if request.listing.status not in ADDABLE_STATUSES:
            raise InvalidInput(
                [
                    FieldViolation(
                        "listing.status", "a new listing is draft or submitted; later steps are lifecycle changes"
                    )
                ]
            )
        content = listing_from_pb(request.listing, default_status=ListingStatus.SUBMITTED)
        version = self._site.add_listing(content, tuple(request.audience))
        return admin_pb2.AddListingResponse(listing=detail_view(self._site.listing_detail(version.record_id)))

    def ListListings(
        self, request: admin_pb2.ListListingsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListListingsResponse:
        size = min(request.page_size or 100, PAGE_MAX)
        rows = self._site.store.list_records(
            origin=request.origin or None,
            limit=size + 1,
            after_id=request.page_token,
            include_deleted=request.include_deleted,
        )
        more = len(rows) > size
        rows = rows[:size]
        return admin_pb2.ListListingsResponse(
            listings=[record_view(r) for r in rows],
            next_page_token=rows[-1].record_id if more else "",
        )

    def GetListing(
        self, request: admin_pb2.GetListingRequest, context: grpc.ServicerContext
    ) -> admin_pb2.GetListingResponse:
        if not request.id:
            raise InvalidInput([FieldViolation("id", "required")])
        return admin_pb2.GetListingResponse(listing=detail_view(self._site.listing_detail(request.id)))

    def EditListing(
        self, request: admin_pb2.EditListingRequest, context: grpc.ServicerContext
    ) -> admin_pb2.EditListingResponse:
        version = self._site.edit_listing(request.id, fields_from_pb(request.fields, request.values))
        return admin_pb2.EditListingResponse(listing=detail_view(self._site.listing_detail(version.record_id)))

    def StepListing(
        self, request: admin_pb2.StepListingRequest, context: grpc.ServicerContext
    ) -> admin_pb2.StepListingResponse:
        action = action_from_pb(request.action)
        if action is None:
            raise InvalidInput([FieldViolation("action", "required")])
        version = self._site.step_listing(request.id, action)
        return admin_pb2.StepListingResponse(listing=detail_view(self._site.listing_detail(version.record_id)))

    def ListConflicts(
        self, request: admin_pb2.ListConflictsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListConflictsResponse:
        out = admin_pb2.ListConflictsResponse()
        if request.record_id:
            row = self._site.store.record(request.record_id)
            out.conflicts.extend(conflict_views(row.record_id, row.state))
            return out
        after = ""
        while True:  # every conflicted record, a bounded page at a time
            rows = self._site.store.list_records(
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
            value = _value_from_json(request.conflict_id, request.value_json)
        version = self._site.resolve_conflict(
            request.conflict_id, take=request.take_version if choice == "take_version" else None, value=value
        )
        return admin_pb2.ResolveConflictResponse(listing=detail_view(self._site.listing_detail(version.record_id)))

    def GetSyncStatus(
        self, request: admin_pb2.GetSyncStatusRequest, context: grpc.ServicerContext
    ) -> admin_pb2.GetSyncStatusResponse:
        versions, rejected = self._site.store.counts()
        return admin_pb2.GetSyncStatusResponse(
            site_id=self._site.site_id,
            log_head=self._site.store.log_head(),
            versions=versions,
            rejected=rejected,
            peers=self._status.peer_statuses(),
        )
