"""Rules + real Prometheus + real Alertmanager: the autoscaler stops, the alert arrives.

The real daemon (`python -m autoscaler run`) queries one Prometheus for its data, while a
second one, running the project's prometheus.yml and rules, scrapes the daemon and sends
alerts to a real Alertmanager running the shipped alertmanager.yml. Stopping the data
Prometheus makes the daemon stuck (cycles complete, none succeeds); killing the daemon
makes it gone. The alerts are read from Alertmanager's own API.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness.prometheus import PrometheusServer, free_port, stop_process, wait_http
from tests.harness.stack import Stack

REPO = Path(__file__).resolve().parents[1]


def runbook_url(alert: str) -> str:
    """As the shipped rules give it (absolute, rules/runbook_urls.py; test_rules checks it)."""
    for group in yaml.safe_load((REPO / "rules" / "autoscaler.alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alert:
                return rule["annotations"]["runbook_url"]
    raise KeyError(alert)


AM_BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = pytest.mark.skipif(
    not (shutil.which("prometheus") and AM_BINARY),
    reason="prometheus and prometheus-alertmanager are not installed: run `make setup`",
)


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
        stop_process(proc)
        log.close()


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


def test_stuck_then_stopped_autoscaler_alerts_reach_alertmanager(alertmanager):
    data = PrometheusServer(autoscaler="127.0.0.1:1", config_text="global: {}\n").start()
    idle_group = {  # nothing to scale: the test is about the autoscaler itself
        "min": 0,
        "max": 1,
        "replica_capacity": 1,
        "policies": [{"type": "headroom", "min_available": 0}],
    }
    stack = Stack(
        groups=lambda run_dir: {
            "idle": {**idle_group, "provider": {"type": "local", "run_dir": str(run_dir)}}
        },
        alertmanager=alertmanager.removeprefix("http://"),
        extra={"prometheus": {"url": data.url, "timeout_seconds": 1}},
    )
    try:
        stack.start()
        prom, address = stack.prometheus, f"127.0.0.1:{stack.port}"
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

        # Its data source gone, cycles keep completing but none succeeds.
        data.stop()
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
        stack.kill_autoscaler()
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
            "runbook_url": runbook_url("AutoscalerHeartbeatMissing"),
        }
        assert alert["status"]["state"] == "active"
        down = wait_alert(alertmanager, "AutoscalerDown", timeout=30)
        assert down["labels"]["instance"] == address
    finally:
        stack.cleanup()
        data.cleanup()
