"""The search contract, run on every store backend: one multilingual corpus (English,
Chinese, Korean, Hebrew, Spanish, French, Japanese, with translations) and the same
queries give the same records on SQLite (FTS5) and PostgreSQL (tsvector, GIN).

The corpus is labelled as an adviser would: for each query, the offers and requests a
person typing it wants found, hard negatives beside them (a membrane switch is not a
desalination membrane, but it does hold the word; a French "recyclage" is not the
English word)."""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sync.clock import Stamp
from sync.envelope import Version, make_version
from sync.fulltext import TextQuery, parse_query, tokens
from sync.keys import SigningKey
from sync.kinds import Action, Change, create_change, make_content
from sync.store import SearchQuery, Store
from sync.store.migrate import alembic_config
from tests.backends import BACKENDS, database_url
from transfer.records import KINDS, LISTING, REQUEST, listing_content
from transfer.search import search_query

KEY = SigningKey.generate()
T = "tt-2026.1"
# id -> (kind, values); every offer targets the countries given, in the taxonomy T.
CORPUS: dict[str, tuple[str, dict[str, object]]] = {
    "en-membrane": (
        "listing",
        dict(
            title="Low-energy seawater desalination membranes",
            summary="Graphene-oxide membranes cut the energy of reverse osmosis by 40%",
            description="Pilot plant in Haifa. Classified C02F 1/44.",
            ipc_codes=("C02F 1/44",),
            keywords=("membranes", "desalination"),
            target_countries=("DE", "CN"),
            stage="lab-tested",
            trl=6,
            partnership_types=("licence",),
            translations=(("zh", "低能耗海水淡化膜技术", "氧化石墨烯膜将反渗透能耗降低40%", ""),),
        ),
    ),
    "zh-solar-desal": (
        "listing",
        dict(
            title="太阳能海水淡化装置",
            summary="利用太阳能进行海水淡化的小型装置",
            keywords=("solar-energy", "desalination"),
            target_countries=("KZ",),
            stage="on-the-market",
            trl=9,
        ),
    ),
    "ko-welding": (
        "listing",
        dict(title="로봇용접 자동화 시스템", summary="자동차 공장을 위한 로봇 용접", keywords=("robotics",), trl=7),
    ),
    "he-irrigation": (
        "listing",
        dict(title="מערכת השקיה מדויקת", summary="חיישנים לחקלאות", keywords=("precision-irrigation", "sensors")),
    ),
    "es-solar": (
        "listing",
        dict(
            title="Energía solar para plantas desaladoras",
            summary="Paneles fotovoltaicos probados en Düsseldorf",
            keywords=("solar-energy",),
            target_countries=("ES",),
        ),
    ),
    "fr-recycling": (
        "listing",
        dict(
            title="Recyclage des batteries lithium-ion",
            summary="Procédé de recyclage à basse température",
            keywords=("recycling", "batteries"),
            translations=(("en", "Recycling lithium-ion batteries", "", ""),),
        ),
    ),
    "en-fibre": (
        "listing",
        dict(
            title="Recycled carbon fibre for e-mobility",
            summary="Chassis parts from reclaimed fibre",
            description="Made by the O'Brien process.",
            keywords=("recycling",),
        ),
    ),
    "ja-cells": ("listing", dict(title="太陽電池の製造装置", summary="高効率セルの量産", keywords=("solar-energy",))),
    "en-switch": (
        "listing",
        dict(
            title="Membrane switch keyboards",
            summary="Sealed keypads for medical devices",
            keywords=("electronics",),
            valid_until_ms=50_000,
        ),
    ),
    "en-purifier": (
        "listing",
        dict(
            title="Water purification unit",
            summary="Containerised treatment for villages",
            description="Uses desalination membranes when the source is brackish.",
            advantages="No chemicals.",
            keywords=("water-treatment",),
        ),
    ),
    "rq-desal": (
        "request",
        dict(
            title="Seeking partner for seawater desalination",
            request_type="partner",
            sought="A membrane maker to build a plant on the Caspian coast",
            keywords=("desalination",),
            target_countries=("KZ",),
            via="astana",
        ),
    ),
    "en-deleted": ("listing", dict(title="Desalination membrane (withdrawn copy)", keywords=("desalination",))),
}
ALL = frozenset(CORPUS) - {"en-deleted"}

