"""Examples for every planner step: combine, clamp, stabilize, partial, cooldown, step, victims."""

from __future__ import annotations

import dataclasses

import pytest

from autoscaler.core.clock import Reading
from autoscaler.core.model import (
    Observation,
    PlannerState,
    Replica,
    ReplicaMetrics,
    ReplicaState,
)
from autoscaler.core.planner import initial_state, memory_horizon, plan, record_action, step_limit
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)
from tests import builders
from tests.builders import NOW, OLD, obs, rep

FREE = ScalingBehavior()  # no cooldown, no window, no step limit
CPU = TargetPolicyConfig(name="cpu", query="q", target=100.0)
MEM = TargetPolicyConfig(name="mem", query="q", target=100.0)
HEAD = HeadroomPolicyConfig(name="free", min_available=8.0)


def group(**kw) -> GroupConfig:
    """The planner tests' default: one target policy, no damping."""
    # Unit cases of single planner steps: replicas without capacity samples export no
    # gauge here (expect_capacity: false) unless a case says otherwise.
    defaults = {"policies": (CPU,), "scale_up": FREE, "scale_down": FREE}
    return builders.group(**{**defaults, "expect_capacity": False, **kw})


def reps(n: int, prefix: str = "r") -> list[Replica]:
    return [rep(f"{prefix}{i}", created_at=OLD + i) for i in range(n)]


def run(g: GroupConfig, o: Observation, state: PlannerState | None = None):
    return plan(g, o, state or PlannerState(), o.at)


def check_consistent(d, g: GroupConfig) -> None:
    assert g.min <= d.desired <= g.max
    assert d.create == max(0, d.desired - d.current)
    # a scale event is a change from the size before this cycle's removals (replacements
    # of terminating and failed replicas are none)
    healthy = {r.id for r in d.assessment.healthy}
    base = d.current + sum(1 for rid in d.delete if rid not in healthy)
    assert d.direction == ("up" if d.desired > base else "down" if d.desired < base else "hold")


# ---------------------------------------------------------------- combine


def test_headroom_short_scales_up_with_reason_and_numbers() -> None:
    g = group(policies=(HEAD,))
    o = obs(reps(3), {"r0": ReplicaMetrics(0), "r1": ReplicaMetrics(1), "r2": ReplicaMetrics(1)})
    d, state = run(g, o)
    check_consistent(d, g)
    assert (d.current, d.desired, d.create, d.delete) == (3, 5, 2, ())
    assert (d.direction, d.code) == ("up", "headroom_short")
    assert "free 2 < min_available 8" in d.reason and "3 -> 5" in d.reason
    assert any("policy free" in line for line in d.details)
    # The planner records no action: the controller does once the provider accepted it.
    assert state.last_scale_up is None and state.last_scale_down is None


def test_highest_proposal_wins() -> None:
    g = group(policies=(CPU, MEM))
    d, _ = run(g, obs(reps(4), signals={"cpu": 50.0, "mem": 200.0}))
    assert (d.desired, d.code) == (8, "target_above")
    assert [p.desired for p in d.proposals] == [2, 8]


def test_policy_without_data_makes_it_partial_no_scale_down() -> None:
    g = group(policies=(CPU, MEM))
    d, _ = run(g, obs(reps(4), signals={"cpu": 50.0, "mem": float("nan")}))
    assert (d.desired, d.direction, d.code) == (4, "hold", "partial")
    assert d.delete == ()


def test_policy_without_data_still_allows_scale_up() -> None:
    g = group(policies=(CPU, MEM))
    d, _ = run(g, obs(reps(4), signals={"cpu": 150.0}))
    assert (d.desired, d.direction) == (6, "up")


def test_no_data_holds() -> None:
    g = group(min=1)
    d, _ = run(g, obs(reps(4), signals={"cpu": None}))
    assert (d.desired, d.direction, d.code) == (4, "hold", "no_data")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -5.0, None])
def test_bad_signal_is_never_read_as_zero(bad: float | None) -> None:
    # zero would mean ceil(4 * 0) = 0 -> scale to min; it must hold instead
    g = group(min=1)
    d, _ = run(g, obs(reps(4), signals={"cpu": bad}))
    assert d.desired == 4 and d.delete == ()


def test_prometheus_down_holds() -> None:
    g = group(policies=(HEAD, CPU), min=1)
    o = obs(reps(5), {f"r{i}": ReplicaMetrics(4) for i in range(5)}, {"cpu": 1.0}, False)
    d, _ = run(g, o)
    assert (d.desired, d.code, d.delete) == (5, "no_data", ())


