"""Full-text search: the text analyser both backends index with, and the query language.

Text is analysed here, in Python, before either engine sees it, so SQLite (FTS5) and
PostgreSQL (tsvector with a GIN index) hold the same tokens at the same positions and
answer a query with the same records; each engine then ranks with its own function.

The analyser (`tokens`):

1. NFKC, then case folding (any script); then accents go: NFKD, combining marks
   dropped (the kana voicing marks kept), recomposed (NFC, which puts Hangul back).
2. The text splits into CJK runs (Han, kana, Hangul, as far as the Basic Multilingual
   Plane goes; the rare ideographs beyond it are kept as words) and word runs (letters and
   digits; everything else separates).
3. A word of ASCII letters is stemmed (Snowball English, PyStemmer), so `membranes`
   and `membrane`, `recycling` and `recycled` meet; other words are kept as they are.
4. A CJK run of two or more characters becomes its overlapping bigrams (`海水淡化` ->
   `海水 水淡 淡化`), a one-character run stays one token. A query of two or more
   CJK characters is the phrase of its bigrams, so it finds every text holding that
   sequence; a one-character query is a prefix of a bigram (it finds the character
   anywhere but at the end of a run, or as a run of its own).
5. Tokens are cut to MAX_TOKEN characters.

The query language (`parse_query`) is a search box's: words (all must match),
`"a quoted phrase"`, a trailing `*` for a prefix, `OR` between two items, `-item` to
exclude. Anything else is text: an item of several tokens (`e-mobility`, `1/44`,
`O'Brien`, `淡化膜`) is the phrase of its tokens; a lone `"`, `*` or `-` is nothing;
an empty query asks for nothing. Parsing never fails.

`fts5_match` and `tsquery` render a parsed query for each engine. Tokens are letters and
digits only, so each is quoted as it is. A whole search (`SearchQuery`: the parsed text,
facet filters, order, page) is a plain value here too, which the store's search runs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TypeVar

import Stemmer

MAX_TOKEN = 40
_CJK_BLOCKS = (
    (0x1100, 0x11FF),  # Hangul jamo
    (0x3040, 0x30FF),  # hiragana, katakana
    (0x3130, 0x318F),  # Hangul compatibility jamo
    (0x31F0, 0x31FF),  # katakana extensions
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xA960, 0xA97F),  # Hangul jamo extended A
    (0xAC00, 0xD7FF),  # Hangul syllables, jamo extended B
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
)


def _char_class(chars: Iterable[int]) -> str:
    """A regex character class body of these code points, as ranges."""
    ranges: list[list[int]] = []
    for c in sorted(chars):
        if ranges and c == ranges[-1][1] + 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_WORD_RE = re.compile(r"[^\W_]+")
_ASCII_WORD = re.compile(r"[a-z]+")
_STEMMER = Stemmer.Stemmer("english")
# Combining marks (accents, Hebrew points, …) go; the kana voicing marks are parts of letters.
_KEEP_MARKS = frozenset({0x3099, 0x309A})


@cache
def _run_re() -> re.Pattern[str]:
    """Runs of the CJK letters this Python's Unicode data knows (so every CJK run is
    letters), and of the other letters and digits. Built on first use: reading the Unicode
    data takes tens of milliseconds, which a process that analyses no text (the CLI) skips."""
    cjk = _char_class(c for a, b in _CJK_BLOCKS for c in range(a, b + 1) if chr(c).isalnum())
    return re.compile(f"(?P<cjk>[{cjk}]+)|(?P<word>[^\\W_{cjk}]+)")


@cache
def _marks_re() -> re.Pattern[str]:
    """Runs of combining marks but the kana voicing marks; built on first use, as `_run_re`."""
    return re.compile(
        "[" + _char_class(c for c in range(0x10000) if unicodedata.combining(chr(c)) and c not in _KEEP_MARKS) + "]+"
    )


def fold(text: str) -> str:
    """Text with case and accents gone, in every script (step 1 of the analyser)."""
    if text.isascii():
        return text.lower()
    folded = unicodedata.normalize("NFKC", text).casefold()
    apart = unicodedata.normalize("NFKD", folded)
    if _marks_re().search(apart) is None:
        return unicodedata.normalize("NFC", folded)
    return unicodedata.normalize("NFC", _marks_re().sub("", apart))


def fold_mapped(text: str) -> tuple[str, list[int]]:
    """`fold` character by character, with the index in `text` of each folded character
    (for marking matches in the text a person wrote)."""
    out: list[str] = []
    where: list[int] = []
    for i, c in enumerate(text):
        f = fold(c)
        out.append(f)
        where.extend([i] * len(f))
    return "".join(out), where


def _stem_word(word: str) -> str:
    if _ASCII_WORD.fullmatch(word):
        word = _STEMMER.stemWord(word)
    return word[:MAX_TOKEN]


_K = TypeVar("_K")


class _Remembered(dict[_K, str]):
    """What `make` gives for each key, remembered; all forgotten at once past `limit` keys."""

    def __init__(self, make: Callable[[_K], str], limit: int) -> None:
        super().__init__()
        self._make = make
        self._limit = limit

    def __missing__(self, key: _K) -> str:
        if len(self) > self._limit:
            self.clear()
        made = self[key] = self._make(key)
        return made


# Words to their tokens (a few hundred thousand at most).
_STEMS: _Remembered[str] = _Remembered(_stem_word, 200_000)


def stem(word: str) -> str:
    """A word's stem if it is a word of ASCII letters, else the word, cut to MAX_TOKEN."""
    return _STEMS[word]


