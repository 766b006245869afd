"""The store's table handles, shared by its per-concern stores.

The Core `Table` of each model in `sync.store.models` that a site's store reads or
writes, and the one limit they all keep on IN lists. The hub's invites table is handled
in `hub.invites`.
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table

from sync.store.models import (
    LogEntryModel,
    PeerStateModel,
    PrivateNoteModel,
    PushTxnModel,
    RecordModel,
    RegistryModel,
    RejectionModel,
    SearchDocModel,
    SearchFacetCountModel,
    StoreMarkModel,
    VersionModel,
)

versions_t = cast(Table, VersionModel.__table__)
log_t = cast(Table, LogEntryModel.__table__)
records_t = cast(Table, RecordModel.__table__)
peers_t = cast(Table, PeerStateModel.__table__)
txns_t = cast(Table, PushTxnModel.__table__)
rejections_t = cast(Table, RejectionModel.__table__)
registry_t = cast(Table, RegistryModel.__table__)
notes_t = cast(Table, PrivateNoteModel.__table__)
docs_t = cast(Table, SearchDocModel.__table__)
facet_counts_t = cast(Table, SearchFacetCountModel.__table__)
marks_t = cast(Table, StoreMarkModel.__table__)

# SQLite caps bound parameters per statement; keep IN lists below it.
IN_CHUNK = 500
