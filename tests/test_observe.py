"""observe.py against a real Prometheus scraping a real exporter with awkward values."""

from __future__ import annotations

import dataclasses
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import certifi
import pytest

from autoscaler.config import Config, PrometheusConfig
from autoscaler.core.model import SignalHistory
from autoscaler.core.policies import propose
from autoscaler.core.policies.predictive import forecast, history_seconds
from autoscaler.core.spec import (
    GroupConfig,
    PredictivePolicyConfig,
    QuantilePolicyConfig,
)
from autoscaler.observe.prometheus import PrometheusReader, history_step
from tests.builders import _call
from tests.builders import listed as _replicas
from tests.builders import reader_config as _config
from tests.builders import reader_group as _group
from tests.harness.pki import Pki
from tests.harness.prometheus import PrometheusServer, backfilled, free_port, scraping

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


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    with scraping(lambda job: EXPOSITION["body"], ready='replica_capacity{replica="b1"}') as prom:
        yield prom


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


@pytest.mark.parametrize("setting", ["ca_file", "insecure_skip_verify"])
def test_a_tls_prometheus_is_read_with_the_configured_ca_whatever_the_environment_says(
    setting: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Images and CI runners often set REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) to the
    # system's bundle; requests then replaced our session's CA on every query, so a
    # Prometheus whose certificate our ca_file trusts failed with "certificate verify
    # failed" (and insecure_skip_verify did nothing).
    pki = Pki(tmp_path)
    cert, key = pki.issue("prometheus")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())
    monkeypatch.setenv("CURL_CA_BUNDLE", certifi.where())
    prom = PrometheusServer(autoscaler="127.0.0.1:9", tls=(cert, key, pki.ca_file)).start()
    try:
        assert prom.url.startswith("https://")
        tls = (
            {"ca_file": str(pki.ca_file)}
            if setting == "ca_file"
            else {"insecure_skip_verify": True}
        )
        failures: list[tuple[str, str]] = []
        groups = (_group("a", 'vector(0.5) + 0 * absent(x{group="a"})'),)
        config = Config(
            prometheus=PrometheusConfig(url=prom.url, timeout_seconds=5, **tls),  # type: ignore[arg-type]
            groups=groups,
        )
        reader = PrometheusReader(config, on_failure=lambda q, e: failures.append((q, e)))
        obs = reader.observe(groups, {"a": _replicas("a", "a1")}, time.time())["a"]
        assert failures == [] and obs.prometheus_ok is True
    finally:
        prom.cleanup()


# --- predictive policies: history from a range query, cached --------------------------------

HOUR = 3600
PRED = PredictivePolicyConfig(
    name="forecast",
    query="max by (group) (app_demand)",
    demand_per_replica=1.0,
    target=1.0,
    horizon_seconds=600,
    season_seconds=HOUR,  # hourly seasons keep the history (and the test) small
    seasons=2,
    level_seconds=300,
    trend_seconds=0,
)


def demand_a(t: int) -> float:
    """10, and 30 during minutes 20-29 of every hour: a ramp that recurs each season."""
    return 30.0 if 20 <= (t % HOUR) // 60 < 30 else 10.0


