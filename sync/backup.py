"""A site's backup: one gzipped tar of its data folder's keys, certificates and settings
and, for a SQLite store, a consistent copy of the store taken while the site serves
(SQLite's online backup). A PostgreSQL store is backed up with the database's own tool
(`pg_dump`); the archive then holds everything else, and restoring names the database
the dump was restored into.

Restoring makes a new data folder (never over an existing one). The restored site is
the same site, holding what it held at the backup: started again, it meets the network
through the reconciliation the sync already does for a site that comes back from a
backup (the hub notices a node behind its own log and sends its entries back; a node
notices a hub behind its cursor and reconciles by what each holds).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sync.clock import system_now_ms
from sync.config import CONFIG_NAME, DataDir
from sync.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

log = logging.getLogger(__name__)

MANIFEST = "techbridge-backup.json"
FORMAT = 1
STORE_NAME = "store.db"
# What of a data folder a backup leaves out: what a running process writes, and the store.
SKIPPED = frozenset({"run", STORE_NAME, f"{STORE_NAME}-wal", f"{STORE_NAME}-shm"})


@dataclass(frozen=True)
class BackupMade:
    path: Path
    site_id: str
    store: str  # "sqlite" (inside the archive) or "postgresql" (pg_dump it)
    database: str  # the PostgreSQL database, password hidden; "" for SQLite


def _make_url(db_url: str) -> URL:
    # Imported here: the CLI loads this module for every command, and SQLAlchemy takes a
    # good part of a second to import, which only a backup or a restore needs.
    from sqlalchemy.engine import make_url

    return make_url(db_url)


def _sqlite_path(db_url: str) -> Path | None:
    url = _make_url(db_url)
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise ConfigError(f"the store {db_url} is not a file: nothing to back up")
    return Path(url.database)


def make_backup(data: DataDir, out: Path) -> BackupMade:
    """Write the backup of the site in `data` to `out` (which must not exist)."""
    config = data.load()
    if out.exists():
        raise ConfigError(f"{out} exists: a backup never overwrites a file")
    if not out.parent.is_dir():
        raise ConfigError(f"{out.parent} is not a folder")
    db_file = _sqlite_path(config.db_url)
    manifest = {
        "format": FORMAT,
        "site_id": config.site_id,
        "role": config.role,
        "store": "sqlite" if db_file else "postgresql",
        "made_at_ms": system_now_ms(),
    }
    tmp = out.with_name(f".{out.name}.partial")
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            raw = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size = len(raw)
            info.mode = 0o600
            tar.addfile(info, io.BytesIO(raw))
            for entry in sorted(data.path.iterdir()):
                if entry.name in SKIPPED or entry.name.endswith(".tmp"):
                    continue
                if db_file is not None and entry.resolve() == db_file.resolve():
                    continue
                tar.add(entry, arcname=entry.name)
            if db_file is not None:
                if not db_file.exists():
                    raise ConfigError(f"the store {db_file} does not exist")
                with tempfile.TemporaryDirectory(dir=out.parent) as scratch:
                    copy = Path(scratch) / STORE_NAME
                    source = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True, timeout=30)
                    target = sqlite3.connect(copy)
                    try:
                        source.backup(target)  # one consistent snapshot, while writers go on
                    finally:
                        target.close()
                        source.close()
                    tar.add(copy, arcname=STORE_NAME)
        tmp.chmod(0o600)
        tmp.replace(out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    database = "" if db_file else _make_url(config.db_url).render_as_string(hide_password=True)
    log.info("backup of %s written to %s", config.site_id, out)
    return BackupMade(out, config.site_id, str(manifest["store"]), database)


def restore_backup(archive: Path, path: Path, *, db_url: str | None = None) -> DataDir:
    """Make a data folder at `path` from a backup. A PostgreSQL site's store is the database
    `db_url` (where its dump was restored; by default the one it had)."""
    try:
        tar = tarfile.open(archive, "r:gz")  # noqa: SIM115 - closed by the `with tar` below
    except (OSError, tarfile.TarError) as exc:
        raise ConfigError(f"{archive} is not a techbridge backup ({exc})") from None
    with tar:
        try:
            manifest = json.load(tar.extractfile(MANIFEST) or io.BytesIO(b"{}"))
        except (KeyError, json.JSONDecodeError):
            raise ConfigError(f"{archive} is not a techbridge backup (no {MANIFEST})") from None
        if manifest.get("format") != FORMAT:
            raise ConfigError(f"{archive} is a backup of format {manifest.get('format')}; this program reads {FORMAT}")
        sqlite = manifest.get("store") == "sqlite"
        if sqlite and db_url:
            raise ConfigError("--db is for a PostgreSQL site's backup; this one holds its SQLite store")
        data = DataDir(path)
        data.prepare_new()
        try:
            try:
                tar.extractall(path, members=[m for m in tar.getmembers() if m.name != MANIFEST], filter="data")
            except tarfile.TarError as exc:
                raise ConfigError(f"{archive}: {exc}") from None
            if not data.exists():
                raise ConfigError(f"{archive} holds no {CONFIG_NAME}")
            config = data.load()
            if sqlite:
                config = config.with_updates(db_url=data.default_db_url())
            elif db_url:
                config = config.with_updates(db_url=db_url)
            data.save(config)
            for sub in ("keys",):
                if (path / sub).exists():
                    (path / sub).chmod(0o700)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
    log.info("restored %s into %s", manifest.get("site_id"), path)
    return data
