"""Staff accounts of a site's console: who may sign in there, in which role, with what password.

Accounts belong to the site that keeps them (table `staff`; never signed, never sent). Roles:
at HQ `curator` (validation, publication, curation, duplicates, targets) and `viewer`; at a
centre `staff` (intake, firms, interests) and `viewer` (reads only).

A new account, or one reset, has no password but a **one-time code** (shown once to whoever
created it, its SHA-256 kept, valid `CODE_VALID_S`) with which its holder sets a password.
Passwords are kept as argon2id hashes (argon2-cffi, its default memory-hard parameters) and
re-hashed on sign-in when those parameters change. After `LOCK_AFTER` failed sign-ins in a
row an account is locked for `LOCK_S`; a disabled account cannot sign in, and disabling one
ends its sessions (the console checks the account on every request).
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Table, delete, insert, select, update

from sync.errors import FailedPrecondition, FieldViolation, InvalidInput, NotFound, PermissionDenied
from sync.store import Store
from sync.store.models import StaffModel, StaffSessionModel

staff_t = cast(Table, StaffModel.__table__)
sessions_t = cast(Table, StaffSessionModel.__table__)
HQ_ROLES = ("curator", "viewer")
CENTRE_ROLES = ("staff", "viewer")
CODE_VALID_S = 24 * 3600
LOCK_AFTER = 5
LOCK_S = 15 * 60
PASSWORD_MIN = 10
PASSWORD_MAX = 200
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{1,63}$")
_HASHER = PasswordHasher()
# The console's languages: English and Simplified Chinese.
LANGUAGES = ("en", "zh")


@dataclass(frozen=True)
class StaffAccount:
    staff_id: str
    name: str
    role: str
    disabled: bool
    has_password: bool
    created_at_ms: int
    last_login_ms: int
    language: str = "en"


def roles(at_hub: bool) -> tuple[str, ...]:
    return HQ_ROLES if at_hub else CENTRE_ROLES


def account_from_row(r: Any) -> StaffAccount:
    return StaffAccount(
        r.staff_id,
        r.name,
        r.role,
        bool(r.disabled),
        bool(r.password_hash),
        int(r.created_at_ms),
        int(r.last_login_ms),
        r.language or "en",
    )


def _code_hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def _new_code() -> str:
    return secrets.token_urlsafe(18)


def _row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(staff_t).where(staff_t.c.name == name)).first()
    if row is None:
        raise NotFound(f"no staff member {name!r} at this site")
    return row


def add_staff(
    store: Store, name: str, role: str, *, at_hub: bool, now_ms: int, language: str = "en"
) -> tuple[StaffAccount, str]:
    """A new account and its one-time code, or InvalidInput naming each problem."""
    problems = []
    if language not in LANGUAGES:
        problems.append(FieldViolation("language", f"{language!r}: the console speaks {' or '.join(LANGUAGES)}"))
    if not _NAME_RE.match(name):
        problems.append(
            FieldViolation("name", "2 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
        )
    if role not in roles(at_hub):
        where = "HQ" if at_hub else "a centre"
        problems.append(FieldViolation("role", f"{role!r}: staff at {where} are {' or '.join(roles(at_hub))}"))
    if problems:
        raise InvalidInput(problems)
    code = _new_code()
    staff_id = str(uuid.uuid4())
    with store.writing() as conn:
        if conn.execute(select(staff_t.c.staff_id).where(staff_t.c.name == name)).first() is not None:
            raise InvalidInput([FieldViolation("name", f"{name!r} already has an account here")])
        conn.execute(
            insert(staff_t).values(
                staff_id=staff_id,
                name=name,
                role=role,
                password_hash="",
                disabled=False,
                created_at_ms=now_ms,
                last_login_ms=0,
                code_hash=_code_hash(code),
                code_expires_ms=now_ms + CODE_VALID_S * 1000,
                failed_logins=0,
                locked_until_ms=0,
                language=language,
            )
        )
    return StaffAccount(staff_id, name, role, False, False, now_ms, 0, language), code


def list_staff(store: Store) -> list[StaffAccount]:
    with store.engine.connect() as conn:
        return [account_from_row(r) for r in conn.execute(select(staff_t).order_by(staff_t.c.name))]


def account(store: Store, staff_id: str) -> StaffAccount | None:
    """The account with this id, as it stands now (None if there is none)."""
    with store.engine.connect() as conn:
        row = conn.execute(select(staff_t).where(staff_t.c.staff_id == staff_id)).first()
    return None if row is None else account_from_row(row)


def set_language(store: Store, staff_id: str, language: str) -> None:
    """The console language of an account (one of LANGUAGES)."""
    if language not in LANGUAGES:
        raise InvalidInput([FieldViolation("language", f"{language!r}: the console speaks {' or '.join(LANGUAGES)}")])
    with store.writing() as conn:
        conn.execute(update(staff_t).where(staff_t.c.staff_id == staff_id).values(language=language))


def disable_staff(store: Store, name: str) -> StaffAccount:
    with store.writing() as conn:
        row = _row(conn, name)
        conn.execute(update(staff_t).where(staff_t.c.staff_id == row.staff_id).values(disabled=True, code_hash=""))
        conn.execute(delete(sessions_t).where(sessions_t.c.staff_id == row.staff_id))
    return dataclasses.replace(account_from_row(row), disabled=True)


def reset_staff(store: Store, name: str, *, now_ms: int) -> str:
    """A new one-time code for `name` (its password stops working; the account is enabled
    and unlocked)."""
    code = _new_code()
    with store.writing() as conn:
        row = _row(conn, name)
        conn.execute(
            update(staff_t)
            .where(staff_t.c.staff_id == row.staff_id)
            .values(
                password_hash="",
                disabled=False,
                code_hash=_code_hash(code),
                code_expires_ms=now_ms + CODE_VALID_S * 1000,
                failed_logins=0,
                locked_until_ms=0,
            )
        )
        conn.execute(delete(sessions_t).where(sessions_t.c.staff_id == row.staff_id))
    return code


def set_password(store: Store, name: str, code: str, password: str, *, now_ms: int) -> StaffAccount:
    """Spend a one-time code on a password; PermissionDenied for a wrong or spent code."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise InvalidInput([FieldViolation("password", f"{PASSWORD_MIN} to {PASSWORD_MAX} characters")])
    with store.writing() as conn:
        row = conn.execute(select(staff_t).where(staff_t.c.name == name)).first()
        good = (
            row is not None
            and not row.disabled
            and row.code_hash
            and secrets.compare_digest(row.code_hash, _code_hash(code))
            and now_ms < row.code_expires_ms
        )
        if row is None or not good:
            raise PermissionDenied("that name and one-time code do not match a code still valid here")
        conn.execute(
            update(staff_t)
            .where(staff_t.c.staff_id == row.staff_id)
            .values(password_hash=_HASHER.hash(password), code_hash="", failed_logins=0, locked_until_ms=0)
        )
    return dataclasses.replace(account_from_row(row), disabled=False, has_password=True)


