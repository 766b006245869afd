"""The receive step, the same at both ends of the protocol.

A batch of another site's log entries is taken in four moves: check every
envelope (`Site.check_entries`: refusals carry their reason and never block
the entries behind them; an unknown key may first send the receiver for a
newer registry), stop before the first entry stamped ahead of this clock
(it is taken again later), store what was accepted and refused *with* the
sender's cursor in one transaction (`Store.apply_batch`), then quarantine
anything whose key a revocation reached while the batch was being checked.
The hub runs it on each pushed batch, a node on each pulled one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sync import metrics
from sync.envelope import SignatureValue, Version
from sync.site import Received, Site
from sync.store import ApplyResult, Rejected

log = logging.getLogger(__name__)

Entry = tuple[int, bytes, tuple[SignatureValue, ...]]


@dataclass(frozen=True)
class ReceivedBatch:
    """What one batch came to: the entries taken, where the cursor now stands, the
    first entry left for later (None if none), and what the store made of it."""

    checked: tuple[Received, ...]
    through: int
    deferred: int | None
    applied: ApplyResult

    @property
    def accepted(self) -> list[Version]:
        return [c.version for c in self.checked if c.version is not None]

    @property
    def rejected(self) -> list[Rejected]:
        return [c.rejection for c in self.checked if c.rejection is not None]


def receive(
    site: Site,
    peer: str,
    entries: Sequence[Entry],
    *,
    through_seq: int,
    head_seq: int,
    txn_id: str | None = None,
    through_version: str | None = None,
    newer_registry: Callable[[], bool] | None = None,
) -> ReceivedBatch:
    """Check, defer, store and requarantine one batch of `peer`'s log, which covers
    its entries up to `through_seq` (of `head_seq`). `txn_id` names a pushed batch
    (a retry of a stored one is a no-op); `through_version` is the version at
    `through_seq` (a pull's checkpoint). `newer_registry`, when given, is asked
    for a newer registry if a key is unknown, and the batch is checked again if
    it brought one."""
    checked = site.check_entries(entries)
    if newer_registry is not None and any(c.unknown_key for c in checked) and newer_registry():
        # A centre enrolled after this round's registry check: check with the newer registry.
        checked = site.check_entries(entries)
    taken, deferred = site.until_deferred(checked)
    whole = deferred is None
    through = through_seq if deferred is None else deferred - 1
    accepted = [c.version for c in taken if c.version is not None]
    rejected = [c.rejection for c in taken if c.rejection is not None]
    for r in rejected:
        log.warning("refused version %s from %s: %s", r.version_id, peer, r.reason)
    applied = site.store.apply_batch(
        peer,
        accepted,
        rejected,
        through_seq=through,
        head_seq=head_seq,
        # A cut batch is not the batch its id names: the retry must not be skipped.
        txn_id=txn_id if whole else None,
        now_ms=site.now_ms(),
        # The checkpoint names the version at the batch's end: none for a cut batch.
        through_version=None if through_version is None else (through_version if whole else ""),
    )
    site.requarantine(accepted)
    metrics.VERSIONS_RECEIVED.labels(peer=peer).inc(len(taken))
    metrics.VERSIONS_STORED.labels(peer=peer).inc(applied.stored)
    for r in rejected:
        metrics.VERSIONS_REFUSED.labels(peer=peer, reason=r.code).inc()
    return ReceivedBatch(tuple(taken), through, deferred, applied)
