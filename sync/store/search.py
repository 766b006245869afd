"""Full-text search over the merged records, in the database's own engine.

Each searchable record that is not deleted has a row in `search_docs` (its head time,
when it lapses, its facets) and its analysed text (`sync.fulltext`) in the engine's
index: on SQLite the FTS5 table `search_fts` (rowid = doc_id; columns title, summary,
body for weights A, B, C, and tags for the facet tokens), on PostgreSQL the `tsv`
column (weights A, B, C, and D for the facet tokens) under a GIN index. Both are
written in the transaction that writes the merged state (`reindex`, called by
`sync.store.projection`).

A search (`search`) is one text query and facet filters, rendered for the engine
(`fulltext.fts5_match`, `fulltext.tsquery`). It is ranked by relevance, BM25 with the
weights 10, 4, 1 on SQLite and `ts_rank` with 1, 0.4, 0.2 on PostgreSQL (a facet
token never counts), newest first on ties, or newest first when asked; it counts
every match (unless asked not to) and, when asked, the facet values over every match.
A query that only excludes matches every record but those. Scores are comparable
within one answer, not across backends.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, delete, select, text
from sqlalchemy.engine import Row

from sync import fulltext
from sync.fulltext import SearchDoc, SearchQuery, Snippet, TextQuery
from sync.kinds import Content, KindSet
from sync.merge import state_from_json
from sync.store.projection import RecordRow
from sync.store.replicas import WriteLock, exclusive
from sync.store.tables import IDS, IN_CHUNK, docs_t, facet_counts_t, insert_rows, records_t, versions_t

log = logging.getLogger(__name__)

TEXT_COLUMNS = ("title", "summary", "body")
_COLUMN_OF_WEIGHT = {"A": 0, "B": 1, "C": 2}
# Built once, run by every reindex: the index rows of the records named by `IDS`.
_DOCS_OF = select(docs_t.c.record_id, docs_t.c.doc_id, docs_t.c.facets).where(docs_t.c.record_id.in_(IDS))
BM25 = "bm25(search_fts, 10.0, 4.0, 1.0, 0.0)"
TS_RANK_WEIGHTS = "{0, 0.2, 0.4, 1.0}"  # D (facets), C, B, A
# The facets every searchable record has, beside the ones its kind's search doc gives.
CORE_FACETS = ("kind", "status", "origin")
REBUILD_CHUNK = 1_000


@dataclass(frozen=True)
class SearchHit:
    record: RecordRow
    score: float
    snippet: Snippet | None


@dataclass(frozen=True)
class SearchResult:
    """A page of hits, how many match in all (for a query that counts), and (when asked)
    the facet counts over all matches: facet -> ((value, count), ...), most common first."""

    hits: tuple[SearchHit, ...]
    total: int
    facets: dict[str, tuple[tuple[str, int], ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Plan:
    """A search rendered for the engine: the FROM and WHERE clauses, their parameters,
    and the score expression."""

    source: str
    where: str
    params: dict[str, Any]
    score: str


class SearchStore:
    """The search index and search of a site's store (part of `sync.store.store.Store`)."""

    engine: Engine
    kinds: KindSet
    _write_lock: WriteLock

    if TYPE_CHECKING:  # of the other stores Store is made of

        def _record_row(self, r: Row[tuple[object, ...]]) -> RecordRow: ...

    # Writing the index ---------------------------------------------------------------

    def _doc_of(self, content: Content, origin: str) -> SearchDoc | None:
        doc = self.kinds.search_doc(content)
        if doc is None:
            return None
        core = (("kind", content.kind), ("status", content.status), ("origin", origin))
        return SearchDoc(doc.text, core + doc.facets, doc.lapses_at_ms)

    def reindex(
        self, conn: Connection, record_ids: Sequence[str], fresh: Sequence[tuple[str, int, str, Content]]
    ) -> None:
        """Drop the index rows of `record_ids` and write those of `fresh`
        (record id, head wall time, origin, merged content), in `conn`'s transaction."""
        sqlite = self.engine.dialect.name == "sqlite"
        old: dict[str, int] = {}
        counted: Counter[str] = Counter()
        for i in range(0, len(record_ids), IN_CHUNK):
            chunk = list(record_ids[i : i + IN_CHUNK])
            for r in conn.execute(_DOCS_OF, {"ids": chunk}):
                old[r.record_id] = r.doc_id
                counted.subtract(json.loads(r.facets))
        if old:
            doc_ids = sorted(old.values())
            for i in range(0, len(doc_ids), IN_CHUNK):
                gone = doc_ids[i : i + IN_CHUNK]
                if sqlite:
                    marks = ",".join("?" * len(gone))
                    conn.exec_driver_sql(f"DELETE FROM search_fts WHERE rowid IN ({marks})", tuple(gone))
                conn.execute(delete(docs_t).where(docs_t.c.doc_id.in_(gone)))
        docs = [(rid, wall, doc) for rid, wall, origin, content in fresh if (doc := self._doc_of(content, origin))]
        for _rid, _wall, doc in docs:
            counted.update(f"{f}={v}" for f, v in doc.facets)
        self._count_facets(conn, counted)
        if not docs:
            return
        if sqlite:
            self._write_sqlite(conn, docs, old)
        else:
            self._write_postgresql(conn, docs)

    @staticmethod
    def _count_facets(conn: Connection, counted: Counter[str]) -> None:
        """Add the change of each facet value's count (one statement for the batch)."""
        changes = [{"value": v, "docs": n} for v, n in sorted(counted.items()) if n]
        insert_rows(
            conn,
            facet_counts_t,
            changes,
            on_conflict="ON CONFLICT (value) DO UPDATE SET docs = search_facet_counts.docs + excluded.docs",
        )

    @staticmethod
    def _columns(doc: SearchDoc) -> tuple[str, str, str]:
        """The analysed text of each weight (A, B, C), tokens joined by spaces."""
        cols: tuple[list[str], list[str], list[str]] = ([], [], [])
        for _name, weight, piece in doc.text:
            cols[_COLUMN_OF_WEIGHT[weight]].append(fulltext.analysed(piece))
        return " ".join(cols[0]), " ".join(cols[1]), " ".join(cols[2])

    @staticmethod
    def _facets_json(doc: SearchDoc) -> str:
        # The bytes json.dumps(ensure_ascii=False, separators=(",", ":")) gives, made faster.
        return orjson.dumps([f"{f}={v}" for f, v in doc.facets]).decode()

    def _write_sqlite(self, conn: Connection, docs: list[tuple[str, int, SearchDoc]], old: dict[str, int]) -> None:
        """Straight to the driver as tuples: SQLAlchemy's per-row parameter handling costs
        more than the FTS5 insert itself."""
        # Above every id in the table and every id kept for a record re-indexed here (whose
        # rows were just dropped, so the table's maximum may no longer show it).
        top = max(
            conn.exec_driver_sql("SELECT coalesce(max(doc_id), 0) FROM search_docs").scalar_one(), *old.values(), 0
        )
        doc_rows = []
        fts_rows = []
        for rid, wall, doc in docs:
            doc_id = old.get(rid)
            if doc_id is None:
                top += 1
                doc_id = top
            doc_rows.append((doc_id, rid, wall, doc.lapses_at_ms, self._facets_json(doc)))
            a, b, c = self._columns(doc)
            tags = " ".join(fulltext.tag_tokens(doc.facets))
            fts_rows.append((doc_id, a, b, c, tags))
        conn.exec_driver_sql(
            "INSERT INTO search_docs (doc_id, record_id, head_wall_ms, lapses_at_ms, facets) VALUES (?, ?, ?, ?, ?)",
            doc_rows,
        )
        conn.exec_driver_sql(
            "INSERT INTO search_fts (rowid, title, summary, body, tags) VALUES (?, ?, ?, ?, ?)", fts_rows
        )

    def _write_postgresql(self, conn: Connection, docs: list[tuple[str, int, SearchDoc]]) -> None:
        rows = []
        for rid, wall, doc in docs:
            a, b, c = self._columns(doc)
            tags = fulltext.tag_tokens(doc.facets)
            tsv = fulltext.tsvector((("A", a.split()), ("B", b.split()), ("C", c.split()), ("D", tags)))
            rows.append(
                {
                    "record_id": rid,
                    "head_wall_ms": wall,
                    "lapses_at_ms": doc.lapses_at_ms,
                    "facets": self._facets_json(doc),
                    "tsv": tsv,
                }
            )
        insert_rows(conn, docs_t, rows)

    def build_search_index(self) -> int:
        """Index every searchable record held that is not deleted, if the index holds
        nothing while such records exist (a store migrated from a release before the
        full-text index). Returns how many records were indexed."""
        with exclusive(self.engine, "techbridge:build-search-index") as mine:
            return self._build_search_index() if mine else 0  # another process on the store builds it

    def _build_search_index(self) -> int:
        searchable = list(self.kinds.searchable)
        live_records = records_t.c.deleted.is_(False) & records_t.c.kind.in_(searchable)
        with self.engine.connect() as conn:
            if conn.execute(select(docs_t.c.doc_id).limit(1)).first() is not None:
                return 0
            if conn.execute(select(records_t.c.record_id).where(live_records).limit(1)).first() is None:
                return 0
        log.info("building the search index from the records held")
        done = 0
        after = ""
        while True:
            with self._write_lock, self.engine.begin() as conn:
                rows = conn.execute(
                    select(records_t.c.record_id, records_t.c.head_wall_ms, records_t.c.origin, records_t.c.state_json)
                    .where(live_records, records_t.c.record_id > after)
                    .order_by(records_t.c.record_id)
                    .limit(REBUILD_CHUNK)
                ).all()
                if not rows:
                    break
                fresh = [
                    (r.record_id, r.head_wall_ms, r.origin, state_from_json(r.state_json, self.kinds).content)
                    for r in rows
                ]
                self.reindex(conn, [r.record_id for r in rows], fresh)
            done += len(rows)
            after = rows[-1].record_id
        log.info("search index built: %s records", done)
        return done

    # Searching -----------------------------------------------------------------------

    def _plan(self, query: SearchQuery) -> _Plan:
        """FROM, WHERE and score of a search, for this engine."""
        tags = [[fulltext.tag_token(f, v) for v in values] for f, values in query.facets]
        params: dict[str, Any] = {}
        where: list[str] = []
        if query.live_at_ms is not None:
            where.append("(d.lapses_at_ms = 0 OR d.lapses_at_ms > :live_at)")
            params["live_at"] = query.live_at_ms
        if query.record_ids is not None:
            names = [f"rid{i}" for i in range(len(query.record_ids))]
            where.append(f"d.record_id IN ({', '.join(':' + n for n in names)})" if names else "1 = 0")
            params.update(zip(names, query.record_ids, strict=True))
        if self.engine.dialect.name == "sqlite":
            columns = tuple(TEXT_COLUMNS[_COLUMN_OF_WEIGHT[w]] for w in query.weights)
            match = fulltext.fts5_match(query.text, columns, "tags", tags)
            if match:
                params["match"] = match
                return _Plan(
                    "search_fts JOIN search_docs d ON d.doc_id = search_fts.rowid",
                    " AND ".join(["search_fts MATCH :match", *where]),
                    params,
                    "0.0" if query.text.empty else f"-{BM25}",  # facets alone: nothing to rank by
                )
            if query.text.excluded:
                params["excluded"] = fulltext.fts5_excluded(query.text, columns)
                where.append("d.doc_id NOT IN (SELECT rowid FROM search_fts WHERE search_fts MATCH :excluded)")
            return _Plan("search_docs d", " AND ".join(where) or "1 = 1", params, "0.0")
        tsq = fulltext.tsquery(query.text, query.weights, "D", tags)
        if not tsq:
            return _Plan("search_docs d", " AND ".join(where) or "TRUE", params, "0.0")
        params["tsq"] = tsq
        return _Plan(
            "search_docs d CROSS JOIN CAST(:tsq AS tsquery) AS q",
            " AND ".join(["d.tsv @@ q", *where]),
            params,
            f"ts_rank('{TS_RANK_WEIGHTS}', d.tsv, q)",
        )

    def search(self, query: SearchQuery, *, with_facets: bool = False) -> SearchResult:
        """A page of the records matching `query`, each with its score and a snippet, the
        number of matches and, `with_facets`, the facet counts over all of them."""
        plan = self._plan(query)
        if query.sort == "newest" or plan.score == "0.0":
            order = "d.head_wall_ms DESC, d.record_id DESC"
        else:
            order = "score DESC, d.head_wall_ms DESC, d.record_id DESC"
        page = text(
            f"SELECT d.record_id, {plan.score} AS score FROM {plan.source} WHERE {plan.where} "
            f"ORDER BY {order} LIMIT :limit OFFSET :offset"
        )
        count = text(f"SELECT count(*) FROM {plan.source} WHERE {plan.where}")
        params = {**plan.params, "limit": query.limit, "offset": query.offset}
        with self.engine.connect() as conn:
            found = conn.execute(page, params).all()
            if not with_facets:
                facets = {}
            elif _filters_nothing(query):
                facets = self._all_facet_counts(conn)
            else:
                facets = self._facet_counts(conn, plan)
            if with_facets:  # every indexed record holds one kind: its counts add up to the matches
                total = sum(n for _, n in facets.get("kind", ()))
            elif query.count:
                total = int(conn.execute(count, plan.params).scalar_one())
            else:
                total = query.offset + len(found)
            rows = self._rows(conn, [r.record_id for r in found])
        hits = []
        for r in found:
            row = rows.get(r.record_id)
            if row is None:
                continue
            doc = self._doc_of(row.state.content, row.origin) if query.snippets else None
            hits.append(SearchHit(row, float(r.score), fulltext.snippet(doc, query.text) if doc else None))
        return SearchResult(tuple(hits), total, facets)

    def common_terms(self, terms: Sequence[str], *, share: float = 0.05, at_least: int = 200) -> set[str]:
        """Which analysed `terms` are held by more than `share` of the indexed records (and
        by at least `at_least`): words too common to find alike records by. Each count stops
        at that bound, so a common word costs no more than a rare one."""
        with self.engine.connect() as conn:
            total = sum(
                int(r.docs)
                for r in conn.execute(select(facet_counts_t.c.docs).where(facet_counts_t.c.value.like("kind=%")))
            )
            cap = max(at_least, int(share * total))
            if total < cap:
                return set()
            common = set()
            for term in dict.fromkeys(terms):
                plan = self._plan(SearchQuery(TextQuery(((fulltext.Term((term,)),),))))
                held = conn.execute(
                    text(f"SELECT count(*) FROM (SELECT 1 FROM {plan.source} WHERE {plan.where} LIMIT :cap) AS s"),
                    {**plan.params, "cap": cap},
                ).scalar_one()
                if int(held) >= cap:
                    common.add(term)
        return common

    @staticmethod
    def _all_facet_counts(conn: Connection) -> dict[str, tuple[tuple[str, int], ...]]:
        counted = conn.execute(select(facet_counts_t.c.value, facet_counts_t.c.docs).where(facet_counts_t.c.docs > 0))
        return _facets_by_name((str(r.value), int(r.docs)) for r in counted)

    def _facet_counts(self, conn: Connection, plan: _Plan) -> dict[str, tuple[tuple[str, int], ...]]:
        if self.engine.dialect.name == "sqlite":
            source = f"{plan.source} CROSS JOIN json_each(d.facets) AS j"
        else:
            source = f"{plan.source} CROSS JOIN LATERAL jsonb_array_elements_text(CAST(d.facets AS jsonb)) AS j(value)"
        counted = conn.execute(
            text(f"SELECT j.value AS value, count(*) AS n FROM {source} WHERE {plan.where} GROUP BY j.value"),
            plan.params,
        ).all()
        return _facets_by_name((str(r.value), int(r.n)) for r in counted)

    def _rows(self, conn: Connection, record_ids: Sequence[str]) -> dict[str, RecordRow]:
        if not record_ids:
            return {}
        rows = conn.execute(
            select(records_t, versions_t.c.verified, versions_t.c.key_id)
            .join(versions_t, versions_t.c.version_id == records_t.c.head_version_id)
            .where(records_t.c.record_id.in_(bindparam("ids", expanding=True))),
            {"ids": list(record_ids)},
        ).all()
        return {r.record_id: self._record_row(r) for r in rows}


def _filters_nothing(query: SearchQuery) -> bool:
    """A search of every indexed record: no text, no facet, no liveness, no id list."""
    return query.text.empty and not query.facets and query.live_at_ms is None and query.record_ids is None


def _facets_by_name(counted: Iterable[tuple[str, int]]) -> dict[str, tuple[tuple[str, int], ...]]:
    out: dict[str, list[tuple[str, int]]] = {}
    for tagged, n in counted:
        facet, _, value = tagged.partition("=")
        out.setdefault(facet, []).append((value, n))
    return {f: tuple(sorted(vs, key=lambda v: (-v[1], v[0]))) for f, vs in sorted(out.items())}
