"""The controller loop's robustness, against a real (empty) Prometheus.

The provider here is an in-memory implementation of our own Provider interface whose
calls can be made to fail; nothing external is mocked.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence

import pytest
import requests

from autoscaler.config import Config, PrometheusConfig
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig, ProviderConfig
from autoscaler.providers.base import ActionResult, ReplicaProvider
from autoscaler.runtime import logs
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.exporter import SharedState, serve
from autoscaler.runtime.metrics import Metrics
from tests.harness.prometheus import PrometheusServer, free_port, idle

SECRET = "hunter2-very-secret"


class FlakyProvider(ReplicaProvider):
    kind = "flaky"

    def __init__(self, group: str) -> None:
        self.group = group
        self.replicas: dict[str, Replica] = {}
        self.fail_list = False
        self.fail_create: str | None = None
        self.quota: str | None = None
        self.created = 0

    def list(self) -> list[Replica]:
        if self.fail_list:
            raise RuntimeError(f"cloud API unreachable (token {SECRET})")
        return list(self.replicas.values())

    def create(self, count: int) -> ActionResult:
        if self.fail_create:
            raise RuntimeError(self.fail_create)
        res = ActionResult()
        if self.quota:
            res.quota_exceeded = self.quota
            return res
        for _ in range(count):
            self.created += 1
            rid = f"{self.group}-{self.created}"
            self.replicas[rid] = Replica(rid, self.group, ReplicaState.ACTIVE, time.time())
            res.succeeded.append(rid)
        return res

    def delete(self, replica_ids: Sequence[str]) -> ActionResult:
        res = ActionResult()
        for rid in replica_ids:
            self.replicas.pop(rid, None)
            res.succeeded.append(rid)
        return res

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    with idle() as prom:
        yield prom


def _config(url: str, *, dry_run: bool = False, password: str | None = None) -> Config:
    group = GroupConfig(
        name="g",
        provider=ProviderConfig(type="flaky"),
        min=2,
        max=5,
        replica_capacity=4,
        policies=(HeadroomPolicyConfig(name="headroom", min_available=4),),
        warmup_seconds=600,  # replicas count as fully free: no metrics needed here
        dry_run=dry_run,
    )
    return Config(
        prometheus=PrometheusConfig(
            url=url, timeout_seconds=2, username="ops" if password else None, password=password
        ),
        groups=(group,),
        interval_seconds=0.2,
    )


def _controller(config: Config) -> tuple[Controller, FlakyProvider, Metrics, SharedState]:
    provider = FlakyProvider("g")
    metrics = Metrics()
    shared = SharedState(config.interval_seconds)
    return Controller(config, {"g": provider}, metrics, shared), provider, metrics, shared


def _value(metrics: Metrics, name: str, labels: dict[str, str] | None = None) -> float:
    return metrics.registry.get_sample_value(name, labels or {}) or 0.0


def test_scales_to_min_and_exports(prometheus) -> None:
    c, provider, metrics, shared = _controller(_config(prometheus.url))
    assert c.cycle() is True
    assert len(provider.replicas) == 2
    assert _value(metrics, "autoscaler_heartbeat_total") == 1
    assert _value(metrics, "autoscaler_desired_replicas", {"group": "g"}) == 2
    assert (
        _value(
            metrics,
            "autoscaler_provider_requests_total",
            {"group": "g", "operation": "create", "result": "ok"},
        )
        == 2
    )
    assert shared.last_success is not None
    sd = shared.sd["direct"]
    assert sd == []  # in-memory replicas have no address: nothing to scrape
    c.close()


def test_dry_run_decides_but_never_acts(prometheus) -> None:
    c, provider, metrics, shared = _controller(_config(prometheus.url, dry_run=True))
    c.cycle()
    assert provider.replicas == {}
    assert c.groups["g"].decision.create == 2 and c.groups["g"].decision.dry_run
    c.close()


def test_loop_survives_provider_failures_logs_once_and_hides_secrets(prometheus, caplog) -> None:
    logs.redactor.add(SECRET)
    caplog.handler.addFilter(logs.redactor)
    c, provider, metrics, shared = _controller(_config(prometheus.url))
    provider.fail_list = True
    stop = threading.Event()
    thread = threading.Thread(target=c.run, args=(stop,))
    with caplog.at_level(logging.WARNING):
        thread.start()
        deadline = time.monotonic() + 10
        while _value(metrics, "autoscaler_heartbeat_total") < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        provider.fail_list = False
        while not provider.replicas and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert len(provider.replicas) == 2, "the loop recovered and acted"
    failures = _value(
        metrics, "requests_failures_total", {"method": "list", "endpoint": "provider:g"}
    )
    assert failures >= 5
    warnings = [r.getMessage() for r in caplog.records if "provider g list" in r.getMessage()]
    assert len(warnings) == 1, f"logged {len(warnings)} times, expected once: {warnings}"
    assert all(SECRET not in r.getMessage() for r in caplog.records)
    assert any("<redacted>" in w for w in warnings)
    c.close()


def test_create_exception_and_quota_are_counted(prometheus) -> None:
    c, provider, metrics, _ = _controller(_config(prometheus.url))
    provider.fail_create = "boom"
    c.cycle()
    assert (
        _value(metrics, "requests_failures_total", {"method": "create", "endpoint": "provider:g"})
        == 1
    )
    provider.fail_create = None
    provider.quota = "instances"
    c.cycle()
    assert (
        _value(metrics, "autoscaler_quota_exceeded_total", {"group": "g", "quota": "instances"})
        == 1
    )
    assert provider.replicas == {}
    c.close()


def test_healthz_turns_503_after_three_intervals_without_success() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: every query fails
    config = _config(url, password=SECRET)
    c, provider, metrics, shared = _controller(config)
    port = free_port()
    _, stop_server = serve(f"127.0.0.1:{port}", metrics, shared)
    try:
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200  # start-up grace
        for _ in range(3):
            assert c.cycle() is False
        time.sleep(3 * config.interval_seconds + 0.1)
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 503
        status = requests.get(f"{base}/status", timeout=5)
        assert status.status_code == 200 and SECRET not in status.text
        body = json.loads(status.text)
        assert body["groups"]["g"]["decision"]["code"] == "no_data"
        # min is a hard limit, data or not; nothing beyond it is created on missing data
        assert len(body["groups"]["g"]["replicas"]) == 2
        assert requests.get(f"{base}/sd?via=nope", timeout=5).status_code == 400
        metrics_text = requests.get(f"{base}/metrics", timeout=5).text
        assert "autoscaler_heartbeat_total 3.0" in metrics_text
        assert SECRET not in metrics_text
    finally:
        stop_server()
        c.close()
