"""`techbridge interest`: expressions of interest in an offer or a request.

A firm, or staff for a client, sends one; the centre handling the offer or
request forwards, accepts, declines or takes it to negotiation and agreement,
and introduces the two sides once the sender has consented (a firm's signed
step); either side closes it.
"""

from __future__ import annotations

import argparse

from cli.common import CliError, Groups, firm_args, record_values, staff_data_arg, staff_or_firm_args, values_message
from cli.connect import CALL_TIMEOUT_S, Admin, as_firm, call, firm_client
from cli.records import cmd_record_show, cmd_record_step, firm_change, firm_list, list_records, step_record
from cli.render import report
from sync.kinds import Action, Change, FieldValue, create_change, make_content, next_status
from techbridge.v1 import admin_pb2, records_pb2
from transfer.records import INTEREST, SUGGESTION


def _interest_values(
    target: admin_pb2.RecordView, from_centre: str, message: str, consent: bool
) -> dict[str, FieldValue]:
    kind, values = record_values(target)
    if kind.name not in ("listing", "request"):
        raise CliError(f"error: --to: {target.id} is a {kind.name}; interest goes to an offer or a request")
    owner = target.provenance.origin if kind.name == "listing" else str(values["via"])
    return {
        "to_record": target.id,
        "to_kind": kind.name,
        "to_owner": owner,
        "from_centre": from_centre,
        "message": message,
        "sender_consent": consent,
    }


def _get(s: Admin, record_id: str, flag: str) -> admin_pb2.RecordView:
    return call(
        lambda: (
            s.admin.GetRecord(admin_pb2.GetRecordRequest(id=record_id), metadata=s.md, timeout=CALL_TIMEOUT_S).record
        ),
        flag,
    )


def cmd_interest_send(a: argparse.Namespace) -> None:
    if bool(a.to) == bool(a.suggestion):
        raise CliError("error: give --to RECORD_ID or --suggestion ID (one of them)")
    if a.suggestion:
        _send_from_suggestion(a)
        return
    if as_firm(a):
        with firm_client(a) as c:
            target = call(lambda: c.get(a.to), "--to")
            values = _interest_values(target, c.site_id, a.message or "", a.consent)
            content = make_content(INTEREST, values, "sent")
            audience = tuple(sorted({str(values["to_owner"]), c.site_id}))
            view = call(lambda: c.create("interest", create_change(content, audience)))
        report(view, a.json, "sent")
        return
    with Admin(a.data) as s:
        target = _get(s, a.to, "--to")
        view = _send(s, target, a.message or "", a.consent, a.client or "")
    report(view, a.json, "sent")


def _send(s: Admin, target: admin_pb2.RecordView, message: str, consent: bool, client: str) -> admin_pb2.RecordView:
    values = _interest_values(target, s.config.site_id, message, consent)
    staff_audience = sorted({str(values["to_owner"]), s.config.site_id})
    return call(
        lambda: (
            s.admin.AddRecord(
                admin_pb2.AddRecordRequest(
                    values=values_message(INTEREST, values),
                    audience=staff_audience,
                    status="sent",
                    private_note=client,
                ),
                metadata=s.md,
                timeout=CALL_TIMEOUT_S,
            ).record
        )
    )


def _send_from_suggestion(a: argparse.Namespace) -> None:
    """Staff act on HQ's suggestion: an interest in its offer for the request's client
    (the client this centre keeps for the request, unless --client), then the suggestion
    is stepped to taken, naming the interest."""
    if as_firm(a):
        raise CliError("error: --suggestion: suggestions are acted on by centre staff (--data)")
    with Admin(a.data) as s:
        suggestion = _get(s, a.suggestion, "--suggestion")
        kind, values = record_values(suggestion)
        if kind.name != "suggestion":
            raise CliError(f"error: --suggestion: {a.suggestion} is a {kind.name}, not a suggestion")
        if suggestion.status != "suggested":
            raise CliError(
                f"error: --suggestion: {a.suggestion} is {suggestion.status}; only a standing one is acted on"
            )
        offer = _get(s, str(values["offer"]), "--suggestion")
        request = _get(s, str(values["request"]), "--suggestion")
        _, request_values = record_values(request)
        message = a.message or f"HQ suggested this offer for the request: {request_values['title']}"
        view = _send(s, offer, message, a.consent, a.client or request.private_note or request.origin_name)
        call(
            lambda: s.admin.StepRecord(
                admin_pb2.StepRecordRequest(
                    id=a.suggestion,
                    action=records_pb2.LIFECYCLE_ACTION_ACCEPT,
                    fields=["interest"],
                    values=values_message(SUGGESTION, {"interest": view.id}),
                ),
                metadata=s.md,
                timeout=CALL_TIMEOUT_S,
            ),
            "--suggestion",
        )
    report(view, a.json, "sent")


