"""The staff console over real HTTP against real servers: every page needs a session, each
role sees and may do what it should, forms carry their CSRF token, intake shows each
problem beside its field and stores nothing half, what staff write is theirs in the history,
escaping, languages, downloads, and the console's own serving rules (loopback, HTTPS)."""

from __future__ import annotations

import io
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from console.sessions import SESSION_S
from console.staff import LOCK_AFTER
from console.web import CSP, start_console
from sync.config import DataDir
from sync.errors import ConfigError
from sync.protocol.hub_side import HubSide
from sync.site import Site
from tests.console_client import PASSWORD, ConsoleClient, staff_member
from tests.harness import ROOT, Hub, Node, make_node, wait_until

# Pages every signed-in member may read, at HQ and at a centre.
PAGES = ("/network", "/queues", "/search", "/firms", "/interests", "/figures", "/intake/offer", "/intake/request")


@pytest.fixture
def centre(hub: Hub, tmp_path: Path) -> Iterator[Node]:
    node = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR", name="Daejeon")
    yield node
    node.stop()


def _site(x: Hub | Node) -> Site:
    running = x.running if isinstance(x, Hub) else x.node.running if x.node else None
    assert running is not None
    return running.site


def _url(x: Hub | Node) -> str:
    running = x.running if isinstance(x, Hub) else x.node.running if x.node else None
    assert running is not None and running.web_url
    return running.web_url


def _client(x: Hub | Node, name: str, role: str, language: str = "en") -> ConsoleClient:
    staff_member(_site(x), name, role, language)
    c = ConsoleClient(_url(x))
    r = c.sign_in(name)
    assert r.status_code == 303, r.text
    return c