def test_fallback_when_no_policy_has_data() -> None:
    g = group(fallback_replicas=2)
    d, _ = run(g, obs(reps(5), prometheus_ok=False))
    # the user's explicit choice applies in both directions
    assert (d.desired, d.code, d.direction) == (2, "fallback", "down")
    assert len(d.delete) == 3
    d2, _ = run(g, obs(reps(1), prometheus_ok=False))
    assert (d2.desired, d2.create) == (2, 1)


def test_fallback_is_clamped() -> None:
    d, _ = run(group(fallback_replicas=50, max=10), obs(reps(3)))
    assert (d.desired, d.code) == (10, "max")


def test_fallback_not_used_when_some_policy_has_data() -> None:
    g = group(policies=(CPU, MEM), fallback_replicas=1)
    d, _ = run(g, obs(reps(4), signals={"cpu": 100.0}))
    assert d.desired == 4


# ---------------------------------------------------------------- clamp


def test_clamp_to_max_and_min_with_codes() -> None:
    d, _ = run(group(max=5), obs(reps(4), signals={"cpu": 1000.0}))
    assert (d.desired, d.code) == (5, "max")
    d2, _ = run(group(min=3), obs(reps(4), signals={"cpu": 1.0}))
    assert (d2.desired, d2.code) == (3, "min")


def test_min_max_are_hard_limits_despite_step_and_cooldown() -> None:
    slow = ScalingBehavior(cooldown_seconds=1000, max_step_replicas=1)
    state = PlannerState(last_scale_up=NOW - 1, last_scale_down=NOW - 1)
    g = group(min=2, max=5, scale_up=slow, scale_down=slow)
    d, _ = run(g, obs(reps(9), signals={"cpu": 100.0}), state)
    assert (d.desired, d.code, len(d.delete)) == (5, "max", 4)
    d2, _ = run(g, obs([], signals={"cpu": 100.0}), state)
    assert (d2.desired, d2.create, d2.code) == (2, 2, "min")


def test_above_max_goes_down_even_with_partial_data() -> None:
    g = group(max=3, policies=(HEAD,))
    d, _ = run(g, obs(reps(5)))  # no capacity data at all
    assert d.desired == 3


# ---------------------------------------------------------------- stabilization


def test_scale_down_dip_must_persist_for_the_whole_window() -> None:
    g = group(scale_down=ScalingBehavior(stabilization_seconds=300))
    replicas = reps(4)
    state = PlannerState()
    timeline = [  # (t, cpu, expected desired)
        (0, 100.0, 4),
        (100, 50.0, 4),  # dip starts: held
        (200, 50.0, 4),
        (250, 100.0, 4),  # dip interrupted
        (300, 50.0, 4),
        (549, 50.0, 4),  # 250 still in the window
        (551, 50.0, 2),  # a whole window of "2" since 250
    ]
    for t, cpu, expected in timeline:
        d, state = plan(g, obs(replicas, signals={"cpu": cpu}, at=NOW + t), state, NOW + t)
        assert d.desired == expected, (t, d.reason)
        if expected == 4 and cpu == 50.0:
            assert d.code == "stabilizing"
    assert all(NOW + 551 - 300 < ts for ts, _ in state.recommendations)


def test_scale_up_window_takes_the_lowest_recent_recommendation() -> None:
    g = group(scale_up=ScalingBehavior(stabilization_seconds=60))
    replicas = reps(4)
    state = PlannerState()
    d, state = plan(g, obs(replicas, signals={"cpu": 100.0}), state, NOW)
    assert d.desired == 4
    d, state = plan(g, obs(replicas, signals={"cpu": 200.0}, at=NOW + 30), state, NOW + 30)
    assert (d.desired, d.code) == (4, "stabilizing")
    d, state = plan(g, obs(replicas, signals={"cpu": 150.0}, at=NOW + 61), state, NOW + 61)
    assert d.desired == 6  # min(8 at +30, 6 at +61)
    d, state = plan(g, obs(replicas, signals={"cpu": 200.0}, at=NOW + 100), state, NOW + 100)
    assert d.desired == 6  # 6 at +61 still in the window


def test_no_window_means_immediate() -> None:
    d, state = run(group(), obs(reps(4), signals={"cpu": 50.0}))
    assert d.desired == 2
    assert state.recommendations == ((NOW, 2),)


def test_recommendations_from_the_future_are_dropped() -> None:
    g = group(scale_down=ScalingBehavior(stabilization_seconds=300))
    state = PlannerState(recommendations=((NOW + 50, 10),))
    d, new = run(g, obs(reps(4), signals={"cpu": 50.0}), state)
    assert d.desired == 2 and new.recommendations == ((NOW, 2),)


# ---------------------------------------------------------------- partial data


def test_missing_capacity_blocks_scale_down_of_a_target_policy() -> None:
    metrics = {"r0": ReplicaMetrics(2), "r1": ReplicaMetrics(2), "r2": ReplicaMetrics(2)}
    d, _ = run(group(), obs(reps(4), metrics, {"cpu": 50.0}))  # r3 has no sample
    assert (d.desired, d.code, d.delete) == (4, "partial", ())
    assert any("r3" in line for line in d.details)


