"""The floor of intake: the least a node of this design must do to take in one offer
through its API, served on the node's own server stack, with none of the intake's code.

`bench/processes.py` starts this in a process of its own, on the folder of a node it made
(the node itself stopped), and drives it with the same eight clients, requests and
mutual TLS as the node's intake, beside the same server's health check: the ratio of the
two is what no implementation of intake could beat on this machine and stack.

A create here: the request decoded by gRPC, and checked by the same interceptor as the
node's (`sync.server.build_server`: the admin token, the decoding, the error mapping);
the listing's values read into a dict; a version body made of them (a protobuf
`VersionBody`, serialised), signed (libsodium) and hashed; the state JSON (orjson); the
title, summary and description analysed for the index (`sync.fulltext.analysed`); then
three rows (the signed body, the state, a contentless FTS5 row) queued to one writer
thread that commits whatever is queued in one transaction (a group commit that waits for
nothing); answered with the record's id once committed. No rules, merge, facets, log,
audience, private note or the answer's detail. The process settles its heap once serving,
as a served site does (`sync.runtime.settle_heap`).

    python bench/intake_floor.py --data DIR     # serves until killed; prints its port
"""

from __future__ import annotations

import argparse
import hashlib
import queue
import sqlite3
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from sync.config import DataDir  # noqa: E402
from sync.fulltext import analysed  # noqa: E402
from sync.keys import SigningKey  # noqa: E402
from sync.runtime import settle_heap  # noqa: E402
from sync.server import build_server  # noqa: E402
from sync.signing import VERSION_DOMAIN, sign  # noqa: E402
from techbridge.v1 import admin_pb2, envelope_pb2, records_pb2  # noqa: E402


@dataclass
class _Queued:
    """A create's rows on their way to the writer, and how their transaction ended."""

    rows: tuple[Any, ...]
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


class FloorWriter:
    """One thread storing what is queued, all of it in one transaction a turn; a
    transaction that fails fails every create it held."""

    def __init__(self, path: Path) -> None:
        self._queue: queue.SimpleQueue[_Queued] = queue.SimpleQueue()
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute(
            "CREATE TABLE versions (version_id TEXT PRIMARY KEY, record_id TEXT NOT NULL, body BLOB NOT NULL, "
            "key_id TEXT NOT NULL, signature BLOB NOT NULL)"
        )
        conn.execute("CREATE TABLE records (record_id TEXT PRIMARY KEY, head TEXT NOT NULL, state TEXT NOT NULL)")
        conn.execute("CREATE VIRTUAL TABLE fts USING fts5(title, summary, body, tokenize = 'ascii', content = '')")
        self._conn = conn
        threading.Thread(target=self._run, name="floor-writer", daemon=True).start()

    def store(self, rows: tuple[Any, ...]) -> None:
        queued = _Queued(rows)
        self._queue.put(queued)
        queued.done.wait()
        if queued.error is not None:
            raise queued.error

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                self._conn.executemany("INSERT INTO versions VALUES (?, ?, ?, ?, ?)", [q.rows[0] for q in batch])
                self._conn.executemany("INSERT INTO records VALUES (?, ?, ?)", [q.rows[1] for q in batch])
                self._conn.executemany(
                    "INSERT INTO fts (title, summary, body) VALUES (?, ?, ?)", [q.rows[2] for q in batch]
                )
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                for q in batch:
                    q.error = exc
            for q in batch:
                q.done.set()


class FloorAdmin:
    """AddRecord alone, at the floor (served as the admin service's one method)."""

    def __init__(self, data: DataDir, writer: FloorWriter) -> None:
        self._site = data.load().site_id
        self._key = SigningKey.load(data.signing_key)
        self._writer = writer

    def AddRecord(self, request: admin_pb2.AddRecordRequest, context: grpc.ServicerContext) -> Any:
        listing = request.values.listing
        values = {
            f.name: (v if isinstance(v, (str, int)) else list(v))
            for f, v in listing.ListFields()
            if f.message_type is None
        }
        record_id = str(uuid.uuid4())
        body = envelope_pb2.VersionBody(
            record_id=record_id,
            kind=envelope_pb2.RECORD_KIND_LISTING,
            origin=self._site,
            author=self._site,
            hlc=envelope_pb2.Hlc(wall_ms=int(time.time() * 1000)),
            change=records_pb2.Change(action=records_pb2.LIFECYCLE_ACTION_CREATE, status="submitted", listing=listing),
        ).SerializeToString(deterministic=True)
        signature = sign(self._key, VERSION_DOMAIN, body)
        version_id = hashlib.sha256(body).hexdigest()
        texts = (analysed(listing.title), analysed(listing.summary), analysed(listing.description))
        self._writer.store(
            (
                (version_id, record_id, body, self._key.key_id, signature),
                (record_id, version_id, orjson.dumps(values)),
                texts,
            )
        )
        return admin_pb2.AddRecordResponse(record=admin_pb2.RecordView(id=record_id))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="a node's folder (its keys, TLS files, admin token)")
    a = ap.parse_args()
    data = DataDir(a.data)
    cfg = data.load()
    writer = FloorWriter(a.data / "floor.db")
    servicer = FloorAdmin(data, writer)

    def register(server: grpc.Server) -> list[str]:
        add_record = grpc.unary_unary_rpc_method_handler(
            servicer.AddRecord,
            request_deserializer=admin_pb2.AddRecordRequest.FromString,
            response_serializer=admin_pb2.AddRecordResponse.SerializeToString,
        )
        # As the generated code registers a service: a generic handler, and the method registered.
        handlers = {"AddRecord": add_record}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("techbridge.v1.AdminService", handlers),))
        server.add_registered_method_handlers("techbridge.v1.AdminService", handlers)  # type: ignore[attr-defined]
        return ["techbridge.v1.AdminService"]

    bound = build_server("127.0.0.1:0", cfg.admin_token, register, site_id=cfg.site_id, tls=data.tls.load())
    settle_heap()  # as a served site does
    print(bound.port, flush=True)
    bound.server.wait_for_termination()


if __name__ == "__main__":
    main()
