"""The hub's invites: one-time join tokens (table `invites`, filled only at the hub).

Only the hash of a token's secret is kept, with the centre it is for and when it
expires. `Invites` works over the hub's store: its engine, its write lock (one writer
at a time, `Store.writing`) and its registry write (`Store.save_registry_in`), so that
redeeming a token spends it and stores the registry that enrols its centre in one
transaction. Nodes' stores carry none of this;
the table's model stays with the others in `sync.store.models`, under one migration
history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, insert, select, update

from sync.codec import decode_registry
from sync.errors import FailedPrecondition, NotFound
from sync.registry import Registry
from sync.store import Store
from sync.store.models import InviteModel
from sync.store.tables import registry_t

invites_t = cast(Table, InviteModel.__table__)


@dataclass(frozen=True)
class Invite:
    centre_id: str
    name: str
    country: str
    expires_at_ms: int


class Invites:
    """The hub's join tokens, written through `store` (the hub's store)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def add_invite(self, token_hash: str, invite: Invite, now_ms: int) -> None:
        with self._store.writing() as conn:
            conn.execute(
                insert(invites_t).values(
                    token_hash=token_hash,
                    centre_id=invite.centre_id,
                    name=invite.name,
                    country=invite.country,
                    created_at_ms=now_ms,
                    expires_at_ms=invite.expires_at_ms,
                    used_at_ms=None,
                )
            )

    def redeem_invite(
        self, token_hash: str, now_ms: int, build_registry: Callable[[Invite, Registry | None], Registry]
    ) -> Registry:
        """Spend a join token and store the registry that enrols its centre, atomically."""
        with self._store.writing() as conn:
            row = conn.execute(select(invites_t).where(invites_t.c.token_hash == token_hash)).first()
            if row is None:
                raise NotFound("join token is not known to this hub")
            if row.used_at_ms is not None:
                raise FailedPrecondition("join token has already been used")
            if row.expires_at_ms <= now_ms:
                raise FailedPrecondition("join token has expired")
            conn.execute(update(invites_t).where(invites_t.c.token_hash == token_hash).values(used_at_ms=now_ms))
            reg_row = conn.execute(
                select(registry_t.c.body, registry_t.c.signature).order_by(registry_t.c.version.desc()).limit(1)
            ).first()
            held = decode_registry(reg_row.body, reg_row.signature) if reg_row else None
            new = build_registry(Invite(row.centre_id, row.name, row.country, row.expires_at_ms), held)
            self._store.save_registry_in(conn, new, now_ms)
            return new