def test_nan_capacity_blocks_scale_down() -> None:
    metrics = {f"r{i}": ReplicaMetrics(float("nan")) for i in range(4)}
    d, _ = run(group(), obs(reps(4), metrics, {"cpu": 50.0}))
    assert d.desired == 4


def test_missing_capacity_of_warming_replica_is_fine() -> None:
    replicas = reps(3) + [rep("young", created_at=NOW - 5)]
    metrics = {f"r{i}": ReplicaMetrics(2) for i in range(3)}
    d, _ = run(group(), obs(replicas, metrics, {"cpu": 50.0}))
    assert d.desired == 2


def test_target_only_group_without_capacity_gauge_can_scale_down() -> None:
    d, _ = run(group(expect_capacity=False), obs(reps(4), signals={"cpu": 50.0}))
    assert d.desired == 2


def test_no_replica_reporting_capacity_holds_unless_the_group_exports_none() -> None:
    d, _ = run(group(expect_capacity=True), obs(reps(4), signals={"cpu": 50.0}))
    assert (d.desired, d.code) == (4, "partial")


def test_headroom_partial_surplus_does_not_scale_down() -> None:
    g = group(policies=(HeadroomPolicyConfig("free", 0.0),))
    metrics = {"r0": ReplicaMetrics(4), "r1": ReplicaMetrics(4), "r2": ReplicaMetrics(-1)}
    d, _ = run(g, obs(reps(3), metrics))
    assert (d.desired, d.delete) == (3, ())


def test_a_partial_view_just_after_an_outage_does_not_scale_up() -> None:
    """Prometheus restarted: it scrapes the replicas again one by one, and the first
    cycle that sees one of two must not take the other's silence for 0 free (the fault
    suite's "Prometheus process SIGKILLed, restarted" created a replica here)."""
    g = group(policies=(HEAD,), expect_capacity=True, stale_after_seconds=3.0)
    two = reps(2)
    d, state = run(g, obs(two, prometheus_ok=False, at=NOW - 1))
    assert (d.desired, d.code) == (2, "no_data")
    half = {"r0": ReplicaMetrics(4)}  # r1 not scraped again yet
    d, state = plan(g, obs(two, half), state, NOW)
    assert (d.desired, d.code) == (2, "partial"), d.details
    assert any("data came back" in line for line in d.details)
    # still silent once the data source has had stale_after_seconds to catch up: a
    # replica that is really gone (hung) is then counted as 0 free, as before
    d, state = plan(g, obs(two, half, at=NOW + 1.5), state, NOW + 1.5)
    assert d.desired == 2  # 2.5 s after the last cycle without data
    d, state = plan(g, obs(two, half, at=NOW + 2), state, NOW + 2)
    assert (d.desired, d.code) == (3, "headroom_short"), d.details
    # without an outage before it, the same partial view scales up at once
    d, _ = run(g, obs(two, half))
    assert (d.desired, d.code) == (3, "headroom_short")
    # replicas that report no capacity at all (a target-only group through the bridge)
    # are no sign of a source catching up: the target's scale-up goes ahead
    t = group(expect_capacity=True, stale_after_seconds=3.0)
    d, state = run(t, obs(two, prometheus_ok=False, at=NOW - 1))
    d, _ = plan(t, obs(two, signals={"cpu": 200.0}), state, NOW)
    assert (d.desired, d.code) == (4, "target_above"), d.details


# ---------------------------------------------------------------- cooldowns


def test_scale_up_cooldown_counts_from_last_scale_up() -> None:
    g = group(scale_up=ScalingBehavior(cooldown_seconds=120))
    o = obs(reps(4), signals={"cpu": 200.0})
    d, _ = run(g, o, PlannerState(last_scale_up=NOW - 100))
    assert (d.desired, d.code) == (4, "cooldown")
    assert d.cooldown_remaining["up"] == pytest.approx(20)
    d2, _ = run(g, o, PlannerState(last_scale_up=NOW - 120))
    assert d2.desired == 8 and d2.cooldown_remaining["up"] == 0
    # a recent scale-down does not block a scale-up
    d3, _ = run(g, o, PlannerState(last_scale_down=NOW - 1))
    assert d3.desired == 8


def test_scale_down_cooldown_counts_from_either_direction() -> None:
    g = group(scale_down=ScalingBehavior(cooldown_seconds=300))
    o = obs(reps(4), signals={"cpu": 50.0})
    for state in (PlannerState(last_scale_up=NOW - 10), PlannerState(last_scale_down=NOW - 10)):
        d, _ = run(g, o, state)
        assert (d.desired, d.code, d.delete) == (4, "cooldown", ())
        assert d.cooldown_remaining["down"] == pytest.approx(290)
    d, _ = run(g, o, PlannerState(last_scale_up=NOW - 400, last_scale_down=NOW - 301))
    assert d.desired == 2