@pytest.fixture(scope="module")
def prometheus_with_history(tmp_path_factory) -> Iterator[tuple[PrometheusServer, int]]:
    """A real Prometheus whose TSDB holds 4 hours of app_demand (groups a and b, plus one
    group nobody scales) written as a block by promtool, one sample a minute."""
    if not shutil.which("promtool") or not shutil.which("prometheus"):
        pytest.skip("prometheus/promtool not installed: run `make setup`")
    base = (int(time.time()) // HOUR) * HOUR - 4 * HOUR
    lines = ["# HELP app_demand Demand.", "# TYPE app_demand gauge"]
    for t in range(base, base + 4 * HOUR, 60):
        lines.append(f'app_demand{{group="a"}} {demand_a(t)} {t}')
        lines.append(f'app_demand{{group="b"}} 5 {t}')
        lines.append(f'app_demand{{group="other"}} 7 {t}')
    server = backfilled(lines, tmp_path_factory.mktemp("om"))
    try:
        yield server, base
    finally:
        server.cleanup()


def _predictive_group(name: str, policy: PredictivePolicyConfig = PRED) -> GroupConfig:
    return dataclasses.replace(_group(name), policies=(policy,))


def _forecast(o, g: GroupConfig) -> float | None:
    """The forecast the group's predictive policy makes from the history observe read."""
    return _call(propose, g.policies[0], o, g).signal


def _expected(points: list[tuple[float, float]], now: float) -> float:
    f = forecast(points, now, PRED)
    assert f is not None
    return f.value


def test_the_quantile_policy_reads_its_history_and_follows_a_jump(
    prometheus_with_history,
) -> None:
    """The quantile policy through a real Prometheus: the proposal is the one its points
    give, and the 10 -> 30 ramp at minute 20, which no error of its last 30 minutes
    explains, is followed from its newest point."""
    server, base = prometheus_with_history
    policy = QuantilePolicyConfig(
        name="demand", query=PRED.query, demand_per_replica=1.0, window_seconds=1800
    )
    group = dataclasses.replace(_group("a"), policies=(policy,))
    config = Config(
        prometheus=PrometheusConfig(url=server.url, timeout_seconds=5),
        groups=(group,),
        interval_seconds=60,
    )
    reader = PrometheusReader(config, on_failure=lambda q, e: pytest.fail(f"{q}: {e}"))
    lookback = policy.lookback_seconds()
    for minute, jumped in ((15, False), (21, True)):
        now = base + 3 * HOUR + minute * 60
        obs = reader.observe((group,), {"a": _replicas("a", "a1")}, now)["a"]
        proposal = _call(propose, policy, obs, group)
        step = history_step(60, lookback)
        xs = range(now - math.ceil(lookback / step) * step, now + 1, step)
        points = [(float(x), demand_a(x)) for x in xs]
        direct = SignalHistory([t for t, _ in points], points, float(step))
        mine = dataclasses.replace(obs, histories={"demand": direct})
        assert proposal == _call(propose, policy, mine, group)
        assert ("jumped above" in proposal.reason) is jumped, proposal.reason
        assert proposal.desired is not None and proposal.desired >= demand_a(now)


def test_history_step_fits_the_look_back_in_one_range_query() -> None:
    assert history_seconds(PRED) == 2 * HOUR + 300
    assert history_step(10, history_seconds(PRED)) == 60  # at least a minute
    assert history_step(120, 7500) == 120  # the evaluation interval when coarser
    week = history_seconds(PredictivePolicyConfig("f", "q", 1.0, seasons=14))
    assert week / history_step(60, week) <= 10_000  # Prometheus caps a range at 11,000


def test_predictive_history_is_read_once_then_only_its_new_part(prometheus_with_history) -> None:
    server, base = prometheus_with_history
    groups = (_predictive_group("a"), _predictive_group("b"))
    config = Config(
        prometheus=PrometheusConfig(url=server.url, timeout_seconds=5),
        groups=groups,
        interval_seconds=60,
    )
    failures: list[tuple[str, str]] = []
    reader = PrometheusReader(config, on_failure=lambda q, e: failures.append((q, e)))
    replicas = {"a": _replicas("a", "a1"), "b": _replicas("b", "b1")}

    # 5 minutes before minute 20: both past hours rose from 10 to 30 in the next 10 min.
    now = base + 2 * HOUR + 15 * 60
    obs = reader.observe(groups, replicas, now)
    assert reader.queries_last_cycle == 3  # capacity, termination, one range query for both
    assert set(obs["a"].histories) == set(obs["b"].histories) == {"forecast"}
    assert _forecast(obs["a"], groups[0]) == pytest.approx(30.0)
    assert _forecast(obs["b"], groups[1]) == pytest.approx(5.0)
    lookback = 2 * HOUR + 300  # seasons x season + level, on the 60 s grid
    assert reader.history_points_last_cycle == 2 * (lookback // 60 + 1)
    assert set(reader.histories[PRED.query].groups) == {"a", "b"}  # "other" is not kept
    # the policy then proposes what the forecast asks for
    assert _call(propose, PRED, obs["a"], groups[0]).desired == 30

    # Later cycles fetch only the new minute (and re-read the last one).
    for minute in range(1, 12):
        t = now + minute * 60
        obs = reader.observe(groups, replicas, t)
        assert reader.queries_last_cycle == 3
        assert reader.history_points_last_cycle == 2 * 2
        cutoff = t - lookback
        points = [(float(x), demand_a(x)) for x in range(base, t + 1, 60) if x >= cutoff]
        assert _forecast(obs["a"], groups[0]) == _expected(points, t)
    # bounded: never more than the look-back's points per group
    history = reader.histories[PRED.query]
    assert all(len(s.times) == lookback // 60 + 1 for s in history.groups.values())
    assert history.groups["a"].times[0] == t - lookback

    # A gap (cycles missed) is fetched in one piece.
    t += HOUR
    obs = reader.observe(groups, replicas, t)
    assert reader.history_points_last_cycle == 2 * (HOUR // 60 + 1)
    points = [(float(x), demand_a(x)) for x in range(t - lookback, t + 1, 60)]
    assert _forecast(obs["a"], groups[0]) == _expected(points, t)
    assert failures == []


def test_predictive_without_history_is_no_data_never_zero(prometheus_with_history) -> None:
    server, base = prometheus_with_history
    missing = dataclasses.replace(PRED, query="max by (group) (no_such_metric)")
    broken = dataclasses.replace(PRED, query="max by (group) (app_demand")  # bad PromQL
    solo = dataclasses.replace(PRED, query='sum(app_demand{group="b"})')  # no group label
    groups = (
        _predictive_group("a"),
        _predictive_group("m", missing),
        _predictive_group("x", broken),
        _predictive_group("s", solo),
    )
    config = Config(prometheus=PrometheusConfig(url=server.url, timeout_seconds=5), groups=groups)
    failures: list[tuple[str, str]] = []
    reader = PrometheusReader(config, on_failure=lambda q, e: failures.append((q, e)))
    now = base + 2 * HOUR + 15 * 60
    obs = reader.observe(groups, {g.name: [] for g in groups}, now)
    assert reader.queries_last_cycle == 2 + 4
    assert _forecast(obs["a"], groups[0]) == pytest.approx(30.0)
    assert _forecast(obs["m"], groups[1]) is None
    assert _forecast(obs["x"], groups[2]) is None
    assert _forecast(obs["s"], groups[3]) == pytest.approx(5.0)  # the one group that asked
    assert [q for q, _ in failures] == ["predictive"]
    assert _call(propose, missing, obs["m"], groups[1]).desired is None

    # Long after the series ended, its last points are stale: no data, not a forecast.
    late = base + 4 * HOUR + 10 * 60
    assert _forecast(reader.observe(groups, {"a": []}, late)["a"], groups[0]) is None

    # Prometheus unreachable: the range query fails like the others.
    down = Config(
        prometheus=PrometheusConfig(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=1),
        groups=groups[:1],
    )
    failures.clear()
    reader = PrometheusReader(down, on_failure=lambda q, e: failures.append((q, e)))
    obs = reader.observe(groups[:1], {"a": []}, now)
    assert obs["a"].histories == {} and not obs["a"].prometheus_ok
    assert {q for q, _ in failures} == {"capacity", "termination", "predictive"}
