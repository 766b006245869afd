"""Searching offers and requests: the terms a record is found by, and queries.

Each offer and request is indexed by a small set of **terms**, recomputed with
its merged state (so every site indexes what it holds, and a deleted or
re-merged record is re-indexed in the same transaction):

* the words of its title and summary (lower-cased, 2-40 characters),
* tagged terms: ``kw:`` technology and market keywords and sectors, ``cc:``
  target countries, ``stage:``, ``type:`` (request type), ``pt:`` partnership
  types, ``lang:`` languages and translations.

A query is a conjunction: every word and every filter must match. Terms live in
one table keyed (term, the record's head wall time, record id), so each term's
postings are ordered newest first: the store walks the rarest term's postings
and checks the other terms by a point lookup on the same key (`Store.search`),
the same way on SQLite and PostgreSQL. Decision: a term table over SQLite FTS5 or PostgreSQL tsvector,
so one query runs unchanged on both backends; ranking is by recency.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sync.kinds import Content

WORD_RE = re.compile(r"\w+", re.UNICODE)
MIN_WORD, MAX_WORD = 2, 40
SEARCHABLE = frozenset({"listing", "request"})
_TAGGED = {
    "keywords": "kw",
    "market_keywords": "kw",
    "sectors": "kw",
    "target_countries": "cc",
    "partnership_types": "pt",
    "languages": "lang",
}


def words(text: str) -> set[str]:
    return {w for w in WORD_RE.findall(text.lower()) if MIN_WORD <= len(w) <= MAX_WORD}


def terms_of(content: Content) -> set[str]:
    """The terms a record is found by (none for kinds that are not searched)."""
    if content.kind not in SEARCHABLE:
        return set()
    values = content.as_dict()
    out: set[str] = set()
    for name in ("title", "summary"):
        text = values.get(name)
        if isinstance(text, str):
            out.update(words(text))
    for name, tag in _TAGGED.items():
        items = values.get(name)
        if isinstance(items, tuple):
            out.update(f"{tag}:{str(i).lower()}" for i in items if isinstance(i, str))
    for name, tag in (("stage", "stage"), ("request_type", "type")):
        value = values.get(name)
        if isinstance(value, str) and value:
            out.add(f"{tag}:{value}")
    translations = values.get("translations")
    if isinstance(translations, tuple):
        for t in translations:
            if isinstance(t, tuple):
                out.add(f"lang:{t[0]}")
                out.update(words(t[1]))
    return {t[:80] for t in out}


def query_terms(
    text: str = "",
    keywords: Iterable[str] = (),
    countries: Iterable[str] = (),
    stage: str = "",
    partnership: str = "",
) -> list[str]:
    """The terms a query asks for, all of which must match."""
    out = set(words(text))
    out.update(f"kw:{k.lower()}" for k in keywords if k)
    out.update(f"cc:{c.lower()}" for c in countries if c)
    if stage:
        out.add(f"stage:{stage}")
    if partnership:
        out.add(f"pt:{partnership}")
    return sorted(out)
