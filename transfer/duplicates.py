"""The same technology listed twice: candidate pairs of offers, their similarity, and why.

For an offer, the candidates come from the search index (never a scan): the offers that
share one of its patents, and those that hold its title's words (any, ranked by the
engine) in any field, its translations included. Each candidate is compared with the
offer by `similarity`, a pure function of the two contents:

* **text**: how much of the two texts is the same after analysis (case, accents and word
  forms folded, CJK in bigrams): the Jaccard index of their token sets, title, summary and
  description together, 0 to 1;
* **translation**: the same measured between one offer's translation and the other's text
  in the same language (a Brussels listing of a Tel Aviv spin-off's offer, in French);
* **patent**: a patent reference both name (after removing spaces and punctuation) — the
  strongest sign, 1.0 on its own.

The similarity is the highest of these; a pair at or above `THRESHOLD` is a candidate,
unless HQ settled it: it marks an offer the duplicate of another (`duplicate_of`, the offer
is linked, not deleted) or dismisses the pair (`not_duplicate_of`), curation fields HQ signs
and every site receives like any edit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sync.errors import FieldViolation, InvalidInput
from sync.fulltext import Term, TextQuery, analysed
from sync.kinds import Content
from sync.site import Site
from sync.store import RecordRow, SearchQuery
from transfer.matching import STOPWORDS, strings_of, text_of
from transfer.search import patent_refs

THRESHOLD = 0.6
# Offers an undecided offer is compared with, from each search.
CANDIDATES = 50
# The statuses an offer waits in for HQ's validation, which `pending_pairs` checks.
PENDING = ("submitted", "validated")


@dataclass(frozen=True)
class Similarity:
    score: float
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Pair:
    record: RecordRow
    other: RecordRow
    similarity: Similarity


def _tokens(*texts: str) -> frozenset[str]:
    return frozenset(t for t in analysed(" ".join(texts)).split() if t not in STOPWORDS)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def patents_of(values: Mapping[str, object]) -> frozenset[str]:
    """An offer's patent references, spaces and punctuation removed, upper case."""
    return frozenset(patent_refs(values.get("patents")))


def _texts(values: Mapping[str, object]) -> dict[str, frozenset[str]]:
    """An offer's token sets: its own text (language "") and each translation's."""
    out = {"": _tokens(*(text_of(values.get(n)) for n in ("title", "summary", "description")))}
    translations = values.get("translations")
    for t in translations if isinstance(translations, tuple) else ():
        if isinstance(t, tuple) and len(t) == 4:
            out[str(t[0])] = _tokens(*(str(x) for x in t[1:]))
    return out


def similarity(offer: Content, other: Content) -> Similarity:
    """How alike two offers are, and why (a pure function of their contents)."""
    a, b = offer.as_dict(), other.as_dict()
    reasons: list[str] = []
    scores = [0.0]
    shared = sorted(patents_of(a) & patents_of(b))
    if shared:
        scores.append(1.0)
        reasons.append(f"the same patent: {', '.join(shared)}")
    ta, tb = _texts(a), _texts(b)
    text = _jaccard(ta[""], tb[""])
    if text > 0:
        scores.append(text)
        reasons.append(f"text {text:.0%} the same")
    best = 0.0
    for lang, tokens in ta.items():
        if lang:
            best = max(best, _jaccard(tokens, tb[""]))
    for lang, tokens in tb.items():
        if lang:
            best = max(best, _jaccard(tokens, ta[""]))
    if best > text:
        scores.append(best)
        reasons.append(f"a translation {best:.0%} the same as the other's text")
    return Similarity(round(max(scores), 6), tuple(reasons))


def settled(a_id: str, a: Mapping[str, object], b_id: str, b: Mapping[str, object]) -> bool:
    """Whether HQ settled the pair: one marked the duplicate of the other, or either found
    not to duplicate the other (the curation fields `duplicate_of`, `not_duplicate_of`)."""
    return (
        a.get("duplicate_of") == b_id
        or b.get("duplicate_of") == a_id
        or b_id in strings_of(a.get("not_duplicate_of"))
        or a_id in strings_of(b.get("not_duplicate_of"))
    )


def candidates(site: Site, record_id: str) -> list[Pair]:
    """The offers held here that may be the same technology as offer `record_id`, most
    alike first (at or above THRESHOLD)."""
    row = site.record(record_id)
    if row.kind != "listing" or row.deleted:
        raise InvalidInput([FieldViolation("id", f"{record_id} is not an offer held here")])
    content = row.state.content
    values = content.as_dict()
    words = [t for t in dict.fromkeys(analysed(text_of(values.get("title"))).split()) if t not in STOPWORDS]
    translations = values.get("translations")
    for t in translations if isinstance(translations, tuple) else ():
        if isinstance(t, tuple) and len(t) == 4:
            words.extend(w for w in analysed(str(t[1])).split() if w not in STOPWORDS and w not in words)
    common = site.common_terms(words[:24])  # a word most offers hold finds every offer
    words = [w for w in words if w not in common]
    base = (("kind", ("listing",)),)
    queries = []
    if words:
        text = TextQuery((tuple(Term((w,)) for w in words[:24]),))
        queries.append(SearchQuery(text, base, limit=CANDIDATES, snippets=False))
    for patent in sorted(patents_of(values))[:5]:
        tokens = analysed(patent).split()
        if tokens:
            queries.append(SearchQuery(TextQuery(((Term(tuple(tokens)),),)), base, limit=CANDIDATES, snippets=False))
    found: dict[str, RecordRow] = {}
    for query in queries:
        for hit in site.search(query).hits:
            if hit.record.record_id != record_id:
                found.setdefault(hit.record.record_id, hit.record)
    pairs = [
        Pair(row, other, similarity(content, other.state.content))
        for other in found.values()
        if not settled(row.record_id, values, other.record_id, other.state.content.as_dict())
    ]
    pairs = [p for p in pairs if p.similarity.score >= THRESHOLD]
    return sorted(pairs, key=lambda p: (-p.similarity.score, p.other.record_id))


def pending_pairs(site: Site, limit: int = 200) -> list[Pair]:
    """Candidate pairs for the offers waiting for validation (submitted or validated),
    each pair once, most alike first."""
    waiting = site.search(SearchQuery(TextQuery(), (("kind", ("listing",)), ("status", PENDING)), limit=limit))
    seen: set[tuple[str, str]] = set()
    out: list[Pair] = []
    for hit in waiting.hits:
        for pair in candidates(site, hit.record.record_id):
            key = tuple(sorted((pair.record.record_id, pair.other.record_id)))
            if key not in seen:
                seen.add((key[0], key[1]))
                out.append(pair)
    return sorted(out, key=lambda p: (-p.similarity.score, p.record.record_id, p.other.record_id))
