"""The store contract, run against every backend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from sync.clock import Stamp
from sync.envelope import Version, make_version
from sync.fulltext import parse_query
from sync.keys import SigningKey
from sync.kinds import Action, Change, create_change, make_content
from sync.store import Rejected, SearchQuery, Store
from sync.store.migrate import current_revision, head_revisions
from sync.store.models import Base, described_here
from tests.backends import BACKENDS, database_url
from transfer.records import FIRM, KINDS, LISTING, REQUEST, listing_content

KEY = SigningKey.generate()


def version(n: int, record: str | None = None, site: str = "tel-aviv", wall: int | None = None) -> Version:
    return make_version(
        KEY,
        site=site,
        record_id=record or f"rec-{n:05d}",
        hlc=Stamp(wall if wall is not None else 1_000 + n, 0),
        change=create_change(listing_content(title=f"listing {n}")),
        kind=LISTING,
    )


def firm_and_erasure(firm_key: SigningKey) -> tuple[Version, Version]:
    """A firm registered at HQ (stamp 1,000) and its erasure (stamp 2,000)."""
    content = make_content(FIRM, {"name": "Acme", "country": "CN", "public_key": firm_key.public_bytes.hex()}, "active")
    create = make_version(
        KEY, site="hq", record_id="firm-1", hlc=Stamp(1_000, 0), change=create_change(content), kind=FIRM
    )
    erase = make_version(
        KEY,
        site="hq",
        record_id="firm-1",
        hlc=Stamp(2_000, 0),
        change=Change(action=Action.ERASE, status="erased"),
        parents=(create.version_id,),
        kind=FIRM,
    )
    return create, erase


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url:
        s = Store.open(url, KINDS)
        yield s
        s.close()


class TestStoreContract:
    def test_migrations_match_models_with_one_head(self, store: Store) -> None:
        assert len(head_revisions()) == 1
        assert current_revision(store.engine) == head_revisions()[0]
        with store.engine.connect() as conn:
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"include_name": described_here}), Base.metadata
            )
        assert diff == []

    def test_firm_keys_private_notes_and_erasure(self, store: Store) -> None:
        firm_key = SigningKey.generate()
        create, erase = firm_and_erasure(firm_key)
        store.apply_batch("hq", [create], [], through_seq=1, now_ms=1)
        store.set_private_note("firm-1", "Li Wei, bd@example.cn", 2)
        found = store.firm_key("firm-1")
        assert found is not None and found.key_id == firm_key.key_id and found.home == "hq" and not found.erased_at_ms
        assert store.private_note("firm-1") == "Li Wei, bd@example.cn"
        assert store.titles(["firm-1", "nothing"]) == {"firm-1": "Acme"}
        store.apply_batch("hq", [erase], [], through_seq=2, now_ms=3)
        assert store.private_note("firm-1") == ""  # erased where the erasure arrives
        erased = store.firm_key("firm-1")
        assert erased is not None and erased.erased_at_ms == 2_000
        assert store.firm_key("rec-00001") is None

    def test_an_erasure_and_its_quarantine_commit_together(self, store: Store) -> None:
        """The quarantine a firm's erasure implies is written in the transaction that stores
        the erasure: a statement failing between the two leaves neither, and the batch,
        taken again, leaves both."""
        from sqlalchemy import event

        firm_key = SigningKey.generate()
        create, erase = firm_and_erasure(firm_key)
        late = make_version(
            firm_key,
            site="firm-1",
            record_id="req-1",
            hlc=Stamp(3_000, 0),
            change=create_change(
                make_content(REQUEST, {"title": "Need", "request_type": "technology", "sought": "x"}, "submitted")
            ),
            kind=REQUEST,
        )
        store.apply_batch("hq", [create, late], [], through_seq=2, now_ms=1)

        def fail_the_quarantine(_c: object, _cur: object, statement: str, *_a: object) -> None:
            if statement.lstrip().upper().startswith("UPDATE VERSIONS SET QUARANTINED"):
                raise RuntimeError("disk full")

        event.listen(store.engine, "before_cursor_execute", fail_the_quarantine)
        try:
            with pytest.raises(Exception, match="disk full"):
                store.apply_batch("hq", [erase], [], through_seq=3, now_ms=2)
        finally:
            event.remove(store.engine, "before_cursor_execute", fail_the_quarantine)
        held = store.firm_key("firm-1")
        assert held is not None and not held.erased_at_ms  # the erasure was not stored either
        assert store.quarantined() == []
        assert store.peer_state("hq").pull_cursor == 2
        store.apply_batch("hq", [erase], [], through_seq=3, now_ms=3)
        erased = store.firm_key("firm-1")
        assert erased is not None and erased.erased_at_ms == 2_000
        assert [q[0] for q in store.quarantined()] == [late.version_id]

    def test_digest_depends_on_what_is_held_not_on_arrival_order(self, store: Store, tmp_path: Path) -> None:
        import hashlib

        vs = [version(n, site=("tel-aviv", "brussels")[n % 2]) for n in range(7)]
        empty = store.digest()
        assert (empty.versions, empty.digest, empty.origins) == (0, hashlib.sha256().hexdigest(), ())
        store.apply_batch("hq", vs, [], through_seq=7, now_ms=1)
        other = Store.open(f"sqlite:///{tmp_path / 'other.db'}", KINDS)
        try:
            for v in reversed(vs):  # one at a time, in the opposite order
                other.apply_batch("hq", [v], [], through_seq=1, now_ms=1)
            assert other.digest() == store.digest()
            ids = sorted(v.version_id for v in vs)
            held = store.digest()
            assert held.versions == 7
            assert held.digest == hashlib.sha256("".join(f"{i}\n" for i in ids).encode()).hexdigest()
            assert [(o.origin, o.versions) for o in held.origins] == [("brussels", 3), ("tel-aviv", 4)]
            other.apply_batch("hq", [version(99)], [], through_seq=2, now_ms=1)
            after = other.digest()
            assert after.digest != held.digest
            assert [o for o in after.origins if o.origin == "brussels"] == [
                o for o in held.origins if o.origin == "brussels"
            ]
        finally:
            other.close()

    def test_apply_is_idempotent(self, store: Store) -> None:
        batch = [version(i) for i in range(10)]
        r1 = store.apply_batch("hq", batch, [], through_seq=10, now_ms=1)
        r2 = store.apply_batch("hq", batch + batch[:3], [], through_seq=10, now_ms=2)
        assert (r1.stored, r1.duplicates) == (10, 0)
        assert (r2.stored, r2.duplicates) == (0, 13)
        assert store.log_head() == 10
        assert store.counts() == (10, 0)

    def test_push_txn_retried_is_a_noop(self, store: Store) -> None:
        batch = [version(i) for i in range(3)]
        store.apply_batch("tel-aviv", batch, [], through_seq=3, now_ms=1, txn_id="tel-aviv:1-3")
        again = store.apply_batch("tel-aviv", batch, [], through_seq=3, now_ms=2, txn_id="tel-aviv:1-3")
        assert again.already_applied
        assert store.log_head() == 3

    def test_batch_and_cursor_commit_together(self, store: Store) -> None:
        store.apply_batch("hq", [version(0)], [], through_seq=1, now_ms=1)
        # A failure after part of a batch was written must leave neither its
        # versions nor its cursor behind.
        bad = [version(1), version(2)]
        store._insert_versions = _fail_after_first(store._insert_versions)  # type: ignore[method-assign,no-untyped-call]
        with pytest.raises(RuntimeError):
            store.apply_batch("hq", bad, [], through_seq=3, now_ms=2)
        assert store.peer_state("hq").pull_cursor == 1
        assert store.version_ids() == {version(0).version_id}

    def test_rejections_are_recorded_and_do_not_block(self, store: Store) -> None:
        good = [version(i) for i in range(3)]
        res = store.apply_batch(
            "hq", good, [Rejected("deadbeef", "signature does not verify", b"x")], through_seq=4, now_ms=1
        )
        assert (res.stored, res.rejected) == (3, 1)
        assert store.rejections() == [("deadbeef", "hq", "signature does not verify")]
        assert store.peer_state("hq").pull_cursor == 4

    def test_log_after_is_bounded_and_covers_skipped(self, store: Store) -> None:
        mine = [version(i, site="tel-aviv") for i in range(5)]
        for v in mine:
            store.append_local(v, 1)
        store.apply_batch(
            "brussels", [version(100 + i, site="brussels") for i in range(5)], [], through_seq=5, now_ms=1
        )
        rows, through, head = store.log_after(0, 3)
        assert [r.seq for r in rows] == [1, 2, 3] and through == 3 and head == 10
        # Entries from brussels are skipped but covered when pulling for brussels.
        rows, through, head = store.log_after(3, 100, exclude_from="brussels")
        assert [r.seq for r in rows] == [4, 5] and through == 10
        # Only local entries are pushed.
        rows, through, _ = store.log_after(0, 100, only_local=True)
        assert [r.seq for r in rows] == [1, 2, 3, 4, 5] and through == 10
        assert store.count_pending(0, only_local=True) == 5
        assert store.count_pending(0, exclude_from="brussels") == 5

    def test_head_is_the_same_whatever_the_arrival_order(self, store: Store, tmp_path: Path) -> None:
        a = version(1, record="r", wall=10)
        b = version(2, record="r", wall=20)
        store.apply_batch("hq", [b], [], through_seq=1, now_ms=1)
        store.apply_batch("hq", [a], [], through_seq=2, now_ms=1)
        row = store.list_records(origin=None, limit=10)[0]
        assert row.head_version_id == b.version_id and row.version_count == 2
        assert store.head_version("r").body == b.body

    def test_the_row_of_a_new_record_made_without_reading_is_the_row_stored(self, store: Store) -> None:
        # What intake answers with (`created_row`) is what the store's merge wrote.
        long_title = "膜蒸馏海水淡化 " * 40  # over the row's 256 characters
        content = listing_content(title=long_title, summary="s", trl=4, keywords=("water-treatment",))
        creates = [
            make_version(KEY, site="tel-aviv", record_id=rid, hlc=Stamp(7_000, i), change=change, kind=LISTING)
            for i, (rid, change) in enumerate(
                [("n1", create_change(content)), ("n2", create_change(content, ("brussels",)))]
            )
        ]
        store.append_local_batch(creates, 1)
        stored = {r.record_id: r for r in store.records_by_id(["n1", "n2"])}
        for v in creates:
            made, state = store.created_row(v)
            assert made == stored[v.record_id] and made.state_json == stored[v.record_id].state_json
            assert state == stored[v.record_id].state  # the state answered is the state stored, read back
            assert len(made.title) == 256 and made.key_id == KEY.key_id

    def test_a_create_arriving_after_its_edit_is_merged_with_it(self, store: Store) -> None:
        # A new record's create is merged from itself alone only when the record holds
        # nothing else: an edit that came first (waiting for it) is merged in.
        create = version(1, record="r")
        edit = make_version(
            KEY,
            site="tel-aviv",
            record_id="r",
            hlc=Stamp(5_000, 0),
            change=Change((("summary", "edited before its create arrived"),)),
            parents=(create.version_id,),
            kind=LISTING,
        )
        store.apply_batch("hq", [edit], [], through_seq=1, now_ms=1)
        assert store.list_records(origin=None, limit=10) == []  # waiting for its parent
        store.apply_batch("hq", [create], [], through_seq=2, now_ms=1)
        row = store.record("r")
        assert row.version_count == 2 and row.head_version_id == edit.version_id
        assert row.state.content.as_dict()["summary"] == "edited before its create arrived"
        # In one batch, create and edit together, the same.
        store.apply_batch("hq", [version(2, record="s"), version(3, record="t")], [], through_seq=3, now_ms=1)
        assert {r.record_id for r in store.list_records(origin=None, limit=10)} == {"r", "s", "t"}
        hits = store.search(SearchQuery(parse_query("listing"), limit=10)).hits
        assert {h.record.record_id for h in hits} >= {"s", "t"}

    def test_registry_only_moves_forward(self, store: Store) -> None:
        from hub.registry import issue_registry
        from sync.registry import Centre, CentreStatus, SiteRole

        root = SigningKey.generate()
        hub = Centre("hq", "HQ", "", SiteRole.HUB, CentreStatus.ACTIVE)
        r1 = issue_registry(root, (hub,), previous=None, now_ms=1)
        r2 = issue_registry(root, (hub,), previous=r1, now_ms=2)
        assert store.save_registry(r2, 1)
        assert not store.save_registry(r1, 2)
        held = store.registry()
        assert held is not None and held.version == 2 and held.body == r2.body


def _fail_after_first(real):  # type: ignore[no-untyped-def]
    def wrapper(conn, fresh, peer, now_ms):  # type: ignore[no-untyped-def]
        real(conn, fresh[:1], peer, now_ms)
        raise RuntimeError("simulated crash in the middle of a batch")

    return wrapper


def count_commits(store: Store) -> list[int]:
    """The sizes of the group commits `store` makes from now on, in order."""
    commits: list[int] = []
    original = store._append_locked

    def counted(vs: list[Version], now_ms: int) -> list[int]:
        commits.append(len(vs))
        return original(vs, now_ms)

    store._append_locked = counted  # type: ignore[method-assign,assignment]
    return commits


class TestGroupCommit:
    def test_local_writes_that_arrive_together_commit_together_and_fail_alone(self, store: Store) -> None:
        """Writers queue while another holds the write lock; the next one in stores all of
        them in one transaction. A version that cannot be stored (the same version twice)
        fails only its own writer: the batch is retried one by one."""
        import threading

        versions = [version(n) for n in range(6)]
        writes = [*versions, versions[2]]  # the last is a version already queued
        results: dict[int, object] = {}
        commits = count_commits(store)

        def write(i: int) -> None:
            try:
                results[i] = store.append_local(writes[i], 1)
            except Exception as exc:
                results[i] = exc

        with store._write_lock:  # everyone queues behind a writer in progress
            threads = [threading.Thread(target=write, args=(i,)) for i in range(len(writes))]
            for t in threads:
                t.start()
            for _ in range(500):
                with store._queue_lock:
                    if len(store._queued) == len(writes):
                        break
                threading.Event().wait(0.01)
        for t in threads:
            t.join(timeout=30)
        assert commits[0] == len(writes)  # tried together first
        failed = [i for i, r in results.items() if isinstance(r, Exception)]
        assert len(failed) == 1 and writes[failed[0]].version_id == versions[2].version_id
        seqs = sorted(r for r in results.values() if isinstance(r, int))
        assert len(seqs) == len(versions) and len(set(seqs)) == len(seqs)
        assert store.log_head() == max(seqs)
        assert {r.record_id for r in store.list_records(origin=None, limit=50)} == {v.record_id for v in versions}

    def test_a_group_commit_waits_for_announced_writes_and_no_longer(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A write announced (`coming_write`) and queued while another announced writer
        waits for it is stored in the same transaction; an announcement that ends without a
        write lets the waiting writer go at once, whatever the wait allowed; a writer that
        announced nothing waits for no one."""
        import threading

        import sync.store.log as log_module

        monkeypatch.setattr(log_module, "GROUP_WAIT_S", 60.0)  # only the announcements end a wait here
        commits = count_commits(store)
        first, second = version(1), version(2)
        done: list[int] = []

        def waiting(waiter: Version) -> threading.Thread:
            def announced() -> None:
                with store.coming_write() as mine:
                    done.append(store.append_local(waiter, 1, mine))

            t = threading.Thread(target=announced)
            t.start()
            for _ in range(500):  # until it queued and waits for the announced write
                with store._queue_lock:
                    if store._queued:
                        break
                threading.Event().wait(0.01)
            return t

        with store.coming_write() as coming:
            t = waiting(first)
            store.append_local(second, 1, coming)
        t.join(timeout=30)
        assert commits == [2] and sorted(done) == [1]
        with store.coming_write():  # a write checked and refused: it never comes
            t = waiting(version(3))
        t.join(timeout=30)
        assert not t.is_alive() and commits == [2, 1]
        with store.coming_write():  # a write that announced nothing (an edit) waits for no one
            t = threading.Thread(target=lambda: done.append(store.append_local(version(4), 1)))
            t.start()
            t.join(timeout=10)
            assert not t.is_alive() and commits == [2, 1, 1]


