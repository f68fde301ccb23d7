"""The status page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``,
driven by Selenium) against a live service over HTTP: the real core, driver, journal and API
on uvicorn, with a fake launcher and simulated NVML (``world.py``; no Ray).

Set ``GPUYARD_SCREENSHOT=docs/status-page.png`` to write the admin view's screenshot there
(the README's picture); without it the screenshot goes to the test's temporary folder."""

from __future__ import annotations

import base64
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.runtime.views import JobView
from tests.ui import world as w

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1440,1000", "--lang=en-US",
)  # fmt: skip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()),
        reason=f"needs Debian's Chromium ({CHROMIUM}) and its driver ({CHROMEDRIVER}): "
        "apt-get install -y chromium chromium-driver",
    ),
]

if Path(CHROMIUM).exists():  # the module imports where the skip applies, too
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.chrome.webdriver import WebDriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait

JOB_ID = re.compile(r"job-\d{6}")
REFUSED = "The service refused this token (401: unknown token). Check the token and enter it again."


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[w.World]:
    with w.served(tmp_path_factory.mktemp("ui-state")) as world:
        yield world


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser: WebDriver, live: w.World) -> WebDriver:
    """The page opened afresh, with no token in the tab (and refreshing only every 10
    minutes: the tests read a page that holds still)."""
    browser.get(f"{live.url}/ui?refresh=600")
    browser.execute_script("sessionStorage.clear()")
    browser.get(f"{live.url}/ui?refresh=600")
    wait(browser, lambda d: d.find_element(By.ID, "token").is_displayed())
    console(browser)  # drop what came before this test
    return browser


def wait(driver: WebDriver, cond: object, timeout_s: float = 10.0) -> None:
    WebDriverWait(driver, timeout_s, poll_frequency=0.05).until(cond)  # type: ignore[arg-type]


def sign_in(driver: WebDriver, token: str) -> None:
    before = driver.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
    box = driver.find_element(By.ID, "token")
    box.clear()
    box.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    if token in w.TOKENS.values() or token == w.ADMIN_TOKEN:
        wait(driver, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
             not in (None, before))  # fmt: skip


def rows(driver: WebDriver, table: str) -> dict[str, WebElement]:
    found = driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr")
    return {r.get_attribute("data-job") or "": r for r in found}


def cells(row: WebElement) -> list[str]:
    return [td.text for td in row.find_elements(By.TAG_NAME, "td")]


def gpu(driver: WebDriver, node: str, index: int) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, f'[data-node="{node}"] [data-gpu="{index}"]')


def console(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser console's entries since the last call."""
    return list(driver.get_log("browser"))  # type: ignore[no-untyped-call]


def no_page_errors(driver: WebDriver) -> None:
    """No script error and no Content-Security-Policy violation in the browser's console."""
    bad = [e["message"] for e in console(driver) if e["level"] in ("SEVERE", "WARNING")]
    assert bad == []


def placement(job: JobView) -> str:
    by_node: dict[str, list[int]] = {}
    for p in job.placement:
        by_node.setdefault(p.node, []).extend(p.gpu_indices)
    return " · ".join(f"{n}: GPU {_ranges(g)}" for n, g in by_node.items())


def _ranges(xs: list[int]) -> str:
    xs = sorted(xs)
    out, i = [], 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        out.append(f"{xs[i]}-{xs[j]}" if j > i else str(xs[i]))
        i = j + 1
    return ",".join(out)


def test_the_page_itself_holds_no_data_until_a_token_is_given(page: WebDriver) -> None:
    assert page.title == "gpuyard status"
    assert JOB_ID.findall(page.page_source) == []
    assert not page.find_element(By.ID, "content").is_displayed()
    assert page.find_element(By.ID, "login").is_displayed()
    no_page_errors(page)


def test_an_admin_sees_every_teams_queue_running_jobs_and_the_gpu_grid(
    page: WebDriver, live: w.World, tmp_path: Path
) -> None:
    sign_in(page, w.ADMIN_TOKEN)
    assert page.find_element(By.ID, "who-scope").text == "admin: every team"
    queue = live.service.queue(None)
    assert {e.job_id for e in queue} == {j.job_id for j in live.waiting}
    assert {j.team for j in live.waiting} == set(w.TEAMS)
    shown = rows(page, "queue")
    assert list(shown) == [e.job_id for e in queue]  # in queue order
    for e in queue:
        pos, job, team, _prio, gpus, _waiting, est, why = cells(shown[e.job_id])
        assert (pos, job, team) == (str(e.position), f"{e.name} {e.job_id}", e.team)
        assert why == f"{e.code} {e.reason}"
        assert e.estimated_start_s is not None and est.startswith("in ")
        spec = next(j.spec for j in live.waiting if j.job_id == e.job_id)
        assert gpus == str(spec["workers"] * spec["gpus_per_worker"])
    assert {"WAIT_CAPACITY", "WAIT_QUOTA"} <= {e.code for e in queue}

    running = rows(page, "running")
    assert list(running) == [j.job_id for j in live.running]
    for j in live.running:
        row = cells(running[j.job_id])
        assert row[5] == placement(j)
        assert row[7] == f"loss {j.metrics['loss']:.3g} step {round(j.metrics['step'])}"

    # the grid: which job holds each GPU, the drained and cordoned nodes, hot GPUs
    nodes = page.find_elements(By.CSS_SELECTOR, "#nodes .node")
    assert [n.get_attribute("data-node") for n in nodes] == [n.name for n in w.FLEET]
    for j in live.running:
        for p in j.placement:
            for g in p.gpu_indices:
                assert j.job_id in gpu(page, p.node, g).text
    drained = page.find_element(By.CSS_SELECTOR, f'[data-node="{w.DRAINED}"]')
    assert "node-off" in (drained.get_attribute("class") or "")
    assert drained.find_element(By.CSS_SELECTOR, ".badge.drain").text.startswith("drain since ")
    assert drained.find_element(By.CSS_SELECTOR, ".node-cause").text == "drain by ops"
    assert [gpu(page, w.DRAINED, g).text.split("\n")[2] for g in range(8)] == ["free"] * 8
    cordoned = page.find_element(By.CSS_SELECTOR, f'[data-node="{w.CORDONED}"]')
    assert cordoned.find_element(By.CSS_SELECTOR, ".badge.warn").text.startswith("cordon since ")
    for node, index, c in w.HOT:
        cell = gpu(page, node, index)
        assert {"hot", "sick"} <= set((cell.get_attribute("class") or "").split())
        assert f"{round(c)} °C" in cell.text and cell.text.endswith("hot")
    node, index, c = w.WARM[0]
    warm = gpu(page, node, index)
    assert "hot" not in (warm.get_attribute("class") or "").split()
    assert warm.find_element(By.CSS_SELECTOR, ".temp").get_attribute("class") == "temp t-warm"
    no_page_errors(page)

    # the whole page, beyond the window (Chrome DevTools Protocol)
    height = int(page.execute_script("return document.documentElement.scrollHeight"))
    shot = page.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": 1440, "height": height, "scale": 1},
    })  # fmt: skip
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    Path(os.environ.get("GPUYARD_SCREENSHOT") or tmp_path / "status-page.png").write_bytes(png)


