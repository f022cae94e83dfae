"""Coming from ScaleIt: its six variables alone, its metrics, and the daemon end to end.

The end-to-end test runs what a ScaleIt user runs: the ScaleIt-compatible app (the
simulator, real HTTP on 127.0.0.1), `autoscaler bridge` reading its /app/status for a
real Prometheus (the JSON-path mode, `--metric app_cpu_high_priority=cpu.highPriority`),
and `autoscaler run` configured by ScaleIt's environment variables only.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_client import generate_latest

from autoscaler.compat import scaleit, simplescalevm
from autoscaler.config import ConfigError
from autoscaler.core.spec import TargetPolicyConfig
from autoscaler.providers.registry import build_provider
from autoscaler.runtime import daemon
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.metrics import Metrics
from autoscaler.testing.scaleit_app import ScaleItApp
from tests.harness.prometheus import REPO, PrometheusServer, free_port, stop_process, wait_http

SCALEIT_ENV = {
    "APP_SERVICE_URL": "http://127.0.0.1",
    "APP_SERVICE_PORT": "8123",
    "SCALE_RESOLUTION_TIME": "5",
    "SCALE_METRIC": "0.80",
    "SCALE_TOLERANCE": "0.10",
    "LOG_LEVEL": "INFO",
}


def test_scaleits_variables_alone_give_its_behaviour_and_what_it_lacked() -> None:
    c = scaleit.config_from_env(SCALEIT_ENV)
    assert c.interval_seconds == 5 and c.log_level == "info" and c.listen == "0.0.0.0:8000"
    (g,) = c.groups
    assert g.name == "scaleit" and g.provider.type == "http"
    assert g.provider.options["status_url"] == "http://127.0.0.1:8123/app/status"
    assert g.provider.options["set_url"] == "http://127.0.0.1:8123/app/replicas"
    assert g.provider.options["set_method"] == "PUT"
    assert (g.min, g.max) == (1, 100)  # floor 1 as ScaleIt, and a maximum it lacked
    (p,) = g.policies
    assert isinstance(p, TargetPolicyConfig)
    assert (p.target, p.tolerance_up, p.tolerance_down) == (0.8, 0.1, 0.1)
    assert p.tolerance_mode == "absolute"
    assert "app_cpu_high_priority" in p.query
    # Up at once, as ScaleIt; down damped (6 periods' window, at most half per cycle).
    assert g.scale_up.max_step_replicas is None and g.scale_up.max_step_percent is None
    assert g.scale_up.stabilization_seconds == 0 and g.scale_up.cooldown_seconds == 0
    assert g.scale_down.stabilization_seconds == 30 and g.scale_down.max_step_percent == 50
    # Missing data holds: no fallback count, samples older than 3 periods are missing.
    assert g.fallback_replicas is None and g.stale_after_seconds == 15
    assert g.expect_capacity is False


def test_scaleits_defaults_and_url_joining() -> None:
    env = {"AUTOSCALER_COMPAT": "scaleit"}
    assert scaleit.looks_like_scaleit(env) and not scaleit.looks_like_scaleit({"LOG_LEVEL": "x"})
    c = scaleit.config_from_env(env)
    opts = c.groups[0].provider.options
    assert opts["status_url"] == "http://localhost:8123/app/status"  # URL + ":" + PORT
    assert c.interval_seconds == 5
    c = scaleit.config_from_env({"APP_SERVICE_URL": "http://app/", "APP_SERVICE_PORT": "80"})
    assert c.groups[0].provider.options["set_url"] == "http://app:80/app/replicas"
    # AUTOSCALER_* overrides still apply on top
    c = scaleit.config_from_env({**SCALEIT_ENV, "AUTOSCALER_MAX_REPLICAS": "7"})
    assert c.groups[0].max == 7


def test_bad_scaleit_values_name_their_variable() -> None:
    with pytest.raises(ConfigError) as e:
        scaleit.config_from_env(
            {
                "APP_SERVICE_URL": "app",
                "APP_SERVICE_PORT": "http",
                "SCALE_RESOLUTION_TIME": "0",
                "SCALE_METRIC": "high",
                "SCALE_TOLERANCE": "-1",
            }
        )
    text = str(e.value)
    for name in (
        "APP_SERVICE_URL",
        "APP_SERVICE_PORT",
        "SCALE_RESOLUTION_TIME",
        "SCALE_METRIC",
        "SCALE_TOLERANCE",
    ):
        assert name in text


def test_the_daemon_picks_the_scaleit_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*simplescalevm.MARKERS, "AUTOSCALER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    for name, value in SCALEIT_ENV.items():
        monkeypatch.setenv(name, value)
    config = daemon.load(argparse.Namespace(config=None))
    assert config is not None and config.groups[0].name == "scaleit"


def test_scaleits_failure_series_exist_at_0_and_count_its_requests() -> None:
    with ScaleItApp(1.0, error_rate=1.0) as app:
        host, port = app.url.rsplit(":", 1)
        config = scaleit.config_from_env(
            {**SCALEIT_ENV, "APP_SERVICE_URL": host, "APP_SERVICE_PORT": port}
        )
        group = config.groups[0]
        providers = {group.name: build_provider(group, config)}
        metrics = Metrics()
        controller = Controller(config, providers, metrics, SharedState(config.interval_seconds))
        try:
            text = generate_latest(metrics.registry).decode()
            assert 'requests_failures_total{endpoint="/app/status",method="get"} 0.0' in text
            assert 'requests_failures_total{endpoint="/app/replicas",method="put"} 0.0' in text
            assert "autoscaler_heartbeat_total 0.0" in text
            band = metrics.registry.get_sample_value
            edge = {"group": "scaleit", "policy": "cpu"}
            name = "autoscaler_policy_tolerance_band"
            assert band(name, {**edge, "edge": "lower"}) == pytest.approx(0.7)
            assert band(name, {**edge, "edge": "upper"}) == pytest.approx(0.9)
            provider = controller.groups["scaleit"].provider
            with pytest.raises(Exception, match="HTTP 503"):
                provider.list()
            assert provider.create(1).failed
            value = metrics.registry.get_sample_value
            assert (
                value("requests_failures_total", {"method": "get", "endpoint": "/app/status"}) == 1
            )
            assert (
                value("requests_failures_total", {"method": "put", "endpoint": "/app/replicas"})
                == 1
            )
        finally:
            controller.close()


# --- end to end --------------------------------------------------------------------------


@pytest.fixture
def bridge() -> Iterator[str]:
    address = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "autoscaler",
            "bridge",
            "--listen",
            address,
            "--timeout",
            "1",
            "--capacity-key",
            "",
            "--termination-key",
            "",
            "--metric",
            "app_cpu_high_priority=cpu.highPriority",
            "--metric",
            "app_replicas=replicas",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://{address}/healthz")
        yield address
    finally:
        stop_process(proc)


def _prometheus_config(bridge: str, app: str, autoscaler: str) -> str:
    """What docs/scaleit.md tells a ScaleIt user to add to Prometheus, with 1 s scrapes."""
    return f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: scaleit_app
    metrics_path: /probe
    params: {{target: ["{app}/app/status"]}}
    static_configs:
      - targets: ["{bridge}"]
        labels: {{group: scaleit}}
  - job_name: autoscaler
    static_configs:
      - targets: ["{autoscaler}"]
"""