# query -> the records it must find, and nothing else.
EXPECTED: dict[str, set[str] | frozenset[str]] = {
    "membrane": {"en-membrane", "en-switch", "en-purifier", "rq-desal"},
    "MEMBRANES": {"en-membrane", "en-switch", "en-purifier", "rq-desal"},
    "desalination": {"en-membrane", "zh-solar-desal", "en-purifier", "rq-desal"},  # keywords are text too
    "desal*": {"en-membrane", "zh-solar-desal", "en-purifier", "rq-desal", "es-solar"},  # desaladoras
    '"seawater desalination"': {"en-membrane", "rq-desal"},
    "desalination -membranes": {"zh-solar-desal"},
    "desalination -membranes -solar": set(),
    "solar OR welding": {"zh-solar-desal", "es-solar", "ja-cells"},
    "淡化": {"en-membrane", "zh-solar-desal"},  # the Chinese translation, and a Chinese title
    "海水淡化": {"en-membrane", "zh-solar-desal"},
    "太阳能": {"zh-solar-desal"},
    "로봇": {"ko-welding"},
    "용접": {"ko-welding"},
    "太陽電池": {"ja-cells"},
    "השקיה": {"he-irrigation"},
    "energia": {"es-solar"},
    "ENERGÍA": {"es-solar"},
    "dusseldorf": {"es-solar"},
    "recycling": {"fr-recycling", "en-fibre"},  # an English translation, and "Recycled"
    "recycled": {"fr-recycling", "en-fibre"},
    "recyclage": {"fr-recycling"},
    "C02F 1/44": {"en-membrane"},
    "e-mobility": {"en-fibre"},
    "O'Brien": {"en-fibre"},
    "Caspian": {"rq-desal"},  # what a request seeks
    "chemicals": {"en-purifier"},  # advantages
    "xyzzy": set(),
    '"': set(ALL),
    "*": set(ALL),
    "-": set(ALL),
    "": set(ALL),
    "-membrane": ALL - {"en-membrane", "en-switch", "en-purifier", "rq-desal"},
}


def make(rid: str, kind: str, values: dict[str, object], wall: int) -> Version:
    values = {"taxonomy": T, **values}
    content = (
        listing_content(status="submitted", **values)  # type: ignore[arg-type]
        if kind == "listing"
        else make_content(REQUEST, values, "submitted")  # type: ignore[arg-type]
    )
    return make_version(
        KEY,
        site="tel-aviv",
        record_id=rid,
        hlc=Stamp(wall, 0),
        change=create_change(content),
        kind=LISTING if kind == "listing" else REQUEST,
    )


def load(store: Store) -> None:
    versions = [make(rid, kind, values, 1_000 + i) for i, (rid, (kind, values)) in enumerate(CORPUS.items())]
    store.append_local_batch(versions, now_ms=1)
    head = next(v for v in versions if v.record_id == "en-deleted")
    gone = make_version(
        KEY,
        site="tel-aviv",
        record_id="en-deleted",
        hlc=Stamp(5_000, 0),
        change=Change((), Action.DELETE),
        kind=LISTING,
        parents=(head.version_id,),
    )
    store.append_local_batch([gone], now_ms=2)


