"""Importing a centre's spreadsheet of offers through the console.

The file is read and every row checked first, by the rules of `listing import` (transfer.bulk)
and then by every rule of a create at this site (`Site.checked_creates`): any problem is listed
by row and field and nothing is stored. A good file is stored in the background, `BATCH` offers
to a transaction, while its page shows a progress bar that the page's script refreshes; each
stored offer is noted as the importing staff member's.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field

from starlette.datastructures import UploadFile
from starlette.responses import Response

from console.sessions import record_actions
from console.web import Ask, ConsolePage
from sync.errors import NotFound, TechbridgeError
from sync.site import CheckedCreate, Site
from transfer.bulk import read_offers_csv, site_problem

log = logging.getLogger(__name__)
BATCH = 500
FILE_MAX = 10 * 1024 * 1024
JOBS_KEPT = 50
_JOBS_LOCK = threading.Lock()


@dataclass
class ImportJob:
    job_id: str
    file_name: str
    staff_name: str
    total: int
    stored: int = 0
    error: str = ""
    finished: bool = False
    record_ids: list[str] = field(default_factory=list)

    @property
    def percent(self) -> int:
        return int(100 * self.stored / self.total) if self.total else 100


def _stored_so_far(job: ImportJob) -> str:
    return f"rows 2-{job.stored + 1} were stored, none after" if job.stored else "no row was stored"


def _store(site: Site, job: ImportJob, checked: list[CheckedCreate]) -> None:
    try:
        for start in range(0, len(checked), BATCH):
            versions = site.store_creates(checked[start : start + BATCH])
            job.stored += len(versions)
            job.record_ids.extend(v.record_id for v in versions)
            record_actions(
                site.store, [(v.version_id, v.record_id) for v in versions], job.staff_name, now_ms=site.now_ms()
            )
    except TechbridgeError as exc:
        job.error = f"{exc}; {_stored_so_far(job)}"
    except Exception:
        log.exception("console import %s failed", job.job_id)
        job.error = f"the site could not store the rest; {_stored_so_far(job)}"
    finally:
        job.finished = True


def import_page(ask: Ask) -> Response:
    ask.need_writer()
    with _JOBS_LOCK:
        jobs = [j for j in ask.console.jobs.values() if isinstance(j, ImportJob)]
    if ask.request.method == "GET":
        return ask.render("import.html", problems=[], jobs=jobs[-10:])
    upload = ask.form.get("file") if ask.form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        return ask.render("import.html", 400, problems=[(0, "file", ask.t("Choose a CSV file to import."))], jobs=jobs)
    raw = upload.file.read(FILE_MAX + 1)
    if len(raw) > FILE_MAX:
        return ask.render("import.html", 400, problems=[(0, "file", ask.t("The file is over 10 MB."))], jobs=jobs)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ask.render("import.html", 400, problems=[(0, "file", ask.t("Not a UTF-8 CSV file."))], jobs=jobs)
    rows, problems = read_offers_csv(text)
    checked: list[CheckedCreate] = []
    if not problems:
        checked, refused = ask.site.checked_creates([(r.content, r.audience, r.private_note) for r in rows])
        file_rows = [r.row for r in rows]
        problems = [site_problem(v.field, v.description, file_rows) for v in refused]
    if problems:
        shown = [(p.row, p.field, p.description) for p in problems]
        return ask.render("import.html", 400, problems=shown, jobs=jobs, file_name=upload.filename)
    job = ImportJob(uuid.uuid4().hex[:12], upload.filename, ask.account.name, len(rows))
    with _JOBS_LOCK:  # the oldest finished imports make room
        held = ask.console.jobs
        for old in [k for k, j in held.items() if isinstance(j, ImportJob) and j.finished][
            : max(0, len(held) - JOBS_KEPT + 1)
        ]:
            del held[old]
        held[job.job_id] = job
    threading.Thread(target=_store, args=(ask.site, job, checked), name=f"import-{job.job_id}", daemon=True).start()
    log.info("console: %s imports %s offers", job.staff_name, job.total)
    return ask.redirect(f"/intake/import/{job.job_id}")


def import_job_page(ask: Ask) -> Response:
    ask.need_writer()
    with _JOBS_LOCK:
        job = ask.console.jobs.get(ask.request.path_params["job_id"])
    if not isinstance(job, ImportJob):
        raise NotFound("no such import here (imports are kept while the site runs)")
    template = "import_live.html" if ask.arg("part") == "live" else "import_job.html"
    return ask.render(template, job=job, first=job.record_ids[:20])


IMPORT_PAGES = (
    ConsolePage("/intake/import", import_page, ("GET", "POST"), label="Import offers", uploads=True),
    ConsolePage("/intake/import/{job_id}", import_job_page),
)
