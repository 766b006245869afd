"""The kept figures (transfer.kept_figures): the same rows and counts whatever order the
versions arrive in and however often they are counted along the way, the same as counting
everything again from nothing, on every backend."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sync.jobs import job_cursor
from sync.keys import SigningKey
from sync.store import Store
from tests.backends import BACKENDS, database_url
from tests.test_report import Writer, at, network_history
from transfer import kept_figures
from transfer.kept_figures import FigureKeeper, Held, Step, count_record, counts_t, interests_t, offers_t, rows_t
from transfer.records import KINDS


def kept(store: Store) -> tuple[list[tuple[Any, ...]], ...]:
    with store.engine.connect() as conn:
        return tuple(
            sorted(tuple(r) for r in conn.execute(select(t).where(t.c.n != 0) if t is counts_t else select(t)))
            for t in (rows_t, counts_t, offers_t, interests_t)
        )


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_kept_figures_depend_on_what_is_held_not_on_its_order(backend: str, tmp_path: Path) -> None:
    w = Writer()
    ids = network_history(w, SigningKey.generate())
    shuffled = list(w.versions)
    random.Random(7).shuffle(shuffled)
    results = []
    for n, (order, size) in enumerate(((w.versions, 3), (list(reversed(w.versions)), 1), (shuffled, 2))):
        folder = tmp_path / f"store-{n}"
        folder.mkdir()
        with database_url(backend, folder) as url:
            store = Store.open(url, KINDS)
            try:
                keeper = FigureKeeper(store)
                for i in range(0, len(order), size):  # counted after every batch
                    store.apply_batch("hq", order[i : i + size], [], through_seq=i + size, now_ms=at("2026-12-25"))
                    keeper.catch_up()
                store.quarantine(w.keys["thief"].key_id, 0, "the key was stolen")
                keeper.catch_up()
                got = kept(store)
                keeper.rebuild()
                assert kept(store) == got  # counted as they came == counted from nothing
                results.append(got)
            finally:
                store.close()
    assert results[0] == results[1] == results[2]
    rows, counts, offers, interests = results[0]
    # The request's firm registered at Brussels, whichever of the two arrived first.
    assert ("requests.received", "brussels", "home_centre", "brussels") in {r[1:5] for r in rows}
    # The offer published with a stolen key counts for nothing once the key is revoked.
    assert ids["o3"] not in {r[0] for r in rows if r[1] == "offers.published"}
    assert {o[0] for o in offers} == {ids["o1"], ids["o2"]}
    assert [i[0] for i in interests if i[3] is not None] == [ids["i1"]]  # introduced
    assert all(c[-1] > 0 for c in counts)


def test_a_firm_is_served_by_each_step_that_served_it() -> None:
    firm = "01a2500f-27e8-7857-8dc7-1e88b8c06adb"
    held = Held(
        record_id="i",
        kind="interest",
        origin=firm,
        steps=(
            Step("v-create", "create", "sent", at("2026-10-28")),
            Step("v-intro", "introduce", "", at("2026-11-20")),
        ),
        fields={"to_owner": "tel-aviv", "from_centre": "brussels"},
    )
    served = [r for r in count_record(held).rows if r.figure == "firms.served"]
    # Brussels sent it (28 Oct) and was introduced (20 Nov): served in October and in
    # November; Tel Aviv at the introduction.
    assert sorted((r.centre, r.by, r.version_id) for r in served) == [
        ("brussels", "firm:interests.introduced", "v-intro"),
        ("brussels", "firm:interests.sent", "v-create"),
        ("tel-aviv", "firm:interests.introduced", "v-intro"),
    ]
    assert {r.value for r in served} == {firm}


def test_a_catch_up_behind_another_leaves_the_figures_as_they_are(tmp_path: Path) -> None:
    # The job and a report catch up at once: the one that read an older head finds the
    # cursor past it and leaves everything as the other counted it.
    w = Writer()
    network_history(w, SigningKey.generate())
    store = Store.open(f"sqlite:///{tmp_path / 'store.db'}", KINDS)
    try:
        keeper = FigureKeeper(store)
        store.apply_batch("hq", w.versions[:10], [], through_seq=10, now_ms=at("2026-12-25"))
        older = store.log_head()
        store.apply_batch("hq", w.versions[10:], [], through_seq=len(w.versions), now_ms=at("2026-12-25"))
        keeper.catch_up()
        counted = kept(store)
        assert keeper._pass(older) == (0, store.log_head(), False)
        assert kept(store) == counted
    finally:
        store.close()


@contextmanager
def kept_history(backend: str, folder: Path) -> Iterator[tuple[Writer, Store, FigureKeeper]]:
    """The report tests' network history held by a new store, its figures kept."""
    w = Writer()
    network_history(w, SigningKey.generate())
    with database_url(backend, folder) as url:
        store = Store.open(url, KINDS)
        try:
            keeper = FigureKeeper(store)
            store.apply_batch("hq", w.versions, [], through_seq=len(w.versions), now_ms=at("2026-12-25"))
            keeper.catch_up()
            yield w, store, keeper
        finally:
            store.close()


def brussels_request_homes(store: Store) -> set[str]:
    """The home centres the requests received through Brussels are counted under."""
    return {r[4] for r in kept(store)[0] if r[1:4] == ("requests.received", "brussels", "home_centre")}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_quarantined_firm_leaves_its_requests_without_a_home_centre(backend: str, tmp_path: Path) -> None:
    with kept_history(backend, tmp_path) as (w, store, keeper):
        store.quarantine(w.keys["brussels"].key_id, 0, "Brussels' key was stolen")  # it registered the firm
        keeper.catch_up()
        assert brussels_request_homes(store) == {"(unknown)"}
        counted = kept(store)
        keeper.rebuild()
        assert kept(store) == counted


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_quarantine_is_counted_a_part_a_pass(backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quarantine's records are counted again a few a pass (each pass one short write
    transaction), and a second quarantine arriving mid-count starts the count over."""
    with kept_history(backend, tmp_path) as (w, store, keeper):
        monkeypatch.setattr(kept_figures, "PASS_ENTRIES", 2)
        store.quarantine(w.keys["brussels"].key_id, 0, "Brussels' key was stolen")
        head = store.log_head()
        counted, through, left = keeper._pass(head)
        assert left and through == head and counted > 0  # a part of the quarantine, more to come
        # Count on past the log entries the second quarantine will take out, then quarantine.
        thief = [i + 1 for i, v in enumerate(w.versions) if v.author_key_id == w.keys["thief"].key_id]
        assert thief
        with store.engine.connect() as conn:
            while job_cursor(conn, kept_figures.QUARANTINE_AT) < max(thief):
                assert left
                _, _, left = keeper._pass(head)
                conn.rollback()
        store.quarantine(w.keys["thief"].key_id, 0, "the key was stolen")  # the mark moves mid-count
        passes = 0
        while left:
            _, _, left = keeper._pass(head)
            passes += 1
        assert passes > 1
        counted_in_parts = kept(store)
        keeper.rebuild()
        assert kept(store) == counted_in_parts
        assert brussels_request_homes(store) == {"(unknown)"}
