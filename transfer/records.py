"""Record kinds as domain values, and the rules their fields and lifecycles keep.

Four kinds of record travel the network, each described once here by a
`Kind`:

listing (technology offer)
    Owned by a centre (its `origin`). Content fields only by that centre,
    curation fields (tags, featured, duplicate_of, not_duplicate_of) only by HQ. Lifecycle draft → submitted
    → validated (HQ) → published → expired / withdrawn → archived; a
    published or expired offer can be extended once (EXTEND sets a new
    `valid_until_ms`).
request (enterprise request)
    Owned and signed by a firm (its `origin` is the firm's id); the centre it
    came through countersigns as relay and is named in `via`. The audience is
    the centres it is addressed to (plus `via`). Same lifecycle as listings,
    validated and published by HQ.
firm
    Owned by the firm's home centre, which registered it; it carries the
    firm's public key (fixed at creation), so any site can check what the
    firm signs. Its id is the firm's id. Personal data (contacts) never enters
    a signed body: it stays at the home centre. Lifecycle active → erased.
interest (expression of interest)
    Sent by a firm (signed by it, relayed by a centre) or by a centre on a
    client's behalf, to the centre that handles the target record
    (`to_owner`). sent → forwarded → accepted / declined (reason) →
    introduced → negotiating → agreed / closed. The steps after "sent" are the
    handling centre's (the "party"); the sender may close, negotiate and
    agree too. Introduction needs the sender's signed consent
    (`sender_consent`) among its ancestors, and reveals the owner's identity
    (`owner_identity`), which for an anonymous offer leaves the owning centre
    only then.

A record's status is never edited: it follows from lifecycle steps
(`Action`), each legal only from certain statuses (`Kind.transitions`), taken
only by certain parties (`Kind.rights`). A step may carry the few fields that
belong to it (`Kind.step_fields`: a decline's reason, an extension's date).

Validation collects every problem at once, one `FieldViolation` per problem,
so the CLI can print one line each and the server can answer INVALID_ARGUMENT
naming every field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import StrEnum

from sync.errors import FieldViolation, InvalidInput
from sync.kinds import (
    CENTRE,
    HUB,
    OWNER,
    PARTY,
    Action,
    Content,
    FieldValue,
    Kind,
    KindSet,
    Rule,
    Target,
    check_values,
    make_content,
)
from techbridge.v1 import records_pb2
from transfer import taxonomy
from transfer.search import SEARCHABLE, search_doc

TITLE_MAX = 256
SUMMARY_MAX = 500
DESCRIPTION_MAX = 4000
ADVANTAGES_MAX = 2000
SOUGHT_MAX = 2000
KEYWORDS_MAX = 5
KEYWORD_MAX = 64
TAGS_MAX = 10
CODES_MAX = 10
COUNTRIES_MAX = 30
TRANSLATIONS_MAX = 10
NAME_MAX = 200

# A translation of an offer's text fields: (language, title, summary, description).
Translation = tuple[str, str, str, str]


class ListingStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    VALIDATED = "validated"
    PUBLISHED = "published"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    ARCHIVED = "archived"


class FirmStatus(StrEnum):
    ACTIVE = "active"
    ERASED = "erased"


class InterestStatus(StrEnum):
    SENT = "sent"
    FORWARDED = "forwarded"
    ACCEPTED = "accepted"
    INTRODUCED = "introduced"
    NEGOTIATING = "negotiating"
    AGREED = "agreed"
    DECLINED = "declined"
    CLOSED = "closed"


class SuggestionStatus(StrEnum):
    """In rank order: a suggestion acted on stays acted on whatever else happened at once."""

    SUGGESTED = "suggested"
    WITHDRAWN = "withdrawn"
    DISMISSED = "dismissed"
    TAKEN = "taken"


S = ListingStatus
I = InterestStatus  # noqa: E741

_LISTING_TRANSITIONS: dict[Action, tuple[frozenset[str], str]] = {
    Action.SUBMIT: (frozenset({S.DRAFT}), S.SUBMITTED),
    Action.VALIDATE: (frozenset({S.SUBMITTED}), S.VALIDATED),
    Action.PUBLISH: (frozenset({S.VALIDATED}), S.PUBLISHED),
    Action.WITHDRAW: (frozenset({S.DRAFT, S.SUBMITTED, S.VALIDATED, S.PUBLISHED, S.EXPIRED}), S.WITHDRAWN),
    Action.EXPIRE: (frozenset({S.PUBLISHED}), S.EXPIRED),
    Action.ARCHIVE: (frozenset({S.WITHDRAWN, S.EXPIRED}), S.ARCHIVED),
}

STAGES = ("concept", "under-development", "lab-tested", "available-for-demonstration", "on-the-market")
IPR_STATUSES = ("none", "secret-know-how", "applied", "granted")
PARTNERSHIPS = (
    "licence",
    "joint-venture",
    "rnd-cooperation",
    "technical-cooperation",
    "commercial-with-technical-assistance",
    "investment",
    "acquisition",
)
PARTNER_TYPES = ("industry", "sme", "start-up", "university", "research-institute", "public-body", "investor")
SIZES = ("micro", "small", "medium", "large")
REQUEST_TYPES = ("technology", "partner", "rnd-call", "investment", "establishment")
CONFIDENTIALITY = ("public", "restricted", "confidential")
INSTRUMENTS = ("equity", "loan", "grant", "convertible", "other")
FACILITIES = ("rnd-centre", "office", "incubator")
DISMISS_REASONS = ("not-relevant", "client-not-interested", "already-known", "duplicate", "other")
REASONS_MAX = 12
REASON_MAX = 300
DECLINE_REASONS = ("not-relevant", "no-capacity", "already-partnered", "terms-unacceptable", "incomplete", "other")

COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
_LANGUAGE_RE = re.compile(r"^[a-z]{2}$")
_IPC_RE = re.compile(r"^[A-H][0-9]{2}[A-Z]( ?[0-9]{1,4}/[0-9]{2,6})?$")
_NACE_RE = re.compile(r"^[A-U]([0-9]{2}(\.[0-9]{1,2})?)?$")
_SITE_RE = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
_HEX_KEY_RE = re.compile(r"^[0-9a-f]{64}$")
_RECORD_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def is_record_id(text: str) -> bool:
    """Whether `text` has the shape of a record id (a firm's id, where a centre's is a name)."""
    return bool(_RECORD_ID_RE.match(text))


# ---- field rules ----------------------------------------------------------------


def _text(limit: int, required: bool = False) -> Rule:
    def rule(v: FieldValue) -> list[str]:
        assert isinstance(v, str)
        if required and not v.strip():
            return ["required, must not be empty"]
        if len(v) > limit:
            return [f"at most {limit} characters (got {len(v)})"]
        return []

    return rule


def _choice(options: tuple[str, ...], required: bool = False) -> Rule:
    def rule(v: FieldValue) -> list[str]:
        if v == "" and not required:
            return []
        if v not in options:
            return [f"must be one of: {', '.join(options)} (got {v!r})"]
        return []

    return rule


def _int_range(lo: int, hi: int, what: str) -> Rule:
    def rule(v: FieldValue) -> list[str]:
        assert isinstance(v, int)
        if v != 0 and not lo <= v <= hi:
            return [f"must be {what} (got {v})"]
        return []

    return rule


def _non_negative(v: FieldValue) -> list[str]:
    assert isinstance(v, int)
    return ["must not be negative"] if v < 0 else []


def _words(limit: int, noun: str, item: Rule | None = None, at_least: int = 0, distinct: bool = True) -> Rule:
    def rule(v: FieldValue) -> list[str]:
        assert isinstance(v, tuple)
        out: list[str] = []
        if len(v) > limit:
            out.append(f"at most {limit} {noun} (got {len(v)})")
        elif v and len(v) < at_least:
            out.append(f"at least {at_least} {noun} (got {len(v)})")
        elif distinct and len(set(v)) != len(v):
            out.append(f"{noun} must be distinct")
        for i, w in enumerate(v):
            assert isinstance(w, str)
            if item is not None:
                out.extend(f"[{i}] {p}" for p in item(w))
            elif not w.strip() or len(w) > KEYWORD_MAX:
                out.append(f"[{i}] must be 1 to {KEYWORD_MAX} characters")
        return out

    return rule


def _matches(regex: re.Pattern[str], what: str) -> Rule:
    def rule(v: FieldValue) -> list[str]:
        return [] if isinstance(v, str) and regex.match(v) else [f"{v!r} is not {what}"]

    return rule


def _translations(v: FieldValue) -> list[str]:
    assert isinstance(v, tuple)
    out: list[str] = []
    if len(v) > TRANSLATIONS_MAX:
        out.append(f"at most {TRANSLATIONS_MAX} translations (got {len(v)})")
    seen: set[str] = set()
    for i, t in enumerate(v):
        assert isinstance(t, tuple)
        lang, title, summary, description = t
        if not _LANGUAGE_RE.match(lang):
            out.append(f"[{i}] language {lang!r} is not an ISO 639-1 code (two lowercase letters)")
        elif lang in seen:
            out.append(f"[{i}] language {lang} is translated twice")
        seen.add(lang)
        for name, text, limit in (
            ("title", title, TITLE_MAX),
            ("summary", summary, SUMMARY_MAX),
            ("description", description, DESCRIPTION_MAX),
        ):
            if len(text) > limit:
                out.append(f"[{i}] {name} at most {limit} characters (got {len(text)})")
    return out


# ---- kinds ------------------------------------------------------------------------


_KEYWORD_FIELDS = ("keywords", "market_keywords", "sectors")


def _taxonomy_companions(defaults: Mapping[str, FieldValue]) -> dict[str, tuple[str, FieldValue]]:
    """Keyword fields name the taxonomy version they are terms of: the current one unless given."""
    return {n: ("taxonomy", taxonomy.CURRENT) for n in _KEYWORD_FIELDS if n in defaults}


def _taxonomy_rules(values: Mapping[str, FieldValue], names: Iterable[str]) -> list[FieldViolation]:
    """Keywords must be terms of the taxonomy version the change names."""
    names = set(names)
    problems: list[FieldViolation] = []
    keyed = [n for n in _KEYWORD_FIELDS if n in names and values.get(n)]
    if not keyed:
        return problems
    version = values.get("taxonomy")
    if "taxonomy" not in names or not isinstance(version, str) or version not in taxonomy.VERSIONS:
        known = ", ".join(sorted(taxonomy.VERSIONS))
        problems.append(FieldViolation("taxonomy", f"keywords need a known taxonomy version ({known})"))
        return problems
    for name in keyed:
        terms = taxonomy.technology_terms(version) if name == "keywords" else taxonomy.market_terms(version)
        assert terms is not None
        words = values[name]
        assert isinstance(words, tuple)
        for i, w in enumerate(words):
            if w not in terms:
                problems.append(FieldViolation(f"{name}[{i}]", f"{w!r} is not a term of taxonomy {version}"))
    return problems


_LISTING_DEFAULTS: dict[str, FieldValue] = {
    "title": "",
    "summary": "",
    "description": "",
    "keywords": (),
    "trl": 0,
    "advantages": "",
    "stage": "",
    "ipr_status": "",
    "patents": (),
    "market_keywords": (),
    "taxonomy": "",
    "ipc_codes": (),
    "nace_codes": (),
    "partnership_types": (),
    "partner_types": (),
    "partner_sizes": (),
    "partner_role": "",
    "target_countries": (),
    "languages": (),
    "translations": (),
    "anonymous": False,
    "client_name": "",
    "valid_until_ms": 0,
    "tags": (),
    "featured": False,
    "duplicate_of": "",
    "not_duplicate_of": (),
}
# HQ's curation of an offer: tags, featured, and the duplicates it settled (the offer this
# one lists again; offers it was found not to duplicate).
_LISTING_CURATION = frozenset({"tags", "featured", "duplicate_of", "not_duplicate_of"})


def _listing_whole(values: Mapping[str, FieldValue]) -> list[FieldViolation]:
    if values.get("anonymous") and values.get("client_name"):
        return [FieldViolation("client_name", "an anonymous offer does not name its client (it stays at the centre)")]
    if values.get("patents") and values.get("ipr_status") not in ("applied", "granted"):
        return [FieldViolation("patents", 'patent references need ipr_status "applied" or "granted"')]
    return []


LISTING = Kind(
    name="listing",
    values_message=records_pb2.Listing,
    defaults=_LISTING_DEFAULTS,
    rules={
        "title": _text(TITLE_MAX, required=True),
        "summary": _text(SUMMARY_MAX),
        "description": _text(DESCRIPTION_MAX),
        "advantages": _text(ADVANTAGES_MAX),
        "stage": _choice(STAGES),
        "trl": _int_range(1, 9, "an integer from 1 to 9"),
        "ipr_status": _choice(IPR_STATUSES),
        "patents": _words(CODES_MAX, "patent references"),
        "keywords": _words(KEYWORDS_MAX, "keywords"),
        "market_keywords": _words(KEYWORDS_MAX, "keywords"),
        "taxonomy": _text(32),
        "ipc_codes": _words(CODES_MAX, "codes", _matches(_IPC_RE, "an IPC/CPC code (e.g. C02F 1/44)")),
        "nace_codes": _words(CODES_MAX, "codes", _matches(_NACE_RE, "a NACE code (e.g. C26.1)")),
        "partnership_types": _words(3, "partnership types", _choice(PARTNERSHIPS, required=True), at_least=1),
        "partner_types": _words(len(PARTNER_TYPES), "partner types", _choice(PARTNER_TYPES, required=True)),
        "partner_sizes": _words(len(SIZES), "sizes", _choice(SIZES, required=True)),
        "partner_role": _text(ADVANTAGES_MAX),
        "target_countries": _words(COUNTRIES_MAX, "countries", _matches(COUNTRY_RE, "an ISO 3166-1 alpha-2 code")),
        "languages": _words(TRANSLATIONS_MAX, "languages", _matches(_LANGUAGE_RE, "an ISO 639-1 code")),
        "translations": _translations,
        "client_name": _text(NAME_MAX),
        "valid_until_ms": _non_negative,
        "tags": _words(TAGS_MAX, "tags"),
        "duplicate_of": _text(64),
        "not_duplicate_of": _words(100, "offers"),
    },
    owner_fields=frozenset(_LISTING_DEFAULTS) - _LISTING_CURATION,
    hub_fields=_LISTING_CURATION,
    fixed=frozenset({"valid_until_ms"}),
    statuses=tuple(ListingStatus),
    initial=frozenset({S.DRAFT, S.SUBMITTED}),
    transitions={**_LISTING_TRANSITIONS, Action.EXTEND: (frozenset({S.PUBLISHED, S.EXPIRED}), S.PUBLISHED)},
    rights={
        Action.CREATE: frozenset({OWNER}),
        Action.VALIDATE: frozenset({HUB}),
        **{
            a: frozenset({OWNER, HUB})
            for a in (
                Action.SUBMIT,
                Action.PUBLISH,
                Action.WITHDRAW,
                Action.EXPIRE,
                Action.ARCHIVE,
                Action.EXTEND,
                Action.DELETE,
                Action.UNDELETE,
                Action.SETTLE,
            )
        },
    },
    required=("title",),
    step_fields={Action.EXTEND: ("valid_until_ms",)},
    once_steps=frozenset({Action.EXTEND}),
    composite_fields={"translations": ("language", "title", "summary", "description")},
    whole=_listing_whole,
    set_rules=_taxonomy_rules,
    companions=_taxonomy_companions(_LISTING_DEFAULTS),
    lifetime_field="valid_until_ms",
)

_REQUEST_DEFAULTS: dict[str, FieldValue] = {
    "title": "",
    "request_type": "",
    "sought": "",
    "sectors": (),
    "keywords": (),
    "taxonomy": "",
    "target_countries": (),
    "deadline_ms": 0,
    "confidentiality": "restricted",
    "via": "",
    "programme": "",
    "call_id": "",
    "call_deadline_ms": 0,
    "amount_min": 0,
    "amount_max": 0,
    "instrument": "",
    "use_of_funds": "",
    "facility": "",
    "at_centre": "",
    "area_m2": 0,
    "headcount": 0,
    "start_ms": 0,
    "duration_months": 0,
    "budget": 0,
    "tags": (),
    "featured": False,
}


def _request_whole(values: Mapping[str, FieldValue]) -> list[FieldViolation]:
    kind = values.get("request_type")
    out: list[FieldViolation] = []

    def need(*names: str) -> None:
        for n in names:
            if not values.get(n):
                out.append(FieldViolation(n, f"required for a {kind} request"))

    if kind == "rnd-call":
        need("programme", "call_id")
    elif kind == "investment":
        need("amount_max", "instrument")
        lo, hi = values.get("amount_min", 0), values.get("amount_max", 0)
        if isinstance(lo, int) and isinstance(hi, int) and hi and lo > hi:
            out.append(FieldViolation("amount_min", f"greater than amount_max ({lo} > {hi})"))
    elif kind == "establishment":
        need("facility", "at_centre")
    return out


REQUEST = Kind(
    name="request",
    values_message=records_pb2.Request,
    defaults=_REQUEST_DEFAULTS,
    rules={
        "title": _text(TITLE_MAX, required=True),
        "request_type": _choice(REQUEST_TYPES, required=True),
        "sought": _text(SOUGHT_MAX, required=True),
        "sectors": _words(KEYWORDS_MAX, "sectors"),
        "keywords": _words(KEYWORDS_MAX, "keywords"),
        "taxonomy": _text(32),
        "target_countries": _words(COUNTRIES_MAX, "countries", _matches(COUNTRY_RE, "an ISO 3166-1 alpha-2 code")),
        "deadline_ms": _non_negative,
        "confidentiality": _choice(CONFIDENTIALITY, required=True),
        "via": _matches(_SITE_RE, "a centre id"),
        "programme": _text(NAME_MAX),
        "call_id": _text(100),
        "call_deadline_ms": _non_negative,
        "amount_min": _non_negative,
        "amount_max": _non_negative,
        "instrument": _choice(INSTRUMENTS),
        "use_of_funds": _text(SOUGHT_MAX),
        "facility": _choice(FACILITIES),
        "at_centre": lambda v: [] if v == "" else _matches(_SITE_RE, "a centre id")(v),
        "area_m2": _non_negative,
        "headcount": _non_negative,
        "start_ms": _non_negative,
        "duration_months": _non_negative,
        "budget": _non_negative,
        "tags": _words(TAGS_MAX, "tags"),
    },
    owner_fields=frozenset(_REQUEST_DEFAULTS) - {"tags", "featured"},
    hub_fields=frozenset({"tags", "featured"}),
    statuses=tuple(ListingStatus),
    initial=frozenset({S.DRAFT, S.SUBMITTED}),
    transitions=_LISTING_TRANSITIONS,
    rights={
        Action.CREATE: frozenset({OWNER}),
        Action.SUBMIT: frozenset({OWNER}),
        Action.VALIDATE: frozenset({HUB}),
        Action.PUBLISH: frozenset({HUB}),
        **{
            a: frozenset({OWNER, HUB})
            for a in (Action.WITHDRAW, Action.EXPIRE, Action.ARCHIVE, Action.DELETE, Action.UNDELETE, Action.SETTLE)
        },
    },
    fixed=frozenset({"via"}),
    required=("title", "request_type", "sought", "via"),
    owned_by=frozenset({"firm"}),
    handler_field="via",
    relay_field="via",
    centre_fields=("via",),
    whole=_request_whole,
    set_rules=_taxonomy_rules,
    companions=_taxonomy_companions(_REQUEST_DEFAULTS),
)

_FIRM_DEFAULTS: dict[str, FieldValue] = {
    "name": "",
    "country": "",
    "size": "",
    "sectors": (),
    "taxonomy": "",
    "public_key": "",
}

FIRM = Kind(
    name="firm",
    values_message=records_pb2.Firm,
    defaults=_FIRM_DEFAULTS,
    rules={
        "name": _text(NAME_MAX, required=True),
        "country": _matches(COUNTRY_RE, "an ISO 3166-1 alpha-2 code"),
        "size": _choice(SIZES),
        "sectors": _words(KEYWORDS_MAX, "sectors"),
        "taxonomy": _text(32),
        "public_key": _matches(_HEX_KEY_RE, "a raw Ed25519 public key in hex (64 characters)"),
    },
    owner_fields=frozenset(_FIRM_DEFAULTS),
    statuses=tuple(FirmStatus),
    initial=frozenset({FirmStatus.ACTIVE}),
    transitions={Action.ERASE: (frozenset({FirmStatus.ACTIVE}), FirmStatus.ERASED)},
    rights={
        Action.CREATE: frozenset({OWNER}),
        Action.ERASE: frozenset({OWNER, HUB}),
        Action.SETTLE: frozenset({OWNER, HUB}),
    },
    fixed=frozenset({"public_key"}),
    required=("name", "country", "public_key"),
    title_field="name",
    set_rules=_taxonomy_rules,
    companions=_taxonomy_companions(_FIRM_DEFAULTS),
)

_INTEREST_DEFAULTS: dict[str, FieldValue] = {
    "to_record": "",
    "to_kind": "",
    "to_owner": "",
    "from_centre": "",
    "message": "",
    "sender_consent": False,
    "decline_reason": "",
    "owner_identity": "",
}

INTEREST = Kind(
    name="interest",
    values_message=records_pb2.Interest,
    defaults=_INTEREST_DEFAULTS,
    rules={
        "to_record": _matches(_RECORD_ID_RE, "a record id"),
        "to_kind": _choice(("listing", "request"), required=True),
        "to_owner": _matches(_SITE_RE, "a centre id"),
        "from_centre": _matches(_SITE_RE, "a centre id"),
        "message": _text(SOUGHT_MAX),
        "decline_reason": _choice(DECLINE_REASONS, required=True),
        "owner_identity": _text(ADVANTAGES_MAX),
    },
    owner_fields=frozenset({"to_record", "to_kind", "to_owner", "from_centre", "message", "sender_consent"}),
    statuses=tuple(InterestStatus),
    initial=frozenset({I.SENT}),
    transitions={
        Action.FORWARD: (frozenset({I.SENT}), I.FORWARDED),
        Action.ACCEPT: (frozenset({I.SENT, I.FORWARDED}), I.ACCEPTED),
        Action.DECLINE: (frozenset({I.SENT, I.FORWARDED}), I.DECLINED),
        Action.INTRODUCE: (frozenset({I.ACCEPTED}), I.INTRODUCED),
        Action.NEGOTIATE: (frozenset({I.INTRODUCED}), I.NEGOTIATING),
        Action.AGREE: (frozenset({I.NEGOTIATING}), I.AGREED),
        Action.CLOSE: (frozenset({I.SENT, I.FORWARDED, I.ACCEPTED, I.INTRODUCED, I.NEGOTIATING}), I.CLOSED),
    },
    rights={
        Action.CREATE: frozenset({OWNER}),
        Action.FORWARD: frozenset({PARTY}),
        Action.ACCEPT: frozenset({PARTY}),
        Action.DECLINE: frozenset({PARTY}),
        Action.INTRODUCE: frozenset({PARTY}),
        Action.NEGOTIATE: frozenset({OWNER, PARTY}),
        Action.AGREE: frozenset({OWNER, PARTY}),
        Action.CLOSE: frozenset({OWNER, PARTY}),
        Action.SETTLE: frozenset({OWNER, PARTY}),
    },
    fixed=frozenset({"to_record", "to_kind", "to_owner", "from_centre"}),
    required=("to_record", "to_kind", "to_owner", "from_centre"),
    step_fields={Action.DECLINE: ("decline_reason",), Action.INTRODUCE: ("owner_identity",)},
    title_field="to_record",
    owned_by=frozenset({CENTRE, "firm"}),
    handler_field="to_owner",
    relay_field="from_centre",
    centre_fields=("to_owner", "from_centre"),
    consent_steps=frozenset({Action.INTRODUCE}),
    consent_field="sender_consent",
    target=Target("to_record", "to_kind", "to_owner", ("listing", "request"), "an offer or a request"),
)

_SUGGESTION_DEFAULTS: dict[str, FieldValue] = {
    "request": "",
    "offer": "",
    "for_centre": "",
    "offer_owner": "",
    "title": "",
    "score": 0,
    "reasons": (),
    "dismiss_reason": "",
    "interest": "",
}

SUGGESTION = Kind(
    name="suggestion",
    values_message=records_pb2.OfferSuggestion,
    defaults=_SUGGESTION_DEFAULTS,
    rules={
        "request": _matches(_RECORD_ID_RE, "a record id"),
        "offer": _matches(_RECORD_ID_RE, "a record id"),
        "for_centre": _matches(_SITE_RE, "a centre id"),
        "offer_owner": _matches(_SITE_RE, "a centre id"),
        "title": _text(2 * TITLE_MAX + 8),
        "score": _int_range(1, 1000, "a score in thousandths, 1 to 1000"),
        "reasons": _words(REASONS_MAX, "reasons", item=_text(REASON_MAX, required=True), distinct=False),
        "dismiss_reason": _choice(DISMISS_REASONS, required=True),
        "interest": _matches(_RECORD_ID_RE, "a record id"),
    },
    owner_fields=frozenset({"request", "offer", "for_centre", "offer_owner", "title", "score", "reasons"}),
    statuses=tuple(SuggestionStatus),
    initial=frozenset({SuggestionStatus.SUGGESTED}),
    transitions={
        Action.DECLINE: (frozenset({SuggestionStatus.SUGGESTED}), SuggestionStatus.DISMISSED),
        Action.ACCEPT: (frozenset({SuggestionStatus.SUGGESTED}), SuggestionStatus.TAKEN),
        Action.WITHDRAW: (frozenset({SuggestionStatus.SUGGESTED}), SuggestionStatus.WITHDRAWN),
    },
    rights={
        Action.CREATE: frozenset({HUB}),
        # The centre handling the request; HQ too (it owns the suggestion, and handles
        # the requests filed through it).
        Action.DECLINE: frozenset({PARTY, OWNER}),
        Action.ACCEPT: frozenset({PARTY, OWNER}),
        Action.WITHDRAW: frozenset({OWNER}),
        Action.SETTLE: frozenset({OWNER, PARTY}),
    },
    fixed=frozenset({"request", "offer", "for_centre", "offer_owner"}),
    required=("request", "offer", "for_centre", "offer_owner"),
    step_fields={Action.DECLINE: ("dismiss_reason",), Action.ACCEPT: ("interest",)},
    handler_field="for_centre",
    centre_fields=("for_centre", "offer_owner"),
)

EVENT_TYPES = ("matchmaking", "roadshow", "delegation", "seminar", "exhibition", "other")
ITEMS_MAX = 500
_EVENT_DEFAULTS: dict[str, FieldValue] = {
    "title": "",
    "event_type": "",
    "held_on_ms": 0,
    "place": "",
    "firms": (),
    "firm_count": 0,
    "interests": (),
}

EVENT = Kind(
    name="event",
    values_message=records_pb2.Event,
    defaults=_EVENT_DEFAULTS,
    rules={
        "title": _text(TITLE_MAX, required=True),
        "event_type": _choice(EVENT_TYPES, required=True),
        "held_on_ms": _non_negative,
        "place": _text(NAME_MAX),
        "firms": _words(ITEMS_MAX, "firms", item=_matches(_RECORD_ID_RE, "a firm's record id")),
        "firm_count": _non_negative,
        "interests": _words(ITEMS_MAX, "interests", item=_matches(_RECORD_ID_RE, "an interest's record id")),
    },
    owner_fields=frozenset(_EVENT_DEFAULTS),
    statuses=("held",),
    initial=frozenset({"held"}),
    transitions={},
    rights={
        Action.CREATE: frozenset({OWNER}),
        Action.DELETE: frozenset({OWNER}),
        Action.UNDELETE: frozenset({OWNER}),
        Action.SETTLE: frozenset({OWNER}),
    },
    required=("title", "event_type", "held_on_ms"),
)

# A target record's figures (transfer/report.py maps each to the figure it is set for).
TARGET_FIELDS = (
    "offers_published",
    "requests_received",
    "firms_served",
    "interests_sent",
    "introductions",
    "agreements",
    "events",
)
_TARGET_DEFAULTS: dict[str, FieldValue] = {"centre": "", "year": 0, **dict.fromkeys(TARGET_FIELDS, 0)}

TARGET = Kind(
    name="target",
    values_message=records_pb2.Target,
    defaults=_TARGET_DEFAULTS,
    rules={
        "centre": _matches(_SITE_RE, "a centre id"),
        "year": _int_range(2000, 2100, "a year from 2000 to 2100"),
        **dict.fromkeys(TARGET_FIELDS, _non_negative),
    },
    owner_fields=frozenset(_TARGET_DEFAULTS),
    statuses=("set",),
    initial=frozenset({"set"}),
    transitions={},
    rights={
        Action.CREATE: frozenset({HUB}),
        Action.DELETE: frozenset({OWNER}),
        Action.UNDELETE: frozenset({OWNER}),
        Action.SETTLE: frozenset({OWNER}),
    },
    fixed=frozenset({"centre", "year"}),
    required=("centre", "year"),
    title_field="centre",
    centre_fields=("centre",),
)

# The kinds, as the core takes them: a firm's record registers the key it signs
# with; offers and requests are what the search covers.
KINDS = KindSet(
    (LISTING, REQUEST, FIRM, INTEREST, SUGGESTION, EVENT, TARGET),
    key_kind=FIRM.name,
    key_field="public_key",
    searchable=tuple(sorted(SEARCHABLE)),
    search_doc=search_doc,
)


def kind_of(name: str) -> Kind:
    """The kind called `name`, or InvalidInput naming the kinds there are."""
    return KINDS.get(name)


# ---- values -----------------------------------------------------------------------


def listing_content(status: str = ListingStatus.SUBMITTED, **values: FieldValue) -> Content:
    """A listing's content from keyword arguments (lists given as tuples)."""
    return make_content(LISTING, values, status)


