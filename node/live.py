"""Syncing at once when the link is up.

Two threads beside the schedule:

* the **kicker** runs a round whenever it is kicked — by a local write (so a
  listing added here leaves at once) or by the watcher — coalescing kicks that
  arrive while a round runs into one more round;
* the **watcher** keeps a Watch stream open to the hub. Each event carries the
  hub's log head; when it is past this node's pull cursor, it kicks. When the
  stream opens, the hub is reachable again: the backoff is cleared and a round
  is kicked (catch-up after an outage). When the stream breaks, the watcher
  waits out the backoff (sync.backoff, with jitter) and reconnects.

The schedule (node.schedule) stays the safety net. Every wait is interruptible
so `stop` returns promptly.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import grpc

from sync import auth, backoff
from sync.errors import TechbridgeError
from sync.protocol.node_side import SyncClient
from sync.server import channel
from sync.site import Site
from sync.tls import TlsFiles
from techbridge.v1 import sync_pb2, sync_pb2_grpc

log = logging.getLogger(__name__)

WATCH_DEADLINE_S = 3600.0


class Kicker:
    def __init__(self, client: SyncClient) -> None:
        self._client = client
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._force = False
        self._thread = threading.Thread(target=self._run, name="sync-kicker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def kick(self, *, force: bool = False) -> None:
        """Ask for a round; `force` runs it even while backing off (the hub just answered)."""
        if force:
            self._force = True
        self._kick.set()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._kick.wait()
            if self._stop.is_set():
                return
            self._kick.clear()
            force, self._force = self._force, False
            if self._client.in_backoff() and not force:
                continue  # the schedule, or the hub answering a watch, will try again
            try:
                self._client.run_round()
            except TechbridgeError as exc:
                log.info("round after a kick failed: %s", exc)
            except Exception:
                # Never let one unexpected error end the thread: every later kick would be lost.
                log.exception("unexpected error in a kicked round")


class Watcher:
    def __init__(self, site: Site, client: SyncClient, hub_id: str, tls: TlsFiles | None, kicker: Kicker) -> None:
        self._site = site
        self._client = client
        self._address = client.address  # the replica of the hub the stream goes to
        self._hub = hub_id
        self._tls = tls
        self._kicker = kicker
        self._stop = threading.Event()
        self._call: Any = None  # the open stream, to cancel on stop
        self.connected = False
        self._thread = threading.Thread(target=self._run, name="sync-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        call = self._call
        if call is not None:
            call.cancel()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._watch_once()
                failures = 0
            except grpc.RpcError as err:
                if self._stop.is_set():
                    return
                failures += 1
                log.info("watch stream to %s ended: %s", self._address, err.code().name)
                if err.code() == grpc.StatusCode.UNAVAILABLE:
                    self._client.failed_over_from(self._address)  # the next stream goes to another replica
                    self._kicker.kick(force=True)
            except Exception:
                failures += 1
                log.exception("unexpected error in the watch stream")
            finally:
                self.connected = False
            self._stop.wait(backoff.delay_ms(failures) / 1000 if failures else 0.5)

    def _watch_once(self) -> None:
        after = self._client.hub_state().pull_cursor
        self._address = self._client.address
        md = auth.site_metadata(self._site.key, self._site.site_id, "Watch", self._site.now_ms())
        with channel(self._address, self._tls, expect=self._hub) as ch:
            stream = sync_pb2_grpc.SyncServiceStub(ch).Watch(
                sync_pb2.WatchRequest(after_seq=after), metadata=md, timeout=WATCH_DEADLINE_S
            )
            self._call = stream
            if self._stop.is_set():
                stream.cancel()  # type: ignore[no-untyped-call]
                return
            first = True
            for event in stream:
                if self._stop.is_set():
                    stream.cancel()  # type: ignore[no-untyped-call]
                    return
                if first:
                    # The hub answers: the link is up. Forget the backoff and catch up.
                    self.connected = True
                    self._client.clear_backoff()
                    first = False
                    self._kicker.kick(force=True)
                    continue
                if event.head_seq > self._client.hub_state().pull_cursor:
                    self._kicker.kick()
