"""Peers: cursors and link health (tables `peer_state` and `push_txns`).

One row per peer site: how far this site has pulled from it and it has acknowledged
of this site's log, the restore flags, and the outcome of the last round with the
backoff it sets. A peer's batch moves its cursor in the transaction that stores the
batch (`sync.store.log`); the push transactions applied make a retried batch a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select, update

from sync import backoff
from sync.store.replicas import WriteLock
from sync.store.tables import peers_t, txns_t


@dataclass(frozen=True)
class PeerState:
    peer: str
    pull_cursor: int = 0
    push_acked: int = 0
    pending_pull: int = 0
    last_attempt_ms: int = 0
    last_success_ms: int = 0
    last_error: str = ""
    last_error_ms: int = 0
    failures: int = 0
    next_attempt_ms: int = 0
    pull_cursor_version: str = ""
    resend_own: bool = False
    reconciling: bool = False
    resend_until: int = 0


class PeersStore:
    """Cursors and link health of a site's store (part of `sync.store.store.Store`)."""

    engine: Engine
    _write_lock: WriteLock

    def _upsert_peer(self, conn: Connection, peer: str, values: dict[str, object]) -> None:
        res = conn.execute(update(peers_t).where(peers_t.c.peer == peer).values(**values))
        if res.rowcount == 0:
            defaults: dict[str, object] = {
                "pull_cursor": 0,
                "push_acked": 0,
                "pending_pull": 0,
                "last_attempt_ms": 0,
                "last_success_ms": 0,
                "last_error": "",
                "last_error_ms": 0,
                "failures": 0,
                "next_attempt_ms": 0,
                "pull_cursor_version": "",
                "resend_own": False,
                "reconciling": False,
                "resend_until": 0,
            }
            defaults.update(values)
            conn.execute(insert(peers_t).values(peer=peer, **defaults))

    def peer_state(self, peer: str) -> PeerState:
        with self.engine.connect() as conn:
            row = conn.execute(select(peers_t).where(peers_t.c.peer == peer)).first()
        return PeerState(**row._asdict()) if row else PeerState(peer)

    def peers(self) -> list[PeerState]:
        with self.engine.connect() as conn:
            return [PeerState(**r._asdict()) for r in conn.execute(select(peers_t).order_by(peers_t.c.peer))]

    def reset_cursors(self, peer: str) -> None:
        """Start over with `peer` (after a restore): both cursors back to 0 and the
        reconciliation marked, in one transaction, so a crash resumes it."""
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(
                conn,
                peer,
                {"pull_cursor": 0, "pull_cursor_version": "", "push_acked": 0, "pending_pull": 0, "reconciling": True},
            )

    def set_flags(self, peer: str, **flags: bool) -> None:
        """Set `resend_own` or `reconciling` for `peer` (a new `resend_own` starts a new
        resend: how far it must be confirmed is set again when a pull completes)."""
        values: dict[str, object] = dict(flags)
        if "resend_own" in flags:
            values["resend_until"] = 0
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(conn, peer, values)

    def set_resend_until(self, peer: str, seq: int) -> None:
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(conn, peer, {"resend_until": seq})

    def push_applied(self, txn_id: str) -> bool:
        """Whether a push batch with this transaction id was applied here."""
        with self.engine.connect() as conn:
            return conn.execute(select(txns_t.c.txn_id).where(txns_t.c.txn_id == txn_id)).first() is not None

    def set_push_acked(self, peer: str, acked: int) -> None:
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(conn, peer, {"push_acked": acked})

    def record_attempt(self, peer: str, now_ms: int, error: str | None) -> PeerState:
        """Record a round's outcome; a failure lengthens the backoff, a success clears it."""
        values: dict[str, object] = {"last_attempt_ms": now_ms}
        with self._write_lock, self.engine.begin() as conn:
            failures = conn.execute(select(peers_t.c.failures).where(peers_t.c.peer == peer)).scalar() or 0
            if error is None:
                values.update(last_success_ms=now_ms, failures=0, next_attempt_ms=0)
            else:
                failures += 1
                values.update(
                    last_error=error[:2000],
                    last_error_ms=now_ms,
                    failures=failures,
                    next_attempt_ms=now_ms + backoff.delay_ms(failures),
                )
            self._upsert_peer(conn, peer, values)
        return self.peer_state(peer)

    def clear_backoff(self, peer: str) -> None:
        with self._write_lock, self.engine.begin() as conn:
            self._upsert_peer(conn, peer, {"failures": 0, "next_attempt_ms": 0})
