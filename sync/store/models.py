"""Typed SQLAlchemy 2.0 models of a site's store.

Every site (hub or node) has the same schema; tables only the hub fills
(invites) stay empty on nodes. Constraint names follow one naming convention
so migrations are stable across SQLite and PostgreSQL. There are no ORM
relationships: the store works with Core statements and explicit joins, so
nothing can lazy-load behind a caller's back.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Text, false, text
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit everywhere; SQLite's INTEGER is already 64-bit and only "INTEGER
# PRIMARY KEY" aliases the rowid.
Big = BigInteger().with_variant(Integer(), "sqlite")


def described_here(name: str | None, type_: str, _parents: object = None) -> bool:
    """False for the tables the engine itself makes and keeps (SQLite's FTS5 table
    `search_fts` and its shadow tables), which these models do not describe; a filter for
    Alembic's `include_name`."""
    return not (type_ == "table" and name is not None and (name == "search_fts" or name.startswith("search_fts_")))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class VersionModel(Base):
    """Every signed version this site holds, keyed by the hash of its body."""

    __tablename__ = "versions"

    version_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    hlc_wall_ms: Mapped[int] = mapped_column(Big)
    hlc_counter: Mapped[int] = mapped_column(Integer)
    # The lifecycle step the version takes ("" for an edit) and the status it leads to,
    # as signed in its body: what the figures count, by stamp (transfer/report.py).
    action: Mapped[str] = mapped_column(String(16), server_default="")
    status: Mapped[str] = mapped_column(String(32), server_default="")

    __table_args__ = (
        Index("ix_versions_hlc", "hlc_wall_ms", "hlc_counter"),
        Index("ix_versions_steps", "kind", "hlc_wall_ms"),
    )
    # The exact signed bytes, never re-serialised.
    body: Mapped[bytes] = mapped_column(LargeBinary)
    # JSON list of {key_id, signature (hex), role}.
    signatures: Mapped[str] = mapped_column(Text)
    # Site this version came from; NULL when written here.
    received_from: Mapped[str | None] = mapped_column(String(64))
    received_at_ms: Mapped[int] = mapped_column(Big)
    verified: Mapped[bool] = mapped_column(Boolean)
    # Signed with a key after its revocation: kept, listed, left out of the merge.
    quarantined: Mapped[bool] = mapped_column(Boolean, server_default=false())
    quarantine_reason: Mapped[str] = mapped_column(Text, server_default="")


class LogEntryModel(Base):
    """This site's append-only log: the order in which it stored versions."""

    __tablename__ = "log_entries"

    seq: Mapped[int] = mapped_column(Big, primary_key=True, autoincrement=False)
    version_id: Mapped[str] = mapped_column(ForeignKey("versions.version_id"), unique=True)
    # Copied from the version so push and pull filter without a join.
    received_from: Mapped[str | None] = mapped_column(String(64))
    # Who may receive it: "*" (the whole network) or ",a,b," (records.audience_key).
    audience: Mapped[str] = mapped_column(Text, server_default="*")

    __table_args__ = (Index("ix_log_entries_received_from_seq", "received_from", "seq"),)


class RecordModel(Base):
    """Derived state of each record, recomputed from its versions by sync.merge."""

    __tablename__ = "records"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    origin: Mapped[str] = mapped_column(String(64), index=True)
    head_version_id: Mapped[str] = mapped_column(ForeignKey("versions.version_id"))
    title: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    head_wall_ms: Mapped[int] = mapped_column(Big)
    head_counter: Mapped[int] = mapped_column(Integer)
    head_author: Mapped[str] = mapped_column(String(64))
    version_count: Mapped[int] = mapped_column(Integer)
    # Canonical JSON of sync.merge.RecordState: identical bytes at every site
    # holding the same versions.
    state_json: Mapped[str] = mapped_column(Text, server_default="")
    deleted: Mapped[bool] = mapped_column(Boolean, server_default=false(), index=True)
    open_conflicts: Mapped[int] = mapped_column(Integer, server_default="0", index=True)
    # Versions held whose parents have not all arrived.
    waiting: Mapped[int] = mapped_column(Integer, server_default="0")
    audience: Mapped[str] = mapped_column(Text, server_default="*")

    __table_args__ = (
        Index("ix_records_kind_status", "kind", "status"),
        # Records of a kind by what their title field holds (an interest: the record it is about).
        Index("ix_records_kind_title", "kind", "title"),
        # What each centre holds, counted by kind (the console's Network page).
        Index("ix_records_origin_kind", "origin", "kind", "deleted"),
        # Search walks records newest first (Store.search).
        Index("ix_records_newest", "head_wall_ms", "record_id"),
    )