def sign_in(store: Store, name: str, password: str, *, now_ms: int) -> StaffAccount:
    """The account if `password` is its own; PermissionDenied otherwise (the same words
    whether the name exists or not), FailedPrecondition while it is locked. A failure is
    counted (and may lock the account) in its own committed transaction."""
    refused = PermissionDenied("that name and password do not match an account here")
    with store.writing() as conn:
        row = conn.execute(select(staff_t).where(staff_t.c.name == name)).first()
        if row is None or row.disabled or not row.password_hash:
            _HASHER.hash(password)  # the same work either way: no timing tells which names exist
            raise refused
        if row.locked_until_ms > now_ms:
            raise FailedPrecondition("too many failed sign-ins: the account is locked for a while; try later")
        try:
            _HASHER.verify(row.password_hash, password)
            ok = True
        except (VerificationError, InvalidHashError):
            ok = False
        values: dict[str, object]
        if not ok:
            failed = row.failed_logins + 1
            values = {"failed_logins": failed}
            if failed >= LOCK_AFTER:
                values = {"failed_logins": 0, "locked_until_ms": now_ms + LOCK_S * 1000}
        else:
            values = {"failed_logins": 0, "last_login_ms": now_ms}
            if _HASHER.check_needs_rehash(row.password_hash):
                values["password_hash"] = _HASHER.hash(password)
        conn.execute(update(staff_t).where(staff_t.c.staff_id == row.staff_id).values(**values))
    if not ok:
        raise refused
    return dataclasses.replace(account_from_row(row), disabled=False, has_password=True, last_login_ms=now_ms)