def test_without_a_session_nothing_but_sign_in(hub: Hub) -> None:
    c = ConsoleClient(_url(hub))
    record_id = hub.add_record("A membrane for brackish water")
    for path in (*PAGES, f"/records/{record_id}", "/figures.csv", "/network?part=live"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    r = c.http.post(f"/records/{record_id}/step", data={"action": "validate"})
    assert r.status_code == 303 and r.headers["location"].startswith("/login")
    assert hub.show(record_id).status == "submitted"
    login = c.get("/login")
    assert login.status_code == 200 and login.headers["content-security-policy"] == CSP
    assert "HttpOnly" in login.headers["set-cookie"] and "SameSite=strict" in login.headers["set-cookie"]
    assert c.get("/static/console.css").status_code == 200
    assert c.get("/no-such-page").status_code == 404


def test_sign_in_refuses_wrong_passwords_then_locks(hub: Hub) -> None:
    staff_member(_site(hub), "li.wei", "curator")
    c = ConsoleClient(_url(hub))
    r = c.sign_in("li.wei", "not the password")
    assert r.status_code == 403 and "do not match an account here" in r.text
    r = c.sign_in("nobody", "not the password")
    assert r.status_code == 403 and "do not match an account here" in r.text
    for _ in range(LOCK_AFTER - 1):
        c.sign_in("li.wei", "still not it")
    r = c.sign_in("li.wei", PASSWORD)
    assert r.status_code == 429 and "locked" in r.text
    assert c.get("/network").status_code == 303


def test_session_cookie_expires_and_sign_out_ends_it(hub: Hub) -> None:
    c = _client(hub, "li.wei", "curator")
    assert c.get("/network").status_code == 200
    cookie = c.http.cookies.get("tb_session")
    assert cookie
    r = c.post("/logout", {})
    assert r.status_code == 303
    stale = ConsoleClient(_url(hub))
    stale.http.cookies.set("tb_session", cookie)
    assert stale.get("/network").status_code == 303, "a signed-out session opens nothing"
    assert SESSION_S <= 12 * 3600


def test_forms_need_their_csrf_token(hub: Hub) -> None:
    record_id = hub.add_record("A membrane for brackish water")
    c = _client(hub, "li.wei", "curator")
    r = c.post(f"/records/{record_id}/step", {"action": "validate"}, csrf=False)
    assert r.status_code == 403 and "form has expired" in r.text
    r = c.post(f"/records/{record_id}/step", {"action": "validate", "csrf": "forged"}, csrf=False)
    assert r.status_code == 403
    assert hub.show(record_id).status == "submitted"
    r = c.post(f"/records/{record_id}/step", {"action": "validate"})
    assert r.status_code == 303 and hub.show(record_id).status == "validated"


def test_each_role_sees_and_may_do_what_it_should(hub: Hub, centre: Node) -> None:
    offer = centre.add_record("Solar-driven desalination skid")
    centre.sync()
    curator = _client(hub, "li.wei", "curator")
    viewer = _client(hub, "zhang", "viewer")
    staff = _client(centre, "kim", "staff")
    centre_viewer = _client(centre, "park", "viewer")
    for c in (curator, viewer, staff, centre_viewer):
        for path in (*PAGES, f"/records/{offer}"):
            r = c.get(path)
            if path.startswith("/intake") and c in (viewer, centre_viewer):
                assert r.status_code == 403 and "reads only" in r.text, path
            else:
                assert r.status_code == 200, (path, r.text[:500])
    # HQ's queue lists the offer with a validate button for the curator, none for the viewer.
    assert 'data-validate="' + offer in curator.get("/queues").text
    assert 'data-validate="' not in viewer.get("/queues").text
    # The viewer may not step a record even with a good token; the curator may.
    r = viewer.post(f"/records/{offer}/step", {"action": "validate"})
    assert r.status_code == 403 and hub.show(offer).status == "submitted"
    # A centre's staff cannot take HQ's step: the site's own rights refuse it, in words.
    r = staff.post(f"/records/{offer}/step", {"action": "validate"})
    assert r.status_code in (400, 403) and centre.show(offer).status == "submitted"
    assert "step-validate" not in staff.get(f"/records/{offer}").text
    assert "step-withdraw" in staff.get(f"/records/{offer}").text
    # The centre's record page shows its own queue, not HQ's.
    assert "Interests to handle" in staff.get("/queues").text
    assert "To validate" in curator.get("/queues").text


def test_curator_validates_and_publishes_and_the_centre_sees_it_with_who_did_it(hub: Hub, centre: Node) -> None:
    offer = centre.add_record("Solar-driven desalination skid")
    centre.sync()
    curator = _client(hub, "li.wei", "curator")
    for action in ("validate", "publish"):
        r = curator.post(f"/records/{offer}/step", {"action": action})
        assert r.status_code == 303 and r.headers["location"] == f"/records/{offer}?done={action}"
    page = curator.get(f"/records/{offer}").text
    assert 'id="record-status" class="status published"' in page
    assert page.count('<span class="staff">li.wei</span>') == 2, "each console change names its staff member"
    centre.sync()
    staff = _client(centre, "kim", "staff")
    seen = staff.get(f"/records/{offer}").text
    assert 'class="status published"' in seen
    assert "<td>hq</td>" in seen or "hq" in seen


def test_intake_shows_every_problem_beside_its_field_and_stores_nothing(centre: Node) -> None:
    staff = _client(centre, "kim", "staff")
    before = len(centre.listings())
    r = staff.post("/intake/offer", {"title": "", "trl": "12", "target_countries": "china", "submit": "1"})
    assert r.status_code == 400
    assert 'id="error-trl"' in r.text and "1 to 9" in r.text
    assert 'id="error-title"' in r.text
    assert 'id="error-target_countries"' in r.text
    assert 'value="12"' in r.text, "what was typed stays in the form"
    assert len(centre.listings()) == before
    r = staff.post(
        "/intake/offer",
        {"title": "Low-energy membrane distillation", "trl": "6", "target_countries": "CN, DE", "submit": "1"},
    )
    assert r.status_code == 303, r.text
    record_id = r.headers["location"].split("/records/")[1].split("?")[0]
    shown = centre.show(record_id)
    assert shown.status == "submitted" and shown.values.listing.trl == 6
    assert list(shown.values.listing.target_countries) == ["CN", "DE"]
    assert '<span class="staff">kim</span>' in staff.get(f"/records/{record_id}").text
    # A firm's request: checked by the same rules, then the file the firm signs and submits.
    request = {"title": "Space for an R&D centre", "request_type": "establishment", "sought": "Lab space"}
    r = staff.post("/intake/request", request)
    assert r.status_code == 400 and 'id="error-facility"' in r.text and 'id="error-at_centre"' in r.text
    r = staff.post("/intake/request", {**request, "facility": "rnd-centre", "at_centre": "daejeon", "area_m2": "400"})
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment")
    assert r.json() == {
        **request,
        "facility": "rnd-centre",
        "at_centre": "daejeon",
        "area_m2": 400,
        "status": "submitted",
    }


def test_a_title_with_markup_is_shown_as_text(centre: Node) -> None:
    staff = _client(centre, "kim", "staff")
    r = staff.post("/intake/offer", {"title": "<script>alert(1)</script>", "submit": "1"})
    assert r.status_code == 303
    record_id = r.headers["location"].split("/records/")[1].split("?")[0]
    page = staff.get(f"/records/{record_id}")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "alert(1)" not in staff.get("/search?q=alert").text.replace("&lt;script&gt;alert(1)&lt;/script&gt;", "")


def test_chinese_console(hub: Hub) -> None:
    c = _client(hub, "wang", "curator", language="zh")
    page = c.get("/network").text
    assert '<html lang="zh-Hans">' in page and "网络" in page and "退出" in page
    r = c.post("/language", {"language": "en", "back": "/search"})
    assert r.status_code == 303 and r.headers["location"] == "/search"
    assert "Sign out" in c.get("/network").text
    r = c.post("/language", {"language": "klingon"})
    assert r.status_code == 400


def test_disabling_an_account_ends_its_sessions(hub: Hub) -> None:
    from console.staff import disable_staff

    c = _client(hub, "li.wei", "curator")
    assert c.get("/network").status_code == 200
    disable_staff(_site(hub).store, "li.wei")
    assert c.get("/network").status_code == 303


def test_figures_download_as_csv_and_xlsx(hub: Hub) -> None:
    c = _client(hub, "li.wei", "curator")
    page = c.get("/figures?period=2026")
    assert page.status_code == 200 and 'id="figures"' in page.text
    csv_text = c.get("/figures.csv?period=2026")
    assert csv_text.headers["content-type"].startswith("text/csv")
    assert csv_text.text.splitlines()[0] == "centre,centre_name,figure,by,value,count,target"
    xlsx = c.get("/figures.xlsx?period=2026")
    book = load_workbook(io.BytesIO(xlsx.content))
    assert book.sheetnames[0] == "figures"
    bad = c.get("/figures?period=someday")
    assert bad.status_code == 200 and 'id="problems"' in bad.text


def test_search_facets_filter_and_snippets_mark_matches(hub: Hub, centre: Node) -> None:
    centre.add_record("Brackish water membrane", summary="A membrane that desalinates brackish water")
    centre.add_record("Hydrogen storage in salt caverns")
    centre.sync()
    c = _client(hub, "li.wei", "curator")
    page = c.get("/search?q=membrane").text
    assert "<mark>" in page and 'id="total">1 ' in page
    assert 'data-facet="centre" data-value="daejeon"' in page
    everything = c.get("/search").text
    assert 'id="total">2 ' in everything
    bad = c.get("/search?kind=spaceship")
    assert bad.status_code == 200 and "kind:" in bad.text


def test_network_page_shows_each_centre_and_its_link(hub: Hub, centre: Node) -> None:
    centre.sync()
    c = _client(hub, "li.wei", "curator")
    live = c.get("/network?part=live").text
    assert 'id="link-daejeon"' in live and 'data-centre="daejeon"' in live
    assert 'id="link-hq"' in live
    staff = _client(centre, "kim", "staff")
    mine = staff.get("/network?part=live").text
    assert 'id="link-hq"' in mine and 'data-health="up"' in mine


def test_console_serving_rules(hub: Hub, tmp_path: Path) -> None:
    site = _site(hub)
    with pytest.raises(ConfigError, match="loopback addresses only"):
        start_console(site, _status(hub), [], listen="0.0.0.0:0")
    busy = _url(hub).rsplit(":", 1)[1].rstrip("/")
    with pytest.raises(ConfigError, match="cannot listen on"):
        start_console(site, _status(hub), [], listen=f"127.0.0.1:{busy}")
    with pytest.raises(ConfigError, match="both --web-cert and --web-key"):
        start_console(site, _status(hub), [], listen="127.0.0.1:0", cert="x.pem")
    # HTTPS with the operator's certificate: here the site's own, issued by the network's CA.
    tls = DataDir(hub.path).tls
    secure = start_console(site, _status(hub), [], listen="127.0.0.1:0", cert=str(tls.cert), key=str(tls.key))
    try:
        assert secure.url.startswith("https://127.0.0.1:")
        staff_member(site, "li.wei", "curator")
        c = ConsoleClient(secure.url, verify=ssl.create_default_context(cafile=str(tls.ca)))
        r = c.sign_in("li.wei")
        assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()
        with pytest.raises(httpx.HTTPError):  # plain HTTP gets no answer from the HTTPS port
            httpx.get(secure.url.replace("https:", "http:"), timeout=5)
    finally:
        secure.stop()


def _status(hub: Hub) -> HubSide:
    return HubSide(_site(hub))


def test_serve_with_the_console_port_taken_says_so(hub: Hub, tmp_path: Path) -> None:
    """An operator's mistake gets one line, not a traceback, and nothing is left running."""
    from hub.site import init_hub

    path = tmp_path / "hq2"
    init_hub(path, listen="127.0.0.1:0")
    busy = _url(hub).rsplit(":", 1)[1].rstrip("/")
    r = subprocess.run(
        [sys.executable, "-m", "cli.main", "hub", "serve", "--data", str(path), "--web-listen", f"127.0.0.1:{busy}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and "cannot listen on 127.0.0.1:" in r.stderr
    assert not DataDir(path).address_file.exists()
    assert wait_until(lambda: True)


def test_interests_by_state_with_the_next_step_as_a_button(hub: Hub, centre: Node) -> None:
    from techbridge.v1 import admin_pb2, records_pb2

    offer = centre.add_record("Solar-driven desalination skid")
    hub.add_record("Graphene anti-corrosion coating")
    centre.sync()
    interest = hub.admin.AddRecord(
        admin_pb2.AddRecordRequest(
            values=records_pb2.RecordValues(
                interest=records_pb2.Interest(
                    to_record=offer, to_kind="listing", to_owner="daejeon", from_centre="hq", message="for a client"
                )
            )
        ),
        metadata=hub.md,
        timeout=10,
    ).record.id
    centre.sync()
    staff = _client(centre, "kim", "staff")
    page = staff.get("/interests").text
    assert f'id="interest-{interest}"' in page and 'data-step="accept"' in page and 'data-step="decline"' in page
    assert 'id="state-sent"' in page and "Solar-driven desalination skid" in page
    assert f'href="/records/{interest}"' in staff.get(f"/records/{offer}").text, "the offer lists its interests"
    assert 'data-step="accept"' in staff.get("/queues").text
    r = staff.post(f"/records/{interest}/step", {"action": "decline", "decline_reason": "no-capacity"})
    assert r.status_code == 303
    assert centre.show(interest).status == "declined"
    curator = _client(hub, "li.wei", "curator")
    assert 'data-step="accept"' not in curator.get("/interests").text, "HQ is not the party that accepts"


def test_editing_an_offer_signs_only_what_changed(centre: Node, hub: Hub) -> None:
    staff = _client(centre, "kim", "staff")
    r = staff.post("/intake/offer", {"title": "Membrane distillation", "trl": "5", "private_note": "client: A"})
    record_id = r.headers["location"].split("/records/")[1].split("?")[0]
    form = staff.get(f"/records/{record_id}/edit")
    assert form.status_code == 200 and 'value="Membrane distillation"' in form.text and "client: A" in form.text
    r = staff.post(f"/records/{record_id}/edit", {"title": "Membrane distillation", "trl": "11"})
    assert r.status_code == 400 and 'id="error-trl"' in r.text
    assert centre.show(record_id).version_count == 1
    r = staff.post(f"/records/{record_id}/edit", {"title": "Low-energy membrane distillation", "trl": "5"})
    assert r.status_code == 303 and r.headers["location"].endswith("done=edit")
    shown = centre.show(record_id)
    assert shown.version_count == 2 and shown.values.listing.title == "Low-energy membrane distillation"
    history = staff.get(f"/records/{record_id}").text
    assert "<td>title</td>" in history, "the edit signed the title alone"
    centre.sync()
    curator = _client(hub, "li.wei", "curator")
    assert curator.get(f"/records/{record_id}/edit").status_code == 403, "only the owner edits its offer"


def test_importing_a_spreadsheet_checks_every_row_then_stores_all(centre: Node, tmp_path: Path) -> None:
    staff = _client(centre, "kim", "staff")
    bad = "title,trl,target_countries\nGood one,5,CN\n,7,DE\nThird,12,china\n"
    r = staff.http.post(
        "/intake/import", data={"csrf": staff.csrf()}, files={"file": ("offers.csv", bad.encode(), "text/csv")}
    )
    assert r.status_code == 400
    assert "<td>3</td><td>title</td>" in r.text and "<td>4</td><td>trl</td>" in r.text
    assert "<td>4</td><td>target_countries[0]</td>" in r.text
    assert centre.listings() == []
    # A note over 2,000 characters only the site measures: named by its row, nothing stored.
    refused = "title,private_note\n" + "".join(f"Offer {i},{'x' * 2001 if i == 900 else ''}\n" for i in range(1000))
    r = staff.http.post(
        "/intake/import", data={"csrf": staff.csrf()}, files={"file": ("offers.csv", refused.encode(), "text/csv")}
    )
    assert r.status_code == 400
    assert "<td>902</td><td>private_note</td>" in r.text, r.text
    assert centre.listings() == []
    good = "title,trl,keywords\n" + "".join(f"Offer {i},{1 + i % 9},\n" for i in range(1200))
    r = staff.http.post(
        "/intake/import", data={"csrf": staff.csrf()}, files={"file": ("offers.csv", good.encode(), "text/csv")}
    )
    assert r.status_code == 303
    job = r.headers["location"]
    assert wait_until(lambda: 'data-finished="yes"' in staff.get(job + "?part=live").text, timeout=120)
    live = staff.get(job + "?part=live").text
    assert 'value="1200"' in live and 'id="import-done"' in live
    assert len(centre.listings()) == 1200
    r = staff.http.post(
        "/intake/import", data={"csrf": staff.csrf()}, files={"file": ("x.csv", b"\xff\xfe", "text/csv")}
    )
    assert r.status_code == 400 and "UTF-8" in r.text


def test_figures_are_counted_once_and_recounted_when_the_network_moves(hub: Hub, centre: Node) -> None:
    from console.figures import FiguresCache
    from transfer.report import parse_period

    site = _site(hub)
    cache = FiguresCache(site, max_age_s=0)
    year = parse_period(str(time.gmtime().tm_year))

    def published(counted: object) -> int:
        report = counted.report  # type: ignore[attr-defined]
        return sum(f.count for c in report.centres for f in c.figures if f.name == "offers.submitted")

    first, recounting = cache.get(year, ())
    assert not recounting
    again, recounting = cache.get(year, ())
    assert again is first and not recounting, "the log has not moved: the same count"
    centre.add_record("Solar-driven desalination skid")
    centre.sync()
    stale, recounting = cache.get(year, ())
    assert stale is first and recounting, "served at once while a newer count runs"
    assert wait_until(lambda: published(cache.get(year, ())[0]) == published(first) + 1)


def test_odd_input_gets_a_plain_answer_never_a_500(hub: Hub, centre: Node) -> None:
    from console.web import is_loopback

    offer = centre.add_record("Solar-driven desalination skid")
    staff = _client(centre, "kim", "staff")
    page = staff.get(f"/records/{offer}?done=<b>bold</b>")
    assert page.status_code == 200 and "<b>bold</b>" not in page.text and 'id="done"' not in page.text
    assert 'id="done"' in staff.get(f"/records/{offer}?done=withdraw").text
    assert staff.get("/search?page=²").status_code == 200
    assert staff.get("/search?page=99999999999999999999999").status_code == 200
    r = staff.post("/intake/offer", {"title": "Membrane", "trl": "--5"})
    assert r.status_code == 400 and 'id="error-trl"' in r.text
    r = staff.post("/intake/request", {"title": "寻找机器视觉合作伙伴", "request_type": "partner", "sought": "视觉"})
    assert r.status_code == 200 and r.headers["content-disposition"].isascii()
    for period in ("0000", "9999-Q4", "２０２６"):
        bad = staff.get(f"/figures?period={period}")
        assert bad.status_code == 200 and 'id="problems"' in bad.text, period
    assert staff.get("/figures.csv?period=0000").status_code == 400
    assert staff.get("/records/no-such-record").status_code == 404
    r = staff.post(f"/records/{offer}/step", {"action": "teleport"})
    assert r.status_code == 400 and "not a step" in r.text
    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost")] == [True] * 4
    assert [is_loopback(h) for h in ("localhost.example.org", "10.0.0.1", "::1:2", "0.0.0.0")] == [False] * 4


def test_hq_curates_tags_and_featured_and_the_centre_sees_them(hub: Hub, centre: Node) -> None:
    offer = centre.add_record("Solar-driven desalination skid")
    centre.sync()
    curator = _client(hub, "li.wei", "curator")
    assert 'id="curate"' in curator.get(f"/records/{offer}").text
    r = curator.post(f"/records/{offer}/curate", {"tags": "water, agritech", "featured": "1"})
    assert r.status_code == 303
    shown = hub.show(offer).values.listing
    assert list(shown.tags) == ["water", "agritech"] and shown.featured
    centre.sync()
    assert centre.show(offer).values.listing.featured
    staff = _client(centre, "kim", "staff")
    assert 'id="curate"' not in staff.get(f"/records/{offer}").text
    assert staff.post(f"/records/{offer}/curate", {"tags": "x"}).status_code == 404, "no such form at a centre"
    viewer = _client(hub, "zhang", "viewer")
    assert viewer.post(f"/records/{offer}/curate", {"tags": "x"}).status_code == 403