def test_recorded_scale_up_then_cools_down() -> None:
    g = group(scale_up=ScalingBehavior(cooldown_seconds=60))
    d, state = run(g, obs(reps(2), signals={"cpu": 200.0}))
    assert d.desired == 4 and state.last_scale_up is None  # not accepted yet
    state = record_action(state, d.direction, NOW)
    assert state.last_scale_up == NOW
    o2 = obs(reps(4), signals={"cpu": 200.0}, at=NOW + 10)
    d2, state2 = plan(g, o2, state, NOW + 10)
    assert (d2.desired, d2.code) == (4, "cooldown")
    assert state2.last_scale_up == NOW
    assert record_action(state2, d2.direction, NOW + 10) == state2  # a hold records nothing


def test_record_action_per_direction() -> None:
    state = PlannerState(recommendations=((NOW, 3),))
    up = record_action(state, "up", NOW)
    assert up == PlannerState(recommendations=((NOW, 3),), last_scale_up=NOW)
    down = record_action(up, "down", NOW + 5)
    assert (down.last_scale_up, down.last_scale_down) == (NOW, NOW + 5)
    assert record_action(down, "hold", NOW + 9) == down


def test_initial_state_moves_the_newest_replica_onto_the_monotonic_timeline() -> None:
    replicas = [rep("a", created_at=NOW - 500), rep("b", created_at=NOW - 20)]
    at = Reading(monotonic=123.0, wall=NOW)
    assert initial_state(replicas, at) == PlannerState(last_scale_up=103.0)
    future = [rep("c", created_at=NOW + 3600)]  # the provider's clock is ahead: counts as now
    assert initial_state(future, at) == PlannerState(last_scale_up=123.0)


def test_memory_horizon_is_the_longest_window_or_cooldown() -> None:
    g = group(
        scale_up=ScalingBehavior(cooldown_seconds=30, stabilization_seconds=10),
        scale_down=ScalingBehavior(cooldown_seconds=60, stabilization_seconds=300),
    )
    assert memory_horizon(g) == 300
    assert memory_horizon(group(scale_up=ScalingBehavior(), scale_down=ScalingBehavior())) == 0


def test_initial_state_remembers_the_newest_replica() -> None:
    replicas = [rep("a", created_at=NOW - 500), rep("b", created_at=NOW - 20)]
    state = initial_state(replicas)
    assert state == PlannerState(last_scale_up=NOW - 20)
    assert initial_state([]) == PlannerState()
    g = group(scale_up=ScalingBehavior(cooldown_seconds=60))
    d, _ = run(g, obs(replicas, signals={"cpu": 300.0}), state)
    assert (d.desired, d.code) == (2, "cooldown")


# ---------------------------------------------------------------- step limits


def test_step_limit_values() -> None:
    for up in (True, False):
        assert step_limit(ScalingBehavior(), 10, up=up) is None
        both = ScalingBehavior(max_step_replicas=4, max_step_percent=100)
        assert step_limit(both, 2, up=up) == 4
        assert step_limit(both, 10, up=up) == 10
        assert step_limit(ScalingBehavior(max_step_percent=10), 0, up=up) == 1
        assert step_limit(ScalingBehavior(max_step_replicas=0), 5, up=up) == 1
    # percent: ceil going up, floor going down (at least 1)
    assert step_limit(ScalingBehavior(max_step_percent=10), 15, up=True) == 2
    assert step_limit(ScalingBehavior(max_step_percent=10), 15, up=False) == 1
    assert step_limit(ScalingBehavior(max_step_percent=50), 3, up=True) == 2
    assert step_limit(ScalingBehavior(max_step_percent=50), 3, up=False) == 1
    assert step_limit(ScalingBehavior(max_step_percent=50), 1, up=False) == 1
    # float noise moves neither: 10 * 70 / 100 = 7.000000000000001, 100 * 29 / 100 ~ 28.99..
    assert step_limit(ScalingBehavior(max_step_percent=70), 10, up=True) == 7
    assert step_limit(ScalingBehavior(max_step_percent=29), 100, up=False) == 29


def test_percent_step_limits_through_the_planner() -> None:
    g = group(
        scale_up=ScalingBehavior(max_step_percent=50),
        scale_down=ScalingBehavior(max_step_percent=50),
    )
    d, _ = run(g, obs(reps(3), signals={"cpu": 1000.0}))
    assert (d.desired, d.create, d.code) == (5, 2, "step_limit")  # ceil(1.5) = 2 up
    d2, _ = run(g, obs(reps(3), signals={"cpu": 10.0}))
    assert (d2.desired, len(d2.delete), d2.code) == (2, 1, "step_limit")  # floor(1.5) = 1 down


