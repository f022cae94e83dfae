"""The predictive policy: pure forecasts, its target-policy form, and the benchmark claim."""

from __future__ import annotations

import math

import pytest

from autoscaler.core.model import Observation, Replica, ReplicaState
from autoscaler.core.policies import target
from autoscaler.core.policies.predictive import (
    PredictivePolicyConfig,
    as_target,
    desired_replicas,
    forecast,
    propose,
    signal_value,
)
from autoscaler.core.spec import GroupConfig, ProviderConfig
from autoscaler.simulation import baselines
from autoscaler.simulation.replay import effective_group, replay
from autoscaler.simulation.spec import PolicySpec, ReplicaModel
from autoscaler.simulation.trace import Trace
from tests.builders import _call

DAY = 86400.0
CFG = PredictivePolicyConfig(
    name="f",
    query="q",
    demand_per_replica=1.0,
    target=1.0,
    horizon_seconds=600,
    level_seconds=600,
    trend_seconds=0,
    seasons=3,
)


def daily(days: int, ramp_at: float = 0.5, high: float = 30.0, low: float = 10.0):
    """Minute samples: low, then high from `ramp_at` of each day on."""
    return [
        (t, high if (t % DAY) >= ramp_at * DAY else low)
        for t in (i * 60.0 for i in range(int(days * DAY / 60)))
    ]


def test_seasonal_forecast_sees_the_daily_ramp_coming():
    hist = daily(4)
    now = 3 * DAY + 0.5 * DAY - 300  # 5 minutes before day 4's ramp
    past = [p for p in hist if p[0] <= now]
    f = forecast(past, now, CFG)
    assert f is not None and f.level == 10.0
    assert f.seasonal == pytest.approx(30.0)
    assert f.value == pytest.approx(30.0)
    assert propose(past, now, CFG).desired == 30


def test_median_ignores_a_one_off_spike_in_one_past_day():
    hist = [(t, 10.0) for t, _ in daily(4)]
    spike_at = 2 * DAY + 0.5 * DAY
    hist = [(t, 80.0 if spike_at <= t < spike_at + 600 else v) for t, v in hist]
    now = 3 * DAY + 0.5 * DAY - 300
    f = forecast([p for p in hist if p[0] <= now], now, CFG)
    assert f.value == pytest.approx(10.0)


def test_rising_trend_is_extrapolated_to_the_horizon():
    cfg = PredictivePolicyConfig(
        "f", "q", 1.0, target=1.0, horizon_seconds=300, trend_seconds=600, level_seconds=60
    )
    hist = [(i * 60.0, 10.0 + i) for i in range(20)]  # +1 per minute
    f = forecast(hist, 19 * 60.0, cfg)
    assert f.trend == pytest.approx(29.0 + 5)
    falling = [(i * 60.0, 40.0 - i) for i in range(20)]
    assert forecast(falling, 19 * 60.0, cfg).trend is None


def test_no_recent_history_means_no_data():
    assert forecast([], 100.0, CFG) is None
    p = propose([(0.0, 5.0)], 5 * DAY, CFG)
    assert p.desired is None and p.code == "no_data"
    bad = PredictivePolicyConfig("f", "q", 0.0)
    assert propose([(0.0, 1.0)], 1.0, bad).desired is None


@pytest.mark.parametrize("value", [0.0, 0.4, 7.0, 7.2, 23.999, 160.0])
@pytest.mark.parametrize("current", [1, 3, 17])
def test_target_form_in_the_planner_equals_the_predictive_proposal(value, current):
    cfg = PredictivePolicyConfig("f", "q", demand_per_replica=0.5, target=0.8)
    group = GroupConfig("g", ProviderConfig("local"), 0, 1000, 1.0, (as_target(cfg),))
    replicas = tuple(Replica(f"r{i}", "g", ReplicaState.ACTIVE, 0.0) for i in range(current))
    obs = Observation("g", 1000.0, replicas, {}, {"f": signal_value(value, current, cfg)})
    assert _call(target.propose, as_target(cfg), obs, group).desired == desired_replicas(value, cfg)
    assert desired_replicas(value, cfg) == math.ceil(round(value / 0.4, 9))


def test_predictive_beats_the_baselines_on_a_seasonal_trace():
    """Daily cycle with a steep morning ramp: scaling out ahead of it avoids the
    under-provisioning every reactive rule suffers while its new replicas boot."""
    demand = []
    for i in range(5 * 1440):
        m = i % 1440
        ramp = min(1.0, max(0.0, (m - 480) / 20)) if m < 1200 else max(0.0, 1 - (m - 1200) / 60)
        demand.append(4.0 + 36.0 * ramp)
    tr = Trace("seasonal", 0.0, 60.0, tuple(demand))
    model = ReplicaModel(per_replica=1.0, boot_delay=120)
    runs = {
        name: replay(tr, factory(model), model).summary
        for name, factory in baselines.BUILTIN.items()
    }
    ours = runs.pop("predictive")
    for name, s in runs.items():
        assert ours.under_minutes < s.under_minutes / 2, name
        assert ours.under_area < s.under_area / 2, name
    assert ours.replica_hours < runs["simplescalevm"].replica_hours
    # and it costs at most a few percent more than the reactive rules it extends
    assert ours.replica_hours < 1.1 * runs["reactive"].replica_hours


def test_a_predictive_policy_in_a_config_group_replays_like_the_builtin():
    """A group read from a config file carries its predictive policy in `policies`: the
    replay forecasts for it exactly as for the built-in spec's."""
    tr = Trace("wave", 0.0, 60.0, tuple(5.0 + 10.0 * ((i // 90) % 2) for i in range(2 * 1440)))
    model = ReplicaModel(per_replica=1.0, boot_delay=120)
    builtin = baselines.predictive(model)
    from_config = PolicySpec(
        "from-config",
        effective_group(builtin),
        interval_seconds=builtin.interval_seconds,
        signal=builtin.signal,
    )
    a, b = replay(tr, builtin, model), replay(tr, from_config, model)
    assert a.timeline == b.timeline
    # and the forecast matters: without it the reactive rule alone behaves differently
    assert replay(tr, baselines.reactive(model), model).timeline != a.timeline
