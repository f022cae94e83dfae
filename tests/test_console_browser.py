"""The operator console in a real headless browser (Debian's chromium + chromium-driver).

A real daemon on a real Prometheus scales real local replicas; the page, loaded once,
must show the group, follow it as load makes it scale, show the Prometheus error of a
broken query, and never hold the Prometheus password in any form. A screenshot is
written to out/console.png for a person to look at.
"""

from __future__ import annotations

import base64
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from autoscaler.demo.loadgen import LoadGenerator, constant
from tests.harness.prometheus import REPO
from tests.harness.stack import Stack, local_group

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOT = REPO / "out" / "console.png"


def _missing() -> str | None:
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            return f"{path} missing (make setup-debs installs chromium and chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium missing (pip install -r requirements-dev.txt)"
    return None


pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
]


@pytest.fixture
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="console-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the page's console
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        driver.set_page_load_timeout(20)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(what: str, predicate: Callable[[], Any], timeout: float, log: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception:  # noqa: BLE001 - the page is re-rendered under our feet
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{log()}")


def _screenshot(driver: Any, path: Path) -> None:
    """The whole page, not only the window: what a person scrolling would see."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))


def _field(driver: Any, group: str, field: str) -> str:
    from selenium.webdriver.common.by import By

    card = driver.find_element(By.CSS_SELECTOR, f'section[data-group="{group}"]')
    return card.find_element(By.CSS_SELECTOR, f'[data-field="{field}"]').text


def test_console_follows_a_scaling_group_and_shows_no_secret(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    password = "pw-" + secrets.token_hex(8)
    user = "operator"
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()

    def groups(run_dir: Path) -> dict[str, Any]:
        return {
            "web": local_group(run_dir / "web"),
            # A query Prometheus refuses, holding the password: the error must reach the
            # page (issue #11: Prometheus errors were filtered out), the password not.
            "broken": local_group(
                run_dir / "broken",
                min=0,
                max=2,
                policies=[{"type": "target", "query": f'sum(up{{job="{password}"}}', "target": 1}],
            ),
        }

    stack = Stack(groups=groups)
    config = yaml.safe_load(stack.config_path.read_text())
    config["prometheus"].update(username=user, password=password)  # Prometheus ignores it
    stack.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    with stack as s:
        started = time.monotonic()
        browser.get(s.url + "/")
        assert "autoscaler" in browser.title

        def log() -> str:
            return "--- autoscaler log tail ---\n" + "\n".join(s.log_text().splitlines()[-30:])

        _wait("the page to show group web", lambda: _field(browser, "web", "min") == "1", 30, log)
        assert _field(browser, "web", "max") == "6"
        s.wait(
            "the first replica reporting",
            lambda: any(r["capacity"] is not None for r in s.group("web")["replicas"]),
            40,
        )
        _wait(
            "the page to show 1 current replica",
            lambda: _field(browser, "web", "current") == "1",
            15,
            log,
        )
        before = int(_field(browser, "web", "desired"))
        with LoadGenerator(
            constant(12.0),  # 12/s x 0.5 s = 6 busy slots > 4 slots of one replica
            lambda: [
                t for e in requests.get(f"{s.url}/sd", timeout=5).json() for t in e["targets"]
            ],
            balance="first",
            poisson=False,
            targets_refresh_seconds=1.0,
            timeout_seconds=3.0,
        ):
            _wait(
                "the page to show desired >= 2",
                lambda: int(_field(browser, "web", "desired")) >= 2,
                30,
                log,
            )
            _wait(
                "the page to show current >= 2",
                lambda: int(_field(browser, "web", "current")) >= 2,
                30,
                log,
            )
        scaled = time.monotonic() - started
        assert before == 1
        rows = browser.find_elements(By.CSS_SELECTOR, 'section[data-group="web"] tr[data-replica]')
        assert len(rows) >= 2, "the replica table did not follow"
        ups = browser.find_element(
            By.CSS_SELECTOR, 'section[data-group="web"] [data-field="decisions"]'
        ).text
        assert "headroom_short" in ups, ups  # the decision that scaled, with its code
        chart = browser.find_element(By.CSS_SELECTOR, 'section[data-group="web"] .chart')
        assert int(chart.get_attribute("data-points")) >= 2
        assert len(chart.find_elements(By.CSS_SELECTOR, "path")) == 2  # current and desired
        errors = _wait(
            "the Prometheus error on the page",
            lambda: browser.find_element(By.ID, "errors").text,
            20,
            log,
        )
        assert "parse error" in errors or "bad_data" in errors, errors

        _screenshot(browser, SCREENSHOT)
        print(f"\nconsole screenshot: {SCREENSHOT} (scaled on the page after {scaled:.1f}s)")

        texts = {
            "page source": browser.page_source,
            "/status": requests.get(f"{s.url}/status", timeout=5).text,
            "/api/history": requests.get(f"{s.url}/api/history", timeout=5).text,
            "/ (html)": requests.get(f"{s.url}/", headers={"Accept": "text/html"}, timeout=5).text,
        }
        for where, text in texts.items():
            for secret in (password, pair):
                assert secret not in text, f"a secret reached {where}"
        # No script error, no resource refused by the page's CSP, nothing failed to load.
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
        # JSON clients still get SimpleScaleVM's answer on the same server.
        assert requests.get(f"{s.url}/", timeout=5).json() == {"status": 1, "isMaster": True}
