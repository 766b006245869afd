"""`techbridge backup` while a site serves and `techbridge restore` into a new folder: the
restored site starts, meets the network through the reconciliation that exists, and ends
holding what every other site holds. A PostgreSQL hub's store goes through pg_dump and
pg_restore. Mistakes are one line and exit 1."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.site import init_hub, start_hub
from tests.backends import PG_SKIP_REASON, PG_URL, database_url
from tests.harness import Hub, Node, cli, make_hub, make_node, start_existing_node


def backup(path: Path, out: Path) -> str:
    r = cli("backup", "--data", str(path), "--out", str(out))
    assert r.returncode == 0, r.stderr
    return r.stdout


def restore(archive: Path, path: Path, *extra: str) -> None:
    r = cli("restore", "--from", str(archive), "--data", str(path), *extra)
    assert r.returncode == 0, r.stderr
    assert "restored into" in r.stdout


def digest_of(site: Hub | Node) -> object:
    running = site.running if isinstance(site, Hub) else (site.node.running if site.node else None)
    assert running is not None
    return running.site.store.digest()


def test_a_node_backed_up_while_it_serves_is_restored_and_gets_back_what_it_wrote_since(
    hub: Hub, tmp_path: Path
) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    kept = {ta.add_record(f"Kept in the backup {i}") for i in range(3)}
    ta.sync()
    archive = tmp_path / "tel-aviv.tar.gz"
    assert "its store" in backup(ta.path, archive)  # while the node serves
    since = {ta.add_record(f"Written after the backup {i}") for i in range(2)}
    ta.sync()
    token = ta.admin_token
    ta.stop()  # the machine is lost
    restore(archive, tmp_path / "tel-aviv-restored")
    back = start_existing_node(tmp_path / "tel-aviv-restored", token)
    try:
        assert {v.id for v in back.listings()} == kept  # what the backup held
        back.sync()
        back.sync()
        assert {v.id for v in back.listings()} == kept | since
        assert digest_of(back) == digest_of(hub)
        again = back.add_record("Written after the restore")
        back.sync()
        assert again in {v.id for v in hub.listings()}
    finally:
        back.stop()


def test_a_hub_backed_up_while_it_serves_is_restored_and_its_nodes_reconcile(tmp_path: Path) -> None:
    hub = make_hub(tmp_path / "hq")
    address = hub.address
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    try:
        ta.add_record("Before the backup")
        ta.sync()
        dj.sync()
        archive = tmp_path / "hq.tar.gz"
        backup(hub.path, archive)
        ta.add_record("After the backup, at Tel Aviv")
        hub.add_record("After the backup, at HQ")
        ta.sync()
        dj.sync()
        hub.stop()
        restore(archive, tmp_path / "hq-restored")
        hub = Hub(
            path=tmp_path / "hq-restored",
            admin_token=hub.admin_token,
            address=address,
            running=start_hub(tmp_path / "hq-restored", listen=address),
        )
        for _ in range(2):
            ta.sync()
            dj.sync()
        assert digest_of(hub) == digest_of(ta) == digest_of(dj)
        assert len(hub.listings()) == 3
    finally:
        ta.stop()
        dj.stop()
        hub.stop()


@pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)
def test_a_postgresql_hub_comes_back_from_pg_dump_and_its_backup_file(tmp_path: Path) -> None:
    with database_url("postgresql", tmp_path) as url:
        cfg = init_hub(tmp_path / "hq", listen="127.0.0.1:0", db_url=url)
        running = start_hub(tmp_path / "hq")
        hub = Hub(path=tmp_path / "hq", admin_token=cfg.admin_token, address=running.address, running=running)
        address = hub.address
        ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
        restored_db = f"tb_{uuid.uuid4().hex[:16]}"
        admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        try:
            ta.add_record("Before the backup")
            ta.sync()
            archive = tmp_path / "hq.tar.gz"
            said = backup(hub.path, archive)
            assert "pg_dump" in said
            libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            dump = tmp_path / "hq.pgdump"
            subprocess.run(["pg_dump", "--format=custom", "--file", str(dump), libpq], check=True, timeout=120)
            ta.add_record("After the backup")
            ta.sync()
            hub.stop()
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{restored_db}"'))
            target = make_url(url).set(database=restored_db)
            subprocess.run(
                [
                    "pg_restore",
                    "--no-owner",
                    "--dbname",
                    target.set(drivername="postgresql").render_as_string(hide_password=False),
                    str(dump),
                ],
                check=True,
                timeout=120,
            )
            restore(archive, tmp_path / "hq-restored", "--db", target.render_as_string(hide_password=False))
            hub = Hub(
                path=tmp_path / "hq-restored",
                admin_token=cfg.admin_token,
                address=address,
                running=start_hub(tmp_path / "hq-restored", listen=address),
            )
            ta.sync()
            ta.sync()
            assert digest_of(hub) == digest_of(ta)
            assert len(hub.listings()) == 2
        finally:
            ta.stop()
            hub.stop()
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{restored_db}" WITH (FORCE)'))
            admin.dispose()


def test_backup_and_restore_mistakes_are_one_line(hub: Hub, tmp_path: Path) -> None:
    archive = tmp_path / "hq.tar.gz"
    backup(hub.path, archive)
    cases = [
        (("backup", "--data", str(hub.path), "--out", str(archive)), "exists"),
        (("backup", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.tar.gz")), "not a techbridge"),
        (("restore", "--from", str(archive), "--data", str(hub.path)), "already holds a site"),
        (("restore", "--from", str(tmp_path / "missing.tar.gz"), "--data", str(tmp_path / "r1")), "not a techbridge"),
        (("restore", "--from", str(archive), "--data", str(tmp_path / "r2"), "--db", "postgresql://x/y"), "--db"),
    ]
    not_a_backup = tmp_path / "notes.tar.gz"
    not_a_backup.write_bytes(b"hello")
    cases.append((("restore", "--from", str(not_a_backup), "--data", str(tmp_path / "r3")), "not a techbridge"))
    for args, words in cases:
        r = cli(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and words in lines[0], (args, r.stderr)
        assert "Traceback" not in r.stderr
    for left in ("r1", "r2", "r3"):
        assert not (tmp_path / left).exists()  # nothing half made
