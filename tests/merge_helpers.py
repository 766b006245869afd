"""Building version histories for merge tests without servers: each Writer is a
site with its own hybrid clock, writing versions on top of what it holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.clock import HybridClock
from sync.envelope import Version, make_version
from sync.ids import owned_record_id
from sync.keys import SigningKey
from sync.kinds import Action, Change, FieldValue, next_status
from sync.merge import MergeInput, RecordState, merge
from transfer.records import KINDS, LISTING, ListingStatus

OWNER = "tel-aviv"
NONCE = bytes(range(24))
RECORD = owned_record_id(OWNER, 1_800_000_000_000, NONCE)
_KEYS: dict[str, SigningKey] = {}


def key_for(site: str) -> SigningKey:
    if site not in _KEYS:
        _KEYS[site] = SigningKey.generate()
    return _KEYS[site]


def as_input(v: Version) -> MergeInput:
    return MergeInput(v.version_id, v.parents, v.hlc, v.author, v.change, v.kind, v.origin)


@dataclass
class Writer:
    site: str
    now: int = 1_800_000_000_000
    held: dict[str, MergeInput] = field(default_factory=dict)
    signed: dict[str, Version] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clock = HybridClock(lambda: self.now)

    def state(self) -> RecordState:
        return merge(self.held.values(), KINDS)

    def receive(self, *versions: MergeInput) -> None:
        for v in versions:
            self.held.setdefault(v.version_id, v)
            self.clock.observe(v.hlc)

    def receive_from(self, other: Writer, ids: list[str]) -> None:
        for vid in ids:
            self.signed.setdefault(vid, other.signed[vid])
        self.receive(*(other.held[vid] for vid in ids))

    def _write(self, change: Change, parents: tuple[str, ...] | None = None) -> MergeInput:
        heads = self.state().heads if parents is None else parents
        version = make_version(
            key_for(self.site),
            site=self.site,
            origin=OWNER,
            record_id=RECORD,
            hlc=self.clock.tick(),
            change=change,
            parents=heads,
            record_nonce=NONCE,
            kind=LISTING,
        )
        v = as_input(version)
        self.held[v.version_id] = v
        self.signed[v.version_id] = version
        return v

    def create(self, title: str = "T", status: ListingStatus = ListingStatus.SUBMITTED) -> MergeInput:
        return self._write(Change((("title", title),), Action.CREATE, status))

    def edit(self, **values: FieldValue) -> MergeInput:
        return self._write(Change(tuple(sorted(values.items()))))

    def step(self, action: Action) -> MergeInput:
        if action in (Action.DELETE, Action.UNDELETE):
            return self._write(Change(action=action))
        return self._write(Change(action=action, status=next_status(self.state().content.status, action, LISTING)))

    def settle(self) -> MergeInput:
        return self._write(Change(action=Action.SETTLE, status=self.state().content.status))
