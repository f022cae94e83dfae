"""Rules + real Prometheus + real Alertmanager: the autoscaler stops, the alert arrives.

A small real process stands in for the autoscaler: it exposes the contract's heartbeat
metrics with prometheus_client on a loopback port, can be told to stop succeeding, and is
then killed. Prometheus runs the project's prometheus.yml and rules; Alertmanager runs the
shipped alertmanager.yml. The alerts are read from Alertmanager's own API.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.harness.prometheus import PrometheusServer, free_port, wait_http

REPO = Path(__file__).resolve().parents[1]
AM_BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = pytest.mark.skipif(
    not (shutil.which("prometheus") and AM_BINARY),
    reason="prometheus and prometheus-alertmanager are not installed: run `make setup`",
)

# One 1-second cycle at a time; while the file `stuck` exists, cycles complete but fail.
FAKE_AUTOSCALER = """
import os, sys, time
from prometheus_client import Counter, Gauge, start_http_server
port, stuck = int(sys.argv[1]), sys.argv[2]
heartbeat = Counter("autoscaler_heartbeat", "cycles")
last = Gauge("autoscaler_last_success_timestamp_seconds", "last success")
Gauge("autoscaler_interval_seconds", "interval").set(1)
start_http_server(port, addr="127.0.0.1")
while True:
    heartbeat.inc()
    if not os.path.exists(stuck):
        last.set(time.time())
    time.sleep(1)
"""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def workdir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="alerting-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def alertmanager(workdir: Path) -> Iterator[str]:
    port = free_port()
    log = open(workdir / "alertmanager.log", "wb")
    proc = subprocess.Popen(
        [
            AM_BINARY,
            f"--config.file={REPO / 'alertmanager.yml'}",
            f"--storage.path={workdir / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip port on 0.0.0.0
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready")
        yield url
    finally:
        _stop(proc)
        log.close()


@pytest.fixture
def fake_autoscaler(workdir: Path) -> Iterator[tuple[subprocess.Popen, str, Path]]:
    port = free_port()
    stuck = workdir / "stuck"
    proc = subprocess.Popen([sys.executable, "-c", FAKE_AUTOSCALER, str(port), str(stuck)])
    try:
        address = f"127.0.0.1:{port}"
        wait_http(f"http://{address}/metrics")
        yield proc, address, stuck
    finally:
        _stop(proc)


def am_alerts(am_url: str) -> dict[str, dict]:
    r = requests.get(f"{am_url}/api/v2/alerts", timeout=5)
    r.raise_for_status()
    return {a["labels"]["alertname"]: a for a in r.json()}


def wait_alert(am_url: str, name: str, timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    seen: dict[str, dict] = {}
    while time.monotonic() < deadline:
        seen = am_alerts(am_url)
        if name in seen:
            return seen[name]
        time.sleep(0.5)
    raise TimeoutError(f"{name} never reached Alertmanager; it has {sorted(seen)}")


def test_stuck_then_stopped_autoscaler_alerts_reach_alertmanager(alertmanager, fake_autoscaler):
    proc, address, stuck = fake_autoscaler
    with PrometheusServer(
        autoscaler=address, alertmanager=alertmanager.removeprefix("http://")
    ) as prom:
        prom.wait_for('autoscaler_heartbeat_total{job="autoscaler"} >= 3', timeout=30)
        # Prometheus really knows this Alertmanager
        want = [f"{alertmanager}/api/v2/alerts"]
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            ams = requests.get(f"{prom.url}/api/v1/alertmanagers", timeout=5).json()["data"]
            if [a["url"] for a in ams["activeAlertmanagers"]] == want:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"Prometheus never discovered {want}: {ams}")
        healthy = am_alerts(alertmanager)
        for name in ("AutoscalerDown", "AutoscalerHeartbeatMissing", "AutoscalerNoRecentSuccess"):
            assert name not in healthy

        # Cycles keep completing but none succeeds: after 3 intervals (3 s here).
        stuck.touch()
        alert = wait_alert(alertmanager, "AutoscalerNoRecentSuccess", timeout=60)
        assert alert["labels"] == {
            "alertname": "AutoscalerNoRecentSuccess",
            "severity": "critical",
            "job": "autoscaler",
            "instance": address,
        }
        assert alert["annotations"]["summary"] == (
            f"Autoscaler {address} has had no successful cycle for 3 intervals"
        )
        assert "AutoscalerHeartbeatMissing" not in am_alerts(alertmanager)

        # Stopped: its series go stale at the next failed scrape; absent() and up==0 hold
        # for the alerts' 30 s.
        _stop(proc)
        alert = wait_alert(alertmanager, "AutoscalerHeartbeatMissing")
        assert alert["labels"] == {
            "alertname": "AutoscalerHeartbeatMissing",
            "severity": "critical",
            "job": "autoscaler",
        }
        assert alert["annotations"] == {
            "summary": "No autoscaler heartbeat in Prometheus",
            "description": (
                'autoscaler_heartbeat_total{job="autoscaler"} has no series: the autoscaler '
                "is not running or Prometheus does not scrape it. Nothing is being scaled."
            ),
            "runbook_url": "docs/alerts.md#autoscalerheartbeatmissing",
        }
        assert alert["status"]["state"] == "active"
        down = wait_alert(alertmanager, "AutoscalerDown", timeout=30)
        assert down["labels"]["instance"] == address
