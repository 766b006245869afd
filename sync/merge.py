"""Merging a record's versions into its state: the rules, in one place.

Every site that holds the same set of versions of a record derives the same
state, byte for byte, whatever order they arrived in and however often. The
state is a pure function of the *set* of versions (`merge`), so merging is
commutative, associative and idempotent by construction; the property tests
in tests/test_merge_properties.py hold it to that.

Causality first
    Each version names its parents: the heads of the record as its author
    saw them. Version A *happened before* B when A is an ancestor of B. A
    version whose parents (or their ancestors) have not all arrived is held
    ("waiting"), counts for nothing yet, and is applied as soon as they come;
    it is never dropped.

Fields: last writer in causal order, then a deterministic tie-break
    For each field, take the versions that set it and keep those that no
    other such version descends from: the field's *frontier*. One survivor:
    its value stands, whatever the clocks say (an edit made after seeing
    another always wins over it, so a site whose clock runs fast cannot keep
    winning by it). Several survivors were made concurrently: the winner is
    the greatest (HLC wall ms, HLC counter, author site id, version id), and
    the others are kept as a **conflict** on that field. Edits to different
    fields never interfere. A conflict is settled by a version made on top of
    the competing ones that sets the field (`conflicts resolve`); it then is
    the only survivor.

Status: the lifecycle, merged by rank
    Status is never edited; it follows from lifecycle steps (`Kind.transitions`).
    Steps are checked where they are made, and again here: a step counts only
    if it is legal from the status its own ancestors reached (the record's
    one parentless CREATE starts it; a SETTLE keeps what its ancestors
    reached), so a signed step that skips validation or revives an archived
    listing is ignored, identically at every site, and listed as ignored.
    Among the valid steps the frontier decides; concurrent steps merge to the
    highest rank in `Kind.statuses`, so a withdrawal is not undone by a
    concurrent or stale publish, and a replayed old step is an ancestor that
    changes nothing. Concurrent steps leading to different statuses are kept
    as a conflict on "status" (rule "lifecycle rank") so staff see it
    happened; a SETTLE step on top of them closes it.

Guards that need the record's history, checked here so every site agrees
    A step counts only if its author may take it given the record's create:
    steps reserved to the handling party only by the centre the create names
    in the kind's `handler_field` (an interest's `to_owner`). A step in
    `consent_steps` counts only if the consent field (an interest's
    `sender_consent`, resolved by the field rule among the step's own
    ancestors) is true. A step in `once_steps` counts once: with a valid one
    among its ancestors it counts for nothing (an offer is extended once).
    Steps failing a guard are listed as ignored, like illegal steps.

Kinds
    Every kind (a `sync.kinds.Kind` of the set the site was built with)
    merges by these rules; its field defaults, statuses in rank order,
    initial statuses and transitions come from its `Kind`. All versions of a
    record are of one kind (the receipt check makes sure the kind never
    changes under a record id).

Deletion: tombstones
    DELETE and UNDELETE versions form their own frontier. The record is
    deleted if any frontier version is a DELETE: an edit made without having
    seen the tombstone does not touch it, and only an UNDELETE made on top of
    the tombstone brings the record back (a concurrent DELETE still wins).

Cost
    Merging one record touches only that record's versions: a topological
    sort (Kahn, ties by stamp), then ancestor sets as bit masks built once in
    causal order. Checking each step against its ancestors' status costs in
    the number of steps, which a listing's lifecycle keeps small.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from sync.clock import Stamp
from sync.kinds import OWNER, PARTY, Action, Change, Content, FieldValue, Kind, KindSet, make_content

RULE_HLC = "hlc"
RULE_RANK = "lifecycle rank"


@dataclass(frozen=True)
class MergeInput:
    """What the merge needs of one version."""

    version_id: str
    parents: tuple[str, ...]
    hlc: Stamp
    author: str
    change: Change
    kind: str
    origin: str

    @property
    def order(self) -> tuple[int, int, str, str]:
        return (self.hlc.wall_ms, self.hlc.counter, self.author, self.version_id)


@dataclass(frozen=True)
class Candidate:
    version_id: str
    author: str
    hlc: Stamp
    value: FieldValue


@dataclass(frozen=True)
class Conflict:
    field: str
    winner: Candidate
    others: tuple[Candidate, ...]
    rule: str


@dataclass(frozen=True)
class RecordState:
    content: Content
    deleted: bool
    heads: tuple[str, ...]
    conflicts: tuple[Conflict, ...]
    waiting: tuple[str, ...]
    applied: int
    updated: Stamp
    newest_head: str
    # Lifecycle steps that were not legal from the status their ancestors reached.
    ignored: tuple[str, ...] = ()
    # Who may receive the record, as its create said (empty: the whole network).
    audience: tuple[str, ...] = ()
    # An offer's one extension has been taken.
    extended: bool = False
    # A firm: the stamp of its erasure (0 while active).
    erased_at_ms: int = 0

    def conflict(self, field: str) -> Conflict | None:
        return next((c for c in self.conflicts if c.field == field), None)


def _causal_order(versions: dict[str, MergeInput]) -> tuple[list[MergeInput], list[str]]:
    """Versions whose whole ancestry is present, parents before children (Kahn's
    algorithm, ties taken in `order`); and the ids of the rest, which wait."""
    pending_parents = {vid: len(set(v.parents)) for vid, v in versions.items()}
    children: dict[str, list[str]] = {}
    for vid, v in versions.items():
        for p in set(v.parents):
            children.setdefault(p, []).append(vid)
    ready = [(v.order, vid) for vid, v in versions.items() if pending_parents[vid] == 0]
    heapq.heapify(ready)
    ordered: list[MergeInput] = []
    while ready:
        _, vid = heapq.heappop(ready)
        ordered.append(versions[vid])
        for child in children.get(vid, ()):
            pending_parents[child] -= 1
            if pending_parents[child] == 0:
                heapq.heappush(ready, (versions[child].order, child))
    placed = {v.version_id for v in ordered}
    return ordered, sorted(vid for vid in versions if vid not in placed)


def merge(versions: Iterable[MergeInput], kinds: KindSet) -> RecordState:
    """The state of a record from the set of its versions (duplicates ignored), each
    of a kind in `kinds`."""
    by_id: dict[str, MergeInput] = {}
    for v in versions:
        by_id.setdefault(v.version_id, v)
    if len(by_id) == 1:
        (only,) = by_id.values()
        if only.change.action == Action.CREATE and not only.parents and only.kind in kinds:
            return _lone_create(only, kinds[only.kind])
    return _merge_all(by_id, kinds)


def _merge_all(by_id: dict[str, MergeInput], kinds: KindSet) -> RecordState:
    """`merge` by the general rules, for any set of versions."""
    # One kind per record: the kind of its earliest create (of any version
    # when none is held yet, of the set's first kind when there is no version);
    # versions of another kind count for nothing.
    creates = sorted(
        (v for v in by_id.values() if v.change.action == Action.CREATE and not v.parents), key=lambda v: v.order
    )
    first = creates[0] if creates else min(by_id.values(), key=lambda v: v.order, default=None)
    kind = kinds[first.kind] if first is not None else kinds.kinds[0]
    foreign = sorted(vid for vid, v in by_id.items() if v.kind != kind.name)
    for vid in foreign:
        del by_id[vid]
    ordered, waiting = _causal_order(by_id)
    defaults = kind.defaults
    rank = kind.rank

    bit: dict[str, int] = {}
    ancestors: dict[str, int] = {}
    for i, v in enumerate(ordered):
        bit[v.version_id] = 1 << i
        mask = 0
        for p in v.parents:
            mask |= ancestors[p] | bit[p]
        ancestors[v.version_id] = mask

    def frontier(group: list[MergeInput]) -> list[MergeInput]:
        covered = 0
        for v in group:
            covered |= ancestors[v.version_id]
        return [v for v in group if not covered & bit[v.version_id]]

    def candidate(v: MergeInput, value: FieldValue) -> Candidate:
        return Candidate(v.version_id, v.author, v.hlc, value)

    # Status: a step counts only if it is legal from the status its own
    # ancestors reached, so every site gives the same verdict on a step that
    # skips or undoes the machine; such steps are listed as ignored.
    effective: dict[str, str] = {}
    valid: list[MergeInput] = []
    ignored: list[str] = list(foreign)
    root = next((v for v in ordered if not v.parents and v.change.action == Action.CREATE), None)
    handler = root.change.get(kind.handler_field) if root is not None and kind.handler_field else None

    def reached(group: list[MergeInput]) -> tuple[str | None, list[MergeInput]]:
        if not group:
            return None, []
        front = sorted(frontier(group), key=lambda v: (rank[effective[v.version_id]], v.order), reverse=True)
        return effective[front[0].version_id], front

    def consented(v: MergeInput) -> bool:
        """The consent (`kind.consent_field`) stands among v's ancestors (a consent step needs it)."""
        mask = ancestors[v.version_id]
        skip = set(ignored)
        writers = [
            w
            for w in ordered
            if kind.consent_field in w.change.names and mask & bit[w.version_id] and w.version_id not in skip
        ]
        if not writers:
            return False
        return bool(max(frontier(writers), key=lambda w: w.order).change.get(kind.consent_field))

    status_actions = kind.status_actions
    for v in ordered:
        action = v.change.action
        if action not in status_actions:
            continue
        if action == Action.CREATE:
            ok = v is root and v.change.status in kind.initial
            target = v.change.status
        else:
            prior = [s for s in valid if ancestors[v.version_id] & bit[s.version_id]]
            source, _ = reached(prior)
            if action == Action.SETTLE:
                ok, target = source is not None and v.change.status == source, source
            else:
                sources, target = kind.transitions[action]
                ok = source in sources and v.change.status == target
            rights = kind.rights.get(action, frozenset())
            if ok and PARTY in rights:
                # Only the centre handling an interest (and, where allowed, its sender) takes its steps.
                ok = v.author == handler or (OWNER in rights and v.author == v.origin)
            if ok and action in kind.once_steps and any(s.change.action == action for s in prior):
                ok = False  # a step that counts once (an offer is extended once)
            if ok and action in kind.consent_steps and not consented(v):
                ok = False
        if ok and target is not None:
            effective[v.version_id] = target
            valid.append(v)
        else:
            ignored.append(v.version_id)

    # Fields, from every version that counts: a step that was ignored (illegal,
    # by the wrong party, a second create) sets nothing either.
    dropped = set(ignored)
    writers_of: dict[str, list[MergeInput]] = {}
    for v in ordered:  # one pass; each field's writers stay in causal order
        if v.version_id not in dropped:
            for name, _ in v.change.fields:
                writers_of.setdefault(name, []).append(v)
    values: dict[str, FieldValue] = dict(defaults)
    conflicts: list[Conflict] = []
    for name in sorted(writers_of):
        if name not in defaults:
            continue
        writers = writers_of[name]
        front = sorted(frontier(writers), key=lambda v: v.order, reverse=True)
        winner = front[0]
        value = winner.change.get(name)
        assert value is not None
        values[name] = value
        if len(front) > 1:
            others = tuple(candidate(v, v.change.get(name) or defaults[name]) for v in front[1:])
            conflicts.append(Conflict(name, candidate(winner, value), others, RULE_HLC))

    status, front = reached(valid)
    if status is None:
        status = kind.statuses[0]
    else:
        losers = [v for v in front[1:] if effective[v.version_id] != status]
        if losers:
            conflicts.append(
                Conflict(
                    "status",
                    candidate(front[0], status),
                    tuple(candidate(v, effective[v.version_id]) for v in losers),
                    RULE_RANK,
                )
            )

    tombstones = [v for v in ordered if v.change.action in (Action.DELETE, Action.UNDELETE)]
    deleted = any(v.change.action == Action.DELETE for v in frontier(tombstones)) if tombstones else False

    heads = frontier(ordered)
    newest = max(heads, key=lambda v: v.order) if heads else None
    content = make_content(kind, values, status)
    return RecordState(
        content=content,
        deleted=deleted,
        heads=tuple(sorted(v.version_id for v in heads)),
        conflicts=tuple(sorted(conflicts, key=lambda c: c.field)),
        waiting=tuple(waiting),
        applied=len(ordered),
        updated=max((v.hlc for v in ordered), default=Stamp(0, 0)),
        newest_head=newest.version_id if newest else "",
        ignored=tuple(sorted(ignored)),
        audience=root.change.audience if root is not None else (),
        extended=any(v.change.action == Action.EXTEND for v in valid),
        erased_at_ms=min((v.hlc.wall_ms for v in valid if v.change.action == Action.ERASE), default=0),
    )