def _bulky(n: int) -> Version:
    text = f"offer {n} " + "membrane desalination solar storage " * 60
    return make_version(
        KEY,
        site="tel-aviv",
        record_id=f"bulk-{n:05d}",
        hlc=Stamp(1_000 + n, 0),
        change=create_change(listing_content(title=f"offer {n}", summary=text[:400], description=text)),
        kind=LISTING,
    )


class TestWalCheckpoints:
    """On SQLite a commit only appends to the WAL; the checkpointer thread copies it back."""

    def _write(self, store: Store, count: int) -> None:
        for start in range(0, count, 100):
            batch = [_bulky(n) for n in range(start, start + 100)]
            store.apply_batch("tel-aviv", batch, [], through_seq=start + 100, now_ms=1)

    def test_commits_leave_the_copy_to_the_checkpointer(self, tmp_path: Path) -> None:
        db = tmp_path / "s.db"
        store = Store.open(f"sqlite:///{db}", KINDS)
        try:
            assert store._checkpointer is not None
            store._checkpointer.stop()  # no thread: only what the commits themselves do
            before = db.stat().st_size
            self._write(store, 600)
            wal = Path(f"{db}-wal")
            assert wal.stat().st_size > 1_000_000
            assert db.stat().st_size == before  # no commit copied the WAL into the file
            frames, copied = store.checkpoint_wal() or (0, 0)
            assert frames > 0 and copied == frames
            assert db.stat().st_size > 1_000_000
        finally:
            store.close()

    def test_the_checkpointer_copies_the_wal_after_commits(self, tmp_path: Path) -> None:
        db = tmp_path / "s.db"
        store = Store.open(f"sqlite:///{db}", KINDS)
        try:
            self._write(store, 600)
            for _ in range(200):  # bounded: the thread runs within CHECKPOINT_EVERY_S of a commit
                if db.stat().st_size > 1_000_000:
                    break
                time.sleep(0.05)
            assert db.stat().st_size > 1_000_000
            assert len(store.version_ids()) == 600
        finally:
            store.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_versions_held_before_the_step_columns_get_theirs_from_their_bodies(backend: str, tmp_path: Path) -> None:
    """Migration 0016 reads each held version's step and status from its signed body."""
    from alembic import command
    from sqlalchemy import text

    from sync.store.migrate import alembic_config

    with database_url(backend, tmp_path) as url:
        store = Store.open(url, KINDS)
        create = version(1)
        publish = make_version(
            KEY,
            site="hq",
            origin="tel-aviv",
            record_id=create.record_id,
            hlc=Stamp(2_000, 0),
            change=Change(action=Action.PUBLISH, status="published"),
            parents=(create.version_id,),
            kind=LISTING,
        )
        edit = make_version(
            KEY,
            site="tel-aviv",
            record_id=create.record_id,
            hlc=Stamp(3_000, 0),
            change=Change((("summary", "edited"),)),
            parents=(publish.version_id,),
            kind=LISTING,
        )
        store.apply_batch("hq", [create, publish, edit], [], through_seq=3, now_ms=1)
        cfg = alembic_config()
        with store.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0015")
        store.close()
        again = Store.open(url, KINDS)
        try:
            with again.engine.connect() as conn:
                got = dict(
                    (r[0], (r[1], r[2])) for r in conn.execute(text("SELECT version_id, action, status FROM versions"))
                )
            assert got == {
                create.version_id: ("create", "submitted"),
                publish.version_id: ("publish", "published"),
                edit.version_id: ("", ""),
            }
        finally:
            again.close()
