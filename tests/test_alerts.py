"""Alerts: a search kept for a client at one site; records that arrive after it and match
are recorded once each, whether they came by sync or were written here; a webhook gets
each hit, and one that fails is tried again later, never holding up a sync round."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import grpc
import pytest

import transfer.alerts as alerts_module
from sync.fulltext import SearchQuery
from sync.server import field_violations
from sync.store import SearchResult
from techbridge.v1 import admin_pb2
from tests.harness import Hub, Node, cli, make_node
from transfer.alerts import AlertJob

T = "tt-2026.1"


class Webhook:
    """A local HTTP server that records what is posted, answering `status`."""

    def __init__(self) -> None:
        self.posts: list[dict[str, object]] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.posts.append(json.loads(body))
                self.send_response(outer.status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    w = Webhook()
    yield w
    w.close()


def site_of(node: Node):  # type: ignore[no-untyped-def]
    assert node.node is not None
    return node.node.running.site


@pytest.mark.parametrize("rows_at_once", [alerts_module.ROWS_AT_ONCE, 1])
def test_an_alert_keeps_what_arrives_and_matches_once_and_posts_it(
    hub: Hub, tmp_path: Path, webhook: Webhook, rows_at_once: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The records that arrived are searched a page at a time; one at a time, the same hits.
    monkeypatch.setattr(alerts_module, "ROWS_AT_ONCE", rows_at_once)
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    bru = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    try:
        hub.add_record("Seawater desalination membrane, old", keywords=["membranes"], taxonomy=T)
        bru.sync()  # held at Brussels before the alert: not a hit
        r = cli(
            "alert", "add", "--data", str(bru.path), "--name", "Shenzhen Water: membranes", "desalination", "-graphene"
        )
        assert r.returncode == 0, r.stderr
        r = cli("alert", "list", "--data", str(bru.path), "--json")
        [alert] = json.loads(r.stdout)
        assert alert["name"] == "Shenzhen Water: membranes" and alert["query"] == "desalination -graphene"
        wanted = dj.add_record("Low-energy desalination membrane", taxonomy=T)
        dj.add_record("Graphene desalination membrane", taxonomy=T)  # excluded by the query
        dj.add_record("Edge AI chip", taxonomy=T)
        local = bru.add_record("Solar desalination unit", taxonomy=T)  # written at the alert's site
        dj.sync()
        bru.sync()
        job = AlertJob(site_of(bru), webhook.url)
        asked: list[int] = []
        search = job.site.search

        def counted_search(query: SearchQuery, *, with_facets: bool = False) -> SearchResult:
            asked.append(len(query.record_ids or ()))
            return search(query, with_facets=with_facets)

        monkeypatch.setattr(job.site, "search", counted_search)
        assert job.run() == 2
        assert max(asked) <= rows_at_once and sum(asked) >= 4  # the four records that arrived
        assert job.run() == 0  # recorded once
        r = cli("alert", "hits", "--data", str(bru.path), "--json")
        hits = json.loads(r.stdout)
        assert {h["id"] for h in hits} == {wanted, local}
        assert all(h["alert"] == "Shenzhen Water: membranes" and h["delivered_at"] for h in hits)
        assert {p["record_id"] for p in webhook.posts} == {wanted, local}
        assert {p["title"] for p in webhook.posts} == {"Low-energy desalination membrane", "Solar desalination unit"}
        # A webhook that fails: the hit waits and is tried again later, not at every run.
        webhook.status = 500
        late = dj.add_record("Brackish water desalination skid", taxonomy=T)
        dj.sync()
        bru.sync()
        assert job.run() == 1
        job.run()
        failed = [
            h for h in json.loads(cli("alert", "hits", "--data", str(bru.path), "--json").stdout) if h["id"] == late
        ]
        assert failed[0]["attempts"] == 1 and failed[0]["delivered_at"] is None  # the retry waits (backoff)
        r = cli("alert", "remove", "--data", str(bru.path), alert["id"])
        assert r.returncode == 0 and json.loads(cli("alert", "list", "--data", str(bru.path), "--json").stdout) == []
    finally:
        dj.stop()
        bru.stop()


def test_a_malformed_alert_is_refused_as_a_search_is(hub: Hub) -> None:
    bad = admin_pb2.AddAlertRequest(name="x", search=admin_pb2.SearchRecordsRequest(keywords=["sunshine"]))
    with pytest.raises(grpc.RpcError) as e:
        hub.admin.AddAlert(bad, metadata=hub.md, timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in field_violations(e.value)] == ["keywords[0]"]
    r = cli("alert", "add", "--data", str(hub.path), "--name", "", "solar")
    assert r.returncode == 1 and "name" in r.stderr
    r = cli("alert", "remove", "--data", str(hub.path), "no-such-alert")
    assert r.returncode == 1 and "no-such-alert" in r.stderr
