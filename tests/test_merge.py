"""The merge rules, case by case (sync/merge.py states them)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from sync.clock import Stamp
from sync.envelope import MAX_FUTURE_MS, make_version, verify_version
from sync.errors import VerificationFailed
from sync.ids import new_record_id
from sync.keys import SigningKey
from sync.kinds import Action, Change, create_change, pins_of
from sync.merge import RULE_HLC, RULE_RANK, merge, state_from_json, state_to_json
from sync.registry import Centre, CentreStatus, Registry, SiteKey, SiteRole
from sync.store import Store
from tests.merge_helpers import RECORD, Writer
from transfer.records import KINDS, LISTING, ListingStatus, listing_content


def two_sites() -> tuple[Writer, Writer]:
    ta, hq = Writer("tel-aviv"), Writer("hq")
    hq.receive(ta.create("Membrane"))
    return ta, hq


def test_concurrent_edits_to_different_fields_both_survive() -> None:
    ta, hq = two_sites()
    a = ta.edit(summary="from Tel Aviv")
    b = hq.edit(tags=("water",))
    ta.receive(b)
    hq.receive(a)
    for s in (ta.state(), hq.state()):
        assert s.content.summary == "from Tel Aviv" and s.content.tags == ("water",)
        assert s.conflicts == ()
    assert state_to_json(ta.state()) == state_to_json(hq.state())


def test_state_json_is_canonical_json_in_any_script() -> None:
    """Sorted keys, no spaces, text as UTF-8: what json.dumps gives for the same document."""
    ta, hq = two_sites()
    a = ta.edit(title="מים מן השמש", summary='태양광 담수화 — 太阳能淡化膜 \u2028 "quoted"')
    b = hq.edit(title="海水淡化")
    ta.receive(b)
    text = state_to_json(ta.state())
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert state_from_json(text, KINDS) == ta.state() and a.version_id in text


def test_concurrent_edits_to_the_same_field_keep_a_conflict_until_settled() -> None:
    ta, hq = two_sites()
    hq.now += 5  # later wall clock: wins the tie
    a = ta.edit(title="Tel Aviv's title")
    b = hq.edit(title="HQ's title")
    ta.receive(b)
    hq.receive(a)
    s = ta.state()
    assert s.content.title == "HQ's title"
    (c,) = s.conflicts
    assert (c.field, c.rule, c.winner.version_id, c.others[0].version_id) == (
        "title",
        RULE_HLC,
        b.version_id,
        a.version_id,
    )
    assert c.others[0].value == "Tel Aviv's title"
    # Settling: a version on top of both that writes the field.
    fix = ta.edit(title="Agreed title")
    hq.receive(fix)
    for w in (ta, hq):
        assert w.state().content.title == "Agreed title" and w.state().conflicts == ()


def test_withdraw_is_not_undone_by_a_concurrent_publish() -> None:
    ta, hq = two_sites()
    hq.receive(hq.step(Action.VALIDATE))
    ta.receive(*hq.held.values())
    w = ta.step(Action.WITHDRAW)
    hq.now += 10**6  # HQ's publish is stamped much later: a later clock does not help a lower rank
    p = hq.step(Action.PUBLISH)
    assert p.order > w.order
    ta.receive(p)
    hq.receive(w)
    for s in (ta.state(), hq.state()):
        assert s.content.status == ListingStatus.WITHDRAWN
        (c,) = s.conflicts
        assert c.field == "status" and c.rule == RULE_RANK and c.others[0].value == "published"
    settle = hq.settle()
    ta.receive(settle)
    assert ta.state().conflicts == () and ta.state().content.status == ListingStatus.WITHDRAWN


def test_a_stale_publish_replayed_never_rolls_back() -> None:
    ta, hq = two_sites()
    v = hq.step(Action.VALIDATE)
    p = hq.step(Action.PUBLISH)
    hq.now -= 10**6  # the withdrawal is stamped earlier than the publish it follows
    w = hq.step(Action.WITHDRAW)
    assert w.hlc > p.hlc  # the hybrid clock never goes back
    ta.receive(w, p, v, p, v)  # any order, duplicates
    assert ta.state().content.status == ListingStatus.WITHDRAWN and ta.state().conflicts == ()


def test_steps_that_skip_or_undo_the_machine_are_ignored_everywhere() -> None:
    ta, hq = two_sites()
    # Tel Aviv publishes without HQ's validation, by signing the step directly.
    skip = ta._write(Change(action=Action.PUBLISH, status=ListingStatus.PUBLISHED))
    hq.receive(skip)
    for w in (ta, hq):
        s = w.state()
        assert s.content.status == ListingStatus.SUBMITTED and s.ignored == (skip.version_id,)
    # An archived listing cannot be settled or re-created back to life.
    ta.step(Action.WITHDRAW)
    ta.step(Action.ARCHIVE)
    revive = ta._write(Change(action=Action.SETTLE, status=ListingStatus.PUBLISHED))
    recreate = ta._write(Change((("title", "again"),), Action.CREATE, ListingStatus.DRAFT))
    s = ta.state()
    assert s.content.status == ListingStatus.ARCHIVED
    assert {revive.version_id, recreate.version_id} <= set(s.ignored)


def test_delete_beats_an_edit_that_did_not_see_it() -> None:
    ta, hq = two_sites()
    d = ta.step(Action.DELETE)
    e = hq.edit(tags=("late",))
    ta.receive(e)
    hq.receive(d)
    for s in (ta.state(), hq.state()):
        assert s.deleted
    assert state_to_json(ta.state()) == state_to_json(hq.state())


def test_delete_then_undelete_brings_it_back() -> None:
    ta, hq = two_sites()
    d = ta.step(Action.DELETE)
    u = ta.step(Action.UNDELETE)  # made on top of the tombstone
    assert u.parents == (d.version_id,)
    hq.receive(u, d)
    for s in (ta.state(), hq.state()):
        assert not s.deleted
    assert state_to_json(ta.state()) == state_to_json(hq.state())


def test_an_undelete_does_not_cancel_a_delete_it_did_not_see() -> None:
    ta, hq = two_sites()
    bru = Writer("brussels")
    bru.receive(*hq.held.values())
    d = ta.step(Action.DELETE)
    hq.receive(d)
    u = hq.step(Action.UNDELETE)  # on top of Tel Aviv's tombstone
    d2 = bru.step(Action.DELETE)  # Brussels deletes too, never having seen either
    for w in (ta, hq, bru):
        w.receive(d, u, d2)
        assert w.state().deleted
    assert len({state_to_json(w.state()) for w in (ta, hq, bru)}) == 1


def test_child_before_parent_waits_then_applies() -> None:
    ta, hq = two_sites()
    e1 = ta.edit(summary="one")
    e2 = ta.edit(summary="two")
    dj = Writer("daejeon")
    dj.receive(e2)
    s = dj.state()
    assert s.applied == 0 and e2.version_id in s.waiting
    dj.receive(*hq.held.values())
    assert dj.state().waiting == (e2.version_id,)
    dj.receive(e1)
    s = dj.state()
    assert s.waiting == () and s.content.summary == "two"
    assert state_to_json(s) == state_to_json(ta.state())


def test_replaying_the_whole_history_changes_nothing(tmp_path: Path) -> None:
    ta, _ = two_sites()
    ta.edit(summary="a")
    ta.step(Action.WITHDRAW)
    ta.edit(summary="b")
    before = state_to_json(ta.state())
    assert state_from_json(before, KINDS) == ta.state()
    # Through a store: the history, then every old version again, oldest last, twice.
    store = Store.open(f"sqlite:///{tmp_path / 's.db'}", KINDS)
    history = list(ta.signed.values())
    store.apply_batch("hq", history, [], through_seq=1, now_ms=1)
    for i, old in enumerate([*reversed(history), *history]):
        store.apply_batch("hq", [old], [], through_seq=2 + i, now_ms=1)
    assert store.record(RECORD).state_json == before
    store.close()


def test_a_fast_clock_does_not_keep_winning() -> None:
    ta, hq = two_sites()
    ta.now += 4 * 60 * 1000  # Tel Aviv runs 4 minutes fast (inside the bound)
    fast = ta.edit(title="fast clock's title")
    hq.receive(fast)
    later = hq.edit(title="HQ, after seeing it")  # HQ's wall clock is behind, but it saw the edit
    ta.receive(later)
    for w in (ta, hq):
        assert w.state().content.title == "HQ, after seeing it" and w.state().conflicts == ()
    assert later.hlc > fast.hlc  # the clock moved past what it observed


def _registry(key: SigningKey) -> Registry:
    return Registry(
        1,
        0,
        "root",
        (Centre("tel-aviv", "TA", "IL", SiteRole.NODE, CentreStatus.ACTIVE, (SiteKey(key.key_id, key.public_bytes),)),),
    )


@pytest.mark.parametrize(
    ("ahead_ms", "accepted"), [(MAX_FUTURE_MS - 1000, True), (10 * 60 * 1000, False), (3600 * 1000, False)]
)
def test_future_stamps_beyond_the_bound_are_refused(ahead_ms: int, accepted: bool) -> None:
    key = SigningKey.generate()
    now = time.time_ns() // 1_000_000
    change = create_change(listing_content(title="T"))
    rid, nonce = new_record_id("tel-aviv", now, pins_of(LISTING, change))
    v = make_version(
        key,
        site="tel-aviv",
        record_id=rid,
        record_nonce=nonce,
        hlc=Stamp(now + ahead_ms, 0),
        change=change,
        kind=LISTING,
    )
    if accepted:
        verify_version(v, _registry(key), now, kinds=KINDS)
    else:
        with pytest.raises(VerificationFailed, match="ahead of this site's clock"):
            verify_version(v, _registry(key), now, kinds=KINDS)


def test_a_long_history_merges_to_its_last_edit() -> None:
    ta, _ = two_sites()
    for i in range(200):
        ta.edit(summary=f"edit {i}")
    s = merge(ta.held.values(), KINDS)
    assert s.applied == 201 and s.content.summary == "edit 199" and len(s.heads) == 1