def test_step_limit_applies_per_direction() -> None:
    g = group(
        scale_up=ScalingBehavior(max_step_replicas=2),
        scale_down=ScalingBehavior(max_step_replicas=1),
    )
    d, _ = run(g, obs(reps(4), signals={"cpu": 1000.0}))
    assert (d.desired, d.code, d.create) == (6, "step_limit", 2)
    assert "step limit 2" in d.reason
    d2, _ = run(g, obs(reps(4), signals={"cpu": 10.0}))
    assert (d2.desired, d2.code, len(d2.delete)) == (3, "step_limit", 1)


# ---------------------------------------------------------------- disabled directions

OFF = ScalingBehavior(enabled=False)


def test_disabled_scale_down_holds_what_the_policies_would_remove() -> None:
    g = group(scale_down=OFF)
    d, state = run(g, obs(reps(4), signals={"cpu": 10.0}))  # the policy wants 1
    assert (d.current, d.desired, d.delete, d.direction) == (4, 4, (), "hold")
    assert d.code == "scale_down_disabled"
    assert "scale-down disabled: hold at 4 instead of 1" in d.reason
    assert state.last_scale_down is None  # nothing happened: no cooldown starts
    # scale-up is untouched
    d2, _ = run(g, obs(reps(4), signals={"cpu": 200.0}))
    assert (d2.desired, d2.direction) == (8, "up")


def test_disabled_scale_down_still_removes_terminating_and_failed_replicas() -> None:
    g = group(scale_down=OFF)
    replicas = reps(4) + [rep("f", ReplicaState.FAILED)]
    metrics = {"r1": ReplicaMetrics(termination=1)}
    d, _ = run(g, obs(replicas, metrics, {"cpu": 10.0}))
    # both removed and both replaced: the group holds at 5 (it used to shrink to 3)
    assert (d.current, d.desired, d.direction) == (3, 5, "hold")
    assert d.delete == ("r1", "f") and d.create == 2


def test_disabled_scale_down_still_obeys_max() -> None:
    d, _ = run(group(scale_down=OFF, max=2), obs(reps(4), signals={"cpu": 10.0}))
    assert (d.desired, d.code, len(d.delete)) == (2, "max", 2)


def test_disabled_scale_up_holds_but_min_still_applies() -> None:
    d, _ = run(group(scale_up=OFF), obs(reps(2), signals={"cpu": 300.0}))
    assert (d.desired, d.create, d.code) == (2, 0, "scale_up_disabled")
    d2, _ = run(group(scale_up=OFF, min=3), obs(reps(2), signals={"cpu": 300.0}))
    assert (d2.desired, d2.create, d2.code) == (3, 1, "min")
    # scale-down is untouched
    d3, _ = run(group(scale_up=OFF), obs(reps(4), signals={"cpu": 50.0}))
    assert (d3.desired, d3.direction) == (2, "down")


# ---------------------------------------------------------------- victims


def test_terminating_ids_are_computed_once_and_follow_replace() -> None:
    o = obs(reps(3), {"r1": ReplicaMetrics(termination=1), "r2": ReplicaMetrics(termination=0)})
    assert o.terminating_ids() == {"r1"} and o.terminating_ids() is o.terminating_ids()
    gone = dataclasses.replace(o, replicas=(rep("r0"), rep("r1", ReplicaState.DELETING)))
    assert gone.terminating_ids() == frozenset()  # recomputed for the new replicas
    assert "_terminating" not in repr(o)
    assert o == obs(reps(3), dict(o.metrics))  # a derived field: not part of equality


def test_terminating_replicas_are_always_deleted_and_not_counted() -> None:
    replicas = reps(3)
    metrics = {"r1": ReplicaMetrics(termination=1)}
    d, _ = run(group(), obs(replicas, metrics, {"cpu": 100.0}))
    # replaced in the same cycle (this test used to assert desired 2: no replacement)
    assert (d.current, d.desired, d.delete, d.code) == (2, 3, ("r1",), "termination")
    assert (d.create, d.direction) == (1, "hold")
    # even while scaling up: the replacement plus the scale-up
    d2, _ = run(group(), obs(replicas, metrics, {"cpu": 200.0}))
    assert d2.delete == ("r1",) and d2.create == 2 and d2.direction == "up"


def test_terminating_replicas_are_deleted_even_in_cooldown_and_partial() -> None:
    g = group(scale_down=ScalingBehavior(cooldown_seconds=600), policies=(CPU, MEM))
    metrics = {"r0": ReplicaMetrics(termination=1)}
    d, _ = run(g, obs(reps(3), metrics, {"cpu": 10.0}), PlannerState(last_scale_up=NOW))
    assert d.delete == ("r0",) and d.desired == 3 and d.create == 1  # and replaced


