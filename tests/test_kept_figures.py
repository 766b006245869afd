"""The kept figures (transfer.kept_figures): the same rows and counts whatever order the
versions arrive in and however often they are counted along the way, the same as counting
everything again from nothing, on every backend."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from sync.keys import SigningKey
from sync.store import Store
from tests.backends import BACKENDS, database_url
from tests.test_report import Writer, at, network_history
from transfer.kept_figures import FigureKeeper, counts_t, interests_t, offers_t, rows_t
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
