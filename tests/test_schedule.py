"""The node syncs on its own schedule (APScheduler), without `sync now`."""

from __future__ import annotations

from pathlib import Path

from node.schedule import JOB_ID
from tests.harness import Hub, make_node, wait_until


def test_scheduled_rounds_carry_listings_both_ways(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv", sync_every_s=1)
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR", sync_every_s=1)
    try:
        assert ta.node is not None and ta.node.scheduler is not None
        job = ta.node.scheduler.get_job(JOB_ID)
        assert job is not None and job.max_instances == 1 and job.coalesce
        rid = ta.add_record("Scheduled listing")
        assert wait_until(lambda: any(v.id == rid for v in hub.listings()), timeout=20)
        assert wait_until(lambda: any(v.id == rid for v in dj.listings()), timeout=20)
        assert dj.show(rid).provenance.verified
    finally:
        ta.stop()
        dj.stop()