def test_failed_replicas_are_replaced_oldest_first_bounded_per_cycle() -> None:
    replicas = reps(2) + [
        rep("f-new", ReplicaState.FAILED, NOW - 10),
        rep("f-old", ReplicaState.FAILED, NOW - 1000),
    ]
    d, _ = run(group(), obs(replicas, signals={"cpu": 100.0}))
    # deleted and replaced (this test used to assert desired 2: no replacement)
    assert (d.current, d.desired, d.delete, d.code, d.create) == (2, 3, ("f-old",), "failed", 1)
    d2, _ = run(group(max_replacements_per_cycle=5), obs(replicas, signals={"cpu": 100.0}))
    assert d2.delete == ("f-old", "f-new") and d2.create == 2
    d0, _ = run(group(max_replacements_per_cycle=0), obs(replicas, signals={"cpu": 100.0}))
    assert d0.delete == () and d0.create == 0


def test_deleting_replicas_are_never_counted_or_deleted() -> None:
    replicas = reps(2) + [rep("gone", ReplicaState.DELETING)]
    metrics = {"gone": ReplicaMetrics(capacity=4, termination=1)}
    d, _ = run(group(), obs(replicas, metrics, {"cpu": 50.0}))
    assert d.current == 2 and "gone" not in d.delete


def test_victim_order_terminating_failed_idle_missing_then_age() -> None:
    replicas = [
        rep("busy", created_at=OLD + 1),
        rep("idle-young", created_at=OLD + 50),
        rep("idle-old", created_at=OLD + 10),
        rep("half", created_at=OLD + 2),
        rep("nodata", created_at=OLD),
        rep("term", created_at=OLD + 99),
        rep("fail", ReplicaState.FAILED, OLD + 98),
    ]
    metrics = {
        "busy": ReplicaMetrics(0),
        "idle-young": ReplicaMetrics(4),
        "idle-old": ReplicaMetrics(4),  # fully idle: ties with idle-young, by age
        "half": ReplicaMetrics(2),
        "nodata": ReplicaMetrics(float("inf")),
        "term": ReplicaMetrics(4, termination=1),
    }
    # max 0 forces a full scale-in despite the partial data ("nodata" has no usable sample)
    d, _ = run(group(max=0), obs(replicas, metrics, {"cpu": 100.0}))
    assert d.delete == ("term", "fail", "idle-old", "idle-young", "half", "busy", "nodata")
    d2, _ = run(group(max=0, scale_in_order="newest"), obs(replicas, metrics, {"cpu": 100.0}))
    assert d2.delete == ("term", "fail", "idle-young", "idle-old", "half", "busy", "nodata")
    # with max 2, three go: the most idle ones
    d3, _ = run(group(max=2), obs(replicas, metrics, {"cpu": 100.0}))
    assert d3.delete == ("term", "fail", "idle-old", "idle-young", "half")


def test_victims_tie_break_on_id() -> None:
    replicas = [rep("b"), rep("a"), rep("c")]
    metrics = {x: ReplicaMetrics(4) for x in "abc"}
    d, _ = run(group(), obs(replicas, metrics, {"cpu": 30.0}))  # ceil(3 * 0.3) = 1
    assert d.delete == ("a", "b")


def test_headroom_scale_in_picks_the_idle_replicas() -> None:
    g = group(policies=(HeadroomPolicyConfig("free", 4.0),))
    replicas = reps(4)
    metrics = {
        "r0": ReplicaMetrics(0),
        "r1": ReplicaMetrics(4),
        "r2": ReplicaMetrics(4),
        "r3": ReplicaMetrics(1),
    }
    d, _ = run(g, obs(replicas, metrics))
    # free 9: one idle replica can go (9 - 4 = 5 >= 4), not two (1 < 4)
    assert (d.desired, d.delete) == (3, ("r1",))


# ---------------------------------------------------------------- misc


def test_dry_run_is_copied_and_the_plan_is_made() -> None:
    d, _ = run(group(dry_run=True), obs(reps(4), signals={"cpu": 200.0}))
    assert d.dry_run is True and d.create == 4


def test_same_inputs_same_output() -> None:
    g = group(policies=(HEAD, CPU), scale_down=ScalingBehavior(stabilization_seconds=100))
    metrics = {f"r{i}": ReplicaMetrics(float(i)) for i in range(5)}
    o = obs(reps(5), metrics, {"cpu": 70.0})
    state = PlannerState(recommendations=((NOW - 50, 3),), last_scale_up=NOW - 500)
    assert plan(g, o, state, NOW) == plan(g, o, state, NOW)


