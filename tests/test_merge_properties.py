"""Convergence, held to it by hypothesis.

Random edit histories at 3 to 5 sites (edits to shared fields, lifecycle
steps, deletes, clocks that drift and jump), with partial syncs that drop
versions and repair them later. At the end every site holds the same set of
versions, delivered in its own random order with duplicates, and every site
must derive byte-identical state and conflicts, in memory and in a real
SQLite store fed in random batches.
"""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from sync.clock import Stamp
from sync.errors import FailedPrecondition
from sync.kinds import Action, Change, FieldValue
from sync.merge import MergeInput, _merge_all, merge, state_to_json
from sync.store import Store
from tests.merge_helpers import OWNER, Writer
from transfer.records import KINDS, ListingStatus

SITES = ["tel-aviv", "hq", "brussels", "toledo", "daejeon"]
ACTIONS = [
    Action.SUBMIT,
    Action.VALIDATE,
    Action.PUBLISH,
    Action.WITHDRAW,
    Action.ARCHIVE,
    Action.DELETE,
    Action.UNDELETE,
]
VALUES: dict[str, list[FieldValue]] = {
    "title": ["Membrane", "Sensor", "Coating"],
    "summary": ["", "short", "longer summary"],
    "tags": [(), ("water",), ("water", "solar")],
    "featured": [True, False],
}
FIELDS = sorted(VALUES)

op = st.tuples(
    st.integers(0, 4),
    st.sampled_from(["edit", "edit", "step", "sync", "sync", "clock", "forge"]),
    st.integers(0, 10**6),
)
STATUSES = list(ListingStatus)
ALL_ACTIONS: list[Action] = [a for a in Action if a not in (Action.DELETE, Action.UNDELETE)]


def play(n_sites: int, ops: list[tuple[int, str, int]]) -> list[Writer]:
    writers = [Writer(s) for s in SITES[:n_sites]]
    writers[0].create("Start")
    for who, kind, r in ops:
        w = writers[who % n_sites]
        if kind == "sync":
            src = writers[r % n_sites]
            ids = sorted(src.held)
            w.receive_from(src, ids[:: 1 + r % 3])  # a partial delivery: the rest come with a later sync
        elif kind == "clock":
            w.now += (r % 120_000) - 30_000  # drift, sometimes backwards
        elif w.state().applied == 0:
            continue
        elif kind == "forge":
            # A signed step that skips or undoes the machine (a site that does not check).
            forged = ALL_ACTIONS[r % len(ALL_ACTIONS)]
            status = STATUSES[(r // 7) % len(STATUSES)]
            fields = (("title", "forged"),) if forged == Action.CREATE else ()
            w._write(Change(fields, forged, status))
        elif kind == "edit":
            name = FIELDS[r % len(FIELDS)]
            w.edit(**{name: VALUES[name][r % len(VALUES[name])]})
        else:
            action = ACTIONS[r % len(ACTIONS)]
            state = w.state()
            try:
                if (action == Action.DELETE and state.deleted) or (action == Action.UNDELETE and not state.deleted):
                    continue
                w.step(action)
            except FailedPrecondition:
                continue
    return writers


def all_signed(writers: list[Writer]) -> dict[str, object]:
    out: dict[str, object] = {}
    for w in writers:
        out.update(w.signed)
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(3, 5), st.lists(op, min_size=1, max_size=40), st.randoms(use_true_random=False))
def test_every_site_derives_the_same_state(n_sites: int, ops: list[tuple[int, str, int]], rnd: random.Random) -> None:
    writers = play(n_sites, ops)
    union = {vid: v for w in writers for vid, v in w.held.items()}
    expected = state_to_json(merge(union.values(), KINDS))
    # Repair every drop: each site gets everything, in its own order, with duplicates.
    for w in writers:
        pending = list(union.values()) + rnd.sample(list(union.values()), k=min(3, len(union)))
        rnd.shuffle(pending)
        w.receive(*pending)
        assert state_to_json(w.state()) == expected
    # Commutative, associative, idempotent: any split of the set merges the same.
    items = list(union.values())
    rnd.shuffle(items)
    cut = rnd.randint(0, len(items))
    assert state_to_json(merge(items[cut:] + items[:cut] + items[: cut // 2], KINDS)) == expected


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(st.integers(3, 5), st.lists(op, min_size=1, max_size=30), st.randoms(use_true_random=False))
def test_stores_fed_in_any_batches_agree(
    tmp_path_factory: object, n_sites: int, ops: list[tuple[int, str, int]], rnd: random.Random
) -> None:
    writers = play(n_sites, ops)
    signed = list(all_signed(writers).values())
    expected = state_to_json(merge((w for wr in writers for w in wr.held.values()), KINDS))
    base: Path = tmp_path_factory.mktemp("stores")  # type: ignore[attr-defined]
    results = []
    for i in range(2):
        store = Store.open(f"sqlite:///{base / f's{i}.db'}", KINDS)
        order = signed + rnd.sample(signed, k=min(2, len(signed)))
        rnd.shuffle(order)
        pos = 0
        while pos < len(order):
            step = rnd.randint(1, 4)
            store.apply_batch("hq", order[pos : pos + step], [], through_seq=pos + step, now_ms=1)  # type: ignore[arg-type]
            pos += step
        with store.engine.connect() as conn:
            row = conn.execute(text("SELECT * FROM records")).mappings().one()
        results.append(dict(row))
        store.close()
    assert results[0] == results[1]
    assert results[0]["state_json"] == expected and results[0]["origin"] == OWNER


def _value_like(default: FieldValue) -> st.SearchStrategy[FieldValue]:
    if isinstance(default, bool):
        return st.booleans()
    if isinstance(default, int):
        return st.integers(0, 10**12)
    if isinstance(default, tuple):
        return st.lists(st.text(max_size=8), max_size=3).map(tuple)
    return st.text(max_size=20)


@st.composite
def lone_create(draw: st.DrawFn) -> MergeInput:
    kind = KINDS[draw(st.sampled_from(sorted(KINDS)))]
    names = draw(st.lists(st.sampled_from(sorted(kind.defaults)), unique=True, max_size=6))
    fields = [(n, draw(_value_like(kind.defaults[n]))) for n in names]
    if draw(st.booleans()):
        fields.append(("not_a_field", "x"))
    status = draw(st.sampled_from([*kind.statuses, None, "bogus"]))
    audience = tuple(draw(st.lists(st.sampled_from(["brussels", "toledo"]), unique=True, max_size=2)))
    change = Change(tuple(sorted(fields)), Action.CREATE, status, audience)
    return MergeInput(
        draw(st.text("0123456789abcdef", min_size=8, max_size=8)),
        (),
        Stamp(draw(st.integers(1, 10**13)), draw(st.integers(0, 5))),
        draw(st.sampled_from(["tel-aviv", "hq", "firm-1"])),
        change,
        kind.name,
        "tel-aviv",
    )


@settings(max_examples=400, deadline=None)
@given(lone_create())
def test_a_record_of_one_create_merges_as_the_general_rules_say(v: MergeInput) -> None:
    """The shortcut for a record that holds only its create gives the state, and the
    canonical bytes, that the general merge does."""
    fast = merge([v], KINDS)
    general = _merge_all({v.version_id: v}, KINDS)
    assert fast == general
    assert state_to_json(fast) == state_to_json(general)