@pytest.mark.parametrize("team", ["vision", "robotics"])
def test_a_team_token_sees_only_its_own_jobs(page: WebDriver, live: w.World, team: str) -> None:
    sign_in(page, w.TOKENS[team])
    assert page.find_element(By.ID, "who-scope").text == f"team {team}"
    mine = live.of(team)
    others = [j for j in live.running + live.waiting if j.team != team]
    assert mine and others
    assert set(JOB_ID.findall(page.page_source)) == {j.job_id for j in mine}
    for j in others:
        assert j.name not in page.page_source
    positions = {e.job_id: e.position for e in live.service.queue(None)}
    queued = rows(page, "queue")
    assert {k: int(cells(r)[0]) for k, r in queued.items()} == {
        j.job_id: positions[j.job_id] for j in mine if j.job_id in positions
    }  # global positions
    assert set(rows(page, "running")) == {j.job_id for j in mine if j.placement}
    # nodes are an operator route: the page does not ask for them with a team token
    assert page.find_elements(By.CSS_SELECTOR, "#nodes .node") == []
    assert "admin tokens only" in page.find_element(By.ID, "nodes-note").text
    no_page_errors(page)


def test_a_wrong_token_gets_a_clear_message_and_is_forgotten(page: WebDriver) -> None:
    sign_in(page, "not-a-token")
    wait(page, lambda d: d.find_element(By.ID, "login-error").is_displayed())
    assert page.find_element(By.ID, "login-error").text == REFUSED
    assert not page.find_element(By.ID, "content").is_displayed()
    assert page.execute_script("return sessionStorage.getItem('gpuyard.token')") is None
    assert JOB_ID.findall(page.page_source) == []
    # the 401 of /v1/whoami is the console's only entry: the browser logs refused fetches
    logs = [e["message"] for e in console(page)]
    assert len(logs) == 1 and "/v1/whoami" in logs[0] and "401" in logs[0]


def test_the_page_follows_the_service_and_sign_out_forgets_the_token(
    page: WebDriver, live: w.World
) -> None:
    sign_in(page, w.TOKENS["speech"])
    page.get(f"{live.url}/ui?refresh=1")  # the tab keeps the token: loads by itself
    wait(page, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded"))
    assert set(rows(page, "running")) | set(rows(page, "queue")) == {
        j.job_id for j in live.of("speech")
    }
    first = page.find_element(By.TAG_NAME, "body").get_attribute("data-loaded")
    started = time.monotonic()
    wait(page, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-loaded") != first,
         timeout_s=5)  # fmt: skip
    assert time.monotonic() - started < 3  # refreshed by itself (?refresh=1: every second)
    page.find_element(By.ID, "signout").click()
    assert page.find_element(By.ID, "login").is_displayed()
    assert page.execute_script("return sessionStorage.getItem('gpuyard.token')") is None
    assert JOB_ID.findall(page.page_source) == []  # what it showed is gone too
