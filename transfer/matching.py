"""Matching supply and demand: which offers fit a request, which requests an offer fits,
and why.

Two steps. **Candidates** come from the search index (`sync.store.search`), never a scan
of the store: the offers (or requests) that share a technology keyword with the record,
and those whose text holds its salient words (any of them, ranked by the engine). Then
each candidate is **scored** by `score_pair`, a pure, deterministic function of the two
records' contents (and the country of the firm behind the request, when known), so the
same pair scores the same at every site; the best come first.

The score is a weighted sum of parts, each in [0, 1], each reported with what it found:

* technology keywords in common (the request's keywords found among the offer's), 0.35;
* words in common: the request's salient words (its title counts twice, then what it
  seeks), as analysed for search (stems, CJK bigrams, any language), found anywhere in
  the offer's text or its translations, 0.30;
* market: the request's sectors among the offer's market keywords, 0.10;
* partnership: whether the offer offers a partnership of the kind the request seeks, 0.15;
* maturity: for a request for a technology, how far the offer has come (TRL, stage), 0.05;
* countries: the offer is open to the request's firm's country (or to any), 0.05.

Keywords are taxonomy terms, the same in every language, so they carry a match across
languages; words carry it where a translation shares the request's language.

What the score reads of an offer (`OfferTerms`: its keywords, every token of its text,
...) is remembered for the offers lately scored (`OFFER_TERMS`), keyed by a digest of the
record's merged state, so an offer that comes up again for another request is neither
decoded nor analysed again, and an offer that changed is read afresh.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from sync.errors import FieldViolation, InvalidInput, NotFound
from sync.fulltext import Term, TextQuery, analysed, fold_mapped, spans, token_set
from sync.kinds import Content
from sync.site import Site
from sync.store import RecordRow, SearchQuery

# Words that say nothing about what is offered or sought (English; other languages' words
# are rarely this common in a title).
STOPWORDS = frozenset(
    analysed(
        "a an and are as at be by for from has have in into is it its of on or our that the their this to "
        "we with within seek seeking sought look looking need needs want wanted partner partners company "
        "companies firm firms technology technologies solution solutions new based use using used"
    ).split()
)
WEIGHTS = {"keywords": 0.35, "words": 0.30, "market": 0.10, "partnership": 0.15, "maturity": 0.05, "countries": 0.05}
# The partnership types that answer each kind of request.
ANSWERS = {
    "technology": frozenset(
        {"licence", "commercial-with-technical-assistance", "technical-cooperation", "acquisition"}
    ),
    "partner": frozenset(
        {"joint-venture", "rnd-cooperation", "technical-cooperation", "commercial-with-technical-assistance"}
    ),
    "rnd-call": frozenset({"rnd-cooperation", "joint-venture", "technical-cooperation"}),
    "investment": frozenset({"investment", "joint-venture", "acquisition"}),
}
STAGE_RANK = {
    "concept": 1,
    "under-development": 2,
    "lab-tested": 3,
    "available-for-demonstration": 4,
    "on-the-market": 5,
}
SALIENT_MAX = 24


@dataclass(frozen=True)
class Reason:
    """One part of a score: which (`part`), what it found (`detail`), its points."""

    part: str
    detail: str
    points: float


@dataclass(frozen=True)
class PairScore:
    score: float
    reasons: tuple[Reason, ...]


def strings_of(value: object) -> tuple[str, ...]:
    """The strings of a list field's value (none for any other value)."""
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, tuple) else ()


def text_of(value: object) -> str:
    """A text field's value (empty for any other value)."""
    return value if isinstance(value, str) else ""


def request_words(request: Mapping[str, object]) -> dict[str, float]:
    """A request's salient words (analysed tokens) and their weights: the title's count
    twice, what it seeks once; stopwords, digits and single letters left out."""
    return dict(_request_words(text_of(request.get("title")), text_of(request.get("sought"))))


@lru_cache(maxsize=4096)
def _request_words(title: str, sought: str) -> tuple[tuple[str, float], ...]:
    weights: dict[str, float] = {}
    for text, weight in ((title, 2.0), (sought, 1.0)):
        for tok in analysed(text).split():
            if len(tok) > 1 and not tok.isdigit() and tok not in STOPWORDS:
                weights[tok] = max(weights.get(tok, 0.0), weight)
    return tuple(weights.items())


def surface_words(request: Mapping[str, object]) -> dict[str, str]:
    """Each analysed token of a request's title and what it seeks, as first written there
    (`edg` -> `Edge`), for showing the words in common."""
    return dict(_surface_words(text_of(request.get("title")), text_of(request.get("sought"))))


@lru_cache(maxsize=4096)
def _surface_words(title: str, sought: str) -> tuple[tuple[str, str], ...]:
    shown: dict[str, str] = {}
    for text in (title, sought):
        folded, where = fold_mapped(text)
        for t in spans(folded):
            shown.setdefault(t.text, text[where[t.start] : where[t.end - 1] + 1])
    return tuple(shown.items())


