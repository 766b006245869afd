"""Search over the merged records (table `search_terms`).

Each offer's and request's terms (`sync.search`) are written with its merged state
(`sync.store.projection`), keyed newest first, so a search walks the rarest term's
postings in the order it answers and stops at a page.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, func, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.sql.elements import ColumnElement

from sync.kinds import KindSet
from sync.store.projection import RecordRow
from sync.store.tables import records_t, terms_t, versions_t

# Search (Store.search): a term's postings are counted up to SEARCH_COUNT_FIRST, then
# eight times more while every term reaches the count, up to SEARCH_COUNT_MAX.
SEARCH_COUNT_FIRST = 1_000
SEARCH_COUNT_MAX = 8_000


class SearchStore:
    """Search terms and search of a site's store (part of `sync.store.store.Store`)."""

    engine: Engine
    kinds: KindSet

    if TYPE_CHECKING:  # of the other stores Store is made of

        def _record_row(self, r: Row[tuple[object, ...]]) -> RecordRow: ...

    def _insert_terms(self, conn: Connection, rows: list[tuple[str, int, str]]) -> None:
        """Tens of rows per record: on SQLite, straight to the driver as tuples (SQLAlchemy's
        per-row parameter handling was a third of a record's apply); PostgreSQL keeps
        SQLAlchemy's batched multi-row INSERT, faster there than a plain executemany."""
        if self.engine.dialect.name == "sqlite":
            conn.exec_driver_sql("INSERT INTO search_terms (term, head_wall_ms, record_id) VALUES (?, ?, ?)", rows)
        else:
            conn.execute(insert(terms_t), [{"term": t, "head_wall_ms": w, "record_id": r} for t, w, r in rows])

    def search(
        self,
        terms: Sequence[str],
        *,
        kinds: Sequence[str] | None = None,
        status: str | None = None,
        origin: str | None = None,
        limit: int = 100,
    ) -> list[RecordRow]:
        """Records matching every term (sync.search) and the filters, newest first.

        The rarest term drives (`_rarest`): its postings are keyed newest first, so they
        are walked in the order of the answer, each checked against the other terms (a
        point lookup on the same key) and the filters, until a page is full. The work
        grows with how far down the rarest term's postings the page is found, not with
        the store. With no term, records are walked newest first (ix_records_newest)."""

        # On SQLite (no statistics unless ANALYZE ran) the filters are wrapped so that
        # no index on them is used: a boolean or a kind selects most of the store, and
        # the walks newest first are what keep a page cheap. PostgreSQL's statistics
        # choose those walks by themselves, and wrapping would blind them.
        def off_index(column: Any, default: object) -> Any:
            return func.coalesce(column, default) if self.engine.dialect.name == "sqlite" else column

        cond: list[ColumnElement[bool]] = [
            off_index(records_t.c.deleted, False).is_(False),
            off_index(records_t.c.kind, "").in_(list(self.kinds.searchable if kinds is None else kinds)),
        ]
        if status:
            cond.append(off_index(records_t.c.status, "") == status)
        if origin:
            cond.append(off_index(records_t.c.origin, "") == origin)
        wanted = sorted(set(terms))
        shown = select(records_t, versions_t.c.verified, versions_t.c.key_id)
        with self.engine.connect() as conn:
            if not wanted:
                query = (
                    shown.join(versions_t, versions_t.c.version_id == records_t.c.head_version_id)
                    .where(*cond)
                    .order_by(records_t.c.head_wall_ms.desc(), records_t.c.record_id.desc())
                )
            else:
                rarest = self._rarest(conn, wanted)
                if rarest is None:
                    return []
                d = terms_t.alias("d")

                def also(term: str) -> ColumnElement[bool]:
                    t = terms_t.alias()
                    key = (t.c.term == term, t.c.head_wall_ms == d.c.head_wall_ms, t.c.record_id == d.c.record_id)
                    return select(t.c.record_id).where(*key).exists()

                query = (
                    shown.select_from(
                        d.join(records_t, records_t.c.record_id == d.c.record_id).join(
                            versions_t, versions_t.c.version_id == records_t.c.head_version_id
                        )
                    )
                    .where(d.c.term == rarest, *cond, *(also(t) for t in wanted if t != rarest))
                    .order_by(d.c.head_wall_ms.desc(), d.c.record_id.desc())
                )
            rows = conn.execute(query.limit(limit)).all()
        return [self._record_row(r) for r in rows]

    @staticmethod
    def _rarest(conn: Connection, terms: Sequence[str]) -> str | None:
        """The term with the fewest postings (None if one has none), counting each only
        as far as needed: up to SEARCH_COUNT_FIRST, then eight times more while every
        term still reaches the count, up to SEARCH_COUNT_MAX (past it, every term is
        common and any of them finds a page quickly)."""
        cap = SEARCH_COUNT_FIRST
        while True:
            counts = {
                term: conn.execute(
                    select(func.count()).select_from(
                        select(terms_t.c.record_id).where(terms_t.c.term == term).limit(cap).subquery()
                    )
                ).scalar_one()
                for term in terms
            }
            rarest = min(terms, key=lambda t: (counts[t], t))
            if counts[rarest] < cap or cap >= SEARCH_COUNT_MAX:
                return rarest if counts[rarest] else None
            cap *= 8
