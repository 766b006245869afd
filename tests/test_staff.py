"""Console staff accounts at a site: roles by site, one-time codes, argon2 hashes, lockout
after failed sign-ins, disabling and resetting; on every store backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from console.staff import (
    CODE_VALID_S,
    LOCK_AFTER,
    LOCK_S,
    add_staff,
    disable_staff,
    list_staff,
    reset_staff,
    set_password,
    sign_in,
    staff_t,
)
from sync.errors import FailedPrecondition, InvalidInput, NotFound, PermissionDenied
from sync.store import Store
from tests.backends import BACKENDS, database_url
from transfer.records import KINDS

NOW = 1_800_000_000_000
GOOD = "correct horse battery"


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url:
        s = Store.open(url, KINDS)
        yield s
        s.close()


def test_an_account_gets_a_password_with_its_one_time_code_and_signs_in(store: Store) -> None:
    acct, code = add_staff(store, "li.wei", "curator", at_hub=True, now_ms=NOW)
    assert acct.role == "curator" and not acct.has_password
    with pytest.raises(PermissionDenied):
        sign_in(store, "li.wei", GOOD, now_ms=NOW)  # no password yet
    with pytest.raises(PermissionDenied):
        set_password(store, "li.wei", "not-the-code", GOOD, now_ms=NOW)
    with pytest.raises(InvalidInput):
        set_password(store, "li.wei", code, "short", now_ms=NOW)
    set_password(store, "li.wei", code, GOOD, now_ms=NOW)
    with pytest.raises(PermissionDenied):
        set_password(store, "li.wei", code, "another long password", now_ms=NOW)  # spent
    assert sign_in(store, "li.wei", GOOD, now_ms=NOW + 1).last_login_ms == NOW + 1
    with store.engine.connect() as conn:
        row = conn.execute(select(staff_t)).one()
    assert row.password_hash.startswith("$argon2id$") and GOOD not in row.password_hash
    assert code not in row.code_hash and row.code_hash == ""  # spent: nothing kept


def test_roles_follow_the_site_and_names_are_checked(store: Store) -> None:
    with pytest.raises(InvalidInput) as bad:
        add_staff(store, "x", "staff", at_hub=True, now_ms=NOW)
    assert {v.field for v in bad.value.violations} == {"name", "role"}
    add_staff(store, "anna", "staff", at_hub=False, now_ms=NOW)
    with pytest.raises(InvalidInput):
        add_staff(store, "anna", "viewer", at_hub=False, now_ms=NOW)  # taken
    with pytest.raises(InvalidInput):
        add_staff(store, "ben", "curator", at_hub=False, now_ms=NOW)  # curators are HQ's
    assert [a.name for a in list_staff(store)] == ["anna"]


def test_failed_sign_ins_lock_the_account_for_a_while(store: Store) -> None:
    _, code = add_staff(store, "anna", "staff", at_hub=False, now_ms=NOW)
    set_password(store, "anna", code, GOOD, now_ms=NOW)
    for i in range(LOCK_AFTER):
        with pytest.raises(PermissionDenied):
            sign_in(store, "anna", "wrong password!", now_ms=NOW + i)
    with pytest.raises(FailedPrecondition):
        sign_in(store, "anna", GOOD, now_ms=NOW + 10)  # locked, even with the right password
    assert sign_in(store, "anna", GOOD, now_ms=NOW + LOCK_S * 1000 + 10).name == "anna"


def test_a_code_expires_disabling_ends_sign_in_and_a_reset_starts_again(store: Store) -> None:
    _, code = add_staff(store, "anna", "staff", at_hub=False, now_ms=NOW)
    with pytest.raises(PermissionDenied):
        set_password(store, "anna", code, GOOD, now_ms=NOW + CODE_VALID_S * 1000 + 1)
    fresh = reset_staff(store, "anna", now_ms=NOW)
    set_password(store, "anna", fresh, GOOD, now_ms=NOW)
    assert disable_staff(store, "anna").disabled
    with pytest.raises(PermissionDenied):
        sign_in(store, "anna", GOOD, now_ms=NOW)
    again = reset_staff(store, "anna", now_ms=NOW)
    with pytest.raises(PermissionDenied):
        sign_in(store, "anna", GOOD, now_ms=NOW)  # the old password is gone
    set_password(store, "anna", again, "a new long password", now_ms=NOW)
    assert sign_in(store, "anna", "a new long password", now_ms=NOW).role == "staff"
    with pytest.raises(NotFound):
        reset_staff(store, "nobody", now_ms=NOW)
