"""Regression tests for issue #9, the policies/capacity part (defects 1, 4, 8, 18).

Each test states the behaviour the issue asks for.
"""

from __future__ import annotations

from autoscaler.core.capacity import assess
from autoscaler.core.model import PlannerState, Replica, ReplicaMetrics
from autoscaler.core.planner import plan
from autoscaler.core.policies import headroom, predictive, target
from autoscaler.core.spec import (
    HeadroomPolicyConfig,
    PredictivePolicyConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)
from tests import builders
from tests.builders import NOW, OLD, _call, history, obs, rep

FREE = ScalingBehavior()  # no cooldown, no window, no step limit
CPU = TargetPolicyConfig(name="cpu", query="q", target=100.0)


def group(**kw):  # noqa: ANN201 - a GroupConfig
    return builders.group(**{"policies": (CPU,), "scale_up": FREE, "scale_down": FREE, **kw})


def reps(n: int) -> list[Replica]:
    return [rep(f"r{i}", created_at=OLD + i) for i in range(n)]


def caps(**values: float | None) -> dict[str, ReplicaMetrics]:
    return {rid: ReplicaMetrics(capacity=v) for rid, v in values.items()}


# ------------------------------------------------ 1. one huge finite value stops everything


def test_target_overflow_is_not_computable_instead_of_raising() -> None:
    pol = TargetPolicyConfig(name="t", query="q", target=0.5)
    p = _call(target.propose, pol, obs(reps(4), signals={"t": 1e308}), group(policies=(pol,)))
    assert p.desired is None
    assert p.code == "not_computable"
    assert p.reason


def test_headroom_overflow_is_not_computable_instead_of_raising() -> None:
    # (1 - 0) / 5e-324 overflows to inf
    g = group(replica_capacity=5e-324)
    p = _call(
        headroom.propose, HeadroomPolicyConfig("free", 1.0), obs(reps(2), caps(r0=0, r1=0)), g
    )
    assert p.desired is None
    assert p.code == "not_computable"


def test_predictive_observed_overflow_is_not_computable_instead_of_raising() -> None:
    pol = PredictivePolicyConfig(name="p", query="q", demand_per_replica=1.0, target=0.5)
    huge = obs(reps(4), histories={"p": history(1e308)})
    p = _call(predictive.propose_observed, pol, huge, group())
    assert p.desired is None
    assert p.code == "not_computable"


def test_predictive_forecast_of_huge_history_does_not_raise() -> None:
    pol = PredictivePolicyConfig(name="p", query="q", demand_per_replica=1.0, target=0.5)
    history = [(NOW - 60 * i, 1e308) for i in range(10, 0, -1)]
    p = predictive.propose(history, NOW, pol)
    assert p.desired is None
    assert p.code == "not_computable"


def test_plan_with_one_overflowing_policy_still_decides_on_the_others() -> None:
    huge = TargetPolicyConfig(name="t", query="q", target=0.5)
    head = HeadroomPolicyConfig("free", min_available=8.0)
    g = group(policies=(huge, head))
    o = obs(reps(3), caps(r0=0, r1=1, r2=1), {"t": 1e308})
    d, _ = plan(g, o, PlannerState(), NOW)
    assert d.desired == 5  # headroom: free 2 < 8 -> +2
    by_policy = {p.policy: p for p in d.proposals}
    assert by_policy["t"].code == "not_computable" and by_policy["t"].desired is None


# ------------------------------------------------ 4. no replica reporting is not "complete"


def test_bridge_target_only_group_with_no_replica_reporting_capacity_holds() -> None:
    # Replicas read through the bridge always export replica_capacity: none reporting
    # is the worst case of partial data (3 of 4 reporting already holds).
    g = group(via_bridge=True)
    d, _ = plan(g, obs(reps(4), signals={"cpu": 50.0}), PlannerState(), NOW)
    assert (d.desired, d.delete) == (4, ())
    assert d.code == "partial"


