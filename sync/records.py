"""Record payloads as domain values, and the rules their fields keep.

A listing's fields are of two kinds: **content** (title, summary,
description, keywords, trl), written only by the centre that owns the
listing, and **curation** (tags, featured), written only by HQ. Its status is
never edited: it follows from lifecycle steps (`Action`), each legal only from
certain statuses (`TRANSITIONS`).

Validation collects every problem at once, one `FieldViolation` per problem,
so the CLI can print one line each and the server can answer INVALID_ARGUMENT
naming every field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sync.errors import FailedPrecondition, FieldViolation, InvalidInput

TITLE_MAX = 256
SUMMARY_MAX = 500
DESCRIPTION_MAX = 4000
KEYWORDS_MAX = 5
KEYWORD_MAX = 64
TAGS_MAX = 10


class ListingStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    VALIDATED = "validated"
    PUBLISHED = "published"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    ARCHIVED = "archived"


# Concurrent lifecycle steps merge to the highest rank: a withdrawal is not
# undone by a concurrent or stale publish.
STATUS_RANK = {
    ListingStatus.DRAFT: 0,
    ListingStatus.SUBMITTED: 1,
    ListingStatus.VALIDATED: 2,
    ListingStatus.PUBLISHED: 3,
    ListingStatus.EXPIRED: 4,
    ListingStatus.WITHDRAWN: 5,
    ListingStatus.ARCHIVED: 6,
}


class Action(StrEnum):
    CREATE = "create"
    SUBMIT = "submit"
    VALIDATE = "validate"
    PUBLISH = "publish"
    WITHDRAW = "withdraw"
    EXPIRE = "expire"
    ARCHIVE = "archive"
    DELETE = "delete"
    UNDELETE = "undelete"
    SETTLE = "settle"


# Steps that move the status: the statuses they start from and where they lead.
TRANSITIONS: dict[Action, tuple[frozenset[ListingStatus], ListingStatus]] = {
    Action.SUBMIT: (frozenset({ListingStatus.DRAFT}), ListingStatus.SUBMITTED),
    Action.VALIDATE: (frozenset({ListingStatus.SUBMITTED}), ListingStatus.VALIDATED),
    Action.PUBLISH: (frozenset({ListingStatus.VALIDATED}), ListingStatus.PUBLISHED),
    Action.WITHDRAW: (
        frozenset(
            {
                ListingStatus.DRAFT,
                ListingStatus.SUBMITTED,
                ListingStatus.VALIDATED,
                ListingStatus.PUBLISHED,
                ListingStatus.EXPIRED,
            }
        ),
        ListingStatus.WITHDRAWN,
    ),
    Action.EXPIRE: (frozenset({ListingStatus.PUBLISHED}), ListingStatus.EXPIRED),
    Action.ARCHIVE: (frozenset({ListingStatus.WITHDRAWN, ListingStatus.EXPIRED}), ListingStatus.ARCHIVED),
}
STATUS_ACTIONS = frozenset({Action.CREATE, Action.SETTLE, *TRANSITIONS})
TOMBSTONE_ACTIONS = frozenset({Action.DELETE, Action.UNDELETE})
HUB_ONLY_ACTIONS = frozenset({Action.VALIDATE})
CREATE_STATUSES = frozenset({ListingStatus.DRAFT, ListingStatus.SUBMITTED})
OWNER_ONLY_ACTIONS = frozenset({Action.CREATE})

FieldValue = str | int | bool | tuple[str, ...]
CONTENT_FIELDS = ("title", "summary", "description", "keywords", "trl")
CURATION_FIELDS = ("tags", "featured")
FIELD_DEFAULTS: dict[str, FieldValue] = {
    "title": "",
    "summary": "",
    "description": "",
    "keywords": (),
    "trl": 0,
    "tags": (),
    "featured": False,
}


@dataclass(frozen=True)
class ListingContent:
    title: str
    summary: str = ""
    description: str = ""
    keywords: tuple[str, ...] = ()
    trl: int = 0
    status: ListingStatus = ListingStatus.SUBMITTED
    tags: tuple[str, ...] = ()
    featured: bool = False

    def value(self, name: str) -> FieldValue:
        v: FieldValue = getattr(self, name)
        return v


@dataclass(frozen=True)
class ListingChange:
    """What one version does: set some fields, and/or take one lifecycle step."""

    fields: tuple[tuple[str, FieldValue], ...] = ()
    action: Action | None = None
    # The status a CREATE, a status step or a SETTLE leads to.
    status: ListingStatus | None = None
    # CREATE only: the centres that may receive the record; empty for the whole network.
    audience: tuple[str, ...] = ()
    _index: dict[str, FieldValue] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update(self.fields)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.fields)

    def get(self, name: str) -> FieldValue | None:
        return self._index.get(name)


def change_of(content: ListingContent, names: tuple[str, ...]) -> tuple[tuple[str, FieldValue], ...]:
    """The (name, value) pairs of `content` for `names`, in a stable order."""
    return tuple((n, content.value(n)) for n in sorted(set(names)))


def create_change(content: ListingContent, audience: tuple[str, ...] = ()) -> ListingChange:
    """The change that creates a listing: its title, its other non-empty content fields, its first status."""
    names = tuple(n for n in CONTENT_FIELDS if n == "title" or content.value(n) != FIELD_DEFAULTS[n])
    return ListingChange(change_of(content, names), Action.CREATE, content.status, tuple(sorted(set(audience))))


NETWORK = "*"


def audience_key(origin: str, audience: tuple[str, ...]) -> str:
    """How the store keeps an audience for filtering: "*" for the whole network, else
    ",a,b," with the owner included (HQ receives everything anyway)."""
    if not audience:
        return NETWORK
    return "," + ",".join(sorted({origin, *audience})) + ","


def next_status(current: ListingStatus, action: Action) -> ListingStatus:
    """Where a step leads from `current`, or FailedPrecondition if it may not be taken."""
    rule = TRANSITIONS.get(action)
    if rule is None:
        raise FailedPrecondition(f"{action.value} is not a status step")
    sources, target = rule
    if current not in sources:
        allowed = ", ".join(sorted(s.value for s in sources))
        raise FailedPrecondition(f"cannot {action.value} a listing that is {current.value} (only from: {allowed})")
    return target


_FILE_FIELDS = {"title", "summary", "description", "keywords", "trl", "audience", "status"}


def validate_listing(listing: ListingContent) -> None:
    """Raise InvalidInput naming every field that breaks a rule."""
    problems: list[FieldViolation] = []
    if not listing.title.strip():
        problems.append(FieldViolation("title", "required, must not be empty"))
    elif len(listing.title) > TITLE_MAX:
        problems.append(FieldViolation("title", f"at most {TITLE_MAX} characters (got {len(listing.title)})"))
    if len(listing.summary) > SUMMARY_MAX:
        problems.append(FieldViolation("summary", f"at most {SUMMARY_MAX} characters (got {len(listing.summary)})"))
    if len(listing.description) > DESCRIPTION_MAX:
        problems.append(
            FieldViolation("description", f"at most {DESCRIPTION_MAX} characters (got {len(listing.description)})")
        )
    if len(listing.keywords) > KEYWORDS_MAX:
        problems.append(FieldViolation("keywords", f"at most {KEYWORDS_MAX} keywords (got {len(listing.keywords)})"))
    for i, word in enumerate(listing.keywords):
        if not word.strip() or len(word) > KEYWORD_MAX:
            problems.append(FieldViolation(f"keywords[{i}]", f"must be 1 to {KEYWORD_MAX} characters"))
    if not 0 <= listing.trl <= 9:
        problems.append(FieldViolation("trl", f"must be an integer from 1 to 9 (got {listing.trl})"))
    if len(listing.tags) > TAGS_MAX:
        problems.append(FieldViolation("tags", f"at most {TAGS_MAX} tags (got {len(listing.tags)})"))
    for i, word in enumerate(listing.tags):
        if not word.strip() or len(word) > KEYWORD_MAX:
            problems.append(FieldViolation(f"tags[{i}]", f"must be 1 to {KEYWORD_MAX} characters"))
    if problems:
        raise InvalidInput(problems)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def audience_from_json(data: object) -> tuple[str, ...]:
    """The optional "audience" of a listing file: "network" (default), "hq", or a list of centre ids."""
    raw = data.get("audience") if isinstance(data, dict) else None
    if raw is None or raw == "network":
        return ()
    if raw == "hq":
        return ("hq",)
    if not isinstance(raw, list) or not raw or not all(isinstance(a, str) for a in raw):
        raise InvalidInput([FieldViolation("audience", 'must be "network", "hq" or a list of centre ids')])
    return tuple(sorted(set(raw)))


def listing_from_json(data: object) -> ListingContent:
    """Build a listing from a parsed JSON document, checking types and rules (not the audience)."""
    if not isinstance(data, dict):
        raise InvalidInput([FieldViolation("(document)", "must be a JSON object")])
    problems: list[FieldViolation] = []
    for name in sorted(set(data) - _FILE_FIELDS):
        problems.append(FieldViolation(str(name), "unknown field"))

    def text(name: str, required: bool = False) -> str:
        value = data.get(name)
        if value is None:
            if required:
                problems.append(FieldViolation(name, "required field is missing"))
            return ""
        if not isinstance(value, str):
            problems.append(FieldViolation(name, f"must be a string (got {type(value).__name__})"))
            return ""
        if not _is_unicode(value):
            problems.append(FieldViolation(name, "is not valid Unicode text (lone surrogate)"))
            return ""
        return value

    title = text("title", required=True)
    summary = text("summary")
    description = text("description")
    keywords: tuple[str, ...] = ()
    raw_keywords = data.get("keywords")
    if raw_keywords is not None:
        if not isinstance(raw_keywords, list):
            problems.append(
                FieldViolation("keywords", f"must be a list of strings (got {type(raw_keywords).__name__})")
            )
        else:
            bad = [i for i, w in enumerate(raw_keywords) if not isinstance(w, str) or not _is_unicode(w)]
            for i in bad:
                problems.append(FieldViolation(f"keywords[{i}]", "must be a string of valid Unicode text"))
            if not bad:
                keywords = tuple(raw_keywords)
    trl = 0
    raw_trl = data.get("trl")
    if raw_trl is not None:
        if isinstance(raw_trl, bool) or not isinstance(raw_trl, int):
            problems.append(FieldViolation("trl", f"must be an integer from 1 to 9 (got {type(raw_trl).__name__})"))
        elif not 1 <= raw_trl <= 9:
            problems.append(FieldViolation("trl", f"must be an integer from 1 to 9 (got {raw_trl})"))
        else:
            trl = raw_trl
    status = ListingStatus.SUBMITTED
    raw_status = data.get("status")
    if raw_status is not None:
        if raw_status not in ("draft", "submitted"):
            problems.append(FieldViolation("status", 'a new listing is "draft" or "submitted"'))
        else:
            status = ListingStatus(raw_status)
    try:
        audience_from_json(data)
    except InvalidInput as exc:
        problems.extend(exc.violations)
    listing = ListingContent(
        title=title, summary=summary, description=description, keywords=keywords, trl=trl, status=status
    )
    try:
        validate_listing(listing)
    except InvalidInput as exc:
        # Rule problems of the fields whose type was right, after the type problems.
        named = {p.field.split("[")[0] for p in problems}
        problems.extend(v for v in exc.violations if v.field.split("[")[0] not in named)
    if problems:
        raise InvalidInput(problems)
    return listing


def validate_change(change: ListingChange) -> None:
    """The rules for the fields a change sets (a title it sets must not be empty)."""
    base = {**FIELD_DEFAULTS, "title": "-"}
    base.update(change.fields)
    content = ListingContent(**base)  # type: ignore[arg-type]
    try:
        validate_listing(content)
    except InvalidInput as exc:
        named = set(change.names)
        problems = [v for v in exc.violations if v.field.split("[")[0] in named]
        if problems:
            raise InvalidInput(problems) from exc


def parse_field_value(name: str, text: str) -> FieldValue:
    """A value given on the command line as FIELD=TEXT, converted to the field's type."""
    if name not in FIELD_DEFAULTS:
        known = ", ".join((*CONTENT_FIELDS, *CURATION_FIELDS))
        raise InvalidInput([FieldViolation(name, f"unknown field (fields: {known})")])
    default = FIELD_DEFAULTS[name]
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