@pytest.fixture(params=BACKENDS, scope="module")
def corpus(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    with database_url(request.param, tmp_path_factory.mktemp("search")) as url:
        store = Store.open(url, KINDS)
        load(store)
        yield store
        store.close()


def ids(store: Store, query: SearchQuery, with_facets: bool = False) -> list[str]:
    return [h.record.record_id for h in store.search(query, with_facets=with_facets).hits]


class TestSearchContract:
    @pytest.mark.parametrize("typed", sorted(EXPECTED))
    def test_a_query_finds_what_an_adviser_expects(self, corpus: Store, typed: str) -> None:
        result = corpus.search(SearchQuery(parse_query(typed), limit=50))
        assert {h.record.record_id for h in result.hits} == EXPECTED[typed]
        assert result.total == len(EXPECTED[typed])

    def test_a_title_match_outranks_a_description_match(self, corpus: Store) -> None:
        found = ids(corpus, search_query("desalination membranes"))
        assert found.index("en-membrane") < found.index("en-purifier")
        newest = ids(corpus, search_query("desalination membranes", sort="newest"))
        assert newest == ["rq-desal", "en-purifier", "en-membrane"]  # by head time, whatever the match

    def test_filters_combine_with_text(self, corpus: Store) -> None:
        assert set(ids(corpus, search_query(keywords=["desalination"]))) == {
            "en-membrane",
            "zh-solar-desal",
            "rq-desal",
        }
        assert ids(corpus, search_query("desalination", countries=["kz"], kind="request")) == ["rq-desal"]
        assert ids(corpus, search_query("淡化", countries=["KZ"])) == ["zh-solar-desal"]
        assert ids(corpus, search_query(stage="lab-tested", partnership="licence")) == ["en-membrane"]
        assert ids(corpus, search_query("solar", keywords=["solar-energy"], countries=["ES"])) == ["es-solar"]
        assert ids(corpus, search_query("membrane", origin="brussels")) == []
        assert ids(corpus, search_query("membrane", status="published")) == []
        assert len(ids(corpus, search_query(kind="listing", limit=100))) == len(ALL) - 1

    def test_each_hit_has_a_score_and_a_snippet_marking_the_match(self, corpus: Store) -> None:
        result = corpus.search(search_query("海水淡化"))
        by_id = {h.record.record_id: h for h in result.hits}
        zh = by_id["zh-solar-desal"].snippet
        assert zh is not None and zh.field == "title" and ("海水淡化", True) in zh.parts
        en = by_id["en-membrane"].snippet
        assert en is not None and en.field == "translations[zh].title"
        assert all(h.score > 0 for h in result.hits)

    def test_a_search_that_does_not_count_finds_the_same_page(self, corpus: Store) -> None:
        counted = corpus.search(search_query("desalination", limit=2))
        uncounted = corpus.search(dataclasses.replace(search_query("desalination", limit=2), count=False))
        assert uncounted.hits == counted.hits and counted.total == 4 and uncounted.total == 2

    def test_facets_count_over_every_match(self, corpus: Store) -> None:
        result = corpus.search(search_query("desalination", limit=1), with_facets=True)
        assert len(result.hits) == 1 and result.total == 4
        f = result.facets
        assert dict(f["kind"]) == {"listing": 3, "request": 1}
        assert dict(f["keyword"])["desalination"] == 4 - 1  # the purifier is water-treatment
        assert dict(f["country"]) == {"KZ": 2, "DE": 1, "CN": 1}
        assert dict(f["stage"]) == {"lab-tested": 1, "on-the-market": 1}
        assert dict(f["trl"]) == {"6": 1, "9": 1}
        assert dict(f["origin"]) == {"tel-aviv": 4}
        assert dict(f["status"]) == {"submitted": 4}
        assert f["keyword"][0] == ("desalination", 3)  # most common first

    def test_a_search_may_look_in_titles_only(self, corpus: Store) -> None:
        titles = SearchQuery(parse_query("membrane"), weights="A", limit=50)
        assert set(ids(corpus, titles)) == {"en-membrane", "en-switch"}
        assert ids(corpus, SearchQuery(parse_query("chemicals"), weights="A")) == []  # advantages only
        assert set(ids(corpus, SearchQuery(parse_query("淡化"), weights="A"))) == EXPECTED["淡化"]  # translated titles

    def test_pages_follow_each_other_without_overlap(self, corpus: Store) -> None:
        seen: list[str] = []
        for offset in range(0, 20, 4):
            seen += ids(corpus, search_query(limit=4, offset=offset))
        assert sorted(seen) == sorted(ALL) and len(seen) == len(set(seen))

    def test_what_lapsed_is_left_out_of_a_search_of_what_is_live(self, corpus: Store) -> None:
        """(The domain's "live" is also published: see tests/test_search.py.)"""
        membrane = parse_query("membrane")
        assert "en-switch" in ids(corpus, SearchQuery(membrane, live_at_ms=10))
        assert set(ids(corpus, SearchQuery(membrane, live_at_ms=60_000))) == EXPECTED["membrane"] - {"en-switch"}

    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.text(max_size=40))
    def test_any_text_is_answered(self, corpus: Store, typed: str) -> None:
        corpus.search(SearchQuery(parse_query(typed)), with_facets=True)


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url:
        s = Store.open(url, KINDS)
        yield s
        s.close()


