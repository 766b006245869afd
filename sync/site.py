"""A running site: its config, keys, clock, store and registry, and the domain
operations both the hub and the nodes perform.

Servicers and the sync client call these functions; they never touch the
store or sign anything themselves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import uuid6

from sync.clock import HybridClock, system_now_ms
from sync.config import DataDir, SiteConfig
from sync.envelope import SignatureValue, Version, make_listing_version, read_version, verify_version, version_id_of
from sync.errors import ConfigError, UnknownKey, VerificationFailed
from sync.keys import SigningKey
from sync.records import ListingContent, ListingStatus, validate_listing
from sync.registry import Registry, check_not_rollback, check_registry_signature
from sync.store import Rejected, Store
from sync.store.store import HeadVersion

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received:
    """A decoded entry from a peer: either a version or the reason it was refused."""

    seq: int
    version: Version | None
    rejection: Rejected | None
    unknown_key: bool = False


@dataclass(frozen=True)
class ListingDetail:
    head: HeadVersion
    version: Version
    verified: bool
    verify_error: str


class Site:
    def __init__(
        self,
        data: DataDir,
        config: SiteConfig,
        store: Store,
        key: SigningKey,
        *,
        now_ms: Callable[[], int] = system_now_ms,
    ) -> None:
        self.data = data
        self.config = config
        self.store = store
        self.key = key
        self.now_ms = now_ms
        self.clock = HybridClock(now_ms)
        self._registry_lock = threading.Lock()
        self._registry = store.registry()

    @property
    def site_id(self) -> str:
        return self.config.site_id

    @classmethod
    def open(cls, data: DataDir, *, now_ms: Callable[[], int] = system_now_ms) -> Site:
        config = data.load()
        key = SigningKey.load(data.signing_key)
        store = Store.open(config.db_url)
        return cls(data, config, store, key, now_ms=now_ms)

    def close(self) -> None:
        self.store.close()

    # ---- registry -----------------------------------------------------------

    def registry(self) -> Registry:
        reg = self._registry
        if reg is None:
            raise ConfigError("this site holds no registry; it was not initialised or enrolled")
        return reg

    def accept_registry(self, registry: Registry) -> bool:
        """Verify a registry against the root key and keep it if newer."""
        root = bytes.fromhex(self.config.root_public_key)
        check_registry_signature(registry.body, registry.root_key_id, registry.signature, root)
        with self._registry_lock:
            check_not_rollback(registry, self._registry)
            stored = self.store.save_registry(registry, self.now_ms())
            if stored:
                self._registry = registry
                log.info("registry version %s in force", registry.version)
            return stored

    def set_registry(self, registry: Registry) -> None:
        """Adopt a registry this process has just stored (hub side)."""
        with self._registry_lock:
            if self._registry is None or registry.version > self._registry.version:
                self._registry = registry

    # ---- local writes ---------------------------------------------------------

    def add_listing(self, content: ListingContent) -> Version:
        validate_listing(content)
        version = make_listing_version(
            self.key,
            site=self.site_id,
            record_id=str(uuid6.uuid7()),
            hlc=self.clock.tick(),
            listing=content,
        )
        seq = self.store.append_local(version, self.now_ms())
        log.info("stored listing %s as log entry %s", version.record_id, seq)
        return version

    # ---- receiving ------------------------------------------------------------

    def check_entries(self, entries: Sequence[tuple[int, bytes, tuple[SignatureValue, ...]]]) -> list[Received]:
        """Decode and verify received envelopes; refusals carry their reason."""
        registry = self.registry()
        out: list[Received] = []
        for seq, body, sigs in entries:
            try:
                version = read_version(body, sigs)
                verify_version(version, registry, self.now_ms())
            except VerificationFailed as exc:
                rejected = Rejected(version_id_of(body), str(exc), body)
                out.append(Received(seq, None, rejected, isinstance(exc, UnknownKey)))
                continue
            self.clock.observe(version.hlc)
            out.append(Received(seq, version, None))
        return out

    # ---- reading ---------------------------------------------------------------

    def listing_detail(self, record_id: str) -> ListingDetail:
        head = self.store.head_version(record_id)
        version = read_version(head.body, head.signatures)
        try:
            verify_version(version, self.registry())
            ok, why = True, ""
        except VerificationFailed as exc:
            ok, why = False, str(exc)
        return ListingDetail(head, version, ok, why)


__all__ = ["ListingContent", "ListingDetail", "ListingStatus", "Received", "Site"]