@dataclass(frozen=True)
class Token:
    """A token and where in the folded text it came from."""

    text: str
    start: int
    end: int
    cjk: bool = False


def _run_tokens(run: str, start: int, is_cjk: bool) -> Iterator[Token]:
    if not is_cjk:
        yield Token(stem(run), start, start + len(run))
    elif len(run) == 1:
        yield Token(run, start, start + 1, True)
    else:
        for i in range(len(run) - 1):
            yield Token(run[i : i + 2], start + i, start + i + 2, True)


def spans(folded: str) -> list[Token]:
    """The tokens of already folded text, with their places in it."""
    out: list[Token] = []
    for m in _run_re().finditer(folded):
        out.extend(_run_tokens(m.group(), m.start(), m.lastgroup == "cjk"))
    return out


# ASCII letters lowered, ASCII digits and every byte of a non-ASCII character kept, every
# other ASCII byte a space: what splits UTF-8 text into words at C speed.
_WORD_BYTES = bytes(
    c + 32 if 65 <= c <= 90 else c if 48 <= c <= 57 or 97 <= c <= 122 or c >= 128 else 32 for c in range(256)
)


def _word_tokens(word: bytes) -> str:
    """A word's tokens, joined by spaces, from its UTF-8 bytes (ASCII letters lowered): an
    ASCII word is stemmed, any other goes through the whole analyser (`spans(fold(word))`)."""
    text = word.decode()
    return stem(text) if word.isascii() else " ".join(t.text for t in spans(fold(text)))


_WORD_TOKENS: _Remembered[bytes] = _Remembered(_word_tokens, 200_000)


def analysed(text: str) -> str:
    """The tokens a text is indexed by, in order, joined by spaces (the analyser above):
    `spans(fold(text))` without the places, made fast for indexing. The text is split at
    ASCII separators in C (`bytes.translate`), and each word's tokens are looked up among
    those remembered."""
    return " ".join(map(_WORD_TOKENS.__getitem__, text.encode().translate(_WORD_BYTES).split()))


def token_set(text: str) -> set[str]:
    """The distinct tokens of a text (`set(tokens(text))`), each distinct word analysed
    once: what a text holds, for asking whether it holds a token."""
    words = set(text.encode().translate(_WORD_BYTES).split())
    return set(" ".join(map(_WORD_TOKENS.__getitem__, words)).split())


def tokens(text: str) -> list[str]:
    """The tokens a text is indexed by, in order (`analysed`, as a list)."""
    return analysed(text).split()


def _tag_token_of(tag: tuple[str, str]) -> str:
    return "z" + hashlib.blake2b(f"{tag[0]}={tag[1]}".encode(), digest_size=10).hexdigest()


# Facet values to their tokens (a network's facet values are few and come again with every
# record: kinds, statuses, centres, keywords, countries).
_TAG_TOKENS: _Remembered[tuple[str, str]] = _Remembered(_tag_token_of, 100_000)


def tag_token(facet: str, value: str) -> str:
    """The token a facet's value is indexed by: letters and digits only, never a word's."""
    return _TAG_TOKENS[facet, value]


def tag_tokens(facets: Iterable[tuple[str, str]]) -> list[str]:
    """`tag_token` of each (facet, value)."""
    return list(map(_TAG_TOKENS.__getitem__, facets))


@dataclass(frozen=True)
class SearchDoc:
    """What a record is found by: its text as (field, weight, text), weight "A" (a title)
    over "B" over "C"; its facets as (facet, value), which searches filter by and count;
    and when it lapses (0: never), for searches of what is live."""

    text: tuple[tuple[str, str, str], ...]
    facets: tuple[tuple[str, str], ...] = ()
    lapses_at_ms: int = 0


