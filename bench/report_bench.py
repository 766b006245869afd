"""The network's figures at HQ over a large network: a year's report, beside counting the
year's published offers alone, on SQLite and PostgreSQL.

    .venv/bin/python bench/report_bench.py [--offers 100000] [--backend sqlite|postgresql|both]

A hub store is filled with signed versions written straight into it (not through sync), for
five centres over one year: `--offers` offers (create, validate, publish; a tenth withdrawn),
a tenth as many firm requests and a fifth as many expressions of interest (each accepted, a
third introduced, a tenth agreed). The issue's size is `--offers 1000000` (100,000 requests,
200,000 interests): about 3.5 million versions, an hour or more to load here. Then the year's
report (`transfer.report.report`, median of 3) and a count of the year's PUBLISH versions
(the figure a report cannot be faster than) are timed in the same run, after the figures job
has caught up with the loaded versions (its time, and records counted a second, reported
beside). Writes
bench/results/report.json and `report_vs_count_offers` into latest.json. Figures only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import benchlib  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from hub.registry import issue_registry  # noqa: E402
from hub.site import init_hub  # noqa: E402
from sync.clock import Stamp  # noqa: E402
from sync.config import DataDir  # noqa: E402
from sync.envelope import Version, make_version  # noqa: E402
from sync.ids import new_record_id  # noqa: E402
from sync.keys import SigningKey  # noqa: E402
from sync.kinds import Action, Change, FieldValue, Kind, create_change, make_content, pins_of  # noqa: E402
from sync.registry import Centre, CentreStatus, SiteKey, SiteRole  # noqa: E402
from sync.site import Site  # noqa: E402
from sync.store.tables import versions_t  # noqa: E402
from transfer.kept_figures import FigureKeeper  # noqa: E402
from transfer.records import FIRM, INTEREST, KINDS, LISTING, REQUEST  # noqa: E402
from transfer.report import parse_period, report  # noqa: E402

CENTRES = ("brussels", "daejeon", "tel-aviv", "toledo", "astana")
COUNTRIES = {"brussels": "BE", "daejeon": "KR", "tel-aviv": "IL", "toledo": "ES", "astana": "KZ"}
YEAR_MS = 365 * 24 * 3600 * 1000
START = 1_767_225_600_000  # 2026-01-01T00:00:00Z


class Loader:
    def __init__(self, site: Site) -> None:
        self.site = site
        self.keys = {c: SigningKey.generate() for c in (*CENTRES, "hq")}
        self.pending: list[Version] = []
        self.count = 0

    def create(
        self, by: str, kind: Kind, at: int, values: dict[str, FieldValue], status: str, origin: str = ""
    ) -> tuple[str, Version]:
        change = create_change(make_content(kind, values, status))
        owner = origin or by
        rid, nonce = new_record_id(owner, at, pins_of(kind, change))
        v = make_version(
            self.keys[by],
            site=by,
            origin=owner,
            record_id=rid,
            hlc=Stamp(at, 0),
            change=change,
            record_nonce=nonce,
            kind=kind,
        )
        self.put(v)
        return rid, v

    def step(
        self, by: str, head: Version, action: Action, at: int, fields: tuple[tuple[str, FieldValue], ...] = ()
    ) -> Version:
        kind = KINDS[head.kind]
        status = kind.transitions[action][1]
        v = make_version(
            self.keys[by],
            site=by,
            origin=head.origin,
            record_id=head.record_id,
            hlc=Stamp(at, 0),
            change=Change(fields, action=action, status=status),
            parents=(head.version_id,),
            record_nonce=head.record_nonce,
            kind=kind,
        )
        self.put(v)
        return v

    def put(self, v: Version) -> None:
        self.pending.append(v)
        if len(self.pending) >= 2000:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.count += len(self.pending)
            self.site.store.apply_batch("bench", self.pending, [], through_seq=0, now_ms=1)
            self.pending = []


def fill(site: Site, offers: int) -> dict[str, int]:
    load = Loader(site)
    step_ms = YEAR_MS // max(1, offers)
    for i in range(offers):
        centre = CENTRES[i % len(CENTRES)]
        at = START + i * step_ms
        values = {**benchlib.offer_content("Offer", i).as_dict()}
        _, v = load.create(centre, LISTING, at, values, "submitted")
        v = load.step("hq", v, Action.VALIDATE, at + 1)
        v = load.step("hq", v, Action.PUBLISH, at + 2)
        if i % 10 == 0:
            load.step(centre, v, Action.WITHDRAW, at + 3)
    firms = []
    for f in range(max(1, offers // 100)):
        centre = CENTRES[f % len(CENTRES)]
        rid, _ = load.create(
            centre,
            FIRM,
            START + f,
            {"name": f"Firm {f}", "country": "CN", "public_key": SigningKey.generate().public_bytes.hex()},
            "active",
        )
        firms.append((rid, centre))
    requests = []
    for r in range(offers // 10):
        firm, home = firms[r % len(firms)]
        load.keys[firm] = load.keys[home]  # signed on the firm's behalf: the store does not verify here
        at = START + r * step_ms * 10 + 5
        via = CENTRES[(r + 1) % len(CENTRES)]
        rid, _ = load.create(
            firm,
            REQUEST,
            at,
            {
                "title": f"Request {r}",
                "request_type": "partner",
                "sought": "a partner",
                "via": via,
                "taxonomy": "tt-2026.1",
            },
            "submitted",
        )
        requests.append((rid, via))
    for n in range(offers // 5):
        target, owner = requests[n % len(requests)]
        sender = CENTRES[(n + 2) % len(CENTRES)]
        at = START + n * step_ms * 5 + 7
        _, v = load.create(
            sender,
            INTEREST,
            at,
            {
                "to_record": target,
                "to_kind": "request",
                "to_owner": owner,
                "from_centre": sender,
                "sender_consent": True,
            },
            "sent",
        )
        v = load.step(owner, v, Action.ACCEPT, at + 1)
        if n % 3 == 0:
            v = load.step(owner, v, Action.INTRODUCE, at + 2, (("owner_identity", "the client"),))
            v = load.step(sender, v, Action.NEGOTIATE, at + 3)
            if n % 10 == 0:
                load.step(owner, v, Action.AGREE, at + 4)
    load.flush()
    return {"versions": load.count, "offers": offers, "requests": offers // 10, "interests": offers // 5}


def register_centres(site: Site, root: SigningKey) -> None:
    def build(held: Any) -> Any:
        centres = tuple(held.centres) + tuple(
            Centre(c, c.title(), country, SiteRole.NODE, CentreStatus.ACTIVE, (SiteKey(k.key_id, k.public_bytes),))
            for c, country, k in ((c, COUNTRIES[c], SigningKey.generate()) for c in CENTRES)
        )
        return issue_registry(root, centres, previous=held, now_ms=site.now_ms())

    site.update_registry(build)


def bench(base: Path, backend: str, offers: int) -> dict[str, Any]:
    """Fill a new hub in `base` with `offers` (and the rest), or, on SQLite, time the hub a
    run with `--store` left there (its load is not timed again)."""
    db_url = f"sqlite:///{base}/hq.db"
    drop = None
    reused = backend == "sqlite" and (base / "hq" / "site.json").exists()
    if backend == "postgresql":
        db_url, drop = pg_hub_database()
    if not reused:
        init_hub(base / "hq", listen="127.0.0.1:0", db_url=db_url)
    site = Site.open(DataDir(base / "hq"), KINDS)
    try:
        load_s: float | None = None
        if reused:
            sizes = {"offers": offers, "reused": 1}
        else:
            register_centres(site, SigningKey.load(DataDir(base / "hq").root_key))
            t = time.perf_counter()
            sizes = fill(site, offers)
            load_s = time.perf_counter() - t
            if backend == "postgresql":  # what autovacuum does within a minute of a load this size
                with site.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("ANALYZE")
        t = time.perf_counter()
        kept = FigureKeeper(site.store).catch_up()  # what the figures job does as versions arrive
        keep_s = time.perf_counter() - t
        if backend == "postgresql":
            with site.store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM ANALYZE")
        period = parse_period("2026")
        report_s, count_s = [], []
        for _ in range(3):
            t = time.perf_counter()
            done = report(site, period)
            report_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            with site.store.engine.connect() as conn:
                published = conn.execute(
                    select(func.count())
                    .select_from(versions_t)
                    .where(
                        versions_t.c.kind == "listing",
                        versions_t.c.action == "publish",
                        versions_t.c.hlc_wall_ms >= period.start_ms,
                        versions_t.c.hlc_wall_ms < period.end_ms,
                    )
                ).scalar_one()
            count_s.append(time.perf_counter() - t)
        counted = sum(c.counts["offers.published"] for c in done.centres)
        assert counted == published == offers, (counted, published)
        r, c = statistics.median(report_s), statistics.median(count_s)
        return {
            **sizes,
            "load_s": None if load_s is None else round(load_s, 1),
            "keep_s": round(keep_s, 1),
            "kept_records_per_s": round(kept / keep_s),
            "report_s": round(r, 3),
            "count_offers_s": round(c, 4),
            "report_vs_count_offers": round(r / c, 1),
        }
    finally:
        site.close()
        if drop:
            drop()


def pg_hub_database() -> tuple[str, Any]:
    """A new PostgreSQL database for the hub (`benchlib.new_pg_database`); this bench has no
    figure without one."""
    made = benchlib.new_pg_database("bench_report")
    if made is None:
        raise SystemExit("the PostgreSQL figures need a server on 127.0.0.1:5432")
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--offers", type=int, default=100_000)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument(
        "--store",
        type=Path,
        default=None,
        help="SQLite: build the hub in this folder and leave it there, or time the one a run left there",
    )
    a = ap.parse_args()
    figures: dict[str, Any] = {}
    for backend in ("sqlite", "postgresql") if a.backend == "both" else (a.backend,):
        if a.store is not None and backend == "sqlite":
            a.store.mkdir(parents=True, exist_ok=True)
            got = bench(a.store, backend, a.offers)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                got = bench(Path(tmp), backend, a.offers)
        figures[backend] = got
        print(f"{backend}: {json.dumps(got)}", flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    # Figures by backend and size, beside those of earlier runs of other sizes or backends.
    path = out / "report.json"
    earlier = json.loads(path.read_text()).get("runs", {}) if path.exists() else {}
    runs = {**earlier, **{f"{backend}_{a.offers}": got for backend, got in figures.items()}}
    doc = {"machine": benchlib.machine(), "figures": figures, "runs": runs}
    path.write_text(json.dumps(doc, indent=2) + "\n")
    latest = out / "latest.json"
    held = json.loads(latest.read_text()) if latest.exists() else {}
    for backend, got in figures.items():
        held[f"report_vs_count_offers_{backend}"] = got["report_vs_count_offers"]
        held[f"report_year_s_{backend}"] = got["report_s"]
    latest.write_text(json.dumps(held, indent=2) + "\n")


if __name__ == "__main__":
    main()
