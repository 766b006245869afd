"""What offers and requests are found by: their text by weight, and their facets.

Each offer and request is indexed with its merged state (so every site indexes what
it holds, and a deleted or re-merged record is re-indexed in the same transaction) by
the text of every field a person writes and by its facets (`sync.fulltext.SearchDoc`):

* weight A, the title (and each translation's title);
* weight B, the summary, the keywords and sectors (as words), the IPC and NACE codes
  (and each translation's summary);
* weight C, the description, advantages, patents, what a request seeks, its use of
  funds, facility, programme (and each translation's description);
* facets, which search filters by and counts: `keyword` (technology and market
  keywords, sectors), `country` (target countries), `stage`, `trl`, `partnership`,
  `type` (a request's type) and `language`, beside the kind, status and owning
  centre every record has; and an offer's lapse (its `valid_until_ms`), which the
  "live" filter reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sync.errors import FieldViolation, InvalidInput
from sync.fulltext import SearchDoc, SearchQuery, parse_query
from sync.kinds import Content
from transfer import taxonomy

SEARCHABLE = frozenset({"listing", "request"})
_NOT_ALNUM = re.compile(r"[\W_]+")
# The facets a search reports and filters by, beyond the kind, status and origin; and
# the names staff read them by.
FACETS = ("keyword", "country", "stage", "trl", "partnership", "type", "language")
FACET_NAMES = {"origin": "centre"}
_WEIGHTED = {
    "title": "A",
    "summary": "B",
    "keywords": "B",
    "market_keywords": "B",
    "sectors": "B",
    "ipc_codes": "B",
    "nace_codes": "B",
    "description": "C",
    "advantages": "C",
    "patents": "C",
    "sought": "C",
    "use_of_funds": "C",
    "facility": "C",
    "programme": "C",
}
_FACET_OF = {
    "keywords": "keyword",
    "market_keywords": "keyword",
    "sectors": "keyword",
    "target_countries": "country",
    "partnership_types": "partnership",
    "languages": "language",
    "stage": "stage",
    "request_type": "type",
}


def patent_refs(value: object) -> tuple[str, ...]:
    """Patent references with spaces and punctuation removed, upper case: one form however
    a centre wrote them."""
    refs = value if isinstance(value, tuple) else ()
    return tuple(dict.fromkeys(r for p in refs if isinstance(p, str) if (r := _NOT_ALNUM.sub("", p).upper())))


def search_doc(content: Content) -> SearchDoc | None:
    """What a record is found by (None for kinds that are not searched)."""
    if content.kind not in SEARCHABLE:
        return None
    values = content.as_dict()
    text: list[tuple[str, str, str]] = []
    for name, weight in _WEIGHTED.items():
        value = values.get(name)
        if not value:
            continue
        if isinstance(value, str):
            text.append((name, weight, value))
        elif isinstance(value, tuple):  # a list's items, "e-mobility" as two words
            text.extend((name, weight, item.replace("-", " ")) for item in value if isinstance(item, str) and item)
    for patent in patent_refs(values.get("patents")):  # "EP 3 100 000 B1" is found as EP3100000B1 too
        text.append(("patents", "C", patent))
    facets: list[tuple[str, str]] = []
    for name, facet in _FACET_OF.items():
        value = values.get(name)
        if not value:
            continue
        if isinstance(value, str):
            facets.append((facet, value))
        elif isinstance(value, tuple):
            facets.extend((facet, item) for item in value if isinstance(item, str) and item)
    trl = values.get("trl")
    if isinstance(trl, int) and trl > 0:
        facets.append(("trl", str(trl)))
    translations = values.get("translations")
    if isinstance(translations, tuple):
        for t in translations:
            if isinstance(t, tuple) and len(t) == 4:
                lang, title, summary, description = (str(x) for x in t)
                facets.append(("language", lang))
                for field, weight, piece in (
                    ("title", "A", title),
                    ("summary", "B", summary),
                    ("description", "C", description),
                ):
                    if piece:
                        text.append((f"translations[{lang}].{field}", weight, piece))
    until = values.get("valid_until_ms")
    return SearchDoc(
        text=tuple(text),
        facets=tuple(dict.fromkeys(facets)),
        lapses_at_ms=until if isinstance(until, int) and until > 0 else 0,
    )


QUERY_MAX_CHARS = 1_000
QUERY_MAX_TERMS = 64
SORTS = ("relevance", "newest")


def _known_keywords() -> frozenset[str]:
    return frozenset().union(*(tech | market for tech, market in taxonomy.VERSIONS.values()))


def search_query(
    text: str = "",
    *,
    kind: str = "",
    status: str = "",
    keywords: Iterable[str] = (),
    countries: Iterable[str] = (),
    stage: str = "",
    partnership: str = "",
    origin: str = "",
    live_at_ms: int | None = None,
    sort: str = "relevance",
    limit: int = 20,
    offset: int = 0,
) -> SearchQuery:
    """The search a person asked for, or InvalidInput naming each field and value that is
    wrong: a kind not searched, a status, stage or partnership type no offer or request
    has, a keyword of no taxonomy version, a country that is not an ISO code, a query
    past QUERY_MAX_CHARS or QUERY_MAX_TERMS."""
    from transfer.records import COUNTRY_RE, KINDS, PARTNERSHIPS, STAGES  # records builds its kinds from this module

    problems: list[FieldViolation] = []
    if kind and kind not in SEARCHABLE:
        problems.append(FieldViolation("kind", f"{kind!r}: search covers {' and '.join(sorted(SEARCHABLE))}"))
    statuses = sorted({s for k in (kind,) if k in SEARCHABLE for s in KINDS[k].statuses}) or sorted(
        {s for k in SEARCHABLE for s in KINDS[k].statuses}
    )
    if status and status not in statuses:
        problems.append(FieldViolation("status", f"{status!r} is not one of {', '.join(statuses)}"))
    known = _known_keywords()
    for i, k in enumerate(keywords):
        if k not in known:
            problems.append(FieldViolation(f"keywords[{i}]", f"{k!r} is not a term of the taxonomy"))
    codes = []
    for i, c in enumerate(countries):
        if not COUNTRY_RE.match(c.upper()):
            problems.append(FieldViolation(f"countries[{i}]", f"{c!r} is not an ISO 3166-1 alpha-2 code"))
        codes.append(c.upper())
    if stage and stage not in STAGES:
        problems.append(FieldViolation("stage", f"{stage!r} is not one of {', '.join(STAGES)}"))
    if partnership and partnership not in PARTNERSHIPS:
        problems.append(FieldViolation("partnership", f"{partnership!r} is not one of {', '.join(PARTNERSHIPS)}"))
    if sort not in SORTS:
        problems.append(FieldViolation("sort", f"{sort!r} is not one of {', '.join(SORTS)}"))
    parsed = parse_query(text[: QUERY_MAX_CHARS + 1])
    if len(text) > QUERY_MAX_CHARS:
        problems.append(FieldViolation("text", f"at most {QUERY_MAX_CHARS} characters (got {len(text)})"))
    elif parsed.size() > QUERY_MAX_TERMS:
        problems.append(FieldViolation("text", f"at most {QUERY_MAX_TERMS} terms (got {parsed.size()})"))
    if problems:
        raise InvalidInput(problems)
    # Only offers and requests are indexed: without a kind there is nothing to filter.
    facets: list[tuple[str, tuple[str, ...]]] = [("kind", (kind,))] if kind else []
    facets.extend(("keyword", (k,)) for k in dict.fromkeys(keywords))
    facets.extend(("country", (c,)) for c in dict.fromkeys(codes))
    for name, value in (("stage", stage), ("partnership", partnership), ("status", status), ("origin", origin)):
        if value:
            facets.append((name, (value,)))
    if live_at_ms is not None:
        facets.append(("status", ("published",)))
    return SearchQuery(parsed, tuple(facets), live_at_ms, sort, limit, offset)
