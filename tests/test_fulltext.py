"""The full-text analyser and query language (sync.fulltext): what a person types is
always a query, never an error, and the analyser folds case, accents and English word
forms and cuts CJK into bigrams. Arbitrary strings go through the parser and then
through SQLite's own FTS5 parser (an in-memory table), so a rendered query is never
a syntax error in the engine; PostgreSQL's side is in tests/test_search_store.py."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from sync.fulltext import (
    SearchDoc,
    Term,
    fold,
    fts5_excluded,
    fts5_match,
    parse_query,
    snippet,
    spans,
    token_set,
    tokens,
    tsquery,
)

COLUMNS = ("title", "summary", "body")


def test_english_forms_accents_and_case_meet() -> None:
    assert tokens("Membranes") == tokens("membrane")
    assert tokens("recycling") == tokens("recycled") == tokens("RECYCLE")
    assert tokens("energía") == tokens("Energia") == tokens("ENERGÍA")
    assert tokens("Düsseldorf") == tokens("dusseldorf")
    assert tokens("ΣΟΦΙΑ") == tokens("σοφια")  # case in another script
    assert tokens("שָׁלוֹם") == tokens("שלום")  # Hebrew points are marks


def test_cjk_runs_become_bigrams_and_words_stay_words() -> None:
    assert tokens("低能耗海水淡化膜技术") == ["低能", "能耗", "耗海", "海水", "水淡", "淡化", "化膜", "膜技", "技术"]
    assert tokens("로봇용접") == ["로봇", "봇용", "용접"]
    assert tokens("膜") == ["膜"]
    assert tokens("太陽電池 solar-cells") == ["太陽", "陽電", "電池", "solar", "cell"]
    assert tokens("C02F 1/44") == ["c02f", "1", "44"]


def test_the_query_language() -> None:
    q = parse_query('membranes "seawater desalination" desal* -graphene solar OR wind')
    assert q.groups == (
        (Term(("membran",)),),
        (Term(("seawat", "desalin")),),
        (Term(("desal",), prefix=True),),
        (Term(("solar",)), Term(("wind",))),
    )
    assert q.excluded == (Term(("graphen",)),)
    assert parse_query("海水淡化").groups == ((Term(("海水", "水淡", "淡化")),),)
    assert parse_query("淡").groups == ((Term(("淡",), prefix=True),),)  # one character: a bigram's prefix
    assert parse_query("e-mobility").groups == ((Term(("e", "mobil")),),)  # one item, one phrase
    assert parse_query("O'Brien").groups == ((Term(("o", "brien")),),)
    for nothing in ('"', "*", "-", "", "   ", "OR", '- * "', "--", "OR OR"):
        assert parse_query(nothing).empty, nothing
    assert parse_query("a OR").groups == ((Term(("a",)),),)  # a dangling OR is nothing
    assert parse_query('"unclosed phrase').groups == ((Term(("unclos", "phrase")),),)


def fts5_engine() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE f USING fts5(title, summary, body, tags, tokenize = 'ascii')")
    conn.execute("INSERT INTO f (title, summary, body, tags) VALUES ('seawat desalin', '淡化 化膜', 'o brien', 'zabc')")
    return conn


@settings(max_examples=400, deadline=None)
@given(
    st.text(max_size=80), st.lists(st.lists(st.text(alphabet="abcdef0123456789", min_size=1, max_size=8), min_size=1))
)
def test_any_text_is_a_query_the_engines_parse(text: str, tags: list[list[str]]) -> None:
    query = parse_query(text)
    conn = fts5_engine()
    tag_tokens = [["z" + t for t in group] for group in tags]
    match = fts5_match(query, COLUMNS, "tags", tag_tokens)
    if match:
        conn.execute("SELECT rowid FROM f WHERE f MATCH ?", (match,)).fetchall()
    if query.excluded:
        conn.execute("SELECT rowid FROM f WHERE f MATCH ?", (fts5_excluded(query, COLUMNS),)).fetchall()
    rendered = tsquery(query, "ABC", "D", tag_tokens)
    assert "\\" not in rendered and rendered.count("'") % 2 == 0


@given(st.text(max_size=200) | st.text(alphabet="abc 海水淡化로봇-é", max_size=40))
def test_tokens_are_letters_and_digits_and_the_same_as_their_spans(text: str) -> None:
    found = tokens(text)
    for tok in found:
        assert tok and all(c.isalnum() for c in tok), tok
    assert found == [t.text for t in spans(fold(text))]
    assert token_set(text) == set(found)


def test_a_snippet_marks_what_matched_in_the_text_as_written() -> None:
    doc = SearchDoc(
        (
            ("title", "A", "Low-energy seawater desalination"),
            ("description", "C", "Die Membranen… Our membranes cut energy use by 40%."),
        )
    )
    s = snippet(doc, parse_query("membrane"))
    assert s is not None and s.field == "description"
    assert [t for t, matched in s.parts if matched] == ["membranes"]
    zh = SearchDoc((("title", "A", "低能耗海水淡化膜技术"),))
    s = snippet(zh, parse_query("海水淡化"))
    assert s is not None and s.parts == (("低能耗", False), ("海水淡化", True), ("膜技术", False))
    s = snippet(SearchDoc((("title", "A", "Énergie SOLAIRE"),)), parse_query("energie"))
    assert s is not None and s.parts[0] == ("Énergie", True)
    # Nothing the query wants: the start of the first field after the title.
    s = snippet(doc, parse_query(""))
    assert s is not None and s.field == "description" and not any(m for _, m in s.parts)
