"""The hub on PostgreSQL, end to end (skipped, saying why, without a server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.site import init_hub, start_hub
from tests.backends import PG_SKIP_REASON, PG_URL, database_url
from tests.harness import Hub, make_node

pytestmark = pytest.mark.skipif(not PG_URL, reason=PG_SKIP_REASON)


def test_a_hub_on_postgresql_aggregates_and_relays(tmp_path: Path) -> None:
    with database_url("postgresql", tmp_path) as url:
        cfg = init_hub(tmp_path / "hq", listen="127.0.0.1:0", db_url=url)
        running = start_hub(tmp_path / "hq")
        hub = Hub(path=tmp_path / "hq", admin_token=cfg.admin_token, address=running.address, running=running)
        try:
            ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv")
            dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
            ids = {ta.add_record(f"Tel Aviv {i}") for i in range(20)}
            ids.add(hub.add_record("HQ's own"))
            assert ta.sync().pushed == 20
            assert dj.sync().pulled == 21
            assert {v.id for v in hub.listings()} == ids == {v.id for v in dj.listings()}
            assert all(dj.show(i).provenance.verified for i in ids)
            ta.stop()
            dj.stop()
        finally:
            hub.stop()