# ---- reading input ------------------------------------------------------------------


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def audience_from_json(data: object, name: str = "audience") -> tuple[str, ...]:
    """The optional audience of a record file: "network" (default), "hq", or a list of centre ids."""
    raw = data.get(name) if isinstance(data, dict) else None
    if raw is None or raw == "network":
        return ()
    if raw == "hq":
        return ("hq",)
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        raise InvalidInput([FieldViolation(name, 'must be "network", "hq" or a list of centre ids')])
    bad = [a for a in raw if not _SITE_RE.match(a)]
    if bad:
        raise InvalidInput([FieldViolation(name, f"not centre ids: {', '.join(bad)}")])
    return tuple(sorted(set(raw)))


def _type_name(default: FieldValue) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "an integer"
    if isinstance(default, tuple):
        return "a list of strings"
    return "a string"


def field_from_json(name: str, raw: object, default: FieldValue) -> tuple[FieldValue | None, list[FieldViolation]]:
    """One field's JSON value converted to its type, or the problems with it."""
    if name == "translations":
        if not isinstance(raw, list):
            return None, [FieldViolation(name, "must be a list of {language, title, summary, description} objects")]
        out: list[Translation] = []
        problems: list[FieldViolation] = []
        keys = ("language", "title", "summary", "description")
        for i, t in enumerate(raw):
            if not isinstance(t, dict) or set(t) - set(keys) or not all(isinstance(t.get(k, ""), str) for k in keys):
                problems.append(FieldViolation(f"{name}[{i}]", f"must be an object with string fields {keys}"))
                continue
            out.append(
                (
                    str(t.get("language", "")),
                    str(t.get("title", "")),
                    str(t.get("summary", "")),
                    str(t.get("description", "")),
                )
            )
        return (tuple(out) if not problems else None), problems
    if isinstance(default, bool):
        if not isinstance(raw, bool):
            return None, [FieldViolation(name, f"must be true or false (got {type(raw).__name__})")]
        return raw, []
    if isinstance(default, int):
        if isinstance(raw, bool) or not isinstance(raw, int):
            what = "an integer from 1 to 9" if name == "trl" else "an integer"
            return None, [FieldViolation(name, f"must be {what} (got {type(raw).__name__})")]
        return raw, []
    if isinstance(default, tuple):
        if not isinstance(raw, list):
            return None, [FieldViolation(name, f"must be a list of strings (got {type(raw).__name__})")]
        bad = [i for i, w in enumerate(raw) if not isinstance(w, str) or not _is_unicode(w)]
        if bad:
            return None, [FieldViolation(f"{name}[{i}]", "must be a string of valid Unicode text") for i in bad]
        return tuple(raw), []
    if not isinstance(raw, str):
        return None, [FieldViolation(name, f"must be a string (got {type(raw).__name__})")]
    if not _is_unicode(raw):
        return None, [FieldViolation(name, "is not valid Unicode text (lone surrogate)")]
    return raw, []


