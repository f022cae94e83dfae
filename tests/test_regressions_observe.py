"""Regression tests for issue #9, defects 12, 15, 19, 20 and 21 (observe and simulate).

Each test states the behaviour the issue asks for. Prometheus is played by a tiny HTTP
server on 127.0.0.1 whose answers each test chooses (a real Prometheus cannot be made to
send a malformed or trickled answer), except where a selector must really be evaluated.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from autoscaler import simulation
from autoscaler.config import Config, ConfigError, PrometheusConfig
from autoscaler.core.model import Replica, ReplicaState
from autoscaler.core.policies import propose
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    ProviderConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)
from autoscaler.observe.prometheus import PrometheusReader
from autoscaler.providers.registry import parse_config
from autoscaler.runtime.controller import Controller
from autoscaler.runtime.exporter import SharedState
from autoscaler.runtime.metrics import Metrics
from autoscaler.simulation.replay import replay
from autoscaler.simulation.spec import PolicySpec, ReplicaModel, Signal
from autoscaler.simulation.trace import Trace
from tests.builders import _call
from tests.builders import listed as _replicas
from tests.builders import reader_config as _config
from tests.builders import reader_group as _group
from tests.harness.prometheus import PrometheusServer, free_port, http_server, scraping
from tests.test_controller import FlakyProvider

# --- a Prometheus whose answers the test writes ------------------------------------------

# Given the PromQL of a request, returns (HTTP status, body) or a callable that writes the
# answer itself to the handler (for trickled or hanging answers).
Answer = tuple[int, bytes] | Callable[[BaseHTTPRequestHandler], None]


class FakePrometheus:
    def __init__(self, answer: Callable[[str], Answer]) -> None:
        self.answer = answer
        self.queries: list[str] = []
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self, query: str) -> None:
                with fake.lock:
                    fake.queries.append(query)
                res = fake.answer(query)
                if callable(res):
                    res(self)
                    return
                status, body = res
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                params = parse_qs(urlsplit(self.path).query)
                self._serve(params.get("query", [""])[0])

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                params = parse_qs(self.rfile.read(n).decode())
                self._serve(params.get("query", [""])[0])

            def log_message(self, *args: object) -> None:
                pass

        self._serving = http_server(Handler)
        self.server = self._serving.__enter__()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self._serving.__exit__(None, None, None)


@pytest.fixture
def fake_prometheus() -> Iterator[Callable[[Callable[[str], Answer]], FakePrometheus]]:
    made: list[FakePrometheus] = []

    def make(answer: Callable[[str], Answer]) -> FakePrometheus:
        made.append(FakePrometheus(answer))
        return made[-1]

    yield make
    for f in made:
        f.close()


def ok_matrix(series: list[dict[str, Any]]) -> tuple[int, bytes]:
    doc = {"status": "success", "data": {"resultType": "matrix", "result": series}}
    return 200, json.dumps(doc).encode()


def ok_vector(series: list[dict[str, Any]]) -> tuple[int, bytes]:
    doc = {"status": "success", "data": {"resultType": "vector", "result": series}}
    return 200, json.dumps(doc).encode()


def trickle(seconds: float, every: float = 0.1) -> Callable[[BaseHTTPRequestHandler], None]:
    """An answer whose headers arrive at once and whose body arrives one byte per `every`
    seconds for `seconds`: no single socket read ever waits long."""

    def write(h: BaseHTTPRequestHandler) -> None:
        body = (
            b" " * int(seconds / every)
            + json.dumps(
                {"status": "success", "data": {"resultType": "matrix", "result": []}}
            ).encode()
        )
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            for i in range(len(body)):
                h.wfile.write(body[i : i + 1])
                h.wfile.flush()
                if i < int(seconds / every):
                    time.sleep(every)
        except OSError:
            pass  # the client gave up: that is the point

    return write


def hang(seconds: float) -> Callable[[BaseHTTPRequestHandler], None]:
    """No answer at all for `seconds` (a read timeout), then an empty result."""

    def write(h: BaseHTTPRequestHandler) -> None:
        time.sleep(seconds)
        status, body = ok_matrix([])
        try:
            h.send_response(status)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
        except OSError:
            pass

    return write


def _raw(url: str, **top: Any) -> dict[str, Any]:
    """A config document with one local group `a` (what parse_config reads)."""
    return {
        "prometheus": {"url": url, "timeout_seconds": 2},
        "groups": {
            "a": {
                "provider": {"type": "local"},
                "min": 0,
                "max": 5,
                "replica_capacity": 4,
                "policies": [{"type": "headroom", "min_available": 1}],
            }
        },
        **top,
    }


# --- 12. signals can be scoped ---------------------------------------------------------------


def test_12_capacity_metric_accepts_a_series_selector_and_refuses_a_broken_one() -> None:
    cfg = parse_config(
        _raw(
            "http://127.0.0.1:9090",
            capacity_metric='replica_capacity{job="replicas"}',
            termination_metric='replica_termination{job="replicas",env=~"prod|staging"}',
        ),
        {},
    )
    assert cfg.capacity_metric == 'replica_capacity{job="replicas"}'
    for good in (
        "ns:replica_capacity",
        "c{}",
        'c{job="x",}',
        "c{ a =~ 'x|y' , b != \"z\" }",
        'c{a="quote \\" inside"}',
        "c{a=`raw`}",
    ):
        assert parse_config(_raw("http://127.0.0.1:9090", capacity_metric=good), {})
    for bad in ("replica_capacity{job=replicas}", "replica_capacity{", "1abc", 'x{a="b"} or y'):
        with pytest.raises(ConfigError, match="capacity_metric"):
            parse_config(_raw("http://127.0.0.1:9090", capacity_metric=bad), {})


@pytest.fixture(scope="module")
def shared_prometheus() -> Iterator[PrometheusServer]:
    """A real Prometheus scraping the series of two autoscalers (a and b) that both scale
    a group named `web`, told apart by an `autoscaler` target label."""
    body = """# TYPE replica_capacity gauge