def _lone_create(v: MergeInput, kind: Kind) -> RecordState:
    """`merge` of a record that holds one version, its create (most records, most of an
    initial sync): what the general rules come to for it, without the causal order, the
    ancestor masks and the conflict search (tests/test_merge_properties.py holds the two
    to the same states)."""
    status = v.change.status
    ok = status is not None and status in kind.initial  # else the create counts for nothing
    values: dict[str, FieldValue] = dict(kind.defaults)
    if ok:
        for name, value in v.change.fields:
            if name in values:
                values[name] = value
    return RecordState(
        content=make_content(kind, values, status if ok and status is not None else kind.statuses[0]),
        deleted=False,
        heads=(v.version_id,),
        conflicts=(),
        waiting=(),
        applied=1,
        updated=v.hlc,
        newest_head=v.version_id,
        ignored=() if ok else (v.version_id,),
        audience=v.change.audience,
        extended=False,
        erased_at_ms=0,
    )


def _candidate_json(c: Candidate) -> dict[str, object]:
    return {
        "version_id": c.version_id,
        "author": c.author,
        "hlc": [c.hlc.wall_ms, c.hlc.counter],
        "value": c.value,
    }


def state_to_json(state: RecordState) -> str:
    """Canonical JSON of a state: the same state gives the same bytes at every site."""
    c = state.content
    # orjson writes a tuple as an array, nested ones too: field values go in as they are.
    doc = {
        "kind": c.kind,
        "fields": dict(c.fields),
        "status": c.status,
        "deleted": state.deleted,
        "heads": state.heads,
        "conflicts": [
            {
                "field": x.field,
                "rule": x.rule,
                "winner": _candidate_json(x.winner),
                "others": [_candidate_json(o) for o in x.others],
            }
            for x in state.conflicts
        ],
        "waiting": state.waiting,
        "applied": state.applied,
        "updated": (state.updated.wall_ms, state.updated.counter),
        "newest_head": state.newest_head,
        "ignored": state.ignored,
        "audience": state.audience,
        "extended": state.extended,
        "erased_at_ms": state.erased_at_ms,
    }
    # Keys sorted, no spaces, UTF-8 as is: the bytes json.dumps(sort_keys, compact, ensure_ascii=False) gives.
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode()