def test_bridge_group_counts_every_silent_replica_as_missing() -> None:
    g = group(via_bridge=True)
    assert sorted(assess(obs(reps(4)), g).unreported) == ["r0", "r1", "r2", "r3"]


# ------------------------------------------------ 8. float noise at the edges


def test_target_lower_band_edge_holds_despite_float_noise() -> None:
    # 0.72 / 0.8 == 0.8999999999999999, the edge is 1 - 0.1 == 0.9
    pol = TargetPolicyConfig(name="t", query="q", target=0.8, tolerance_down=0.1)
    p = _call(target.propose, pol, obs(reps(20), signals={"t": 0.72}), group(policies=(pol,)))
    assert (p.desired, p.code) == (20, "in_band")


def test_target_upper_band_edge_holds_despite_float_noise() -> None:
    # 0.684 / 0.57 == 1.2000000000000002, the edge is 1 + 0.2 == 1.2
    pol = TargetPolicyConfig(name="t", query="q", target=0.57, tolerance_up=0.2)
    p = _call(target.propose, pol, obs(reps(10), signals={"t": 0.684}), group(policies=(pol,)))
    assert (p.desired, p.code) == (10, "in_band")


def test_headroom_surplus_float_noise_removes_both_idle_replicas() -> None:
    # free 0.1 + 0.2 + 1 + 1; removing both idle replicas leaves exactly 0.3 = min
    g = group(replica_capacity=1.0)
    o = obs(reps(4), caps(r0=0.1, r1=0.2, r2=1.0, r3=1.0))
    p = _call(headroom.propose, HeadroomPolicyConfig("free", 0.3), o, g)
    assert (p.desired, p.code) == (2, "headroom_surplus")


# ------------------------------------------------ 18. capacity above replica_capacity


def test_headroom_capacity_above_replica_capacity_is_invalid_not_idle() -> None:
    o = obs(reps(4), caps(r0=400, r1=4, r2=4, r3=4))
    p = _call(headroom.propose, HeadroomPolicyConfig("free", 4.0), o, group())
    # r0 is not idle: its sample is invalid, so this is partial data: no scale-in
    assert p.partial is True
    assert p.desired == 4


def test_headroom_huge_capacity_is_invalid_and_not_counted() -> None:
    o = obs(reps(3), caps(r0=1e308, r1=0, r2=0))
    p = _call(headroom.propose, HeadroomPolicyConfig("free", 8.0), o, group())
    # counted: nothing (r0 invalid) -> short 8 -> +2, partial
    assert (p.desired, p.partial) == (5, True)


def test_replica_reporting_more_than_replica_capacity_is_not_the_scale_in_victim() -> None:
    for bogus in (400.0, 1e308):
        o = obs(reps(4), caps(r0=bogus, r1=2, r2=2, r3=2), {"cpu": 75.0})
        d, _ = plan(group(), o, PlannerState(), NOW)
        assert "r0" not in d.delete, bogus
        assert (d.desired, d.code) == (4, "partial"), bogus


def test_target_only_group_with_no_replica_reporting_holds_by_default() -> None:
    # The case, scraped directly: 0 of 4 replicas reporting is the worst case of
    # partial data, so the group holds (on main it scaled 4 -> 2).
    d, _ = plan(group(), obs(reps(4), signals={"cpu": 50.0}), PlannerState(), NOW)
    assert (d.desired, d.delete, d.code) == (4, (), "partial")


def test_expect_capacity_false_lets_a_silent_target_only_group_scale_in() -> None:
    # Replicas that export no capacity gauge at all: the user says so, and silence is
    # then no reason to hold.
    silent = obs(reps(4), signals={"cpu": 50.0})
    d, _ = plan(group(expect_capacity=False), silent, PlannerState(), NOW)
    assert (d.desired, d.code) == (2, "target_below")  # ceil(4 x 50 / 100)


def test_headroom_group_counts_every_silent_replica_as_unreported() -> None:
    g = group(policies=(HeadroomPolicyConfig("free", 1.0),))
    assert len(assess(obs(reps(4)), g).unreported) == 4