replica_capacity{autoscaler="a",group="web",replica="r1"} 3
replica_capacity{autoscaler="b",group="web",replica="r1"} 0
# TYPE replica_termination gauge
replica_termination{autoscaler="a",group="web",replica="r1"} 0
replica_termination{autoscaler="b",group="web",replica="r1"} 1
"""
    with scraping(lambda job: body, ready='replica_termination{autoscaler="b"}') as prom:
        yield prom


def test_12_two_autoscalers_sharing_prometheus_read_only_their_own_series(
    shared_prometheus,
) -> None:
    raw = _raw(
        shared_prometheus.url,
        capacity_metric='replica_capacity{autoscaler="a"}',
        termination_metric='replica_termination{autoscaler="a"}',
    )
    raw["groups"] = {"web": raw["groups"]["a"]}
    cfg = parse_config(raw, {})
    reader = PrometheusReader(cfg)
    obs = reader.observe(cfg.groups, {"web": _replicas("web", "r1")}, time.time())["web"]
    assert obs.metrics["r1"].capacity == 3 and obs.metrics["r1"].termination == 0


def test_12_group_and_replica_labels_are_configurable_and_still_batched(fake_prometheus) -> None:
    now = time.time()

    def answer(query: str) -> Answer:
        metric = "replica_capacity" if "capacity" in query else "replica_termination"
        value = {"replica_capacity": "2", "replica_termination": "0"}[metric]
        return ok_matrix(
            [
                {"metric": {"pool": g, "instance_id": f"{g}1"}, "values": [[now - 1, value]]}
                for g in ("a", "b", "c")
            ]
        )

    prom = fake_prometheus(answer)
    raw = _raw(prom.url, group_label="pool", replica_label="instance_id")
    raw["groups"] = {g: raw["groups"]["a"] for g in ("a", "b", "c")}
    cfg = parse_config(raw, {})
    reader = PrometheusReader(cfg)
    obs = reader.observe(cfg.groups, {g: _replicas(g, f"{g}1") for g in "abc"}, now)
    assert reader.queries_last_cycle == 2  # one per signal, for every group
    for g in "abc":
        assert obs[g].metrics[f"{g}1"].capacity == 2


def test_12_sd_targets_carry_the_configured_labels_and_the_static_ones(fake_prometheus) -> None:
    prom = fake_prometheus(lambda q: ok_matrix([]))
    raw = _raw(
        prom.url,
        group_label="pool",
        replica_label="instance_id",
        target_labels={"autoscaler": "a"},
    )
    cfg = parse_config(raw, {})
    cfg = dataclasses.replace(
        cfg, groups=(dataclasses.replace(cfg.groups[0], provider=ProviderConfig(type="flaky")),)
    )
    provider = FlakyProvider("a")
    provider.replicas["a-1"] = Replica(
        "a-1", "a", ReplicaState.ACTIVE, created_at=0, address="10.0.0.1:9100"
    )
    c = Controller(cfg, {"a": provider}, Metrics(), SharedState(cfg.interval_seconds))
    try:
        c.cycle()
        assert c.shared.sd["direct"] == [
            {
                "targets": ["10.0.0.1:9100"],
                "labels": {"pool": "a", "instance_id": "a-1", "autoscaler": "a"},
            }
        ]
    finally:
        c.close()


# --- 19. conflicting samples for one replica are invalid, not merged ------------------------


def test_19_conflicting_series_for_one_replica_are_invalid_and_reported(fake_prometheus) -> None:
    now = time.time()

    def answer(query: str) -> Answer:
        if "capacity" in query:
            return ok_matrix(
                [
                    # the real exporter, and a stale one still scraped under another job
                    {
                        "metric": {"job": "replicas", "group": "a", "replica": "a1"},
                        "values": [[now - 2, "3"]],
                    },
                    {
                        "metric": {"job": "old", "group": "a", "replica": "a1"},
                        "values": [[now - 1, "0"]],
                    },
                    {"metric": {"group": "a", "replica": "a2"}, "values": [[now - 1, "1"]]},
                ]
            )
        return ok_matrix([])

    prom = fake_prometheus(answer)
    groups = (_group("a"),)
    reader = PrometheusReader(_config(prom.url, groups))
    obs = reader.observe(groups, {"a": _replicas("a", "a1", "a2")}, now)["a"]
    a1 = obs.metrics.get("a1")
    assert a1 is None or a1.capacity is None, f"conflicting samples were merged into {a1}"
    assert obs.metrics["a2"].capacity == 1  # the other replica is unaffected


def test_19_conflicts_are_counted_and_shown_in_status(fake_prometheus) -> None:
    now = time.time()

    def answer(query: str) -> Answer:
        if "capacity" in query:
            return ok_matrix(
                [
                    {"metric": {"job": "x", "group": "g", "replica": r}, "values": [[now, v]]}
                    for r in ("g-1",)
                    for v in ("3", "0")
                ]
            )
        return ok_matrix([])

    prom = fake_prometheus(answer)
    group = GroupConfig(
        name="g",
        provider=ProviderConfig(type="flaky"),
        min=1,
        max=5,
        replica_capacity=4,
        policies=(HeadroomPolicyConfig(name="headroom", min_available=1),),
        warmup_seconds=0,
    )
    cfg = _config(prom.url, (group,))
    provider = FlakyProvider("g")
    provider.replicas["g-1"] = Replica("g-1", "g", ReplicaState.ACTIVE, created_at=0)
    metrics = Metrics()
    c = Controller(cfg, {"g": provider}, metrics, SharedState(1.0), clock=lambda: now)
    try:
        c.cycle()
        replica = c.shared.status["groups"]["g"]["replicas"][0]
        assert replica["capacity"] is None
        assert "conflict" in json.dumps(c.shared.status["groups"]["g"]), c.shared.status
        counted = metrics.registry.get_sample_value(
            "autoscaler_invalid_samples_total",
            {"group": "g", "signal": "capacity", "reason": "conflict"},
        )
        assert counted == 1
    finally:
        c.close()


# --- 20. every answer is validated -----------------------------------------------------------

BAD_ANSWERS: dict[str, bytes] = {
    "not JSON": b"<html>proxy error</html>",
    "JSON but not an object": b"[1, 2]",
    "no data": b'{"status": "success"}',
    "status error": b'{"status": "error", "errorType": "bad_data", "error": "parse error"}',
    "status missing": b'{"data": {"resultType": "matrix", "result": []}}',
    "result is an object": b'{"status": "success", "data": {"resultType": "matrix", "result": {}}}',
    "data is a list": b'{"status": "success", "data": []}',
    "resultType scalar": b'{"status": "success", "data": {"resultType": "scalar", '
    b'"result": [1, "2"]}}',
    "series without metric": b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": [{"values": [[1, "2"]]}]}}',
    "series not an object": b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": ["x"]}}',
    "values not pairs": b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": [{"metric": {"group": "a", "replica": "a1"}, "values": [[1]]}]}}',
    "value not a string": b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": [{"metric": {"group": "a", "replica": "a1"}, "values": [[1, 2]]}]}}',
    "values not a list": b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": [{"metric": {"group": "a", "replica": "a1"}, "values": "1"}]}}',
    "timestamp not finite": b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": [{"metric": {"group": "a", "replica": "a1"}, "values": [["NaN", "1"]]}]}}',
    "timestamp infinite": b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": [{"metric": {"group": "a", "replica": "a1"}, "values": [[1e400, "1"]]}]}}',
    "labels not strings": b'{"status": "success", "data": {"resultType": "matrix", '
    b'"result": [{"metric": {"group": 1, "replica": "a1"}, "values": [[1, "1"]]}]}}',
}


def test_20_answers_that_are_not_a_prometheus_result_are_query_failures(fake_prometheus) -> None:
    """Each bad answer (HTTP 200) is a failed query: reported, never an exception, never data."""
    current: dict[str, bytes] = {}
    prom = fake_prometheus(lambda q: (200, current["body"]))
    groups = (_group("a"),)
    wrong: dict[str, str] = {}
    for name, body in BAD_ANSWERS.items():
        current["body"] = body
        failures: list[tuple[str, str]] = []
        reader = PrometheusReader(
            _config(prom.url, groups), on_failure=lambda q, e, f=failures: f.append((q, e))
        )
        try:
            obs = reader.observe(groups, {"a": _replicas("a", "a1")}, time.time())["a"]
        except Exception as e:  # noqa: BLE001 - collected: the assertion lists them all
            wrong[name] = f"raised {type(e).__name__}: {e}"
            continue
        if (
            obs.prometheus_ok
            or obs.metrics
            or {q for q, _ in failures}
            != {
                "capacity",
                "termination",
            }
        ):
            wrong[name] = f"ok={obs.prometheus_ok} metrics={obs.metrics} failures={failures}"
    assert wrong == {}, "\n".join(f"{k}: {v}" for k, v in wrong.items())


def test_20_a_bad_answer_counts_as_a_query_failure_not_a_cycle_failure(
    fake_prometheus, caplog
) -> None:
    prom = fake_prometheus(lambda q: (200, BAD_ANSWERS["no data"]))
    group = dataclasses.replace(_group("g"), provider=ProviderConfig(type="flaky"))
    cfg = Config(
        prometheus=PrometheusConfig(url=prom.url, timeout_seconds=2),
        groups=(group,),
        interval_seconds=0.05,
    )
    metrics = Metrics()
    c = Controller(cfg, {"g": FlakyProvider("g")}, metrics, SharedState(0.05))
    stop = threading.Event()
    t = threading.Thread(target=c.run, args=(stop,))

    def value(method: str, endpoint: str) -> float:
        labels = {"method": method, "endpoint": endpoint}
        return metrics.registry.get_sample_value("requests_failures_total", labels) or 0.0

    with caplog.at_level(logging.WARNING):
        t.start()
        # Several cycles, however slowly a loaded machine runs them.
        deadline = time.monotonic() + 30
        while value("query", "prometheus") < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        t.join(5)
    c.close()

    assert value("cycle", "autoscaler") == 0
    assert value("query", "prometheus") >= 4  # two queries a cycle, several cycles
    assert c.shared.status is not None and c.shared.status["prometheus_ok"] is False
    logged = [
        r.getMessage() for r in caplog.records if "prometheus query capacity" in r.getMessage()
    ]
    assert len(logged) == 1 and "invalid answer: no `data` object" in logged[0], logged
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


# --- 21. a deadline per query and per cycle; SIGTERM honoured within a second ----------------


def test_21_a_trickled_answer_is_cut_at_the_query_deadline(fake_prometheus) -> None:
    prom = fake_prometheus(lambda q: trickle(seconds=4))
    groups = (_group("a"),)
    failures: list[tuple[str, str]] = []
    reader = PrometheusReader(
        _config(prom.url, groups, timeout=1.0), on_failure=lambda q, e: failures.append((q, e))
    )
    start = time.monotonic()
    obs = reader.observe(groups, {"a": _replicas("a", "a1")}, time.time())["a"]
    took = time.monotonic() - start
    assert took < 3.0, f"two queries with a 1 s timeout took {took:.1f}s"
    assert not obs.prometheus_ok
    assert {q for q, _ in failures} == {"capacity", "termination"}


def test_21_a_read_timeout_is_not_retried(fake_prometheus) -> None:
    prom = fake_prometheus(lambda q: hang(3))
    groups = (_group("a"),)
    reader = PrometheusReader(_config(prom.url, groups, timeout=0.5))
    start = time.monotonic()
    reader.observe(groups, {"a": _replicas("a", "a1")}, time.time())
    took = time.monotonic() - start
    assert len(prom.queries) == 2, f"expected one request per query, got {prom.queries}"
    assert took < 2.0


def test_21_the_cycle_has_a_deadline_too(fake_prometheus) -> None:
    """Many slow target queries share one cycle budget instead of adding up."""
    prom = fake_prometheus(lambda q: trickle(seconds=2.5))
    groups = tuple(_group(f"g{i}", f"max by (group) (load{i})") for i in range(3))
    cfg = Config(
        prometheus=PrometheusConfig(url=prom.url, timeout_seconds=1.0),
        groups=groups,
        interval_seconds=2.0,
    )
    reader = PrometheusReader(cfg)
    start = time.monotonic()
    reader.observe(groups, {g.name: [] for g in groups}, time.time())
    took = time.monotonic() - start
    assert took < 3.0, f"5 queries took {took:.1f}s, past a 2 s cycle"


def test_21_a_stop_request_interrupts_a_query_in_progress(fake_prometheus) -> None:
    prom = fake_prometheus(lambda q: trickle(seconds=8))
    group = GroupConfig(
        name="g",
        provider=ProviderConfig(type="flaky"),
        min=0,
        max=5,
        replica_capacity=4,
        policies=(HeadroomPolicyConfig(name="headroom", min_available=0),),
    )
    cfg = Config(
        prometheus=PrometheusConfig(url=prom.url, timeout_seconds=20),
        groups=(group,),
        interval_seconds=30,
    )
    c = Controller(cfg, {"g": FlakyProvider("g")}, Metrics(), SharedState(30))
    stop = threading.Event()
    t = threading.Thread(target=c.run, args=(stop,))
    t.start()
    deadline = time.monotonic() + 5
    while not prom.queries and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # the query is in progress
    asked = time.monotonic()
    stop.set()
    t.join(5)
    took = time.monotonic() - asked
    c.close()
    assert not t.is_alive()
    assert took < 1.0, f"stop honoured after {took:.1f}s"


# --- 15. the simulator's sensor window ------------------------------------------------------


def _hourly_jump() -> Trace:
    """Hourly samples: 10 for two hours, then 40."""
    return Trace("hourly", 0.0, 3600.0, (10.0, 10.0, 40.0, 40.0))


def test_15_the_sensor_is_a_one_minute_mean_on_an_hourly_trace() -> None:
    model = ReplicaModel(per_replica=1.0, boot_delay=120)
    group = GroupConfig(
        name="sim",
        provider=ProviderConfig(type="simulated"),
        min=1,
        max=100,
        replica_capacity=1.0,
        policies=(TargetPolicyConfig(name="u", query="u", target=1.0),),
        scale_up=ScalingBehavior(),  # no step limit: the count follows the sensor at once
    )
    spec = PolicySpec("t", group, interval_seconds=60.0, signal=Signal.UTILIZATION_HEALTHY)
    run = replay(_hourly_jump(), spec, model, initial=10)
    tl = run.timeline
    jump = tl.t.index(7200.0)
    # One minute after the jump a one-minute sensor sees 40 and asks for 40 replicas; a
    # one-hour mean would see (59 * 10 + 40) / 60 = 10.5 and barely move.
    assert tl.desired[jump + 1] >= 40, tl.desired[jump : jump + 5]


def test_15_the_sensor_window_is_an_option_of_simulate(tmp_path) -> None:
    parser = argparse.ArgumentParser()
    simulation.add_arguments(parser)
    args = parser.parse_args(
        ["--trace", str(tmp_path / "t.csv"), "--per-replica", "1", "--sensor-window", "3600"]
    )
    assert args.sensor_window == 3600


def _logged_at(lines: list[str], message: str) -> datetime.datetime:
    """When the daemon logged `message`, by its own log timestamp (asctime, ms)."""
    (line,) = [x for x in lines if message in x]
    return datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def test_21_sigterm_stops_the_daemon_within_a_second(fake_prometheus, tmp_path) -> None:
    """`autoscaler run`, stuck in a trickled query with a 30 s timeout, exits on SIGTERM.

    Promptness is measured from the signal's delivery (the handler's log line) to the end
    of the shutdown (the daemon's last log line), both stamped by the daemon: on a loaded
    machine the test's own wake-ups and the interpreter's teardown are not the daemon's.
    """
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    from tests.harness.stack import local_group

    prom = fake_prometheus(lambda q: trickle(seconds=30))
    group = local_group(tmp_path / "run", min=0)
    group["policies"] = [{"type": "headroom", "min_available": 0}]
    config = {
        "prometheus": {"url": prom.url, "timeout_seconds": 30},
        "interval_seconds": 30,
        "listen": f"127.0.0.1:{free_port()}",
        "groups": {"web": group},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "autoscaler", "run", "--config", str(path)],
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(repo)},
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60  # a loaded machine starts Python slowly
        while not prom.queries and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert prom.queries, "the daemon never queried Prometheus\n" + "".join(lines)
        time.sleep(0.3)  # the query is in progress
        proc.send_signal(signal.SIGTERM)
        # Well before the trickle's 30 s: the query in progress was abandoned.
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
    output = "".join(lines)
    assert code == 0, output
    took = _logged_at(lines, "autoscaler stopped") - _logged_at(lines, "SIGTERM received")
    assert took.total_seconds() < 1.0, f"SIGTERM honoured after {took}\n{output}"


def test_21_the_exporter_stops_without_waiting_for_a_half_second_poll() -> None:
    """Stopping the exporter waited for its loop's next poll, 0.5 s by default: half of
    the SIGTERM budget above. Stopped 0.1 s into a poll, the old loop took 0.4 s more."""
    from autoscaler.runtime.exporter import serve

    took = []
    for _ in range(3):  # the quickest of three: a loaded machine's stalls are not the poll
        _, stop = serve(f"127.0.0.1:{free_port()}", Metrics(), SharedState(30))
        time.sleep(0.1)
        asked = time.monotonic()
        stop()
        took.append(time.monotonic() - asked)
    assert min(took) < 0.25, took


def test_19_agreeing_duplicates_are_one_value_and_stale_ones_are_ignored(fake_prometheus) -> None:
    now = time.time()

    def answer(query: str) -> Answer:
        if "capacity" in query:
            return ok_matrix(
                [
                    # scraped twice (two jobs), same value: not a conflict
                    {"metric": {"job": "x", "group": "a", "replica": "a1"}, "values": [[now, "2"]]},
                    {"metric": {"job": "y", "group": "a", "replica": "a1"}, "values": [[now, "2"]]},
                    # a series that ended before stale_after_seconds: not a value, no conflict
                    {
                        "metric": {"job": "x", "group": "a", "replica": "a2"},
                        "values": [[now - 60, "0"]],
                    },
                    {"metric": {"job": "y", "group": "a", "replica": "a2"}, "values": [[now, "1"]]},
                ]
            )
        return ok_matrix([])

    prom = fake_prometheus(answer)
    groups = (dataclasses.replace(_group("a"), stale_after_seconds=30.0),)
    reader = PrometheusReader(_config(prom.url, groups))
    obs = reader.observe(groups, {"a": _replicas("a", "a1", "a2")}, now)["a"]
    assert obs.metrics["a1"].capacity == 2
    assert obs.metrics["a2"].capacity == 1
    assert reader.invalid_last_cycle == []


def test_19_conflicting_series_for_one_groups_target_signal_are_invalid(fake_prometheus) -> None:
    now = time.time()
    query = "max by (group, job) (app_load)"  # forgot to aggregate `job` away

    def answer(q: str) -> Answer:
        if q == query:
            return ok_vector(
                [
                    {"metric": {"group": "a", "job": "x"}, "value": [now, "0.5"]},
                    {"metric": {"group": "a", "job": "y"}, "value": [now, "0.9"]},
                    {"metric": {"group": "b", "job": "x"}, "value": [now, "0.7"]},
                ]
            )
        return ok_matrix([])

    prom = fake_prometheus(answer)
    groups = (_group("a", query), _group("b", query))
    invalid: list = []
    reader = PrometheusReader(_config(prom.url, groups), on_invalid=invalid.append)
    obs = reader.observe(groups, {"a": [], "b": []}, now)
    assert obs["a"].signals == {"load": None}
    assert obs["b"].signals == {"load": 0.7}
    assert [(i.group, i.signal, i.replica, i.reason) for i in invalid] == [
        ("a", "load", None, "conflict")
    ]


def test_20_valid_answers_keep_nan_and_infinite_values_for_the_core_to_judge(
    fake_prometheus,
) -> None:
    now = time.time()
    prom = fake_prometheus(
        lambda q: ok_matrix(
            [
                {"metric": {"group": "a", "replica": r}, "values": [[now - 2, "1"], [now - 1, v]]}
                for r, v in (("a1", "NaN"), ("a2", "+Inf"), ("a3", "-1"))
            ]
        )
    )
    groups = (_group("a"),)
    reader = PrometheusReader(_config(prom.url, groups))
    obs = reader.observe(groups, {"a": _replicas("a", "a1", "a2", "a3")}, now)["a"]
    assert obs.prometheus_ok
    assert math.isnan(obs.metrics["a1"].capacity)
    assert obs.metrics["a2"].capacity == math.inf and obs.metrics["a3"].capacity == -1


def test_19_conflicting_history_series_give_no_forecast_and_are_refetched(fake_prometheus) -> None:
    from autoscaler.core.spec import PredictivePolicyConfig

    policy = PredictivePolicyConfig(
        name="forecast",
        query="max by (group) (app_demand)",
        demand_per_replica=1.0,
        season_seconds=3600,
        seasons=1,
        level_seconds=300,
        trend_seconds=0,
    )
    conflict = {"on": True}

    def answer(q: str) -> Answer:
        if q != policy.query:
            return ok_matrix([])
        points = [[t, "5"] for t in range(0, 7200, 60)]
        series = [{"metric": {"group": "a"}, "values": points}]
        if conflict["on"]:
            series.append({"metric": {"group": "a", "job": "old"}, "values": [[600, "0"]]})
        return ok_matrix(series)

    prom = fake_prometheus(answer)
    group = dataclasses.replace(_group("a"), policies=(policy,))
    cfg = Config(
        prometheus=PrometheusConfig(url=prom.url, timeout_seconds=2),
        groups=(group,),
        interval_seconds=60,
    )
    invalid: list = []
    reader = PrometheusReader(cfg, on_invalid=invalid.append)
    obs = reader.observe((group,), {"a": []}, 7200.0)["a"]
    assert obs.histories == {}  # no history, so no forecast
    assert _call(propose, policy, obs, group).desired is None
    assert [(i.group, i.signal, i.reason) for i in invalid] == [("a", "forecast", "conflict")]
    assert reader.histories[policy.query].end is None  # fetched in full next time
    conflict["on"] = False
    obs = reader.observe((group,), {"a": []}, 7200.0)["a"]
    assert _call(propose, policy, obs, group).signal == pytest.approx(5.0)


def test_20_a_truncated_or_dropped_answer_is_a_query_failure(fake_prometheus) -> None:
    def truncated(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", "500")
        h.end_headers()
        h.wfile.write(b'{"status": "success", "da')
        h.wfile.flush()
        h.close_connection = True

    prom = fake_prometheus(lambda q: truncated)
    groups = (_group("a"),)
    failures: list[tuple[str, str]] = []
    reader = PrometheusReader(
        _config(prom.url, groups), on_failure=lambda q, e: failures.append((q, e))
    )
    obs = reader.observe(groups, {"a": _replicas("a", "a1")}, time.time())["a"]
    assert not obs.prometheus_ok
    assert {q for q, _ in failures} == {"capacity", "termination"}, failures
