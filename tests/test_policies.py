"""Examples for the headroom, target and predictive policies: every rule, including bad data."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.model import Replica, ReplicaMetrics, ReplicaState
from autoscaler.core.policies import headroom, predictive, propose, target
from autoscaler.core.spec import HeadroomPolicyConfig, PredictivePolicyConfig, TargetPolicyConfig
from tests.builders import NOW, _call, group, history, obs, rep

BAD_VALUES = [float("nan"), float("inf"), float("-inf"), -1.0]


def caps(**values: float | None) -> dict[str, ReplicaMetrics]:
    return {rid: ReplicaMetrics(capacity=v) for rid, v in values.items()}


HEAD = HeadroomPolicyConfig(name="free", min_available=8.0)


# ---------------------------------------------------------------- headroom


def test_headroom_short_adds_ceil_of_shortfall() -> None:
    o = obs([rep("a"), rep("b"), rep("c")], caps(a=0, b=1, c=1))
    p = _call(headroom.propose, HEAD, o, group())
    # free 2, need 8: shortfall 6 / 4 per replica -> +2
    assert (p.desired, p.code, p.partial) == (5, "headroom_short", False)
    assert "2" in p.reason and "8" in p.reason


def test_headroom_capacity_above_replica_capacity_is_invalid() -> None:
    # Was: capped at 4 and counted (so a busy replica saying 100 looked idle). Now: a
    # sample outside [0, replica_capacity] is invalid, i.e. missing data (issue #9).
    o = obs([rep("a"), rep("b")], caps(a=100, b=0))
    p = _call(headroom.propose, HEAD, o, group())
    # counted: b only, free 0 < 8 -> +2; partial (a has no valid sample)
    assert (p.desired, p.partial) == (4, True)
    assert "1 invalid (a)" in p.reason
    # above replica_capacity only by float noise is the slot count, not invalid
    near = obs([rep("a"), rep("b")], caps(a=4 * (1 + 1e-12), b=4))
    assert _call(headroom.propose, HeadroomPolicyConfig("free", 4.0), near, group()).desired == 1


def test_headroom_warmup_counts_as_fully_free_whatever_it_reports() -> None:
    young = rep("new", created_at=NOW - 10)
    o = obs([rep("a"), young], caps(a=4, new=0))
    p = _call(headroom.propose, HEAD, o, group())
    assert p.desired == 2 and p.code != "headroom_short"
    # without a sample at all it also counts as free, and is not missing data
    o2 = obs([rep("a"), young], caps(a=4))
    assert _call(headroom.propose, HEAD, o2, group()).partial is False
    # once past warm-up, its real sample counts
    past = rep("new", created_at=NOW - 61)
    p3 = _call(headroom.propose, HEAD, obs([rep("a"), past], caps(a=4, new=0)), group())
    assert (p3.desired, p3.code) == (3, "headroom_short")


def test_headroom_surplus_removes_idle_replicas_while_enough_stays_free() -> None:
    o = obs([rep(x) for x in "abcd"], caps(a=4, b=4, c=4, d=4))
    p = _call(headroom.propose, HEAD, o, group())
    # free 16, need 8: removing two idle replicas leaves exactly 8
    assert (p.desired, p.code) == (2, "headroom_surplus")


def test_headroom_surplus_stops_exactly_at_min_available() -> None:
    o = obs([rep(x) for x in "abc"], caps(a=4, b=4, c=3.9))
    p = _call(headroom.propose, HeadroomPolicyConfig("free", 4.0), o, group())
    # free 11.9: -1 idle -> 7.9, -2 idle -> 3.9 < 4: only one goes
    assert p.desired == 2


def test_headroom_surplus_without_fully_idle_replica_holds() -> None:
    o = obs([rep(x) for x in "abcd"], caps(a=3, b=3, c=3, d=3))
    p = _call(headroom.propose, HeadroomPolicyConfig("free", 1.0), o, group())
    assert (p.desired, p.code) == (4, "in_band")


def test_headroom_warmup_replica_is_never_a_removal_candidate() -> None:
    o = obs([rep("a", created_at=NOW - 5), rep("b", created_at=NOW - 5)], caps(a=4, b=4))
    p = _call(headroom.propose, HeadroomPolicyConfig("free", 0.0), o, group())
    assert p.desired == 2


def test_headroom_partial_data_never_proposes_scale_in() -> None:
    o = obs([rep(x) for x in "abc"], caps(a=4, b=4))  # c has no sample
    p = _call(headroom.propose, HeadroomPolicyConfig("free", 0.0), o, group())
    assert (p.desired, p.partial) == (3, True)


def test_headroom_partial_data_may_scale_up() -> None:
    o = obs([rep(x) for x in "abc"], caps(a=0, b=0))
    p = _call(headroom.propose, HEAD, o, group())
    assert (p.desired, p.code, p.partial) == (5, "headroom_short", True)


@pytest.mark.parametrize("bad", BAD_VALUES + [None])
def test_headroom_bad_values_are_never_zero(bad: float | None) -> None:
    # alone: no data at all (zero would mean "short" and scale up)
    p = _call(headroom.propose, HEAD, obs([rep("a")], caps(a=bad)), group())
    assert p.desired is None and p.code == "no_data"
    # next to a good replica: partial, the good one still counts
    p2 = _call(headroom.propose, HEAD, obs([rep("a"), rep("b")], caps(a=bad, b=4)), group())
    assert p2.partial is True
    assert p2.desired == 3  # free 4 (not 4 + 0 read as "known") < 8 -> +1


def test_headroom_bad_values_do_not_block_a_real_surplus_decision_only_by_partial() -> None:
    o = obs([rep("a"), rep("b"), rep("c")], caps(a=4, b=4, c=float("nan")))
    p = _call(headroom.propose, HeadroomPolicyConfig("free", 0.0), o, group())
    assert (p.desired, p.partial) == (3, True)


def test_headroom_zero_healthy_replicas_is_zero_free() -> None:
    p = _call(headroom.propose, HEAD, obs([]), group())
    assert (p.desired, p.code) == (2, "headroom_short")
    p0 = _call(headroom.propose, HeadroomPolicyConfig("free", 0.0), obs([]), group())
    assert (p0.desired, p0.code) == (0, "in_band")


def test_headroom_ignores_terminating_deleting_and_failed_replicas() -> None:
    replicas = [
        rep("a"),
        rep("term"),
        rep("gone", ReplicaState.DELETING),
        rep("bad", ReplicaState.FAILED),
    ]
    metrics = caps(a=4, gone=4, bad=4)
    metrics["term"] = ReplicaMetrics(capacity=4, termination=1)
    p = _call(headroom.propose, HEAD, obs(replicas, metrics), group())
    # only "a" counts: current 1, free 4 < 8 -> 2
    assert (p.desired, p.code) == (2, "headroom_short")


def test_headroom_termination_must_be_exactly_one_and_usable() -> None:
    metrics = {"a": ReplicaMetrics(4, termination=float("nan")), "b": ReplicaMetrics(4, 0.0)}
    p = _call(headroom.propose, HEAD, obs([rep("a"), rep("b")], metrics), group())
    assert (p.desired, p.code) == (2, "in_band")


def test_headroom_prometheus_down_has_no_data() -> None:
    p = _call(headroom.propose, HEAD, obs([rep("a")], caps(a=0), prometheus_ok=False), group())
    assert p.desired is None


def test_headroom_float_noise_does_not_add_a_replica() -> None:
    p = _call(
        headroom.propose, HeadroomPolicyConfig("free", 0.3), obs([]), group(replica_capacity=0.1)
    )
    assert p.desired == 3


# ---------------------------------------------------------------- target

TGT = TargetPolicyConfig(name="cpu", query="q", target=100.0)


def four() -> list[Replica]:
    return [rep(x) for x in "abcd"]


@pytest.mark.parametrize(
    ("value", "desired", "code"),
    [
        (150.0, 6, "target_above"),  # ceil(4 * 1.5)
        (40.0, 2, "target_below"),  # ceil(4 * 0.4) = ceil(1.6)
        (105.0, 4, "in_band"),
        (110.0, 4, "in_band"),  # boundary: ratio 1.1 is not > 1.1
        (90.0, 4, "in_band"),  # boundary: ratio 0.9 is not < 0.9
        (111.0, 5, "target_above"),  # ceil(4.44)
        (0.0, 0, "target_below"),
    ],
)
def test_target_band(value: float, desired: int, code: str) -> None:
    p = _call(target.propose, TGT, obs(four(), signals={"cpu": value}), group())
    assert (p.desired, p.code, p.partial) == (desired, code, False)


def test_target_separate_tolerances() -> None:
    pol = TargetPolicyConfig("cpu", "q", 100.0, tolerance_up=0.5, tolerance_down=0.05)
    assert _call(target.propose, pol, obs(four(), signals={"cpu": 140.0}), group()).desired == 4
    assert _call(target.propose, pol, obs(four(), signals={"cpu": 94.0}), group()).desired == 4
    assert _call(target.propose, pol, obs(four(), signals={"cpu": 151.0}), group()).desired == 7
    assert _call(target.propose, pol, obs(four(), signals={"cpu": 50.0}), group()).desired == 2


def _ten() -> list[Replica]:
    return [rep(f"r{i}") for i in range(10)]


@pytest.mark.parametrize(
    ("cpu", "desired", "code"),
    [
        (0.7, 10, "in_band"),  # 0.8 - 0.1 is 0.7000000000000001: the edge holds
        (0.9, 10, "in_band"),  # 0.8 + 0.1 is 0.9000000000000001
        (0.71, 10, "in_band"),  # a relative band (0.71 / 0.8 = 0.8875 < 0.9) would scale in
        (0.69, 9, "target_below"),  # ceil(10 x 0.69 / 0.8) = ceil(8.625)
        (0.91, 12, "target_above"),  # ceil(11.375)
        (0.2, 3, "target_below"),
    ],
)
def test_target_absolute_tolerance_is_scaleits_band(cpu: float, desired: int, code: str) -> None:
    pol = TargetPolicyConfig("cpu", "q", 0.8, 0.1, 0.1, tolerance_mode="absolute")
    p = _call(target.propose, pol, obs(_ten(), signals={"cpu": cpu}), group())
    assert (p.desired, p.code) == (desired, code)
    relative = TargetPolicyConfig("cpu", "q", 0.8, 0.1, 0.1)
    if cpu == 0.71:
        assert _call(target.propose, relative, obs(_ten(), signals={"cpu": cpu}), group()).code == (
            "target_below"
        )


def test_target_absolute_tolerance_in_the_signals_units() -> None:
    # latency target 200 ms +- 50 ms: tolerances above 1 are meaningful in this mode
    pol = TargetPolicyConfig("ms", "q", 200.0, 50.0, 50.0, tolerance_mode="absolute")
    assert _call(target.propose, pol, obs(four(), signals={"ms": 250.0}), group()).desired == 4
    assert _call(target.propose, pol, obs(four(), signals={"ms": 300.0}), group()).desired == 6


@pytest.mark.parametrize("bad", BAD_VALUES + [None])
def test_target_bad_value_is_no_data_not_zero(bad: float | None) -> None:
    p = _call(target.propose, TGT, obs(four(), signals={"cpu": bad}), group())
    assert p.desired is None and p.code == "no_data"


def test_target_missing_signal_is_no_data() -> None:
    assert _call(target.propose, TGT, obs(four(), signals={"other": 5.0}), group()).desired is None


def test_target_with_zero_replicas_has_no_ratio() -> None:
    assert _call(target.propose, TGT, obs([], signals={"cpu": 500.0}), group()).desired is None


def test_target_prometheus_down() -> None:
    o = obs(four(), signals={"cpu": 500.0}, prometheus_ok=False)
    assert _call(target.propose, TGT, o, group()).desired is None


def test_target_counts_only_healthy_replicas() -> None:
    replicas = four() + [rep("f", ReplicaState.FAILED), rep("x", ReplicaState.DELETING)]
    metrics = {"a": ReplicaMetrics(termination=1)}
    p = _call(target.propose, TGT, obs(replicas, metrics, {"cpu": 200.0}), group())
    assert p.desired == 6  # 3 healthy x 2


def test_target_partial_is_only_about_its_own_signal() -> None:
    o = obs(four(), caps(a=float("nan")), {"cpu": 50.0})
    assert _call(target.propose, TGT, o, group()).partial is False


# ---------------------------------------------------------------- dispatch


def test_propose_dispatches_on_type() -> None:
    o = obs(four(), caps(a=4, b=4, c=4, d=4), {"cpu": 200.0})
    assert _call(propose, HEAD, o, group()).code == "headroom_surplus"
    assert _call(propose, TGT, o, group()).code == "target_above"


PRED = PredictivePolicyConfig(name="forecast", query="q", demand_per_replica=2.5, target=0.8)


@given(
    value=st.floats(min_value=0, max_value=1e5, allow_nan=False),
    current=st.integers(min_value=1, max_value=200),
    per_replica=st.floats(min_value=0.01, max_value=1e3),
    goal=st.floats(min_value=0.05, max_value=1.0),
)
def test_predictive_dispatch_equals_its_target_form(value, current, per_replica, goal) -> None:
    """The daemon's predictive proposal (forecasting the history in obs.histories) gives
    the same count as the target policy fed the utilization that forecast puts on the
    replicas."""
    cfg = PredictivePolicyConfig("forecast", "q", demand_per_replica=per_replica, target=goal)
    replicas = [rep(f"r{i}") for i in range(current)] + [rep("x", ReplicaState.FAILED)]
    ours = _call(propose, cfg, obs(replicas, histories={"forecast": history(value)}), group())
    util = predictive.signal_value(value, current, cfg)
    theirs = _call(
        target.propose,
        predictive.as_target(cfg),
        obs(replicas, signals={"forecast": util}),
        group(),
    )
    assert ours.desired == theirs.desired == predictive.desired_replicas(value, cfg)
    assert ours.code == "predictive" and ours.policy == "forecast"


def test_predictive_dispatch_examples() -> None:
    p = _call(propose, PRED, obs(four(), histories={"forecast": history(21.0)}), group())
    assert (p.desired, p.code, p.partial) == (11, "predictive", False)  # 21 / (2.5 * 0.8)
    assert "forecast 21" in p.reason and p.signal == 21.0
    # unlike a utilization, a forecast demand says something with no replica running
    assert _call(propose, PRED, obs([], histories={"forecast": history(4.0)}), group()).desired == 2


def test_predictive_history_that_ended_is_no_data() -> None:
    ended = history(21.0, at=NOW - 60 - 31)  # older than one step + stale_after (30 s)
    p = _call(propose, PRED, obs(four(), histories={"forecast": ended}), group())
    assert (p.desired, p.code) == (None, "no_data") and "ended" in p.reason


@pytest.mark.parametrize("bad", [float("nan"), float("-inf"), float("inf"), -1.0])
def test_predictive_without_a_usable_forecast_has_no_data(bad: float) -> None:
    p = _call(propose, PRED, obs(four(), histories={"forecast": history(bad)}), group())
    assert p.desired is None and p.code == "no_data"
    assert _call(propose, PRED, obs(four()), group()).desired is None  # no history at all
    down = obs(four(), histories={"forecast": history(10.0)}, prometheus_ok=False)
    assert _call(propose, PRED, down, group()).desired is None


def test_predictive_overflowed_forecast_is_not_computable() -> None:
    # +inf is what `forecast` returns when the history's numbers overflow (was: no_data):
    # here a rising trend near the float maximum, extended to the horizon
    rising = history(1.0e308, 1.5e308, 1.79e308)
    p = _call(propose, PRED, obs(four(), histories={"forecast": rising}), group())
    assert (p.desired, p.code) == (None, "not_computable")


def test_propose_rejects_unknown_type() -> None:
    class Odd:
        name = "odd"
        type = "mystery"

    with pytest.raises(ValueError, match="mystery"):
        _call(propose, Odd(), obs([]), group())  # type: ignore[arg-type]


def test_policies_never_return_negative_or_nan() -> None:
    for value in [0.0, 1e-9, 1e9]:
        p = _call(target.propose, TGT, obs(four(), signals={"cpu": value}), group())
        assert p.desired is not None and p.desired >= 0 and not math.isnan(p.desired)


# ---------------------------------------------------------------- headroom, scale_in: spread

SPREAD = HeadroomPolicyConfig(name="free", min_available=4.0, scale_in="spread")


def test_headroom_spread_scales_in_when_no_replica_is_idle() -> None:
    # An even spread: 4 replicas of 4 slots, each 1 busy -> free 12. `idle` keeps all 4
    # (none is fully idle); `spread` removes while free - 4 per replica stays >= 4.
    o = obs([rep(x) for x in "abcd"], caps(a=3, b=3, c=3, d=3))
    idle = _call(headroom.propose, HeadroomPolicyConfig("free", 4.0), o, group())
    assert (idle.desired, idle.code) == (4, "in_band")
    p = _call(headroom.propose, SPREAD, o, group())
    assert (p.desired, p.code) == (2, "headroom_surplus")  # 12 - 2 x 4 = 4, exactly enough
    assert "2 replicas x 4" in p.reason


def test_headroom_spread_keeps_the_replica_whose_slot_is_needed() -> None:
    o = obs([rep(x) for x in "abc"], caps(a=3, b=3, c=3))  # free 9
    p = _call(headroom.propose, SPREAD, o, group())
    assert (p.desired, p.code) == (2, "headroom_surplus")  # 9 - 4 = 5; 9 - 8 = 1 < 4
    o2 = obs([rep(x) for x in "ab"], caps(a=3.9, b=3.9))  # free 7.8: 3.8 after one
    assert _call(headroom.propose, SPREAD, o2, group()).code == "in_band"


def test_headroom_spread_never_scales_in_on_partial_data() -> None:
    o = obs([rep(x) for x in "abc"], caps(a=4, b=4))  # c silent
    p = _call(headroom.propose, SPREAD, o, group())
    assert (p.desired, p.partial) == (3, True)


@given(
    st.lists(st.floats(0, 4), min_size=1, max_size=30),
    st.floats(0, 50),
)
def test_headroom_spread_leaves_at_least_min_available(free: list[float], need: float) -> None:
    replicas = [rep(f"r{i}") for i in range(len(free))]
    o = obs(replicas, {f"r{i}": ReplicaMetrics(capacity=c) for i, c in enumerate(free)})
    policy = HeadroomPolicyConfig("free", need, scale_in="spread")
    p = _call(headroom.propose, policy, o, group())
    assert p.desired is not None
    removed = len(free) - p.desired
    if removed > 0:
        # what stays free after the load of the removed ones moved still meets the need
        assert sum(free) - 4 * removed >= need - 1e-9 * max(1.0, sum(free))
        # and one more would not
        assert removed == len(free) or sum(free) - 4 * (removed + 1) < need + 1e-9 * max(
            1.0, sum(free)
        )
