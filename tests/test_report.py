"""The network's figures: counted by the signed stamp of each step, once per record, from
verified unquarantined versions only; the same for a centre at HQ and at the centre; with
targets, the funnel, medians, `--explain`, CSV and XLSX exports, and bad input named."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from openpyxl import load_workbook

from hub.site import init_hub
from sync.clock import Stamp
from sync.config import DataDir
from sync.envelope import Version, make_version
from sync.ids import new_record_id
from sync.keys import SigningKey
from sync.kinds import Action, Change, FieldValue, Kind, create_change, make_content, pins_of
from sync.site import Site
from tests.backends import BACKENDS, database_url
from tests.harness import Hub, cli, file_request, make_node, register_firm
from transfer.records import EVENT, FIRM, INTEREST, KINDS, LISTING, REQUEST, TARGET
from transfer.report import CentreFigures, parse_period, period_between, report

T = "tt-2026.1"


def at(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp() * 1000)


class Writer:
    """Signed versions with chosen stamps, as the sites named would write them."""

    def __init__(self) -> None:
        self.keys: dict[str, SigningKey] = {}
        self.versions: list[Version] = []
        self.heads: dict[str, tuple[str, bytes, str, Kind, str]] = {}  # record -> (head, nonce, origin, kind, status)

    def key(self, site: str) -> SigningKey:
        return self.keys.setdefault(site, SigningKey.generate())

    def create(
        self, site: str, kind: Kind, day: str, values: dict[str, FieldValue], status: str, *, by: str = ""
    ) -> str:
        change = create_change(make_content(kind, values, status))
        rid, nonce = new_record_id(site, at(day), pins_of(kind, change))
        v = make_version(
            self.key(by or site),
            site=by or site,
            origin=site,
            record_id=rid,
            hlc=Stamp(at(day), 0),
            change=change,
            record_nonce=nonce,
            kind=kind,
        )
        self.versions.append(v)
        self.heads[rid] = (v.version_id, nonce, site, kind, status)
        return rid

    def step(
        self,
        by: str,
        rid: str,
        action: Action,
        day: str,
        *,
        counter: int = 0,
        fields: tuple[tuple[str, FieldValue], ...] = (),
        key: SigningKey | None = None,
    ) -> Version:
        head, nonce, origin, kind, status = self.heads[rid]
        new_status = kind.transitions[action][1] if action in kind.transitions else None
        v = make_version(
            key or self.key(by),
            site=by,
            origin=origin,
            record_id=rid,
            hlc=Stamp(at(day), counter),
            change=Change(fields, action=action, status=new_status),
            parents=(head,),
            record_nonce=nonce,
            kind=kind,
        )
        self.versions.append(v)
        self.heads[rid] = (v.version_id, nonce, origin, kind, new_status or status)
        return v


def network_history(w: Writer, firm_key: SigningKey) -> dict[str, str]:
    """Offers, a firm, its request, two interests, an event and a target, Oct to Dec 2026."""
    o1 = w.create(
        "brussels",
        LISTING,
        "2026-10-05",
        {"title": "Weld inspection vision", "taxonomy": T, "keywords": ("robotics",), "stage": "lab-tested"},
        "submitted",
    )
    w.step("hq", o1, Action.VALIDATE, "2026-10-10")
    w.step("hq", o1, Action.PUBLISH, "2026-11-03")
    w.step("brussels", o1, Action.EXPIRE, "2026-12-20")
    o2 = w.create("daejeon", LISTING, "2026-11-01", {"title": "Edge AI camera", "taxonomy": T}, "submitted")
    first = w.step("hq", o2, Action.VALIDATE, "2026-11-02")
    # The same step taken again at once (a second HQ writer): counted once.
    w.heads[o2] = (w.versions[-2].version_id, *w.heads[o2][1:4], "submitted")
    w.step("hq", o2, Action.VALIDATE, "2026-11-02", counter=1)
    w.heads[o2] = (first.version_id, *w.heads[o2][1:])
    w.step("hq", o2, Action.PUBLISH, "2026-11-04")
    o3 = w.create("daejeon", LISTING, "2026-11-01", {"title": "Stolen-key offer", "taxonomy": T}, "submitted")
    w.step("hq", o3, Action.VALIDATE, "2026-11-02")
    w.keys["thief"] = SigningKey.generate()
    w.step("hq", o3, Action.PUBLISH, "2026-11-05", key=w.keys["thief"])  # quarantined below: not counted
    firm = w.create(
        "brussels",
        FIRM,
        "2026-10-01",
        {"name": "Shenzhen Robotics Ltd", "country": "CN", "public_key": firm_key.public_bytes.hex()},
        "active",
    )
    w.keys[firm] = firm_key
    request = w.create(
        firm,
        REQUEST,
        "2026-11-05",
        {"title": "Vision partner", "request_type": "partner", "sought": "A partner", "via": "brussels", "taxonomy": T},
        "submitted",
        by=firm,
    )
    i1 = w.create(
        "daejeon",
        INTEREST,
        "2026-11-06",
        {
            "to_record": request,
            "to_kind": "request",
            "to_owner": "brussels",
            "from_centre": "daejeon",
            "sender_consent": True,
        },
        "sent",
    )
    w.step("brussels", i1, Action.ACCEPT, "2026-11-07")
    w.step("brussels", i1, Action.INTRODUCE, "2026-11-09", fields=(("owner_identity", "Shenzhen Robotics Ltd"),))
    w.step("daejeon", i1, Action.NEGOTIATE, "2026-11-10")
    w.step("brussels", i1, Action.AGREE, "2026-12-02")
    i2 = w.create(
        firm,
        INTEREST,
        "2026-11-08",
        {"to_record": o2, "to_kind": "listing", "to_owner": "daejeon", "from_centre": "brussels"},
        "sent",
        by=firm,
    )
    w.step("daejeon", i2, Action.DECLINE, "2026-11-12", fields=(("decline_reason", "no-capacity"),))
    w.step("brussels", firm, Action.ERASE, "2026-12-10")  # erased later: still a firm served in November
    w.create(
        "brussels",
        EVENT,
        "2026-12-01",
        {
            "title": "Robotics matchmaking day",
            "event_type": "matchmaking",
            "held_on_ms": at("2026-11-20"),
            "firm_count": 12,
        },
        "held",
    )
    w.create(
        "hq", TARGET, "2026-10-01", {"centre": "brussels", "year": 2026, "offers_published": 4, "agreements": 1}, "set"
    )
    return {"o1": o1, "o2": o2, "o3": o3, "firm": firm, "request": request, "i1": i1, "i2": i2}


def hold(site: Site, w: Writer) -> None:
    site.store.apply_batch("hq", w.versions, [], through_seq=len(w.versions), now_ms=at("2026-12-25"))
    site.store.quarantine(w.keys["thief"].key_id, 0, "the key was stolen")


def figures(site: Site, period: str, centre: str) -> CentreFigures:
    [one] = report(site, parse_period(period), (centre,)).centres
    return one


def test_figures_count_each_step_in_the_period_it_was_signed(hub: Hub, tmp_path: Path) -> None:
    bru = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    try:
        w = Writer()
        ids = network_history(w, SigningKey.generate())
        assert hub.running is not None and bru.node is not None
        hq_site, bru_site = hub.running.site, bru.node.running.site
        hold(hq_site, w)
        hold(bru_site, w)
        nov = figures(hq_site, "2026-11", "brussels")
        c = nov.counts
        assert (c["offers.submitted"], c["offers.validated"], c["offers.published"]) == (0, 0, 1)
        assert c["offers.live_at_end"] == 1 and c["offers.expired"] == 0
        assert c["requests.received"] == 1 and c["firms.served"] == 1  # its request and its interest: one firm
        assert (c["interests.received"], c["interests.accepted"], c["interests.introduced"]) == (1, 1, 1)
        assert c["interests.negotiating"] == 1 and c["interests.agreed"] == 0  # agreed in December
        assert c["interests.sent"] == 1 and c["events.held"] == 1  # held in November, recorded in December
        assert nov.median_days_to_introduction == 3.0
        assert nov.targets == {"offers.published": 4, "interests.agreed": 1}
        assert nov.breakdowns["offers.published"] == {("keyword", "robotics"): 1, ("stage", "lab-tested"): 1}
        assert nov.breakdowns["requests.received"] == {("request_type", "partner"): 1, ("home_centre", "brussels"): 1}
        assert nov.breakdowns["events.held"] == {("event_type", "matchmaking"): 1}
        dj_nov = figures(hq_site, "2026-11", "daejeon").counts
        assert (dj_nov["offers.submitted"], dj_nov["offers.validated"], dj_nov["offers.published"]) == (2, 2, 1)
        assert dj_nov["interests.declined"] == 1 and dj_nov["interests.introduced"] == 1
        q4 = figures(hq_site, "2026-Q4", "brussels")
        assert q4.counts["offers.submitted"] == 1 and q4.counts["offers.expired"] == 1
        assert q4.counts["offers.live_at_end"] == 0 and q4.counts["interests.agreed"] == 1
        assert q4.median_days_to_agreement == 23.0 and q4.counts["firms.registered"] == 1
        assert figures(hq_site, "2026-Q4", "daejeon").counts["interests.agreed"] == 1  # both sides
        assert figures(hq_site, "2027", "brussels").counts == {k: 0 for k in q4.counts}
        # --explain: the records and versions counted.
        done = report(hq_site, parse_period("2026-11"), explain="offers.published")
        published = {(e.centre, e.record_id) for e in done.explained}
        assert published == {("brussels", ids["o1"]), ("daejeon", ids["o2"])}  # not the quarantined o3
        # The same versions give Brussels the same figures at Brussels as at HQ.
        for period in ("2026-11", "2026-Q4", "2026"):
            assert figures(bru_site, period, "brussels") == figures(hq_site, period, "brussels")
        funnel = dict(((a, b), r) for a, b, r in q4.conversion())
        assert funnel[("interests.received", "interests.accepted")] == 1.0
        assert (
            period_between("2026-11-03", "2026-11-03").end_ms - period_between("2026-11-03", "2026-11-03").start_ms
            == 86_400_000
        )
    finally:
        bru.stop()
        dj.stop()


def test_the_report_command_at_hq_and_at_a_centre_and_its_exports(hub: Hub, tmp_path: Path) -> None:
    ta = make_node(hub, tmp_path / "tel-aviv", "tel-aviv", country="IL", name="מרכז תל אביב")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR", name="대전 센터")
    try:
        offer = dj.add_record("Edge AI camera", keywords=["artificial-intelligence"], taxonomy=T)
        dj.sync()
        for step in ("validate", "publish"):
            r = cli("listing", step, "--data", str(hub.path), offer)
            assert r.returncode == 0, r.stderr
        firm = register_firm(hub, "深圳机器人有限公司")
        file_request(hub, firm, "hq", "视觉合作伙伴", request_type="partner", sought="机器视觉")
        dj.sync()
        year = str(datetime.now(UTC).year)
        r = cli("report", "--data", str(hub.path), "--period", year, "--json", "--explain", "offers.published")
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        by = {c["centre"]: c for c in doc["centres"]}
        assert {"hq", "daejeon", "tel-aviv"} <= set(by)
        assert by["daejeon"]["figures"]["offers.published"]["count"] == 1
        assert (
            by["hq"]["figures"]["requests.received"]["count"] == 1 and by["hq"]["figures"]["firms.served"]["count"] == 1
        )
        assert [e["record"] for e in doc["explain"]["counted"]] == [offer]
        r = cli(
            "target", "set", "--data", str(hub.path), "--centre", "daejeon", "--year", year, "--offers-published", "4"
        )
        assert r.returncode == 0, r.stderr
        r = cli(
            "target", "set", "--data", str(hub.path), "--centre", "daejeon", "--year", year, "--offers-published", "5"
        )
        assert r.returncode == 0, r.stderr  # revised: the same record, edited
        dj.sync()
        at_dj = json.loads(cli("report", "--data", str(dj.path), "--period", year, "--json").stdout)
        at_hq = json.loads(
            cli("report", "--data", str(hub.path), "--period", year, "--json", "--centre", "daejeon").stdout
        )
        assert at_dj["centres"] == at_hq["centres"]  # a centre's figures, the same at the centre and at HQ
        assert at_dj["centres"][0]["figures"]["offers.published"] == {"count": 1, "target": 5}
        r = cli(
            "event",
            "add",
            "--data",
            str(dj.path),
            "--title",
            "대전 기술 로드쇼",
            "--type",
            "roadshow",
            "--date",
            f"{year}-01-15",
            "--firm-count",
            "9",
        )
        assert r.returncode == 0, r.stderr
        dj.sync()
        # Exports: CSV with a header, XLSX with a sheet per table; names in any script intact.
        out_csv, out_xlsx = tmp_path / "figures.csv", tmp_path / "figures.xlsx"
        r = cli("report", "--data", str(hub.path), "--period", year, "--csv", str(out_csv), "--xlsx", str(out_xlsx))
        assert r.returncode == 0, r.stderr
        rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
        assert any(r["figure"] == "events.held" and r["centre"] == "daejeon" and r["count"] == "1" for r in rows)
        assert any(r["by"] == "event_type" and r["value"] == "roadshow" for r in rows)
        assert {"centre", "centre_name", "figure", "count", "target"} <= set(rows[0])
        assert any(r["centre_name"] == "מרכז תל אביב" for r in rows)
        assert any(r["figure"] == "offers.published" and r["centre"] == "daejeon" and r["count"] == "1" for r in rows)
        book = load_workbook(out_xlsx)
        assert book.sheetnames[:4] == ["figures", "targets", "breakdowns", "funnel"]
        header = [c.value for c in book["figures"][1]]
        assert "tel-aviv (מרכז תל אביב)" in header
        r = cli("report", "--data", str(hub.path), "--period", year)
        assert r.returncode == 0 and "offers.published" in r.stdout, r.stderr
        # Kept counts gone wrong (a hand edit, a restore) are what a report sums until a recount.
        assert hub.running is not None
        with hub.running.site.store.writing() as conn:
            conn.exec_driver_sql("UPDATE figure_counts SET n = n + 5 WHERE figure = 'offers.published'")

        def published(*extra: str) -> int:
            r = cli("report", "--data", str(hub.path), "--period", year, "--json", "--centre", "daejeon", *extra)
            assert r.returncode == 0, r.stderr
            return int(json.loads(r.stdout)["centres"][0]["figures"]["offers.published"]["count"])

        assert published() == 6
        assert published("--recount") == 1
        assert published() == 1
    finally:
        dj.stop()
        ta.stop()


def test_bad_input_is_named_on_one_line(hub: Hub, tmp_path: Path) -> None:
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    try:
        for args, expected in (
            (("--period", "2026-13"), "error: period: '2026-13' is not a year"),
            (("--from", "2026-12-05", "--to", "2026-12-01"), "error: from: 2026-12-05 is after --to 2026-12-01"),
            (("--from", "yesterday", "--to", "2026-12-01"), "error: from: 'yesterday' is not a date"),
            (("--centre", "atlantis"), "error: centre: 'atlantis' is not a centre of the network"),
            (("--explain", "offers.sold"), "error: explain: 'offers.sold' is not a figure"),
        ):
            r = cli("report", "--data", str(hub.path), *args)
            assert r.returncode == 1 and r.stderr.startswith(expected) and "Traceback" not in r.stderr, (args, r.stderr)
        r = cli("report", "--data", str(dj.path), "--centre", "hq")
        assert r.returncode == 1 and "a centre reports its own figures only" in r.stderr
        r = cli("target", "set", "--data", str(hub.path), "--centre", "atlantis", "--year", "2027", "--agreements", "6")
        assert r.returncode == 1 and "centre: 'atlantis' is not a centre of the network" in r.stderr
        r = cli("target", "set", "--data", str(hub.path), "--centre", "daejeon", "--year", "2027", "--agreements", "-1")
        assert r.returncode == 1 and "agreements: must not be negative" in r.stderr
        r = cli("target", "set", "--data", str(dj.path), "--centre", "daejeon", "--year", "2027", "--agreements", "6")
        assert (r.returncode == 1 and "PERMISSION_DENIED" in r.stderr) or "only HQ" in r.stderr
        assert json.loads(cli("target", "list", "--data", str(hub.path), "--json").stdout) == []
    finally:
        dj.stop()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_versions_give_the_same_figures_on_either_store(hub: Hub, tmp_path: Path, backend: str) -> None:
    """The report's SQL for SQLite and for PostgreSQL, held to the same answers."""
    bru = make_node(hub, tmp_path / "brussels", "brussels", country="BE")
    dj = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR")
    try:
        w = Writer()
        network_history(w, SigningKey.generate())
        assert hub.running is not None
        hq_site = hub.running.site
        hold(hq_site, w)
        with database_url(backend, tmp_path) as url:
            init_hub(tmp_path / "other", listen="127.0.0.1:0", db_url=url)
            other = Site.open(DataDir(tmp_path / "other"), KINDS)
            try:
                registry = hq_site.registry()
                other.store.save_registry(registry, at("2026-12-25"))
                other.set_registry(registry)
                hold(other, w)
                for period in ("2026-10", "2026-11", "2026-Q4", "2026"):
                    want = report(hq_site, parse_period(period), explain="firms.served")
                    got = report(other, parse_period(period), explain="firms.served")
                    assert got.centres == want.centres and got.explained == want.explained, period
            finally:
                other.close()
    finally:
        bru.stop()
        dj.stop()
