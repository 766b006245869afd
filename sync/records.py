"""Record payloads as domain values, and the rules their fields keep.

The skeleton carries technology listings with a small set of fields; the full
schemas arrive with the domain issue. Validation collects every problem at
once, one `FieldViolation` per problem, so the CLI can print one line each and
the server can answer INVALID_ARGUMENT naming every field.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sync.errors import FieldViolation, InvalidInput

TITLE_MAX = 256
SUMMARY_MAX = 500
DESCRIPTION_MAX = 4000
KEYWORDS_MAX = 5
KEYWORD_MAX = 64


class ListingStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    VALIDATED = "validated"
    PUBLISHED = "published"
    EXPIRED = "expired"
    WITHDRAWN = "withdrawn"
    ARCHIVED = "archived"


@dataclass(frozen=True)
class ListingContent:
    title: str
    summary: str = ""
    description: str = ""
    keywords: tuple[str, ...] = ()
    trl: int = 0
    status: ListingStatus = ListingStatus.SUBMITTED


_FILE_FIELDS = {"title", "summary", "description", "keywords", "trl"}


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
    if problems:
        raise InvalidInput(problems)


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def listing_from_json(data: object) -> ListingContent:
    """Build a listing from a parsed JSON document, checking types and rules."""
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
    listing = ListingContent(title=title, summary=summary, description=description, keywords=keywords, trl=trl)
    try:
        validate_listing(listing)
    except InvalidInput as exc:
        # Rule problems of the fields whose type was right, after the type problems.
        named = {p.field.split("[")[0] for p in problems}
        problems.extend(v for v in exc.violations if v.field.split("[")[0] not in named)
    if problems:
        raise InvalidInput(problems)
    return listing
