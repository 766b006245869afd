"""FirmService: what a firm's own client does at any centre.

A firm holds no certificate: it reaches a site's open port (server-side TLS
with the network's CA, so it knows which centre it talks to) and signs every
call with its key (sync.auth). What it writes it signs itself, as versions;
the site checks them exactly as every other site will, countersigns as relay
(`Site.relay`) and syncs them like its own writes.

What a firm may read: its own records (requests, interests), the interests
sent to its requests, published offers that are live, and published requests
marked public.
"""

from __future__ import annotations

import grpc

from sync import auth
from sync.envelope import FirmKey, read_version, signatures_from_pb
from sync.errors import FieldViolation, InvalidInput, NotFound, VerificationFailed
from sync.site import Site
from sync.store import RecordRow
from techbridge.v1 import admin_pb2, firm_pb2, firm_pb2_grpc
from transfer.admin import PAGE_MAX, all_with_names, detail_view, is_live, record_view, with_names
from transfer.records import KINDS, kind_of


class FirmServicer(firm_pb2_grpc.FirmServiceServicer):
    def __init__(self, site: Site) -> None:
        self._site = site

    def _firm(self, context: grpc.ServicerContext, method: str) -> FirmKey:
        return auth.authenticate_firm(
            context.invocation_metadata(),
            f"/techbridge.v1.FirmService/{method}",
            self._site.firm_key,
            self._site.now_ms(),
        )

    def _visible(self, firm: FirmKey, row: RecordRow) -> bool:
        if row.origin == firm.firm_id:
            return True
        content = row.state.content
        if row.kind == "interest":
            target = str(content.value("to_record"))
            try:
                return self._site.record(target).origin == firm.firm_id
            except NotFound:
                return False
        if row.deleted:
            return False
        if row.kind == "listing":
            return is_live(content, self._site.now_ms())
        if row.kind == "request":
            return content.status == "published" and content.value("confidentiality") == "public"
        return False

    def Hello(self, request: firm_pb2.HelloRequest, context: grpc.ServicerContext) -> firm_pb2.HelloResponse:
        firm = self._firm(context, "Hello")
        name = self._site.record(firm.firm_id).title
        return firm_pb2.HelloResponse(site_id=self._site.site_id, firm_id=firm.firm_id, firm_name=name, home=firm.home)

    def Submit(self, request: firm_pb2.SubmitRequest, context: grpc.ServicerContext) -> firm_pb2.SubmitResponse:
        firm = self._firm(context, "Submit")
        if not request.HasField("envelope") or not request.envelope.body:
            raise InvalidInput([FieldViolation("envelope", "required: a version the firm signed")])
        try:
            version = read_version(request.envelope.body, signatures_from_pb(request.envelope), KINDS)
        except VerificationFailed as exc:
            raise InvalidInput([FieldViolation("envelope.body", str(exc))]) from exc
        if version.author != firm.firm_id:
            raise InvalidInput([FieldViolation("envelope.body", "names another author than the calling firm")])
        relayed = self._site.relay(version)
        view = detail_view(self._site.record_detail(relayed.record_id), self._site.now_ms())
        return firm_pb2.SubmitResponse(record=with_names(self._site, view))

    def GetRecord(
        self, request: firm_pb2.FirmGetRecordRequest, context: grpc.ServicerContext
    ) -> firm_pb2.FirmGetRecordResponse:
        firm = self._firm(context, "GetRecord")
        if not request.id:
            raise InvalidInput([FieldViolation("id", "required")])
        row = self._site.record(request.id)
        if not self._visible(firm, row):
            raise NotFound(f"no record with id {request.id} that this firm may see")
        view = with_names(self._site, detail_view(self._site.record_detail(request.id), self._site.now_ms()))
        view.private_note = ""
        return firm_pb2.FirmGetRecordResponse(record=view)

    def ListRecords(
        self, request: firm_pb2.FirmListRecordsRequest, context: grpc.ServicerContext
    ) -> firm_pb2.FirmListRecordsResponse:
        firm = self._firm(context, "ListRecords")
        if request.kind:
            kind_of(request.kind)
        size = min(request.page_size or 100, PAGE_MAX)
        out = firm_pb2.FirmListRecordsResponse()
        after = request.page_token
        now = self._site.now_ms()
        views: list[admin_pb2.RecordView] = []
        more = True
        while more and len(views) < size:
            rows = self._site.records(
                origin=firm.firm_id if request.mine else None, limit=PAGE_MAX, after_id=after, kind=request.kind or None
            )
            more = len(rows) == PAGE_MAX
            for row in rows:
                after = row.record_id
                if row.kind != "firm" and self._visible(firm, row):
                    views.append(record_view(row, now))
                    if len(views) == size:
                        out.next_page_token = row.record_id
                        break
        out.records.extend(all_with_names(self._site, views))
        return out
        return out