def content_from_json(
    kind: Kind,
    data: object,
    *,
    extra: frozenset[str] = frozenset({"audience", "status"}),
    writable: frozenset[str] | None = None,
) -> Content:
    """Build a new record from a parsed JSON document, checking types and rules.

    `extra` names keys the caller reads itself (the audience); "status" may
    name one of the kind's initial statuses. Only `writable` fields (default:
    the owner's) may be given. Every problem is reported at once.
    """
    if not isinstance(data, dict):
        raise InvalidInput([FieldViolation("(document)", "must be a JSON object")])
    allowed = kind.owner_fields if writable is None else writable
    problems: list[FieldViolation] = []
    values: dict[str, FieldValue] = {}
    order = {n: i for i, n in enumerate(kind.defaults)}
    for name in sorted(data, key=lambda n: (order.get(n, -1), str(n))):
        if name in extra:
            continue
        if name not in kind.defaults:
            problems.append(FieldViolation(str(name), "unknown field"))
        elif name not in allowed:
            problems.append(FieldViolation(str(name), "cannot be set here"))
        else:
            value, bad = field_from_json(name, data[name], kind.defaults[name])
            problems.extend(bad)
            if value is not None:
                values[name] = value
    for name in kind.required:
        if name in allowed and name not in data:
            problems.append(FieldViolation(name, "required field is missing"))
    status = sorted(kind.initial, key=lambda s: kind.rank[s])[-1]
    if "status" in extra and data.get("status") is not None:
        raw_status = data["status"]
        if raw_status not in kind.initial:
            options = " or ".join(f'"{s}"' for s in sorted(kind.initial))
            problems.append(FieldViolation("status", f"a new {kind.name} is {options}"))
        else:
            status = str(raw_status)
    if "audience" in extra:
        try:
            audience_from_json(data)
        except InvalidInput as exc:
            problems.extend(exc.violations)
    if (values.get("keywords") or values.get("market_keywords") or values.get("sectors")) and "taxonomy" not in values:
        values["taxonomy"] = taxonomy.CURRENT
    content = make_content(kind, values, status)
    # Rule problems of the fields whose type was right, after the type problems.
    named = {p.field.split("[")[0] for p in problems}
    full = content.as_dict()
    checked = [n for n in values if n not in named]
    problems.extend(check_values(kind, full, checked, whole=not problems))
    if problems:
        raise InvalidInput(problems)
    return content


def parse_field_value(name: str, text: str, kind: Kind = LISTING) -> FieldValue:
    """A value given on the command line as FIELD=TEXT, converted to the field's type."""
    if name not in kind.defaults:
        known = ", ".join(kind.field_names())
        raise InvalidInput([FieldViolation(name, f"unknown field (fields: {known})")])
    default = kind.defaults[name]
    if name == "translations":
        raise InvalidInput([FieldViolation(name, "set translations from a file (listing edit --file)")])
    if isinstance(default, tuple):
        return tuple(w.strip() for w in text.split(",") if w.strip())
    if isinstance(default, bool):
        if text.lower() in ("true", "yes", "1"):
            return True
        if text.lower() in ("false", "no", "0"):
            return False
        raise InvalidInput([FieldViolation(name, f"must be true or false (got {text!r})")])
    if isinstance(default, int):
        try:
            return int(text)
        except ValueError as exc:
            raise InvalidInput([FieldViolation(name, f"must be an integer (got {text!r})")]) from exc
    return text
