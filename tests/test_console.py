"""The console's data without a browser: the bounded history, /api/history, the page as
served (self-contained, no secret), and the controller feeding the history each cycle."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from autoscaler.config.secrets import registry as secret_registry
from autoscaler.core.model import Code, Decision, Direction
from autoscaler.runtime import console
from autoscaler.runtime.exporter import SharedState, serve
from autoscaler.runtime.history import History
from autoscaler.runtime.metrics import Metrics
from tests import fake_daemon
from tests.harness.prometheus import free_port

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def _decision(at: float, current: int = 1, desired: int = 1, reason: str = "in band") -> Decision:
    direction = Direction.UP if desired > current else Direction.HOLD
    code = Code.HEADROOM_SHORT if desired > current else Code.IN_BAND
    return Decision("web", at, current, desired, desired - current, (), direction, code, reason)


def test_history_keeps_one_window_and_at_most_max_points() -> None:
    h = History(window_seconds=100, max_points=30)
    for t in range(0, 200, 2):  # 100 cycles, 2 s apart
        h.record(_decision(1000.0 + t))
    points = h.snapshot()["groups"]["web"]["points"]
    assert len(points) == 30  # the cap before the window (50 points) is reached
    assert points[-1] == [1198.0, 1, 1]
    h = History(window_seconds=10, max_points=1000)
    for t in range(100):
        h.record(_decision(1000.0 + t))
    points = h.snapshot()["groups"]["web"]["points"]
    assert [p[0] for p in points] == [1000.0 + t for t in range(89, 100)]
    assert [p[0] for p in h.snapshot(since=1097.0)["groups"]["web"]["points"]] == [1098, 1099]


def test_history_logs_changes_not_cycles_and_is_bounded() -> None:
    h = History(max_decisions=3)
    for t in range(5):
        h.record(_decision(10.0 + t))  # the same hold, 5 cycles
    h.record(_decision(20.0, 1, 3, "short"))
    log = h.snapshot()["groups"]["web"]["decisions"]
    assert [(e["at"], e["last_at"], e["cycles"]) for e in log] == [(10, 14, 5), (20, 20, 1)]
    assert log[-1]["direction"] == "up" and log[-1]["code"] == "headroom_short"
    for t in range(4):  # a reason quoting a moving signal is still the same decision
        h.record(_decision(30.0 + t, 3, 3, f"free {t}.5 >= 4"))
    assert h.snapshot()["groups"]["web"]["decisions"][-1]["reason"] == "free 0.5 >= 4"
    for t in range(10):
        h.record(_decision(50.0 + t, t, t))
    assert len(h.snapshot()["groups"]["web"]["decisions"]) == 3


def test_history_starts_over_when_the_wall_clock_goes_back_and_forgets_removed_groups() -> None:
    h = History()
    h.record(_decision(5000.0))
    h.record(_decision(5001.0))
    h.record(_decision(1400.0))  # set back an hour and more
    assert h.snapshot()["groups"]["web"]["points"] == [[1400.0, 1, 1]]
    h.forget_others({"other"})
    assert h.snapshot()["groups"] == {}


@pytest.fixture
def exporter() -> Iterator[tuple[str, SharedState]]:
    state = SharedState(5)
    server, stop = serve(f"127.0.0.1:{free_port()}", Metrics(), state)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        stop()


def test_browsers_get_a_self_contained_page(exporter) -> None:
    url, _ = exporter
    r = requests.get(url + "/", headers={"Accept": BROWSER}, timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == console.CONTENT_TYPE
    csp = r.headers["Content-Security-Policy"]  # the browser enforces "nothing from elsewhere"
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp
    page = r.text
    assert page.startswith("<!doctype html>") and "<svg" not in page  # drawn by the script
    # Offline: no script, style, font or image from anywhere else, and relative fetches
    # (the page also works under a reverse proxy's path prefix).
    assert not re.search(r"<(script|link|img|iframe)[^>]+(src|href)=\"(?!data:)", page)
    urls = set(re.findall(r"[a-z]+://[^\s\"'`]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}, urls
    assert 'getJSON("status")' in page and '"api/history"' in page


def test_api_history_answers_the_ring_redacted(exporter) -> None:
    url, state = exporter
    token = "tok-console-9f8e7d6c5b4a"
    secret_registry.add(token)  # what the reader does with a bearer token it reads
    state.history.record(_decision(100.0))
    state.history.record(_decision(101.0, 1, 2, f"provider said: Bearer {token}"))
    r = requests.get(url + "/api/history", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    assert token not in r.text
    doc = r.json()
    assert doc["window_seconds"] == 3600
    assert doc["groups"]["web"]["points"] == [[100.0, 1, 1], [101.0, 1, 2]]
    assert "<redacted>" in doc["groups"]["web"]["decisions"][-1]["reason"]
    since = requests.get(url + "/api/history?since=100", timeout=5).json()
    assert since["groups"]["web"]["points"] == [[101.0, 1, 2]]
    for bad in ("x", "nan", "inf", ""):  # ignored: the whole window
        doc = requests.get(url + f"/api/history?since={bad}", timeout=5).json()
        assert len(doc["groups"]["web"]["points"]) == 2, bad


def test_the_controller_records_every_cycle(tmp_path: Path) -> None:
    d = fake_daemon.daemon(tmp_path, fake_daemon.group(), count=1)
    for signal in (1.0, 1.0, 9.0, 9.0):
        d.cycle(signal)
    doc = d.controller.shared.history.snapshot()
    points = doc["groups"]["g"]["points"]
    assert len(points) == 4
    assert [p[1:] for p in points[:2]] == [[1, 1], [1, 1]]
    assert points[2][2] > points[2][1]  # the rise: desired above current
    codes = [e["code"] for e in doc["groups"]["g"]["decisions"]]
    assert codes[0] != codes[-1]
    json.dumps(doc)  # what /api/history sends
