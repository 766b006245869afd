"""`techbridge backup` and `techbridge restore`: a site's keys, certificates, settings and
(SQLite) store in one file, taken while the site serves; a new data folder made from one."""

from __future__ import annotations

import argparse
from pathlib import Path

from cli.common import Groups, data_arg
from cli.render import out
from sync.backup import make_backup, restore_backup
from sync.config import DataDir


def cmd_backup(a: argparse.Namespace) -> None:
    made = make_backup(DataDir(Path(a.data)), Path(a.out))
    if made.store == "sqlite":
        out.print(
            f"backup of {made.site_id} (keys, certificates, settings and its store) in {made.path}", highlight=False
        )
        return
    out.print(f"backup of {made.site_id} (keys, certificates and settings) in {made.path}", highlight=False)
    out.print(
        f"its store is the PostgreSQL database {made.database}: dump it too, e.g. "
        f"pg_dump --format=custom --file {made.path}.pgdump '{made.database}'",
        highlight=False,
    )


def cmd_restore(a: argparse.Namespace) -> None:
    data = restore_backup(Path(getattr(a, "from")), Path(a.data), db_url=a.db)
    config = data.load()
    out.print(f"{config.role} {config.site_id} restored into {a.data}", highlight=False)
    out.print(
        f"start it with: techbridge {config.role} serve --data {a.data} "
        "(it catches up with the network at its first sync)",
        highlight=False,
    )


def add_parser(groups: Groups) -> None:
    sp = groups.add_parser("backup", help="write a site's backup to a file (while it serves)")
    data_arg(sp)
    sp.add_argument(
        "--out", required=True, metavar="FILE", help="the backup file to write (a .tar.gz; never overwritten)"
    )
    sp.set_defaults(func=cmd_backup)
    sp = groups.add_parser("restore", help="make a data folder from a backup file")
    data_arg(sp)
    sp.add_argument("--from", required=True, metavar="FILE", help="the backup file")
    sp.add_argument(
        "--db",
        default=None,
        metavar="URL",
        help="PostgreSQL site: the database its pg_dump was restored into (default: the one it had)",
    )
    sp.set_defaults(func=cmd_restore)