class PeerStateModel(Base):
    """Cursors and link health, one row per peer site."""

    __tablename__ = "peer_state"

    peer: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Position in the peer's log up to which this site holds what it may see.
    pull_cursor: Mapped[int] = mapped_column(Big, default=0)
    # Position in this site's log the peer has acknowledged.
    push_acked: Mapped[int] = mapped_column(Big, default=0)
    # The peer's log head as last reported minus pull_cursor.
    pending_pull: Mapped[int] = mapped_column(Big, default=0)
    last_attempt_ms: Mapped[int] = mapped_column(Big, default=0)
    last_success_ms: Mapped[int] = mapped_column(Big, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    last_error_ms: Mapped[int] = mapped_column(Big, default=0)
    # Backoff: failed rounds in a row, and when the next may start (sync.backoff).
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    next_attempt_ms: Mapped[int] = mapped_column(Big, server_default="0")
    # The version id at pull_cursor in the peer's log (a checkpoint the peer can check).
    pull_cursor_version: Mapped[str] = mapped_column(String(64), server_default="")
    # Hub: the peer was restored from a backup; send its own entries back until it has
    # confirmed (a Pull from there on) the hub's log up to resend_until, the head of the
    # first pull that was sent to its end (0: none yet).
    resend_own: Mapped[bool] = mapped_column(Boolean, server_default=false())
    resend_until: Mapped[int] = mapped_column(Big, server_default="0")
    # Node: reconciling with a restored hub; push everything and pull again until done.
    reconciling: Mapped[bool] = mapped_column(Boolean, server_default=false())


class PushTxnModel(Base):
    """Push batches already applied, so a retried batch is a no-op."""

    __tablename__ = "push_txns"

    txn_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    peer: Mapped[str] = mapped_column(String(64))
    acked_seq: Mapped[int] = mapped_column(Big)
    applied_at_ms: Mapped[int] = mapped_column(Big)


class RejectionModel(Base):
    """Versions refused on receipt, with the reason; they never block the rest."""

    __tablename__ = "rejections"

    id: Mapped[int] = mapped_column(Big, primary_key=True, autoincrement=True)
    version_id: Mapped[str] = mapped_column(String(64), index=True)
    peer: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at_ms: Mapped[int] = mapped_column(Big)


class RegistryModel(Base):
    """Every verified registry version; the newest is the one in force."""

    __tablename__ = "registry"

    version: Mapped[int] = mapped_column(Big, primary_key=True, autoincrement=False)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    stored_at_ms: Mapped[int] = mapped_column(Big)


class InviteModel(Base):
    """One-time join tokens (hub only). Only the token's hash is kept."""

    __tablename__ = "invites"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    centre_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    created_at_ms: Mapped[int] = mapped_column(Big)
    expires_at_ms: Mapped[int] = mapped_column(Big)
    used_at_ms: Mapped[int | None] = mapped_column(Big)


class PrivateNoteModel(Base):
    """Personal data a centre keeps for a record and never signs or sends: a
    firm's contact at its home centre, an anonymous offer's client. Erasure
    deletes the row; the signed history stays whole and verifiable."""

    __tablename__ = "private_notes"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    note: Mapped[str] = mapped_column(Text)
    stored_at_ms: Mapped[int] = mapped_column(Big)


class SearchDocModel(Base):
    """What each offer and request is found by (sync.fulltext), kept with its merged state.

    One row per searchable record that is not deleted. The text index is the engine's own:
    on SQLite the FTS5 table `search_fts` (its rowid is `doc_id`; made by the migration,
    not described here), on PostgreSQL the `tsv` column with its GIN index. `facets` is a
    JSON list of "facet=value" strings, counted for a search's facets."""

    __tablename__ = "search_docs"

    doc_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(64), unique=True)
    head_wall_ms: Mapped[int] = mapped_column(Big)
    # When an offer lapses (0: never), for searches of what is live.
    lapses_at_ms: Mapped[int] = mapped_column(Big, server_default="0")
    facets: Mapped[str] = mapped_column(Text, server_default="[]")
    tsv: Mapped[str | None] = mapped_column(Text().with_variant(TSVECTOR(), "postgresql"), nullable=True)

    __table_args__ = (
        Index("ix_search_docs_newest", "head_wall_ms", "record_id"),
        Index("ix_search_docs_tsv", "tsv", postgresql_using="gin", sqlite_where=text("tsv IS NOT NULL")),
    )


class SearchFacetCountModel(Base):
    """How many indexed records hold each "facet=value" (search_docs.facets), kept in the
    transaction that writes the index: the facets of a search that filters nothing are read
    here rather than counted over every record."""

    __tablename__ = "search_facet_counts"

    value: Mapped[str] = mapped_column(Text, primary_key=True)
    docs: Mapped[int] = mapped_column(Integer)


class AlertModel(Base):
    """A search kept at one site for a client (transfer.alerts); never sent. `checked_seq`
    is how far along this site's log it has been checked."""

    __tablename__ = "alerts"

    alert_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    query_json: Mapped[str] = mapped_column(Text)
    checked_seq: Mapped[int] = mapped_column(Big)
    created_at_ms: Mapped[int] = mapped_column(Big)