def test_warmup_replicas_count_for_headroom_in_planner() -> None:
    g = group(policies=(HEAD,))
    replicas = reps(1) + [rep("young", created_at=NOW - 30)]
    d, _ = run(g, obs(replicas, {"r0": ReplicaMetrics(4)}))
    assert (d.desired, d.direction) == (2, "hold")


# ---------------------------------------------------------------- replacements and caps


def test_replacement_is_bounded_by_max() -> None:
    # 4 replicas, max 3 (max was lowered): the terminating one goes and is not replaced
    metrics = {"r1": ReplicaMetrics(termination=1)}
    d, _ = run(group(max=3), obs(reps(4), metrics, {"cpu": 100.0}))
    assert (d.delete, d.create, d.desired) == (("r1",), 0, 3)
    # at max: replaced one for one, never above
    d2, _ = run(group(max=4), obs(reps(4), metrics, {"cpu": 200.0}))
    assert (d2.delete, d2.create, d2.desired, d2.code) == (("r1",), 1, 4, "max")


def test_replacement_ignores_cooldown_step_and_disabled_scale_up() -> None:
    slow = ScalingBehavior(cooldown_seconds=600, max_step_replicas=1, enabled=False)
    g = group(scale_up=slow, policies=(HeadroomPolicyConfig("free", 3.0),))
    metrics = {f"r{i}": ReplicaMetrics(1.0) for i in range(3)}
    metrics["r0"] = ReplicaMetrics(1.0, termination=1)
    replicas = reps(3) + [rep("dead", ReplicaState.FAILED)]
    d, state = run(g, obs(replicas, metrics), PlannerState(last_scale_up=NOW - 1))
    assert (d.delete, d.create, d.direction) == (("r0", "dead"), 2, "hold")
    assert state.last_scale_up == NOW - 1  # a replacement is no scale event


def test_terminations_are_capped_per_cycle() -> None:
    metrics = {f"r{i}": ReplicaMetrics(termination=1) for i in range(4)}
    o = obs(reps(5), metrics, {"cpu": 100.0})
    d, _ = run(group(), o)
    assert (d.delete, d.create) == (("r0",), 1)  # oldest first, one per cycle
    assert any("3 asking termination wait" in line for line in d.details)
    d3, _ = run(group(max_terminations_per_cycle=3), o)
    assert (d3.delete, d3.create) == (("r0", "r1", "r2"), 3)
    d0, _ = run(group(max_terminations_per_cycle=0), o)
    assert (d0.delete, d0.create) == ((), 0)


def test_termination_below_min_only_when_asked() -> None:
    metrics = {f"r{i}": ReplicaMetrics(termination=1) for i in range(3)}
    o = obs(reps(3), metrics, {"cpu": 100.0})
    d, _ = run(group(min=2, max_terminations_per_cycle=3), o)
    # 3 running, min 2: one may go now; the other two wait for their replacements
    assert d.delete == ("r0",) and d.create == 2  # healthy 0 -> min 2
    assert any("2 to keep min 2 running" in line for line in d.details)
    d2, _ = run(group(min=2, max_terminations_per_cycle=3, termination_below_min=True), o)
    assert d2.delete == ("r0", "r1", "r2") and d2.create == 3


def test_unreplaced_removal_is_the_scale_in_step() -> None:
    # the policy wants 1 of 3 (one terminating), scale-down step 1: not replacing the
    # terminating replica is the step; no healthy replica goes this cycle
    g = group(scale_down=ScalingBehavior(max_step_replicas=1))
    metrics = {"r0": ReplicaMetrics(termination=1)}
    d, state = run(g, obs(reps(3), metrics, {"cpu": 10.0}))
    assert (d.delete, d.create, d.desired, d.direction) == (("r0",), 0, 2, "down")
    # a scale-down: its cooldown starts once the provider accepted the delete
    assert state.last_scale_down is None
    assert record_action(state, d.direction, NOW).last_scale_down == NOW


def test_scale_down_stabilization_keeps_the_replacement() -> None:
    g = group(scale_down=ScalingBehavior(stabilization_seconds=300))
    metrics = {"r0": ReplicaMetrics(termination=1)}
    state = PlannerState(recommendations=((NOW - 100, 3),))
    d, _ = run(g, obs(reps(3), metrics, {"cpu": 10.0}), state)
    assert (d.delete, d.create, d.desired, d.code) == (("r0",), 1, 3, "stabilizing")


def test_no_data_keeps_the_size_and_replaces_failed_replicas() -> None:
    replicas = reps(3) + [rep("dead", ReplicaState.FAILED)]
    d, _ = run(group(policies=(HEAD, CPU)), obs(replicas, prometheus_ok=False))
    assert (d.current, d.desired, d.delete, d.create) == (3, 4, ("dead",), 1)
    assert (d.direction, d.code) == ("hold", "no_data")