def cmd_interest_decline(a: argparse.Namespace) -> None:
    step_record(a, "decline", [f"decline_reason={a.reason}"])


def cmd_interest_introduce(a: argparse.Namespace) -> None:
    identity = a.identity
    if not identity:
        with Admin(a.data) as s:
            interest = call(
                lambda: (
                    s.admin.GetRecord(admin_pb2.GetRecordRequest(id=a.id), metadata=s.md, timeout=CALL_TIMEOUT_S).record
                )
            )
            _, values = record_values(interest)
            target = call(
                lambda: (
                    s.admin.GetRecord(
                        admin_pb2.GetRecordRequest(id=str(values["to_record"])), metadata=s.md, timeout=CALL_TIMEOUT_S
                    ).record
                )
            )
            _, tvalues = record_values(target)
            identity = (
                target.private_note
                or str(tvalues.get("client_name") or "")
                or (f"the client of {s.config.site_id} (contact the centre)")
            )
    step_record(a, "introduce", [f"owner_identity={identity}"])


def cmd_interest_close(a: argparse.Namespace) -> None:
    if as_firm(a):

        def build(view: admin_pb2.RecordView) -> Change:
            return Change(action=Action.CLOSE, status=next_status(view.status, Action.CLOSE, INTEREST))

        firm_change(a, build)
        return
    step_record(a, "close", [])


def cmd_interest_consent(a: argparse.Namespace) -> None:
    firm_change(a, lambda view: Change((("sender_consent", True),)))


def cmd_interest_list(a: argparse.Namespace) -> None:
    if as_firm(a):
        firm_list(a, "interest")
    else:
        list_records(a, "interest")


def add_parser(groups: Groups) -> None:
    interest = groups.add_parser("interest", help="expressions of interest").add_subparsers(dest="cmd", required=True)
    sp = interest.add_parser("send", help="express interest in an offer or a request (a firm, or staff for a client)")
    staff_or_firm_args(sp)
    sp.add_argument("--to", default="", metavar="RECORD_ID", help="the offer or request")
    sp.add_argument(
        "--suggestion",
        default="",
        metavar="ID",
        help="staff: act on HQ's suggestion (its offer, for the request's client)",
    )
    sp.add_argument("--message", default="")
    sp.add_argument("--consent", action="store_true", help="consent to be introduced if the owner accepts")
    sp.add_argument("--client", default="", help="staff: the client it is sent for (kept only at this centre)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_send)
    for step, text in {
        "forward": "the handling centre passes it to its client",
        "accept": "the handling centre accepts it for its client",
        "negotiate": "both sides are negotiating",
        "agree": "an agreement was signed",
    }.items():
        sp = interest.add_parser(step, help=text)
        staff_data_arg(sp)
        sp.add_argument("id")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=cmd_record_step, step=step, set=None)
    sp = interest.add_parser("decline", help="the handling centre declines it, with a reason")
    staff_data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--reason", required=True, help="not-relevant, no-capacity, already-partnered, ...")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_decline)
    sp = interest.add_parser("introduce", help="reveal the owner's identity to the sender (it consented)")
    staff_data_arg(sp)
    sp.add_argument("id")
    sp.add_argument("--identity", default="", help="default: the client this centre keeps for the offer")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_introduce)
    sp = interest.add_parser("close", help="close without a deal (either side)")
    staff_or_firm_args(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_close)
    sp = interest.add_parser("consent", help="a firm consents to be introduced (signed)")
    firm_args(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_consent)
    sp = interest.add_parser("show", help="one interest (staff: --data; a firm: --node --firm-key)")
    staff_or_firm_args(sp)
    sp.add_argument("id")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_record_show)
    sp = interest.add_parser("list", help="interests held here (staff) or a firm's own")
    staff_or_firm_args(sp)
    sp.add_argument("--mine", action="store_true", help="a firm: only those it sent")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_interest_list)