class AlertHitModel(Base):
    """A record that came to match an alert, once; and its webhook delivery."""

    __tablename__ = "alert_hits"

    alert_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    hit_at_ms: Mapped[int] = mapped_column(Big)
    delivered_at_ms: Mapped[int] = mapped_column(Big, server_default="0")
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    next_try_ms: Mapped[int] = mapped_column(Big, server_default="0")


class JobCursorModel(Base):
    """How far along this site's log a job that follows it has read (`job` names it)."""

    __tablename__ = "job_cursors"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    after_seq: Mapped[int] = mapped_column(Big)


class StoreMarkModel(Base):
    """Counters a site keeps of what happened to its store outside the log: `quarantines`
    moves whenever held versions are taken out of the merge (jobs that follow the log and
    derive tables from the versions notice it there)."""

    __tablename__ = "store_marks"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(Big)


class FigureRowModel(Base):
    """What one record counts for in the network's figures (transfer.kept_figures): the
    figure, the centre it counts for, a breakdown (`by`, `value`; both "" for the figure
    itself; `by` "firm:<the step's figure>" and the firm for a firm served), the UTC day and
    the version whose signed stamp counted it. Derived from the versions held by a job that
    follows the log."""

    __tablename__ = "figure_rows"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    figure: Mapped[str] = mapped_column(String(64), primary_key=True)
    centre: Mapped[str] = mapped_column(String(64), primary_key=True)
    by: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(300), primary_key=True)
    day: Mapped[int] = mapped_column(Integer)
    version_id: Mapped[str] = mapped_column(String(64))
    stamp_ms: Mapped[int] = mapped_column(Big)

    __table_args__ = (Index("ix_figure_rows_figure_day", "figure", "day"),)


class FigureCountModel(Base):
    """`figure_rows` added up per figure, day, centre and breakdown (firms served apart,
    counted distinct from the rows): what a period's report sums."""

    __tablename__ = "figure_counts"

    figure: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)
    centre: Mapped[str] = mapped_column(String(64), primary_key=True)
    by: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(300), primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class FigureOfferModel(Base):
    """Each published offer's first publication, first step out of it and when it lapses:
    what "live at the end of a period" is counted from."""

    __tablename__ = "figure_offers"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    origin: Mapped[str] = mapped_column(String(64))
    published_ms: Mapped[int] = mapped_column(Big)
    publish_version_id: Mapped[str] = mapped_column(String(64))
    out_ms: Mapped[int | None] = mapped_column(Big, nullable=True)
    lapses_ms: Mapped[int] = mapped_column(Big)

    __table_args__ = (Index("ix_figure_offers_published", "published_ms", "out_ms", "lapses_ms", "origin"),)


class FigureInterestModel(Base):
    """Each expression of interest's centre handling its target and the first stamps of its
    create, introduction and agreement: the medians' spans."""

    __tablename__ = "figure_interests"

    record_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    to_owner: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int | None] = mapped_column(Big, nullable=True)
    introduced_ms: Mapped[int | None] = mapped_column(Big, nullable=True)
    agreed_ms: Mapped[int | None] = mapped_column(Big, nullable=True)

    __table_args__ = (
        Index("ix_figure_interests_introduced", "introduced_ms"),
        Index("ix_figure_interests_agreed", "agreed_ms"),
    )


class SuggestedPairModel(Base):
    """At HQ: each (request, offer) pair a suggestion was ever made for, and the
    suggestion record (hub.suggestions). Derived from the suggestion records it holds:
    rebuilt from them when the job starts."""

    __tablename__ = "suggested_pairs"

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    offer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    suggestion_id: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_suggested_pairs_offer", "offer_id"),)


class StaffModel(Base):
    """A console account at this site (console.staff); never sent. Only hashes are kept:
    the password's (argon2id) and the one-time code's (SHA-256)."""

    __tablename__ = "staff"

    staff_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at_ms: Mapped[int] = mapped_column(Big)
    last_login_ms: Mapped[int] = mapped_column(Big)
    code_hash: Mapped[str] = mapped_column(String(64))
    code_expires_ms: Mapped[int] = mapped_column(Big)
    failed_logins: Mapped[int] = mapped_column(Integer)
    locked_until_ms: Mapped[int] = mapped_column(Big)
    # The console's language for this account ("en" or "zh").
    language: Mapped[str] = mapped_column(String(8), server_default="en")


class StaffSessionModel(Base):
    """A signed-in console session at this site; the cookie holds the token, only its
    SHA-256 is kept. Ended by signing out, by expiry, or by the account's disabling."""

    __tablename__ = "staff_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    staff_id: Mapped[str] = mapped_column(String(36), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at_ms: Mapped[int] = mapped_column(Big)
    expires_at_ms: Mapped[int] = mapped_column(Big)


class StaffActionModel(Base):
    """Which staff member wrote a version through this site's console (kept here, never
    sent: the version itself is signed by the site)."""

    __tablename__ = "staff_actions"

    version_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    record_id: Mapped[str] = mapped_column(String(64), index=True)
    staff_name: Mapped[str] = mapped_column(String(64))
    at_ms: Mapped[int] = mapped_column(Big)
