"""The record store: versions, the log, derived record state, cursors."""

from sync.store.store import ApplyResult, LogRow, PeerState, RecordRow, Rejected, Store

__all__ = ["ApplyResult", "LogRow", "PeerState", "RecordRow", "Rejected", "Store"]
