"""The record store: versions, the log, derived record state, cursors."""

from sync.fulltext import SearchQuery
from sync.store.log import ApplyResult, LogRow, Rejected, StoredVersion
from sync.store.peers import PeerState
from sync.store.projection import HeadVersion, RecordRow
from sync.store.search import SearchHit, SearchResult
from sync.store.store import Store

__all__ = [
    "ApplyResult",
    "HeadVersion",
    "LogRow",
    "PeerState",
    "RecordRow",
    "Rejected",
    "SearchHit",
    "SearchQuery",
    "SearchResult",
    "Store",
    "StoredVersion",
]
