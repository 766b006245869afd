"""The staff console in a real headless browser (Debian's chromium and chromedriver through
Selenium) against real hub and node servers: a curator validates and publishes an offer and
the centre sees it published; centre staff fix a bad TRL beside its field; the Network page
turns a centre down once its node stops, without a reload; a title with markup stays text;
the Chinese console speaks Chinese. Each main page is saved as a screenshot (into
$TECHBRIDGE_SCREENSHOTS when set, e.g. docs/screens)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from hub.site import init_hub, start_hub
from sync.config import DataDir
from tests.console_client import PASSWORD, staff_member
from tests.harness import Hub, Node, make_node

T = TypeVar("T")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HAVE_BROWSER = Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()
# Skipped where no browser is installed, except where a browser is required (CI: .ci/run).
pytestmark = pytest.mark.skipif(
    not HAVE_BROWSER and not os.environ.get("TECHBRIDGE_REQUIRE_BROWSER"),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run does)",
)
WAIT_S = 30


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1360,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


class Waiting:
    """Waits for a condition, looking again when the page changed under the look: an element
    gone stale, or chromedriver's inspector error for a node no longer in the document (what
    it sometimes says instead when a page is replaced while an element is read)."""

    def __init__(self, driver: WebDriver) -> None:
        self._wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))

    def until(self, condition: Callable[[WebDriver], T]) -> T:
        def look(driver: WebDriver) -> T:
            try:
                return condition(driver)
            except WebDriverException as exc:
                if "does not belong to the document" in (exc.msg or ""):
                    raise StaleElementReferenceException(exc.msg) from exc
                raise

        return self._wait.until(look)


def wait(driver: WebDriver) -> Waiting:
    return Waiting(driver)


def shot(driver: WebDriver, tmp_path: Path, name: str) -> None:
    """Save the page as it stands, in the test's folder and in $TECHBRIDGE_SCREENSHOTS."""
    driver.save_screenshot(str(tmp_path / f"{name}.png"))
    wanted = os.environ.get("TECHBRIDGE_SCREENSHOTS")
    if wanted:
        Path(wanted).mkdir(parents=True, exist_ok=True)
        shutil.copy(tmp_path / f"{name}.png", Path(wanted) / f"{name}.png")


def sign_in(driver: WebDriver, url: str, name: str) -> None:
    driver.delete_all_cookies()
    driver.get(url.rstrip("/") + "/login")
    driver.find_element(By.ID, "name").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "sign-in").click()
    wait(driver).until(lambda d: d.find_elements(By.ID, "me-name"))


def web_url(x: Hub | Node) -> str:
    running = x.running if isinstance(x, Hub) else x.node.running if x.node else None
    assert running is not None and running.web_url
    return running.web_url


def site_of(x: Hub | Node):  # type: ignore[no-untyped-def]
    running = x.running if isinstance(x, Hub) else x.node.running if x.node else None
    assert running is not None
    return running.site


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def test_a_curator_validates_and_publishes_and_the_centre_sees_it_published(
    hub: Hub, tmp_path: Path, browser: WebDriver
) -> None:
    centre = make_node(hub, tmp_path / "daejeon", "daejeon", country="KR", name="Daejeon")
    try:
        offer = centre.add_record(
            "Solar-driven desalination skid", summary="A containerised skid that desalinates brackish water"
        )
        centre.sync()
        staff_member(site_of(hub), "li.wei", "curator")
        staff_member(site_of(centre), "kim", "staff")
        sign_in(browser, web_url(hub), "li.wei")
        browser.get(web_url(hub) + "queues")
        shot(browser, tmp_path, "hq-queues")
        browser.find_element(By.CSS_SELECTOR, f'button[data-validate="{offer}"]').click()
        wait(browser).until(lambda d: text_of(d, "record-status") == "validated")
        browser.find_element(By.ID, "step-publish").click()
        wait(browser).until(lambda d: text_of(d, "record-status") == "published")
        assert "li.wei" in text_of(browser, "history")
        shot(browser, tmp_path, "hq-record")
        browser.get(web_url(hub) + "search?q=desalination")
        assert browser.find_element(By.CSS_SELECTOR, "#results mark").text.lower() == "desalination"
        assert "Daejeon" in text_of(browser, "results")
        shot(browser, tmp_path, "hq-search")
        centre.sync()
        sign_in(browser, web_url(centre), "kim")
        browser.get(web_url(centre) + f"records/{offer}")
        assert text_of(browser, "record-status") == "published"
        shot(browser, tmp_path, "centre-record")
    finally:
        centre.stop()