def offer_words(offer: Mapping[str, object]) -> set[str]:
    """Every token of an offer's text, its translations' too."""
    pieces = [text_of(offer.get(n)) for n in ("title", "summary", "description", "advantages")]
    translations = offer.get("translations")
    for t in translations if isinstance(translations, tuple) else ():
        if isinstance(t, tuple):
            pieces.extend(str(x) for x in t[1:])
    pieces.extend(
        k.replace("-", " ") for k in strings_of(offer.get("keywords")) + strings_of(offer.get("market_keywords"))
    )
    return token_set(" ".join(pieces))


@dataclass(frozen=True)
class RequestTerms:
    """What the score reads of a request: its keywords, sectors, salient words and their
    weights (`request_words`), those words as written (`surface_words`), and its type."""

    keywords: frozenset[str]
    sectors: frozenset[str]
    words: Mapping[str, float]
    shown: Mapping[str, str]
    kind: str

    @staticmethod
    def of(request: Content) -> RequestTerms:
        r = request.as_dict()
        return RequestTerms(
            frozenset(strings_of(r.get("keywords"))),
            frozenset(strings_of(r.get("sectors"))),
            request_words(r),
            surface_words(r),
            text_of(r.get("request_type")),
        )


@dataclass(frozen=True)
class OfferTerms:
    """What the score reads of an offer: its keywords, market keywords, every token of its
    text (`offer_words`), the partnership types it offers, its TRL (0 if not a number)
    and stage, and the countries it is open to."""

    keywords: frozenset[str]
    markets: frozenset[str]
    words: frozenset[str]
    partnerships: frozenset[str]
    trl: int
    stage: str
    targets: tuple[str, ...]

    @staticmethod
    def of(offer: Content) -> OfferTerms:
        o = offer.as_dict()
        trl = o.get("trl")
        return OfferTerms(
            frozenset(strings_of(o.get("keywords"))),
            frozenset(strings_of(o.get("market_keywords"))),
            frozenset(offer_words(o)),
            frozenset(strings_of(o.get("partnership_types"))),
            trl if isinstance(trl, int) else 0,
            text_of(o.get("stage")),
            strings_of(o.get("target_countries")),
        )


def score_pair(request: Content, offer: Content, *, firm_country: str = "") -> PairScore:
    """How well `offer` fits `request`, and why: a pure function of the two contents
    (and the requesting firm's country), the same at every site."""
    return score_terms(RequestTerms.of(request), OfferTerms.of(offer), firm_country=firm_country)


def score_terms(r: RequestTerms, o: OfferTerms, *, firm_country: str = "") -> PairScore:
    """`score_pair` from what it reads of each record (`RequestTerms`, `OfferTerms`)."""
    reasons: list[Reason] = []

    def part(name: str, fraction: float, detail: str) -> None:
        if fraction > 0:
            reasons.append(Reason(name, detail, round(WEIGHTS[name] * fraction, 6)))

    if r.keywords:
        common = sorted(r.keywords & o.keywords)
        part("keywords", len(common) / len(r.keywords), ", ".join(common))
    if r.sectors:
        markets = sorted(r.sectors & o.markets)
        part("market", len(markets) / len(r.sectors), ", ".join(markets))
    if r.words:
        found = sorted(w for w in r.words if w in o.words)
        detail = ", ".join(r.shown.get(w, w) for w in found)
        part("words", sum(r.words[w] for w in found) / sum(r.words.values()), detail)
    fits = sorted(o.partnerships & ANSWERS.get(r.kind, frozenset()))
    if fits:
        part("partnership", 1.0, f"{r.kind}: {', '.join(fits)}")
    if r.kind == "technology":
        trl_part = (o.trl / 9) if o.trl > 0 else 0.0
        maturity = max(trl_part, STAGE_RANK.get(o.stage, 0) / 5)
        part("maturity", maturity, f"TRL {o.trl}" if o.trl else o.stage)
    if firm_country and (not o.targets or firm_country in o.targets):
        part("countries", 1.0, f"open to {firm_country}" if o.targets else "open to every country")
    score = round(sum(x.points for x in reasons), 6)
    return PairScore(score, tuple(reasons))


