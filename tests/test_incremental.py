"""A round that finds nothing new does the same work on a large store as on a
small one: the same statements, each an index search (no scan of the versions,
the log or the records), on the hub and on the node. Checked by counting what
the stores execute and asking SQLite for each query's plan: no timings."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from tests.harness import Hub, Node, make_node
from transfer.records import listing_content

BIG_TABLES = re.compile(r"\bSCAN (versions|log_entries|records|rejections)\b")


@contextmanager
def recorded(*engines: Engine) -> Iterator[list[tuple[Engine, str, Any]]]:
    seen: list[tuple[Engine, str, Any]] = []
    hooks = []
    for engine in engines:

        def hook(
            conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool, e: Engine = engine
        ) -> None:
            if threading.current_thread().name != "wal-checkpoint":  # the store's upkeep, not the round
                seen.append((e, statement, params))

        event.listen(engine, "before_cursor_execute", hook)
        hooks.append((engine, hook))
    try:
        yield seen
    finally:
        for engine, hook in hooks:
            event.remove(engine, "before_cursor_execute", hook)


def scans(engine: Engine, statement: str, params: Any) -> list[str]:
    if not statement.lstrip().upper().startswith("SELECT"):
        return []
    with engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params).all()
    return [row[-1] for row in plan if BIG_TABLES.search(row[-1])]


def noop_round(hub: Hub, node: Node) -> list[tuple[Engine, str, Any]]:
    assert hub.running is not None and node.node is not None
    engines = (hub.running.site.store.engine, node.node.running.site.store.engine)
    with recorded(*engines) as seen:
        result = node.sync()
    assert result.pushed == 0 and result.pulled == 0
    return list(seen)


def grow(node: Node, n: int) -> None:
    assert node.node is not None
    site = node.node.running.site
    for i in range(n):
        site.add_record(listing_content(title=f"Listing {i}", summary="s" * 200))
    node.sync()


def test_a_round_with_nothing_new_costs_the_same_on_a_large_store(hub: Hub, tmp_path: Path) -> None:
    small = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    big = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    try:
        grow(small, 50)
        grow(big, 2000)  # the hub now holds 2,050; the big node 2,050 once it pulls
        small.sync()
        big.sync()
        noop_round(hub, small)
        noop_round(hub, big)  # warm: registry fetched, cursors settled
        at_small = noop_round(hub, small)
        at_big = noop_round(hub, big)
        assert hub.running is not None

        def work(seen: list[tuple[Engine, str, Any]]) -> list[tuple[str, str]]:
            """What each side executed (the two run in parallel threads: order across them varies)."""
            hub_engine = hub.running.site.store.engine if hub.running else None
            return sorted(("hub" if e is hub_engine else "node", stmt) for e, stmt, _ in seen)

        assert work(at_big) == work(at_small)
        for engine, statement, params in at_big:
            assert scans(engine, statement, params) == [], statement
        with big.node.running.site.store.engine.connect() as conn:  # type: ignore[union-attr]
            assert conn.execute(text("SELECT COUNT(*) FROM versions")).scalar_one() == 2050
    finally:
        small.stop()
        big.stop()
