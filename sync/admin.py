"""AdminService: what a site's own staff do through the CLI, on hub and node alike.

Thin: decode the request, call the site, encode the answer. Errors are
mapped to statuses by sync.server.ServiceBoundary.
"""

from __future__ import annotations

from typing import Protocol

import grpc

from sync.codec import listing_from_pb, listing_to_pb
from sync.errors import FieldViolation, InvalidInput
from sync.records import ListingStatus
from sync.site import ListingDetail, Site
from sync.store.store import RecordRow
from techbridge.v1 import admin_pb2, admin_pb2_grpc, records_pb2

PAGE_MAX = 1000
ADDABLE_STATUSES = (
    records_pb2.LISTING_STATUS_UNSPECIFIED,
    records_pb2.LISTING_STATUS_DRAFT,
    records_pb2.LISTING_STATUS_SUBMITTED,
)


def record_view(row: RecordRow) -> admin_pb2.ListingView:
    return admin_pb2.ListingView(
        id=row.record_id,
        listing=records_pb2.Listing(title=row.title, status=listing_to_pb_status(row.status)),
        updated_at_ms=row.updated_at_ms,
        version_count=row.version_count,
        provenance=admin_pb2.Provenance(
            origin=row.origin, version_id=row.head_version_id, verified=row.verified, key_id=row.key_id
        ),
    )


def listing_to_pb_status(status: str) -> records_pb2.ListingStatus.ValueType:
    return listing_to_pb_status_map[ListingStatus(status)]


listing_to_pb_status_map = {s: records_pb2.ListingStatus.Value(f"LISTING_STATUS_{s.name}") for s in ListingStatus}


def detail_view(detail: ListingDetail) -> admin_pb2.ListingView:
    v, head = detail.version, detail.head
    assert v.listing is not None
    return admin_pb2.ListingView(
        id=v.record_id,
        listing=listing_to_pb(v.listing),
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
    )


class StatusSource(Protocol):
    """How a site reports its peers; the hub and the node each say it their way."""

    def peer_statuses(self) -> list[admin_pb2.PeerStatus]: ...


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    def __init__(self, site: Site, status: StatusSource) -> None:
        self._site = site
        self._status = status

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
        version = self._site.add_listing(content)
        return admin_pb2.AddListingResponse(listing=detail_view(self._site.listing_detail(version.record_id)))

    def ListListings(
        self, request: admin_pb2.ListListingsRequest, context: grpc.ServicerContext
    ) -> admin_pb2.ListListingsResponse:
        size = min(request.page_size or 100, PAGE_MAX)
        rows = self._site.store.list_records(origin=request.origin or None, limit=size + 1, after_id=request.page_token)
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