class OfferTermsCache:
    """`OfferTerms` of the offers lately scored, keyed by a digest of the record's merged
    state as stored (`RecordRow.state_json`): an offer whose state has not changed since
    is neither decoded nor analysed again, and any change to it (a new version, a merge)
    changes the key. Least recently used first out, at most `size`; thread-safe."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._terms: OrderedDict[bytes, OfferTerms] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, row: RecordRow) -> OfferTerms:
        key = hashlib.blake2b(row.state_json.encode(), digest_size=16).digest()
        with self._lock:
            terms = self._terms.get(key)
            if terms is not None:
                self._terms.move_to_end(key)
                return terms
        terms = OfferTerms.of(row.state.content)
        with self._lock:
            self._terms[key] = terms
            while len(self._terms) > self.size:
                self._terms.popitem(last=False)
        return terms

    def __len__(self) -> int:
        return len(self._terms)

    def clear(self) -> None:
        with self._lock:
            self._terms.clear()


# The candidates of ten to twenty requests: about 20 MB at 9 KB an offer of 3 KB of text.
OFFER_TERMS = OfferTermsCache(2048)


def candidate_query(record: Mapping[str, object], *, as_request: bool) -> TextQuery:
    """The words that find a record's counterparts in the search index: its salient words,
    any of which may match (the engine ranks by how many, and how rare)."""
    if as_request:
        weights = request_words(record)
        words = sorted(weights, key=lambda w: (-weights[w], w))
    else:
        text = " ".join(text_of(record.get(n)) for n in ("title", "summary"))
        words = [
            t for t in dict.fromkeys(analysed(text).split()) if len(t) > 1 and not t.isdigit() and t not in STOPWORDS
        ]
    chosen = words[:SALIENT_MAX]
    return TextQuery((tuple(Term((w,)) for w in chosen),) if chosen else ())


def keywords_of(record: Mapping[str, object]) -> tuple[str, ...]:
    return tuple(sorted(set(strings_of(record.get("keywords")))))


def best(scored: Iterable[tuple[str, PairScore]], limit: int) -> list[tuple[str, PairScore]]:
    """The best `limit`, highest score first, then by id (a total order: the same list everywhere)."""
    return sorted((s for s in scored if s[1].score > 0), key=lambda s: (-s[1].score, s[0]))[:limit]


# Statuses a record is matched in: submitted, validated or published (never a draft, nor
# what expired, was withdrawn or archived).
OPEN = ("submitted", "validated", "published")
CANDIDATES = 100
LIMIT_MAX = 100


@dataclass(frozen=True)
class Suggestion:
    record: RecordRow
    score: PairScore


def suggestions(site: Site, record_id: str, *, limit: int = 10, published_only: bool = False) -> list[Suggestion]:
    """The offers that fit request `record_id`, or the requests that offer `record_id`
    fits, among what this site holds and is open (or published), not lapsed; best first."""
    row = site.record(record_id)
    if row.kind not in ("listing", "request") or row.deleted:
        what = "deleted" if row.deleted else f"a {row.kind}"
        raise InvalidInput([FieldViolation("id", f"{record_id} is {what}: matching takes an offer or a request")])
    if not 1 <= limit <= LIMIT_MAX:
        raise InvalidInput([FieldViolation("limit", f"from 1 to {LIMIT_MAX} (got {limit})")])
    content = row.state.content
    values = content.as_dict()
    as_request = row.kind == "request"
    other = "listing" if as_request else "request"
    statuses = ("published",) if published_only else OPEN
    base = (("kind", (other,)), ("status", statuses))
    now = site.now_ms()
    found: dict[str, RecordRow] = {}
    words = candidate_query(values, as_request=as_request)
    keywords = keywords_of(values)
    queries = []
    if keywords:
        # Those sharing a keyword, the most alike in words first; and those holding every
        # one of its keywords, in any language, newest first.
        queries.append(
            SearchQuery(words, (*base, ("keyword", keywords)), now, limit=CANDIDATES, snippets=False, count=False)
        )
        every = tuple(("keyword", (k,)) for k in keywords)
        queries.append(SearchQuery(TextQuery(), (*base, *every), now, limit=CANDIDATES, snippets=False, count=False))
    elif not words.empty:  # with no keyword to go by: those whose titles hold its words
        queries.append(SearchQuery(words, base, now, limit=CANDIDATES, snippets=False, weights="A", count=False))
    for query in queries:
        for hit in site.search(query).hits:
            found.setdefault(hit.record.record_id, hit.record)
    countries: dict[str, str] = {}

    def country(origin: str) -> str:
        if origin not in countries:
            countries[origin] = _firm_country(site, origin)
        return countries[origin]

    scored = []
    if as_request:
        asked, firm_country = RequestTerms.of(content), country(row.origin)
        for rid, candidate in found.items():
            scored.append((rid, score_terms(asked, OFFER_TERMS.of(candidate), firm_country=firm_country)))
    else:
        offered = OFFER_TERMS.of(row)
        for rid, candidate in found.items():
            asking = RequestTerms.of(candidate.state.content)
            scored.append((rid, score_terms(asking, offered, firm_country=country(candidate.origin))))
    return [Suggestion(found[rid], s) for rid, s in best(scored, limit)]


def _firm_country(site: Site, origin: str) -> str:
    """The country of the firm that owns a request (empty if a centre owns it, or unknown)."""
    if site.registry().centre(origin) is not None:
        return ""
    try:
        firm = site.record(origin)
    except NotFound:
        return ""
    country = firm.state.content.as_dict().get("country")
    return country if isinstance(country, str) else ""
