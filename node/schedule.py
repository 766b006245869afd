"""The node's sync schedule (APScheduler 3.x).

One interval job runs a sync round every `sync_every_s` seconds with jitter
(a tenth of the interval, so thirty centres do not call in at the same
instant). `max_instances=1` and `coalesce=True` mean rounds never overlap and
missed runs collapse into one; the sync client's own lock also keeps a `sync
now` from overlapping a scheduled round. Jobs run on a thread pool: gRPC does
not survive fork(), so process pools are never used.
"""

from __future__ import annotations

import logging
import math

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from sync.errors import TechbridgeError
from sync.protocol.node_side import SyncClient

log = logging.getLogger(__name__)

JOB_ID = "sync-with-hub"


def _round(client: SyncClient) -> None:
    if client.in_backoff():
        log.debug("scheduled sync skipped: backing off after failures")
        return
    try:
        result = client.run_round()
        log.info("scheduled sync: pushed %s, pulled %s", result.pushed, result.pulled)
    except TechbridgeError as exc:
        log.warning("scheduled sync failed: %s", exc)


def start_schedule(client: SyncClient, every_s: float) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(max_workers=1)}, timezone="UTC")
    scheduler.add_job(
        _round,
        IntervalTrigger(seconds=every_s, jitter=max(1, int(every_s / 10))),
        args=[client],
        id=JOB_ID,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=max(1, math.ceil(every_s)),
    )
    scheduler.start()
    return scheduler