def test_warming_replicas_are_never_scale_in_victims() -> None:
    replicas = reps(2) + [rep("w1", created_at=NOW - 5), rep("w2", created_at=NOW - 6)]
    d, _ = run(group(scale_in_order="newest"), obs(replicas, signals={"cpu": 10.0}))
    # the policy wants 1; only the two past warm-up may go
    assert (d.desired, set(d.delete), d.code) == (2, {"r0", "r1"}, "no_victim")
    assert any("only 2 booting or past warm-up may go" in line for line in d.details)


def test_scale_in_sheds_booting_replicas_before_serving_ones() -> None:
    # A spike collapses while its replicas boot: removing the two serving replicas (the
    # only ones past warm-up) would leave three that serve nothing yet. The booting ones
    # go instead, newest first.
    booting = [rep(f"b{i}", ReplicaState.BUILDING, created_at=NOW - 10 - i) for i in range(3)]
    d, _ = run(group(), obs(reps(2) + booting, signals={"cpu": 40.0}))
    assert d.desired == 2
    assert d.delete == ("b0", "b1", "b2")


def test_headroom_idle_group_does_not_shed_booting_replicas() -> None:
    # SimpleScaleVM's rule stays: only idle replicas past warm-up go, booting or not.
    g = group(policies=(HeadroomPolicyConfig("free", 0.0), CPU), max=10)
    replicas = reps(2) + [rep("b0", ReplicaState.BUILDING, created_at=NOW - 10)]
    metrics = {"r0": ReplicaMetrics(4), "r1": ReplicaMetrics(1)}
    d, _ = run(g, obs(replicas, metrics, {"cpu": 10.0}))
    assert "b0" not in d.delete


def test_above_max_takes_warming_replicas_last() -> None:
    replicas = reps(2) + [rep("w1", created_at=NOW - 5), rep("w2", created_at=NOW - 6)]
    d, _ = run(group(max=1, scale_in_order="newest"), obs(replicas, signals={"cpu": 100.0}))
    assert (d.desired, d.code) == (1, "max")
    assert d.delete == ("r1", "r0", "w1")  # past warm-up first, then the newest warming one


def test_headroom_group_removes_only_idle_replicas_unless_falling_back() -> None:
    g = group(policies=(HeadroomPolicyConfig("free", 0.0), CPU), max=10)
    metrics = {"r0": ReplicaMetrics(4), "r1": ReplicaMetrics(1), "r2": ReplicaMetrics(0)}
    fallback = group(policies=(HeadroomPolicyConfig("free", 0.0),), fallback_replicas=1)
    d, _ = run(fallback, obs(reps(3), metrics, prometheus_ok=False))
    # with no data the user's fallback decides, and victims are not limited to idle ones
    assert (d.desired, d.code, len(d.delete)) == (1, "fallback", 2)
    d2, _ = run(g, obs(reps(3), metrics, {"cpu": 10.0}))
    assert d2.delete == ("r0",)  # headroom (2) outbids target (1): only the idle one goes


def test_headroom_spread_group_may_remove_busy_replicas() -> None:
    # Even spread: no idle replica, yet the surplus goes, and the lower target count of
    # another policy is no longer blocked by headroom's hold.
    spread = HeadroomPolicyConfig("free", 4.0, scale_in="spread")
    metrics = {f"r{i}": ReplicaMetrics(3) for i in range(4)}
    d, _ = run(group(policies=(spread,)), obs(reps(4), metrics))
    assert (d.desired, len(d.delete)) == (2, 2)
    idle = group(policies=(HeadroomPolicyConfig("free", 4.0),))
    d2, _ = run(idle, obs(reps(4), metrics))
    assert (d2.desired, d2.delete) == (4, ())


def test_a_saved_memory_counts_replicas_created_after_it_as_a_scale_up() -> None:
    # Killed after the provider accepted a create, before the cycle saved its memory: the
    # restarted daemon's memory misses the scale-up, the provider's listing does not.
    from autoscaler.core.planner import with_replica_evidence

    saved = PlannerState(last_scale_up=NOW - 500, last_scale_down=NOW - 400)
    replicas = [rep("old", created_at=NOW - 600), rep("new", created_at=NOW - 20)]
    at = Reading(wall=NOW, monotonic=NOW)
    merged = with_replica_evidence(saved, replicas, at)
    assert merged.last_scale_up == NOW - 20 and merged.last_scale_down == NOW - 400
    # never moved back, and nothing to add without a newer replica
    assert with_replica_evidence(saved, replicas[:1], at) == saved
    assert with_replica_evidence(PlannerState(), [], at) == PlannerState()
    g = group(scale_up=ScalingBehavior(cooldown_seconds=60))
    d, _ = run(g, obs(reps(2), signals={"cpu": 200.0}), merged)
    assert d.direction == "hold" and d.code == "cooldown"