def state_from_json(text: str, kinds: KindSet) -> RecordState:
    doc = orjson.loads(text)
    kind: Kind = kinds[doc["kind"]]

    def value(name: str, raw: object) -> FieldValue:
        if isinstance(raw, list):
            return tuple(tuple(x) if isinstance(x, list) else x for x in raw)
        return raw  # type: ignore[return-value]

    def cand(d: dict[str, object], name: str) -> Candidate:
        hlc = d["hlc"]
        assert isinstance(hlc, list)
        return Candidate(str(d["version_id"]), str(d["author"]), Stamp(hlc[0], hlc[1]), value(name, d["value"]))

    fields = {k: value(k, v) for k, v in doc["fields"].items()}
    return RecordState(
        content=make_content(kind, fields, doc["status"]),
        deleted=doc["deleted"],
        heads=tuple(doc["heads"]),
        conflicts=tuple(
            Conflict(
                x["field"], cand(x["winner"], x["field"]), tuple(cand(o, x["field"]) for o in x["others"]), x["rule"]
            )
            for x in doc["conflicts"]
        ),
        waiting=tuple(doc["waiting"]),
        applied=doc["applied"],
        updated=Stamp(*doc["updated"]),
        newest_head=doc["newest_head"],
        ignored=tuple(doc.get("ignored", ())),
        audience=tuple(doc.get("audience", ())),
        extended=bool(doc.get("extended", False)),
        erased_at_ms=int(doc.get("erased_at_ms", 0)),
    )
