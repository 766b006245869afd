"""The receive step, the same at both ends of the protocol.

A batch of another site's log entries is taken in four moves: check every
envelope (`Site.check_entries`: refusals carry their reason and never block
the entries behind them; an unknown key may first send the receiver for a
newer registry), stop before the first entry stamped ahead of this clock
(it is taken again later), store what was accepted and refused *with* the
sender's cursor in one transaction (`Store.apply_batch`), then quarantine
anything whose key a revocation reached while the batch was being checked.
The hub runs it on each pushed batch, a node on each pulled one.

The first move of the next batch overlaps the store's work on this one
(`checked_ahead`): while the receiving thread stores batch N, one thread
decodes and checks batch N+1 (its signatures on every core), so the decoding
in Python runs while SQLite writes without the interpreter's lock. Only the
check runs ahead: the cursor, the store and the quarantine still take the
batches one at a time, in order. A firm registered in batch N is known to
the checks of the batches after it, as it is to the entries after it in one
batch; everything else a check reads (the registry, the keys of firms
stored before) is what the store held when the check ran, and a revocation
that lands in between is caught by the requarantine after the store, as
within one batch. A batch checked ahead with entries refused for an unknown
key or firm is checked again when its turn to be stored comes, against what
the batches before it stored.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from sync import metrics
from sync.envelope import FirmKey, SignatureValue, Version, signatures_from_pb
from sync.site import Received, Site
from sync.store import ApplyResult, Rejected
from techbridge.v1 import sync_pb2

log = logging.getLogger(__name__)

Entry = tuple[int, bytes, tuple[SignatureValue, ...]]
Batch = TypeVar("Batch")
# Batches checked and waiting for the store, beyond the one being stored.
CHECK_AHEAD = 1


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
    checked: Sequence[Received] | None = None,
) -> ReceivedBatch:
    """Check, defer, store and requarantine one batch of `peer`'s log, which covers
    its entries up to `through_seq` (of `head_seq`). `txn_id` names a pushed batch
    (a retry of a stored one is a no-op); `through_version` is the version at
    `through_seq` (a pull's checkpoint). `newer_registry`, when given, is asked
    for a newer registry if a key is unknown, and the batch is checked again if
    it brought one. `checked`: the entries as `checked_ahead` checked them."""
    if checked is None or any(c.unknown_key for c in checked):
        # Checked ahead, before the batches in front of it were stored: a firm one of them
        # registered may be known now (a centre enrolled mid-round: its firm was refused
        # ahead, then accepted once the newer registry came).
        checked = site.check_entries(entries)
    if newer_registry is not None and any(c.unknown_key for c in checked) and newer_registry():
        # A centre enrolled after this round's registry check: check with the newer registry.
        checked = site.check_entries(entries)
    taken, deferred = site.until_deferred(list(checked))
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


def entries_from_pb(entries: Iterable[sync_pb2.LogEntry]) -> list[Entry]:
    """A received batch's entries as the receive step takes them."""
    return [(e.seq, e.envelope.body, signatures_from_pb(e.envelope)) for e in entries]


def checked_ahead(
    site: Site,
    batches: Iterable[Batch],
    entries_of: Callable[[Batch], list[Entry]],
    *,
    depth: int = CHECK_AHEAD,
    cancel: Callable[[], object] | None = None,
) -> Generator[tuple[Batch, list[Entry], list[Received]], None, None]:
    """Each of `batches` with its entries and their check (`Site.check_entries`), in
    order; a thread reads the batches and checks them up to `depth` ahead of the one
    the consumer holds, so the consumer stores one while the next is checked.

    The thread takes a batch only as the stream gives it (a sender with one batch
    in flight is never waited for). Firms registered in a checked batch are known
    to the checks after it. An error reading or checking reaches the consumer in
    order, after the batches before it; a consumer that stops early (closing this
    generator) stops the thread: `cancel`, when given, cancels the stream the thread
    may be waiting on (else the call's end lets it go)."""
    box: queue.Queue[tuple[str, object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, object]) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def checker() -> None:
        known: dict[str, FirmKey] = {}
        try:
            for batch in batches:
                entries = entries_of(batch)
                checked = site.check_entries(entries, known)
                known.update(site.firms_registered(checked))
                if not put(("batch", (batch, entries, checked))):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))

    thread = threading.Thread(target=checker, name="check-ahead", daemon=True)
    thread.start()
    ended = False
    try:
        while True:
            tag, value = box.get()
            if tag != "batch":
                ended = True
            if tag == "end":
                return
            if tag == "error":
                assert isinstance(value, BaseException)
                raise value
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        if not ended and thread.is_alive() and cancel is not None:
            cancel()  # a thread waiting on the network returns at once
        if ended or cancel is not None:
            thread.join(timeout=5)
