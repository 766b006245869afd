"""The process's log: plain lines for people, or one JSON object per line
(`--log-format json`) with the time, level, logger, site, peer, the call or round id and
the message.

The site is the one the process serves (`set_site`); the peer and the call or round id
belong to what the current thread is doing (`in_call`: the server's boundary around each
gRPC call, a node around each round). Only the log message itself is written, never the
arguments' objects: the project logs ids, counts and reasons, never keys, tokens or
record content.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_site = ""
_peer: ContextVar[str] = ContextVar("techbridge_log_peer", default="")
_call: ContextVar[str] = ContextVar("techbridge_log_call", default="")


def set_site(site_id: str) -> None:
    """The site this process serves, named on every JSON line from now on."""
    global _site
    _site = site_id


def new_call_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


@contextmanager
def in_call(call_id: str, peer: str = "") -> Iterator[None]:
    """Lines logged by this thread inside the block name `call_id` and `peer`."""
    call_token, peer_token = _call.set(call_id), _peer.set(peer)
    try:
        yield
    finally:
        try:
            _call.reset(call_token)
            _peer.reset(peer_token)
        except ValueError:  # a generator resumed in another context: leave that context alone
            pass


def set_peer(peer: str) -> None:
    """Name the peer of the call in progress (known once its certificate is checked)."""
    _peer.set(peer)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "site": _site,
            "message": record.getMessage(),
        }
        peer, call = _peer.get(), _call.get()
        if peer:
            line["peer"] = peer
        if call:
            line["call"] = call
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Set up the root logger: `level` (DEBUG, INFO, WARNING, ERROR) and `fmt` (text or json)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.WARNING))
