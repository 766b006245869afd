"""Building version histories for merge tests without servers: each Writer is a
site with its own hybrid clock, writing versions on top of what it holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from sync.clock import HybridClock, Stamp
from sync.merge import MergeInput, RecordState, merge
from sync.records import Action, FieldValue, ListingChange, ListingStatus, next_status


@dataclass
class Writer:
    site: str
    now: int = 1_800_000_000_000
    held: dict[str, MergeInput] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.clock = HybridClock(lambda: self.now)

    def state(self) -> RecordState:
        return merge(self.held.values())

    def receive(self, *versions: MergeInput) -> None:
        for v in versions:
            self.held.setdefault(v.version_id, v)
            self.clock.observe(v.hlc)

    def _write(self, change: ListingChange, parents: tuple[str, ...] | None = None) -> MergeInput:
        stamp = self.clock.tick()
        heads = self.state().heads if parents is None else parents
        vid = f"{self.site}-{stamp.wall_ms}-{stamp.counter}-{len(self.held)}"
        v = MergeInput(vid, tuple(sorted(heads)), Stamp(stamp.wall_ms, stamp.counter), self.site, change)
        self.held[vid] = v
        return v

    def create(self, title: str = "T", status: ListingStatus = ListingStatus.SUBMITTED) -> MergeInput:
        return self._write(ListingChange((("title", title),), Action.CREATE, status))

    def edit(self, **values: FieldValue) -> MergeInput:
        return self._write(ListingChange(tuple(sorted(values.items()))))

    def step(self, action: Action) -> MergeInput:
        if action in (Action.DELETE, Action.UNDELETE):
            return self._write(ListingChange(action=action))
        return self._write(ListingChange(action=action, status=next_status(self.state().content.status, action)))

    def settle(self) -> MergeInput:
        return self._write(ListingChange(action=Action.SETTLE, status=self.state().content.status))