def _wait(what: str, predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


@pytest.mark.timeout(180)
def test_the_daemon_scales_the_app_up_on_load_and_back_down(bridge: str) -> None:
    listen = f"127.0.0.1:{free_port()}"
    with ScaleItApp(0.6, replicas=1, max_replicas=20, error_rate=0.03, seed=7) as app:
        host, port = app.url.rsplit(":", 1)
        with (
            PrometheusServer(
                autoscaler=listen, config_text=_prometheus_config(bridge, app.url, listen)
            ) as prom,
            tempfile.TemporaryDirectory() as state,
        ):
            env = {
                "PATH": os.environ["PATH"],
                "PYTHONPATH": str(REPO),
                # ScaleIt's variables, a 1 s period for the test ...
                **SCALEIT_ENV,
                "APP_SERVICE_URL": host,
                "APP_SERVICE_PORT": port,
                "SCALE_RESOLUTION_TIME": "1",
                # ... and where this test's Prometheus, port and state directory are.
                "AUTOSCALER_PROMETHEUS_URL": prom.url,
                "AUTOSCALER_LISTEN": listen,
                "AUTOSCALER_STATE_DIR": state,
            }
            log = Path(state) / "autoscaler.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "autoscaler", "run"],
                    cwd=REPO,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            try:
                wait_http(f"http://{listen}/metrics", timeout=20)
                prom.wait_for('app_cpu_high_priority{group="scaleit"}', timeout=30)
                time.sleep(3)
                assert app.replicas == 1  # cpu 0.6 is below the band, but 1 is the floor

                # Load: 4 replicas' worth. cpu 1.0 -> ceil(n / 0.8) each period until
                # cpu is inside [0.7, 0.9]: 5 replicas (0.8) at the least.
                started = time.monotonic()
                app.set_load(4.0)
                _wait("scale-up to >= 5 replicas", lambda: app.replicas >= 5, 40)
                up_seconds = time.monotonic() - started
                _wait("cpu back inside the band", lambda: 0.7 <= app.cpu() <= 0.9, 30)

                # Load gone: cpu 0.2 at 5 -> down, damped (6 s window, half per cycle),
                # to 1 (cpu 0.6: below the band, but the floor) or 2 (0.3 -> ceil(0.75) = 1).
                started = time.monotonic()
                app.set_load(0.6)
                _wait("scale-down to 1 replica", lambda: app.replicas == 1, 60)
                down_seconds = time.monotonic() - started

                metrics = requests.get(f"http://{listen}/metrics", timeout=5).text
                assert "autoscaler_heartbeat_total" in metrics
                assert 'requests_failures_total{endpoint="/app/status",method="get"}' in metrics
                assert 'requests_failures_total{endpoint="/app/replicas",method="put"}' in metrics
                # the failure series reach Prometheus with ScaleIt's labels
                prom.wait_for(
                    'requests_failures_total{method="put",endpoint="/app/replicas"}', timeout=20
                )
                print(f"scale-up to 5 in {up_seconds:.1f}s, back to 1 in {down_seconds:.1f}s")
                puts = [n for _, n in app.history]
                assert max(puts) <= 20 and min(puts) >= 1
            finally:
                stop_process(proc)
                print(log.read_text()[-3000:])