def test_centre_staff_see_a_bad_trl_beside_its_field_and_fix_it(hub: Hub, tmp_path: Path, browser: WebDriver) -> None:
    centre = make_node(hub, tmp_path / "toledo", "toledo", country="ES", name="Toledo")
    try:
        staff_member(site_of(centre), "maria", "staff")
        sign_in(browser, web_url(centre), "maria")
        browser.get(web_url(centre) + "intake/offer")
        browser.find_element(By.ID, "f-title").send_keys("Olive-pomace biochar for soil carbon")
        browser.find_element(By.ID, "f-trl").send_keys("12")
        browser.find_element(By.ID, "submit").click()
        wait(browser).until(lambda d: d.find_elements(By.ID, "error-trl"))
        assert "1 to 9" in text_of(browser, "error-trl")
        assert browser.find_element(By.ID, "f-title").get_attribute("value") == "Olive-pomace biochar for soil carbon"
        shot(browser, tmp_path, "centre-intake-error")
        assert centre.listings() == []
        trl = browser.find_element(By.ID, "f-trl")
        trl.clear()
        trl.send_keys("7")
        browser.find_element(By.ID, "submit").click()
        wait(browser).until(lambda d: d.find_elements(By.ID, "record-status"))
        assert text_of(browser, "record-status") == "submitted"
        [stored] = centre.listings()
        assert stored.values.listing.trl == 7
    finally:
        centre.stop()


def test_the_network_page_shows_a_centre_down_once_its_node_stops(tmp_path: Path, browser: WebDriver) -> None:
    path = tmp_path / "hq"
    cfg = init_hub(path, listen="127.0.0.1:0")
    data = DataDir(path)
    data.save(data.load().with_updates(sync_every_s=1.0))  # a centre is down after 3 s without contact
    running = start_hub(path)
    hub = Hub(path=path, admin_token=cfg.admin_token, address=running.address, running=running)
    centre = make_node(hub, tmp_path / "brussels", "brussels", country="BE", name="Brussels", live=True)
    try:
        centre.sync()
        staff_member(running.site, "li.wei", "curator")
        sign_in(browser, web_url(hub), "li.wei")
        browser.get(web_url(hub) + "network")

        def health(d: WebDriver) -> str:
            """Read in one script: the live part of the page is replaced as it refreshes."""
            got = d.execute_script(
                "const e = document.querySelector('#link-brussels [data-health]');"
                "return e ? e.getAttribute('data-health') : '';"
            )
            return str(got)

        wait(browser).until(lambda d: health(d) == "up")
        shot(browser, tmp_path, "hq-network")
        centre.stop()
        wait(browser).until(lambda d: health(d) == "down")  # the page refreshes itself
        assert browser.find_element(By.ID, "network-live").get_attribute("data-refreshed")
        pin = browser.execute_script(
            "return document.querySelector('#map g[data-centre=\"brussels\"]').getAttribute('class');"
        )
        assert "down" in str(pin)
        shot(browser, tmp_path, "hq-network-down")
    finally:
        centre.stop()
        hub.stop()


def test_a_title_with_markup_renders_as_text(hub: Hub, tmp_path: Path, browser: WebDriver) -> None:
    centre = make_node(hub, tmp_path / "tel-aviv", "tel-aviv", country="IL", name="Tel Aviv")
    try:
        staff_member(site_of(centre), "noa", "staff")
        sign_in(browser, web_url(centre), "noa")
        browser.get(web_url(centre) + "intake/offer")
        browser.find_element(By.ID, "f-title").send_keys("<script>alert(1)</script>")
        browser.find_element(By.ID, "submit").click()
        wait(browser).until(lambda d: d.find_elements(By.ID, "record-title"))
        assert text_of(browser, "record-title") == "<script>alert(1)</script>"
        with pytest.raises(NoAlertPresentException):
            _ = browser.switch_to.alert.text
        assert browser.find_elements(By.CSS_SELECTOR, "main script") == []
    finally:
        centre.stop()


def test_the_chinese_console_shows_chinese_labels(hub: Hub, tmp_path: Path, browser: WebDriver) -> None:
    hub.add_record("Graphene anti-corrosion coating")
    staff_member(site_of(hub), "wang.fang", "curator", language="zh")
    sign_in(browser, web_url(hub), "wang.fang")
    browser.get(web_url(hub) + "network")
    nav = browser.find_element(By.CSS_SELECTOR, "header nav").text
    assert "网络" in nav and "搜索" in nav and "统计" in nav
    assert browser.find_element(By.ID, "logout").text == "退出登录"
    shot(browser, tmp_path, "hq-network-zh")
    browser.get(web_url(hub) + "figures")
    assert browser.find_element(By.TAG_NAME, "h1").text == "统计"
    shot(browser, tmp_path, "hq-figures-zh")
    browser.find_element(By.ID, "lang-en").click()
    wait(browser).until(lambda d: d.find_element(By.ID, "logout").text == "Sign out")
