"""A site's scheduled jobs: each on its own APScheduler thread, one run at a time, and on
a store shared by several processes (hub replicas on PostgreSQL) in one process at a
time (`Store.exclusive`, an advisory lock named after the job): a replica that does not
get the turn skips the run. Every run is counted by outcome (`JOB_RUNS`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import cast

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Connection, Table, insert, select, update

from sync import metrics
from sync.errors import TechbridgeError
from sync.store import Store
from sync.store.models import JobCursorModel

log = logging.getLogger(__name__)


_cursors_t = cast(Table, JobCursorModel.__table__)


def job_cursor(conn: Connection, job: str) -> int:
    """How far along the log the job `job` has read (0 before its first run)."""
    return int(conn.execute(select(_cursors_t.c.after_seq).where(_cursors_t.c.job == job)).scalar() or 0)


def set_job_cursor(conn: Connection, job: str, seq: int) -> None:
    """Move the job `job`'s cursor to `seq`, in `conn`'s transaction."""
    if not conn.execute(update(_cursors_t).where(_cursors_t.c.job == job).values(after_seq=seq)).rowcount:
        conn.execute(insert(_cursors_t).values(job=job, after_seq=seq))


def job_lock_name(job: str) -> str:
    return f"techbridge:job:{job}"


def run_job_once(store: Store, job: str, run: Callable[[], object]) -> bool:
    """Run `run` if this process has the job's turn; False if another process holds it.
    A run that fails with the project's own error is logged and counted, not raised."""
    with store.exclusive(job_lock_name(job)) as mine:
        if not mine:
            metrics.JOB_RUNS.labels(job=job, outcome="skipped").inc()
            return False
        try:
            run()
        except TechbridgeError as exc:
            metrics.JOB_RUNS.labels(job=job, outcome="failed").inc()
            log.warning("%s run failed: %s", job, exc)
        except Exception:
            metrics.JOB_RUNS.labels(job=job, outcome="failed").inc()
            raise
        else:
            metrics.JOB_RUNS.labels(job=job, outcome="ok").inc()
        return True


def start_job(
    store: Store, job: str, every_s: float, run: Callable[[], object], *, now: bool = False
) -> BackgroundScheduler:
    """Run `run` every `every_s` seconds (and at once when `now`) on its own thread."""
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(max_workers=1)}, timezone="UTC")
    scheduler.add_job(
        lambda: run_job_once(store, job, run),
        IntervalTrigger(seconds=every_s),
        id=job,
        max_instances=1,
        coalesce=True,
        misfire_grace_time=60,
        **({"next_run_time": datetime.now(UTC)} if now else {}),
    )
    scheduler.start()
    return scheduler
