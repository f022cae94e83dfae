"""The quantile policy, the FIFO queue model, the held-out synthetic traces (issue #12)."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.core.capacity import assess
from autoscaler.core.model import Code, Observation, PlannerState, SignalHistory
from autoscaler.core.planner import plan
from autoscaler.core.policies import quantile
from autoscaler.core.spec import QuantilePolicyConfig
from autoscaler.providers.registry import parse_config
from autoscaler.simulation import baselines, synthetic
from autoscaler.simulation.queueing import fifo_queue
from autoscaler.simulation.replay import replay
from autoscaler.simulation.spec import ReplicaModel
from autoscaler.simulation.trace import Trace
from tests.test_core_properties_policies import ANY, NO_COUNT, NOW, SETTINGS, group, observations

STEP = 60.0


def cfg(**kw: object) -> QuantilePolicyConfig:
    return QuantilePolicyConfig("d", "q", **{"demand_per_replica": 1.0, **kw})  # type: ignore[arg-type]


def history(values: list[float], step: float = STEP) -> SignalHistory:
    n = len(values)
    times = [NOW - (n - 1 - i) * step for i in range(n)]
    return SignalHistory(times, list(zip(times, values, strict=True)), step)


def observe(h: SignalHistory | None, **kw: object) -> Observation:
    return Observation(
        group="g",
        at=NOW,
        replicas=(),
        metrics={},
        signals={},
        histories={"d": h} if h else {},
        **kw,  # type: ignore[arg-type]
    )


def propose(c: QuantilePolicyConfig, o: Observation):
    g = group(1.0, (c,), expect_capacity=False)
    return quantile.propose(c, o, g, assess(o, g))


# ---------------------------------------------------------------- the policy


def test_a_steady_signal_gets_only_the_utilization_floor() -> None:
    p = propose(cfg(), observe(history([9.0] * 60)))
    assert p.code is Code.PREDICTIVE and p.desired == 10  # 9 / 0.9, no error


def test_a_ramp_gets_its_slope_times_the_horizon() -> None:
    # +1 per minute: the 5-minute mean lags 2 behind the latest, the horizon adds 3 more
    ramp = observe(history([float(i) for i in range(100)]))
    p = propose(cfg(max_utilization=1.0, tail_factor=0.0), ramp)
    assert p.desired == 97 + 5  # mean of 95..99 = 97, error at +3 min: 5
    # every error is 5: the quantile alone covers it exactly, with nothing to spare; 1.5x
    # the largest (7.5) is taken, as it costs less than 25 % of the level (24.25)
    p = propose(cfg(max_utilization=1.0), ramp)
    assert p.desired == 105 and "1.5 x largest error 5" in p.reason


def test_the_tail_margin_is_taken_only_where_it_is_cheap() -> None:
    # one error of 8 in 200 (a 4 % share): below the 95th percentile, so q alone ignores it
    values = [20.0] * 200
    values[100] = 28.0
    o = observe(history(values))
    no_tail = propose(cfg(max_utilization=1.0, tail_factor=0.0), o).desired
    assert no_tail == 20
    # 1.5 x 8 = 12 is more than 25 % of 20 (5): the margin is capped there
    assert propose(cfg(max_utilization=1.0), o).desired == 25
    assert propose(cfg(max_utilization=1.0, tail_headroom=1.0), o).desired == 32  # 20 + 12
    assert propose(cfg(max_utilization=1.0, tail_headroom=0.0), o).desired == 20  # off


def test_a_jump_is_sized_from_its_newest_point_until_the_level_catches_up() -> None:
    calm = [10.0 + (1.0 if i % 2 else 0.0) for i in range(200)]  # errors within +-1
    c = cfg(max_utilization=1.0, tail_factor=0.0)
    mean_only = cfg(max_utilization=1.0, tail_factor=0.0, follow_jumps=False)
    # the first 3 minutes of a crowd at 40 (then its first errors are known, and the
    # quantile alone covers it)
    for n in range(1, 4):
        o = observe(history(calm + [40.0] * n))
        followed, lagging = propose(c, o), propose(mean_only, o)
        assert followed.desired is not None and lagging.desired is not None
        assert followed.desired >= 40 > lagging.desired, (n, followed.reason)
        assert "jumped above" in followed.reason
    # the first point of a jump saw only part of it: the rise counts twice, then once
    first = propose(c, observe(history(calm + [40.0])))
    assert "first step, the rise twice" in first.reason and first.desired is not None
    assert first.desired >= 40 + (40 - 11)
    second = propose(c, observe(history(calm + [40.0] * 2)))
    assert "jumped" in second.reason and "first step" not in second.reason
    assert second.desired is not None
    assert 40 <= second.desired < 50
    # once the window holds only the crowd, its mean is the level again
    later = propose(c, observe(history(calm + [40.0] * 8)))
    assert "jumped" not in later.reason and later.desired is not None and later.desired >= 40
    # a point within the recent errors is noise, not a jump
    noise = propose(c, observe(history(calm + [11.0])))
    assert "jumped" not in noise.reason


def test_noise_raises_the_quantile_and_recent_errors_weigh_more() -> None:
    quiet = [10.0] * 120
    noisy = [10.0 + (4.0 if i % 5 == 0 else 0.0) for i in range(120)]
    q_quiet = propose(cfg(max_utilization=1.0), observe(history(quiet))).desired
    q_noisy = propose(cfg(max_utilization=1.0), observe(history(noisy))).desired
    assert q_quiet == 10 and q_noisy is not None and q_noisy > q_quiet
    pairs = [(1.0, 0.0)] * 9 + [(100.0, 5.0)]
    assert quantile.weighted_quantile(pairs, 0.5) == 5.0
    assert quantile.weighted_quantile([(1.0, float(e)) for e in range(100)], 0.95) == 94.0


def test_a_new_group_scales_out_to_the_level_and_never_in() -> None:
    c = cfg()
    young = observe(history([4.0, 4.0]))
    p = propose(c, young)
    assert p.desired == 5  # 4 / initial_target 0.8, with 0 running
    g = group(1.0, (c,), expect_capacity=False)
    d, _ = plan(g, _with_replicas(young, 9), PlannerState(), NOW)
    assert d.desired == 9  # too few known errors: no scale-in


def test_a_new_group_on_a_ramp_follows_its_newest_point() -> None:
    # A cold start on a ramp: the mean of the first minutes lags the newest point, and
    # nothing is known yet of how wrong the level is, so the newest point is sized for,
    # as the HPA's sample would be (Azure's first minutes: 6.7 -> 12.5 replicas' worth).
    p = propose(cfg(), observe(history([6.0, 9.0, 12.0])))
    assert p.desired == 15  # 12 / 0.8; the mean (9) would give 12
    assert "newest" in p.reason
    # below the level, the level stands (never in during warm-up)
    assert propose(cfg(), observe(history([8.0, 8.0, 2.0]))).desired == 8  # 6 / 0.8


def _with_replicas(o: Observation, n: int) -> Observation:
    from autoscaler.core.model import Replica, ReplicaState

    rs = tuple(Replica(f"r{i}", "g", ReplicaState.ACTIVE, NOW - 3600) for i in range(n))
    return Observation(o.group, o.at, rs, {}, {}, histories=o.histories)


@pytest.mark.parametrize(
    "obs",
    [
        observe(None),
        observe(history([5.0] * 30), prometheus_ok=False),
        observe(SignalHistory([NOW - 600], [(NOW - 600, 5.0)], STEP)),  # ended
        observe(history([5.0] * 29 + [float("nan")])),
    ],
)
def test_missing_data_is_no_count(obs: Observation) -> None:
    assert propose(cfg(), obs).code is Code.NO_DATA


@st.composite
def configs(draw: st.DrawFn) -> QuantilePolicyConfig:
    return QuantilePolicyConfig(
        name="d",
        query="q",
        demand_per_replica=draw(st.one_of(st.floats(0.01, 100), ANY)),
        quantile=draw(st.one_of(st.floats(0, 1), ANY)),
        target=draw(st.one_of(st.floats(0.1, 1), ANY)),
        horizon_seconds=draw(st.sampled_from([0.0, 60.0, 180.0, float("nan")])),
        level_seconds=draw(st.sampled_from([0.0, 60.0, 300.0])),
        window_seconds=draw(st.sampled_from([600.0, 3600.0])),
        half_life_seconds=draw(st.one_of(st.sampled_from([0.0, 60.0, 3600.0]), ANY)),
        min_errors=draw(st.integers(0, 5)),
        initial_target=draw(st.one_of(st.floats(0.1, 1), ANY)),
        max_utilization=draw(st.one_of(st.floats(0.1, 1), ANY)),
        tail_factor=draw(st.one_of(st.floats(0, 3), ANY)),
        tail_headroom=draw(st.one_of(st.floats(0, 1), ANY)),
        follow_jumps=draw(st.booleans()),
    )


@SETTINGS
@given(c=configs(), values=st.lists(ANY, max_size=40), step=st.sampled_from([15.0, 60.0]))
def test_propose_never_raises_and_counts_are_whole_and_non_negative(
    c: QuantilePolicyConfig, values: list[float], step: float
) -> None:
    p = propose(c, observe(history(values, step) if values else None))
    assert p.reason
    if p.desired is None:
        assert p.code in NO_COUNT
    else:
        assert isinstance(p.desired, int) and p.desired >= 0 and p.code not in NO_COUNT
    if not values or not (math.isfinite(values[-1]) and values[-1] >= 0):
        assert p.desired is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    c=configs(),
    values=st.lists(st.one_of(st.floats(0, 1e6), ANY), max_size=30),
    low=st.integers(0, 5),
    span=st.integers(0, 20),
    stale=st.booleans(),
)
def test_plan_stays_in_bounds_and_never_scales_in_on_missing_data(
    data: st.DataObject,
    c: QuantilePolicyConfig,
    values: list[float],
    low: int,
    span: int,
    stale: bool,
) -> None:
    import dataclasses

    base = data.draw(observations())
    h = history(values) if values else None
    if h is not None and stale:
        h = SignalHistory([t - 3600 for t in h.times], [(t - 3600, v) for t, v in h.points], STEP)
    o = dataclasses.replace(base, histories={"d": h} if h else {})
    g = dataclasses.replace(group(1.0, (c,), expect_capacity=False), min=low, max=low + span)
    d, _ = plan(g, o, PlannerState(), NOW)
    assert g.min <= d.desired <= g.max
    a = assess(o, g)
    if propose(c, o).desired is None and d.desired < a.current:
        assert d.desired == g.max  # only the hard limit goes below without data


def test_configuration_reads_the_quantile_policy() -> None:
    raw = {
        "prometheus": {"url": "http://127.0.0.1:9090"},
        "groups": {
            "api": {
                "provider": {"type": "local", "slots": 4},
                "min": 1,
                "max": 20,
                "replica_capacity": 4,
                "policies": [
                    {
                        "type": "quantile",
                        "query": 'sum by (group) (rate(http_requests_total{group="api"}[1m]))',
                        "demand_per_replica": 50,
                        "quantile": 0.95,
                    }
                ],
            }
        },
    }
    config = parse_config(raw, {})
    (p,) = config.groups[0].policies
    assert isinstance(p, QuantilePolicyConfig) and p.quantile == 0.95 and p.level_seconds == 300
    assert (p.tail_factor, p.tail_headroom, p.follow_jumps) == (1.5, 0.25, True)
    policy = raw["groups"]["api"]["policies"][0]  # type: ignore[index]
    policy.update(tail_factor=2, follow_jumps=False)
    (p,) = parse_config(raw, {}).groups[0].policies
    assert isinstance(p, QuantilePolicyConfig) and (p.tail_factor, p.follow_jumps) == (2, False)
    policy.update(quantile=1.5, tail_headroom=-1, follow_jumps="yes")
    with pytest.raises(Exception, match="quantile") as err:
        parse_config(raw, {})
    assert "tail_headroom" in str(err.value) and "follow_jumps" in str(err.value)


# ---------------------------------------------------------------- the queue


def test_queue_waits_are_exact_under_the_fluid_model() -> None:
    # 2 req/s for 1 s against 1 req/s: waits spread evenly over [0, 1] s
    s = fifo_queue([2.0, 0.0], [1.0, 1.0], 1.0, 0.5)
    assert s.requests == 2.0 and s.delayed == pytest.approx(1.0)
    assert s.mean_wait == pytest.approx(0.5) and s.p99_wait == pytest.approx(0.99, abs=1e-6)
    # a backlog drained while new requests arrive: nobody waits over 1 s
    s = fifo_queue([1.0, 1.0, 1.0, 0.0], [0.5, 0.5, 2.0, 2.0], 1.0, 1.0)
    assert s.delayed == pytest.approx(0.0) and s.mean_wait == pytest.approx(0.5)
    assert s.unserved == 0.0 and s.max_backlog == pytest.approx(1.0)


@given(
    st.lists(st.tuples(st.floats(0, 100), st.floats(0, 100)), min_size=1, max_size=60),
    st.sampled_from([1.0, 15.0, 60.0]),
)
def test_queue_conserves_requests_and_enough_capacity_delays_nobody(
    rows: list[tuple[float, float]], dt: float
) -> None:
    demand = [d for d, _ in rows]
    cap = [c for _, c in rows]
    s = fifo_queue(demand, cap, dt, 1.0)
    assert s.requests == pytest.approx(sum(demand) * dt)
    assert 0 <= s.delayed <= s.requests * (1 + 1e-9) + 1e-9 and s.p99_wait >= 0
    roomy = fifo_queue(demand, [d * 1.01 for d in demand], dt, 0.0)
    assert roomy.delayed == 0 and roomy.p99_wait == 0 and roomy.unserved == 0


def test_replay_reports_the_delayed_share_and_hpa_instant_reads_one_tick() -> None:
    trace = Trace("step", 0.0, 1.0, tuple([2.0] * 300 + [6.0] * 600))
    model = ReplicaModel(per_replica=1.0, boot_delay=60.0)
    mean = replay(trace, baselines.hpa(model), model, initial=3).summary
    instant = replay(trace, baselines.hpa_instant(model), model, initial=3).summary
    assert 0 < mean.delayed_share < 1 and mean.p99_wait > 1
    # the instantaneous sample sees the jump at once, the one-minute mean a minute later
    assert instant.delayed_share < mean.delayed_share


# ---------------------------------------------------------------- held-out traces


def test_synthetic_traces_are_deterministic_and_shaped() -> None:
    for make in synthetic.HELD_OUT.values():
        a, b = make(), make()
        assert a == b and min(a.demand) >= 0 and a.peak > 0
    flash = synthetic.flash_crowd()
    day2 = flash.demand[1440 + 11 * 60 - 60 : 1440 + 11 * 60]
    crowd = flash.demand[1440 + 11 * 60 + 5 : 1440 + 11 * 60 + 15]
    assert sum(crowd) / len(crowd) > 4 * sum(day2) / len(day2)


def test_quantile_replays_a_held_out_day_cheaper_than_hpa() -> None:
    trace = Trace("d", 0.0, 60.0, synthetic.diurnal().demand[:1440])
    model = ReplicaModel(per_replica=trace.peak / 40, boot_delay=120.0)
    ours = replay(trace, baselines.quantile(model), model).summary
    hpa = replay(trace, baselines.hpa(model), model).summary
    assert ours.replica_hours < hpa.replica_hours
    assert ours.under_minutes <= 0.02 * trace.duration / 60  # short at most 2 % of the day


def test_same_inputs_same_figures_queue_included() -> None:
    import dataclasses

    trace = synthetic.bursty_inference()
    trace = Trace(trace.name, 0.0, 1.0, trace.demand[:1800])
    model = ReplicaModel(per_replica=1.0, boot_delay=120.0)
    a, b = (replay(trace, baselines.quantile(model), model).summary for _ in range(2))
    assert dataclasses.replace(a, wall_seconds=0) == dataclasses.replace(b, wall_seconds=0)
    assert a.delayed_share > 0 and a.p99_wait > 0