def matches(query: TextQuery, doc: list[str]) -> bool:
    """What a query means, read off the analysed text (the oracle the engines are held to)."""

    def has(term_tokens: tuple[str, ...], prefix: bool) -> bool:
        n = len(term_tokens)
        for i in range(len(doc) - n + 1):
            head, last = doc[i : i + n - 1], doc[i + n - 1]
            if list(term_tokens[:-1]) == head and (
                last.startswith(term_tokens[-1]) if prefix else last == term_tokens[-1]
            ):
                return True
        return False

    return all(any(has(t.tokens, t.prefix) for t in g) for g in query.groups) and not any(
        has(t.tokens, t.prefix) for t in query.excluded
    )


class TestSearchIndex:
    def test_the_engine_answers_what_the_query_means(self, store: Store) -> None:
        """Random titles from a small vocabulary (stamps tie on purpose); every query's
        answer, newest first, is what reading each title says."""
        rnd = random.Random(11)
        vocab = ["alpha", "beta", "gamma", "delta", "solar", "cells", "海水", "淡化", "로봇"]
        titles = {f"offer-{i:03d}": " ".join(rnd.choices(vocab, k=rnd.randint(1, 5))) for i in range(150)}
        walls = {rid: 1_000 + i // 3 for i, rid in enumerate(titles)}
        store.append_local_batch(
            [
                make_version(
                    KEY,
                    site="tel-aviv",
                    record_id=rid,
                    hlc=Stamp(walls[rid], i % 3),
                    change=create_change(listing_content(title=t)),
                    kind=LISTING,
                )
                for i, (rid, t) in enumerate(titles.items())
            ],
            now_ms=1,
        )
        queries = ["alpha", "alpha beta", '"alpha beta"', "alpha OR delta", "gam*", "-alpha", "beta -gamma"]
        queries += ["solar cell", '"cells solar"', "海水淡化", "淡化 로봇", "nothing", "alpha nothing", "cell*"]
        for typed in queries:
            q = parse_query(typed)
            want = [rid for rid, t in titles.items() if matches(q, tokens(t))]
            want.sort(key=lambda r: (walls[r], int(r[-3:]) % 3, r), reverse=True)
            got = store.search(SearchQuery(q, sort="newest", limit=200))
            assert got.total == len(want), typed
            assert sorted(h.record.record_id for h in got.hits) == sorted(want), typed

    def test_the_index_follows_edits_deletes_and_re_merges(self, store: Store) -> None:
        offer = make_version(
            KEY,
            site="tel-aviv",
            record_id="offer-1",
            hlc=Stamp(1_000, 0),
            change=create_change(listing_content(title="Solar membrane")),
            kind=LISTING,
        )
        store.append_local_batch([offer], now_ms=1)
        assert ids(store, search_query("solar")) == ["offer-1"]
        edit = make_version(
            KEY,
            site="tel-aviv",
            record_id="offer-1",
            hlc=Stamp(2_000, 0),
            change=Change((("title", "Wind blade"),)),
            kind=LISTING,
            parents=(offer.version_id,),
        )
        store.append_local_batch([edit], now_ms=2)
        assert ids(store, search_query("solar")) == [] and ids(store, search_query("blade")) == ["offer-1"]
        gone = make_version(
            KEY,
            site="tel-aviv",
            record_id="offer-1",
            hlc=Stamp(3_000, 0),
            change=Change((), Action.DELETE),
            kind=LISTING,
            parents=(edit.version_id,),
        )
        store.append_local_batch([gone], now_ms=3)
        assert ids(store, search_query("blade")) == [] and store.search(search_query()).total == 0

    def test_the_facets_of_everything_kept_with_the_index_equal_a_count_over_it(self, store: Store) -> None:
        """The counts kept as the index is written (read for a search that filters nothing)
        equal the facets counted over every indexed record, through creates, edits that move
        a record between facet values, and deletes."""
        rng = random.Random(11)
        heads: dict[str, Version] = {}
        stages = ("concept", "lab-tested", "on-the-market")
        for step in range(60):
            wall = 10_000 + step
            rid = f"offer-{rng.randrange(12)}"
            head = heads.get(rid)
            if head is None:
                change = create_change(listing_content(title=f"Offer {rid}", stage=rng.choice(stages)))
                v = make_version(KEY, site="tel-aviv", record_id=rid, hlc=Stamp(wall, 0), change=change, kind=LISTING)
            elif rng.random() < 0.25:
                v = make_version(
                    KEY,
                    site="tel-aviv",
                    record_id=rid,
                    hlc=Stamp(wall, 0),
                    change=Change((), Action.DELETE if head.change.action != Action.DELETE else Action.UNDELETE),
                    kind=LISTING,
                    parents=(head.version_id,),
                )
            else:
                v = make_version(
                    KEY,
                    site="tel-aviv",
                    record_id=rid,
                    hlc=Stamp(wall, 0),
                    change=Change((("stage", rng.choice(stages)),)),
                    kind=LISTING,
                    parents=(head.version_id,),
                )
            heads[rid] = v
            store.append_local_batch([v], now_ms=wall)
        kept = store.search(search_query(), with_facets=True).facets
        counted = store.search(search_query(kind="listing"), with_facets=True).facets  # the count over every match
        assert kept == counted and kept["stage"]
        assert sum(n for _, n in kept["kind"]) == store.search(search_query()).total

    def test_common_terms_are_those_most_records_hold(self, store: Store) -> None:
        versions = [
            make_version(
                KEY,
                site="tel-aviv",
                record_id=f"offer-{i}",
                hlc=Stamp(1_000 + i, 0),
                change=create_change(listing_content(title=f"Membrane {'graphene' if i < 2 else 'ceramic'} {i}")),
                kind=LISTING,
            )
            for i in range(10)
        ]
        store.append_local_batch(versions, now_ms=1)
        words = [tokens(w)[0] for w in ("membrane", "ceramic", "graphene", "turbine")]
        assert store.common_terms(words, share=0.5, at_least=3) == {words[0], words[1]}
        assert store.common_terms(words) == set(), "a store this small has no common word"

    def test_a_batch_that_changes_the_newest_doc_and_adds_one_stores_both(self, store: Store) -> None:
        """The record holding the highest index id is re-indexed (its rows dropped, its id
        kept) in the batch that indexes a new record: the new one takes a fresh id."""

        def create(rid: str, title: str, wall: int) -> Version:
            change = create_change(listing_content(title=title))
            return make_version(KEY, site="tel-aviv", record_id=rid, hlc=Stamp(wall, 0), change=change, kind=LISTING)

        first = create("offer-1", "Solar membrane", 1_000)
        store.append_local_batch([first], now_ms=1)
        edit = make_version(
            KEY,
            site="tel-aviv",
            record_id="offer-1",
            hlc=Stamp(2_000, 0),
            change=Change((("title", "Solar wind blade"),)),
            kind=LISTING,
            parents=(first.version_id,),
        )
        store.apply_batch("tel-aviv", [edit, create("offer-2", "Solar battery", 2_001)], [], through_seq=2, now_ms=2)
        assert sorted(ids(store, search_query("solar"))) == ["offer-1", "offer-2"]
        assert ids(store, search_query("blade")) == ["offer-1"] and ids(store, search_query("battery")) == ["offer-2"]

    def test_a_store_from_before_the_full_text_index_is_indexed_when_opened(self, tmp_path: Path) -> None:
        """A store at revision 0012 (the term table) is migrated and its records indexed."""
        from alembic import command

        with database_url("sqlite", tmp_path) as url:
            store = Store.open(url, KINDS)
            load(store)
            cfg = alembic_config()
            with store.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.downgrade(cfg, "0012")
            with store.engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM records")).scalar_one() == len(CORPUS)
            store.close()
            again = Store.open(url, KINDS)
            try:
                assert {h.record.record_id for h in again.search(search_query("淡化")).hits} == EXPECTED["淡化"]
                assert again.search(search_query()).total == len(ALL)
            finally:
                again.close()
