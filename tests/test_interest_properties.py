"""Expressions of interest under random histories, held by hypothesis: whatever
the sites do and in whatever order versions arrive, every site derives the
same state, only the handling centre's steps count, and no introduction
counts without the sender's consent among its ancestors."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sync.clock import HybridClock, Stamp
from sync.envelope import make_version
from sync.kinds import Action, Change, create_change, make_content
from sync.merge import MergeInput, RecordState, merge, state_to_json
from tests.merge_helpers import key_for
from transfer.records import INTEREST, KINDS

SENDER, HANDLER, OTHER = "brussels", "daejeon", "toledo"
SITES = [SENDER, HANDLER, OTHER]
RECORD = "01a20000-0000-7000-8000-000000000001"
STEPS = [Action.FORWARD, Action.ACCEPT, Action.DECLINE, Action.INTRODUCE, Action.NEGOTIATE, Action.AGREE, Action.CLOSE]


class Site:
    def __init__(self, name: str, now: list[int]) -> None:
        self.name = name
        self.clock = HybridClock(lambda: now[0])
        self.held: dict[str, MergeInput] = {}

    def state(self) -> RecordState:
        return merge(self.held.values(), KINDS)

    def write(self, change: Change) -> None:
        heads = self.state().heads if self.held else ()
        v = make_version(
            key_for(self.name),
            site=self.name,
            origin=SENDER,
            record_id=RECORD,
            hlc=self.clock.tick(),
            change=change,
            parents=heads,
            kind=INTEREST,
        )
        self.held[v.version_id] = MergeInput(v.version_id, v.parents, v.hlc, v.author, v.change, v.kind, v.origin)


def step_change(action: Action, status: str) -> Change:
    fields: tuple[tuple[str, object], ...] = ()
    if action == Action.DECLINE:
        fields = (("decline_reason", "no-capacity"),)
    elif action == Action.INTRODUCE:
        fields = (("owner_identity", "Client Co."),)
    return Change(fields, action=action, status=INTEREST.transitions[action][1])  # type: ignore[arg-type]


# Weighted towards the handler accepting and introducing, where the guards matter.
op = st.tuples(
    st.sampled_from([0, 1, 1, 1, 2]),
    st.sampled_from(["step", "step", "consent", "sync", "sync"]),
    st.sampled_from([*STEPS, Action.ACCEPT, Action.INTRODUCE, Action.INTRODUCE]),
    st.sampled_from([0, 0, 1, 2]),
    st.booleans(),
)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(op, max_size=40), st.randoms(use_true_random=False))
def test_interest_histories_converge_and_keep_their_guards(
    ops: list[tuple[int, str, Action, int, bool]], rnd: random.Random
) -> None:
    now = [1_800_000_000_000]
    sites = [Site(n, now) for n in SITES]
    values = {"to_record": RECORD, "to_kind": "listing", "to_owner": HANDLER, "from_centre": SENDER}
    sites[0].write(create_change(make_content(INTEREST, values, "sent"), (HANDLER, SENDER)))
    for who, kind, action, source, flag in ops:
        now[0] += 7
        site = sites[who]
        if kind == "sync":
            src = sites[source]
            site.held.update(src.held)
            for v in src.held.values():
                site.clock.observe(v.hlc)
        elif kind == "consent" and site.name == SENDER:
            site.write(Change((("sender_consent", flag),)))
        elif kind == "step" and site.held:
            # Any site signs any step, legal or not: the merge must sort them out alike everywhere.
            site.write(step_change(action, ""))
    everything: dict[str, MergeInput] = {}
    for s in sites:
        everything.update(s.held)
    versions = list(everything.values())
    states = set()
    for _ in range(3):
        rnd.shuffle(versions)
        states.add(state_to_json(merge(versions + versions[: len(versions) // 2], KINDS)))
    assert len(states) == 1
    state = merge(versions, KINDS)
    by_id = {v.version_id: v for v in versions}
    ignored = set(state.ignored)
    counted = [v for v in versions if v.change.action in STEPS and v.version_id not in ignored]
    for v in counted:
        if v.change.action in (Action.FORWARD, Action.ACCEPT, Action.DECLINE, Action.INTRODUCE):
            assert v.author == HANDLER, (v.change.action, v.author)
        else:
            assert v.author in (HANDLER, SENDER)
        if v.change.action == Action.INTRODUCE:
            ancestors: set[str] = set()
            todo = list(v.parents)
            while todo:
                p = todo.pop()
                if p not in ancestors:
                    ancestors.add(p)
                    todo.extend(by_id[p].parents)
            consents = [by_id[a] for a in ancestors if "sender_consent" in by_id[a].change.names]
            assert consents and any(c.change.get("sender_consent") for c in consents)
    assert state.content.status in INTEREST.statuses
    assert Stamp(0, 0) <= state.updated
