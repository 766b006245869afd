"""Console sessions and who did what through the console, kept at the site (never sent).

A session starts when a staff member signs in: a random token goes into an HttpOnly,
SameSite=Strict cookie and only its SHA-256 is stored (`staff_sessions`), with the
session's CSRF token that every form must carry back. A session ends when its holder
signs out, after `SESSION_S`, or when the account is disabled or reset (console.staff).
Every request reads the session and the account together, so a disabled account is out
at its next click.

The console signs changes with the site's key, like the CLI; which staff member made
each change is written beside the version in `staff_actions` and shown in the record's
history here.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, delete, insert, select

from console.staff import StaffAccount, account_from_row, sessions_t, staff_t
from sync.store import Store
from sync.store.models import StaffActionModel

actions_t = cast(Table, StaffActionModel.__table__)
SESSION_S = 8 * 3600


@dataclass(frozen=True)
class Session:
    account: StaffAccount
    csrf: str
    expires_at_ms: int


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(store: Store, account: StaffAccount, *, now_ms: int) -> str:
    """A new session for `account`; returns the cookie's token (kept here only as a hash).
    Expired sessions are cleared on the way."""
    token = secrets.token_urlsafe(32)
    with store.writing() as conn:
        conn.execute(delete(sessions_t).where(sessions_t.c.expires_at_ms <= now_ms))
        conn.execute(
            insert(sessions_t).values(
                token_hash=_hash(token),
                staff_id=account.staff_id,
                csrf=secrets.token_urlsafe(32),
                created_at_ms=now_ms,
                expires_at_ms=now_ms + SESSION_S * 1000,
            )
        )
    return token


def session_of(store: Store, token: str, *, now_ms: int) -> Session | None:
    """The live session this cookie token opens, with its account as it stands now; None
    when there is none, it expired, or the account is disabled."""
    if not token or len(token) > 100:
        return None
    with store.engine.connect() as conn:
        row = conn.execute(
            select(sessions_t.c.csrf, sessions_t.c.expires_at_ms, staff_t)
            .join(staff_t, staff_t.c.staff_id == sessions_t.c.staff_id)
            .where(sessions_t.c.token_hash == _hash(token))
        ).first()
    if row is None or row.expires_at_ms <= now_ms or row.disabled or not row.password_hash:
        return None
    return Session(account_from_row(row), row.csrf, row.expires_at_ms)


def end_session(store: Store, token: str) -> None:
    with store.writing() as conn:
        conn.execute(delete(sessions_t).where(sessions_t.c.token_hash == _hash(token)))


def record_action(store: Store, version_id: str, record_id: str, staff_name: str, *, now_ms: int) -> None:
    """Note that `staff_name` wrote `version_id` through the console."""
    record_actions(store, [(version_id, record_id)], staff_name, now_ms=now_ms)


def record_actions(store: Store, written: list[tuple[str, str]], staff_name: str, *, now_ms: int) -> None:
    """Note that `staff_name` wrote each (version id, record id) through the console, in one
    statement."""
    if not written:
        return
    with store.writing() as conn:
        conn.execute(
            insert(actions_t),
            [{"version_id": v, "record_id": r, "staff_name": staff_name, "at_ms": now_ms} for v, r in written],
        )


def actions_on(store: Store, record_id: str) -> dict[str, str]:
    """Version id -> the staff member who wrote it here through the console."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(actions_t.c.version_id, actions_t.c.staff_name).where(actions_t.c.record_id == record_id)
        ).all()
    return {r.version_id: r.staff_name for r in rows}
