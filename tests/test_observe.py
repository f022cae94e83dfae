"""observe.py against a real Prometheus scraping a real exporter with awkward values."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from autoscaler.config import (
    Config,
    GroupConfig,
    HeadroomPolicyConfig,
    PrometheusConfig,
    ProviderConfig,
    TargetPolicyConfig,
)
from autoscaler.model import Replica, ReplicaState
from autoscaler.observe import PrometheusReader
from tests.harness.prometheus import PrometheusServer, free_port

EXPOSITION = {
    "body": """# TYPE replica_capacity gauge
replica_capacity{group="a",replica="a1"} 3
replica_capacity{group="a",replica="a2"} NaN
replica_capacity{group="a",replica="a3"} -1
replica_capacity{group="a",replica="a4"} +Inf
replica_capacity{group="b",replica="b1"} 2.5
# TYPE replica_termination gauge
replica_termination{group="a",replica="a1"} 0
replica_termination{group="b",replica="b1"} 1
# TYPE app_load gauge
app_load{group="a"} 0.5
app_load{group="b"} 0.9
"""
}


class _Exporter(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = EXPOSITION["body"].encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Exporter)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
scrape_configs:
  - job_name: fake
    honor_labels: true
    static_configs: [{{targets: ["127.0.0.1:{port}"]}}]
"""
    prom = PrometheusServer(autoscaler="unused:1", config_text=config).start()
    try:
        prom.wait_for('replica_capacity{replica="b1"}')
        yield prom
    finally:
        prom.cleanup()
        server.shutdown()
        server.server_close()


def _group(name: str, query: str | None = None, stale: float = 30.0) -> GroupConfig:
    policies: tuple = (HeadroomPolicyConfig(name="headroom", min_available=1),)
    if query:
        policies += (TargetPolicyConfig(name="load", query=query, target=0.7),)
    return GroupConfig(
        name=name,
        provider=ProviderConfig(type="local"),
        min=0,
        max=5,
        replica_capacity=4,
        policies=policies,
        stale_after_seconds=stale,
    )


def _replicas(group: str, *ids: str) -> list[Replica]:
    return [Replica(id=i, group=group, state=ReplicaState.ACTIVE, created_at=0) for i in ids]


def _config(url: str, groups: tuple[GroupConfig, ...]) -> Config:
    return Config(prometheus=PrometheusConfig(url=url, timeout_seconds=2), groups=groups)


def test_values_pass_through_unchanged_and_are_split_by_group(prometheus) -> None:
    q = "max by (group) (app_load)"
    groups = (_group("a", q), _group("b", q))
    reader = PrometheusReader(_config(prometheus.url, groups))
    obs = reader.observe(
        groups,
        {"a": _replicas("a", "a1", "a2", "a3", "a4", "a5"), "b": _replicas("b", "b1")},
        time.time(),
    )
    a, b = obs["a"], obs["b"]
    assert a.prometheus_ok and b.prometheus_ok
    assert a.metrics["a1"].capacity == 3 and a.metrics["a1"].termination == 0
    assert math.isnan(a.metrics["a2"].capacity)  # NaN stays NaN: never read as zero
    assert a.metrics["a3"].capacity == -1
    assert a.metrics["a4"].capacity == math.inf
    assert "a5" not in a.metrics  # no series: absent, not zero
    assert b.metrics["b1"].capacity == 2.5 and b.metrics["b1"].termination == 1
    assert b.terminating_ids() == {"b1"}
    assert a.signals == {"load": 0.5} and b.signals == {"load": 0.9}


def test_query_count_does_not_grow_with_groups(prometheus) -> None:
    q = "max by (group) (app_load)"
    groups = tuple(_group(f"g{i}", q) for i in range(20))
    reader = PrometheusReader(_config(prometheus.url, groups))
    reader.observe(groups, {g.name: [] for g in groups}, time.time())
    assert reader.queries_last_cycle == 3  # capacity, termination, one shared target query


def test_stale_samples_are_missing_data(prometheus) -> None:
    groups = (_group("a", stale=2.0),)
    reader = PrometheusReader(_config(prometheus.url, groups))
    replicas = {"a": _replicas("a", "a1")}
    assert "a1" in reader.observe(groups, replicas, time.time())["a"].metrics
    # Seen from 10 s in the future, the newest sample is older than stale_after_seconds.
    assert "a1" not in reader.observe(groups, replicas, time.time() + 10)["a"].metrics


def test_prometheus_down_is_reported_not_read_as_zero() -> None:
    failures: list[tuple[str, str]] = []
    groups = (_group("a", "max by (group) (app_load)"),)
    config = Config(
        prometheus=PrometheusConfig(
            url=f"http://127.0.0.1:{free_port()}",
            timeout_seconds=1,
            username="ops",
            password="s3cret-pass",
        ),
        groups=groups,
    )
    reader = PrometheusReader(config, on_failure=lambda q, e: failures.append((q, e)))
    obs = reader.observe(groups, {"a": _replicas("a", "a1")}, time.time())["a"]
    assert obs.prometheus_ok is False
    assert obs.metrics == {} and obs.signals == {"load": None}
    assert {q for q, _ in failures} == {"capacity", "termination", "target"}
    assert all("s3cret-pass" not in e for _, e in failures)
