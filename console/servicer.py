"""The StaffService: the site's own CLI manages the console's accounts (console/staff.py).

Thin: decode, call the account function, encode; errors map to status codes at the server
boundary (sync.server) like every other service, and the admin credential guards it."""

from __future__ import annotations

import grpc

from console.staff import CODE_VALID_S, StaffAccount, add_staff, disable_staff, list_staff, reset_staff
from sync.site import Site
from techbridge.v1 import staff_pb2, staff_pb2_grpc


def staff_view(a: StaffAccount) -> staff_pb2.StaffView:
    return staff_pb2.StaffView(
        staff_id=a.staff_id,
        name=a.name,
        role=a.role,
        disabled=a.disabled,
        has_password=a.has_password,
        created_at_ms=a.created_at_ms,
        last_login_ms=a.last_login_ms,
        language=a.language,
    )


class StaffServicer(staff_pb2_grpc.StaffServiceServicer):
    def __init__(self, site: Site) -> None:
        self._site = site

    def AddStaff(self, request: staff_pb2.AddStaffRequest, context: grpc.ServicerContext) -> staff_pb2.AddStaffResponse:
        now = self._site.now_ms()
        account, code = add_staff(
            self._site.store,
            request.name,
            request.role,
            at_hub=self._site.is_hub,
            now_ms=now,
            language=request.language or "en",
        )
        return staff_pb2.AddStaffResponse(
            staff=staff_view(account), code=code, code_expires_ms=now + CODE_VALID_S * 1000
        )

    def ListStaff(
        self, request: staff_pb2.ListStaffRequest, context: grpc.ServicerContext
    ) -> staff_pb2.ListStaffResponse:
        return staff_pb2.ListStaffResponse(staff=[staff_view(a) for a in list_staff(self._site.store)])

    def DisableStaff(
        self, request: staff_pb2.DisableStaffRequest, context: grpc.ServicerContext
    ) -> staff_pb2.StaffView:
        return staff_view(disable_staff(self._site.store, request.name))

    def ResetStaff(
        self, request: staff_pb2.ResetStaffRequest, context: grpc.ServicerContext
    ) -> staff_pb2.ResetStaffResponse:
        now = self._site.now_ms()
        code = reset_staff(self._site.store, request.name, now_ms=now)
        return staff_pb2.ResetStaffResponse(code=code, code_expires_ms=now + CODE_VALID_S * 1000)


def add_to_server(site: Site, server: grpc.Server) -> str:
    """Serve the StaffService for `site`; returns its full name."""
    staff_pb2_grpc.add_StaffServiceServicer_to_server(StaffServicer(site), server)
    return staff_pb2.DESCRIPTOR.services_by_name["StaffService"].full_name