@dataclass(frozen=True)
class Term:
    """One token, or a phrase of consecutive tokens; `prefix` marks the last as a prefix."""

    tokens: tuple[str, ...]
    prefix: bool = False


@dataclass(frozen=True)
class TextQuery:
    """What a query asks: every group matches (a group is terms joined by OR), and no
    excluded term does."""

    groups: tuple[tuple[Term, ...], ...] = ()
    excluded: tuple[Term, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.groups and not self.excluded

    def wanted(self) -> list[Term]:
        """The terms a match may hold (for marking why a record was found)."""
        return [t for g in self.groups for t in g]

    def size(self) -> int:
        return sum(len(g) for g in self.groups) + len(self.excluded)


@dataclass(frozen=True)
class _Item:
    text: str
    quoted: bool
    negated: bool


_ITEM_RE = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def _items(text: str) -> Iterator[_Item | None]:
    """The items of a query; None for a bare OR."""
    for m in _ITEM_RE.finditer(text):
        if m.group(3) is not None:
            raw = m.group(3)
            if raw == "OR":
                yield None
                continue
            negated = raw.startswith("-") and len(raw) > 1
            yield _Item(raw[1:] if negated else raw, False, negated)
        else:
            yield _Item(m.group(2), True, bool(m.group(1)))


def _term(item: _Item) -> Term | None:
    prefix = not item.quoted and item.text.endswith("*")
    found = spans(fold(item.text))
    if not found:
        return None
    words = tuple(t.text for t in found)
    # A one-character CJK run ending the item is a prefix of the bigrams that start with it.
    last = found[-1]
    return Term(words, prefix or (last.cjk and last.end - last.start == 1))


def parse_query(text: str) -> TextQuery:
    """The query a person typed, as groups of terms (see the module docstring)."""
    groups: list[list[Term]] = []
    excluded: list[Term] = []
    join_next = False
    for item in _items(text):
        if item is None:
            join_next = bool(groups)
            continue
        term = _term(item)
        if term is None:
            continue
        if item.negated:
            excluded.append(term)
        elif join_next:
            groups[-1].append(term)
        else:
            groups.append([term])
        join_next = False
    return TextQuery(tuple(tuple(dict.fromkeys(g)) for g in groups), tuple(dict.fromkeys(excluded)))


# SQLite FTS5 -----------------------------------------------------------------------------


def _fts5_term(term: Term) -> str:
    return '"' + " ".join(term.tokens) + '"' + ("*" if term.prefix else "")


def _fts5_any(terms: Sequence[Term]) -> str:
    inner = " OR ".join(_fts5_term(t) for t in terms)
    return f"({inner})" if len(terms) > 1 else inner


def fts5_match(query: TextQuery, text_columns: Sequence[str], tag_column: str, tags: Iterable[Iterable[str]]) -> str:
    """An FTS5 MATCH expression: the query's groups within `text_columns`, each set of
    `tags` (tokens, any of which may match) within `tag_column`, and the exclusions.
    Empty when there is nothing to match positively (see `fts5_excluded`)."""
    cols = "{" + " ".join(text_columns) + "}"
    parts = [f"{cols} : {_fts5_any(g)}" for g in query.groups]
    for any_of in tags:
        options = sorted(set(any_of))
        inner = " OR ".join(f'"{t}"' for t in options)
        parts.append(f"{tag_column} : ({inner})" if len(options) > 1 else f"{tag_column} : {inner}")
    if not parts:
        return ""
    expr = " AND ".join(parts)
    for term in query.excluded:
        expr = f"({expr}) NOT {cols} : {_fts5_term(term)}"
    return expr


def fts5_excluded(query: TextQuery, text_columns: Sequence[str]) -> str:
    """The FTS5 expression any excluded term matches (for a query of exclusions only)."""
    cols = "{" + " ".join(text_columns) + "}"
    return " OR ".join(f"{cols} : {_fts5_term(t)}" for t in query.excluded)


# PostgreSQL tsquery ----------------------------------------------------------------------


def _ts_term(term: Term, weights: str) -> str:
    lexemes = [f"'{tok}':{weights}" for tok in term.tokens]
    if term.prefix:
        lexemes[-1] = f"'{term.tokens[-1]}':*{weights}"
    return lexemes[0] if len(lexemes) == 1 else "(" + " <-> ".join(lexemes) + ")"


def tsquery(query: TextQuery, text_weights: str, tag_weight: str, tags: Iterable[Iterable[str]]) -> str:
    """A tsquery literal (cast with ::tsquery, no dictionary applied): the query's groups
    within lexemes of `text_weights`, each set of `tags` within `tag_weight`, and the
    exclusions. Empty for a query that asks for nothing."""
    parts = []
    for g in query.groups:
        inner = " | ".join(_ts_term(t, text_weights) for t in g)
        parts.append(f"({inner})" if len(g) > 1 else inner)
    for any_of in tags:
        options = sorted(set(any_of))
        inner = " | ".join(f"'{t}':{tag_weight}" for t in options)
        parts.append(f"({inner})" if len(options) > 1 else inner)
    parts.extend(f"!{_ts_term(t, text_weights)}" for t in query.excluded)
    return " & ".join(parts)


def tsvector(columns: Sequence[tuple[str, Sequence[str]]], gap: int = 8) -> str:
    """A tsvector literal of (weight, tokens) columns: positions run on across columns
    with a gap between them (a phrase never spans two); tokens past PostgreSQL's last
    position (16383) are left out, and a lexeme keeps its first 256 positions."""
    positions: dict[str, list[str]] = {}
    pos = 1
    for weight, toks in columns:
        for i, tok in enumerate(toks[: max(0, 16384 - pos)], pos):
            at = positions.get(tok)
            if at is None:
                positions[tok] = [f"{i}{weight}"]
            elif len(at) < 256:  # PostgreSQL keeps at most 256 positions of a lexeme
                at.append(f"{i}{weight}")
        pos += len(toks) + gap
    return " ".join(f"'{tok}':{','.join(p)}" for tok, p in positions.items())


# Snippets --------------------------------------------------------------------------------

SNIPPET_CHARS = 160


@dataclass(frozen=True)
class Snippet:
    """A short piece of a field's text, as (text, matched) parts: why a record was found."""

    field: str
    parts: tuple[tuple[str, bool], ...]


def _matches(token: str, exact: frozenset[str], prefixes: tuple[str, ...]) -> bool:
    return token in exact or token.startswith(prefixes)


def snippet(doc: SearchDoc, query: TextQuery, width: int = SNIPPET_CHARS) -> Snippet | None:
    """The first field, in order of weight, holding a token the query wants, cut to about
    `width` characters around the first match, the matches marked; without a match, the
    start of the first field after the title. None for a record with no text."""
    wanted = query.wanted()
    exact = frozenset(tok for t in wanted for tok in (t.tokens[:-1] if t.prefix else t.tokens))
    prefixes = tuple(t.tokens[-1] for t in wanted if t.prefix)
    fields = sorted(doc.text, key=lambda f: f[1])
    for name, _weight, text in fields if wanted else ():  # no term: nothing to look for
        folded, where = fold_mapped(text)
        hits = [t for t in spans(folded) if _matches(t.text, exact, prefixes)]
        if not hits:
            continue
        ranges: list[list[int]] = []
        for t in hits:
            start, end = where[t.start], where[t.end - 1] + 1
            if ranges and start <= ranges[-1][1]:
                ranges[-1][1] = max(ranges[-1][1], end)
            else:
                ranges.append([start, end])
        lo = max(0, ranges[0][0] - width // 4)
        hi = min(len(text), lo + width)
        parts: list[tuple[str, bool]] = [("…", False)] if lo > 0 else []
        at = lo
        for start, end in ranges:
            if start >= hi:
                break
            if start > at:
                parts.append((text[at:start], False))
            parts.append((text[max(start, at) : min(end, hi)], True))
            at = min(end, hi)
        if at < hi:
            parts.append((text[at:hi], False))
        if hi < len(text):
            parts.append(("…", False))
        return Snippet(name, tuple(parts))
    rest = [f for f in fields if f[1] != "A"] or fields
    if not rest:
        return None
    name, _weight, text = rest[0]
    return Snippet(name, ((text[:width], False),) + ((("…", False),) if len(text) > width else ()))


@dataclass(frozen=True)
class SearchQuery:
    """A search: text (all groups must match), facet filters (each `(facet, values)` must
    match one of its values), only records not lapsed by `live_at_ms` when given, in order
    of `sort` ("relevance" or "newest"), a page of `limit` from `offset`."""

    text: TextQuery = field(default_factory=TextQuery)
    facets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    live_at_ms: int | None = None
    sort: str = "relevance"
    limit: int = 20
    offset: int = 0
    # Whether each hit gets its snippet (made in Python from the record's text).
    snippets: bool = True
    # The weights the text is looked for in: "ABC" (everything), "A" (titles only), ...
    weights: str = "ABC"
    # Only these records, when given.
    record_ids: tuple[str, ...] | None = None
    # Whether every match is counted (`SearchResult.total`); without, total is only what
    # this page saw (`offset` plus its hits), and the engine is spared a second pass.
    count: bool = True
