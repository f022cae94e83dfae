"""Regressions for issue #9, planner defects 5, 7, 11, 16 and 17.

Each test states the behaviour the issue asks for, through the real planner.
"""

from __future__ import annotations

from autoscaler.core.model import Observation, PlannerState, Replica, ReplicaMetrics, ReplicaState
from autoscaler.core.planner import plan
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)
from tests import builders
from tests.builders import NOW, OLD, obs, rep

FREE = ScalingBehavior()
CPU = TargetPolicyConfig(name="cpu", query="q", target=100.0)
# Needs 3 replicas' worth of free slots when each replica reports 1 free (of 4).
HEAD3 = HeadroomPolicyConfig(name="free", min_available=3.0)


def group(**kw) -> GroupConfig:
    # Unit cases of single planner steps: replicas without capacity samples export no
    # gauge here (expect_capacity: false) unless a case says otherwise.
    defaults = {"policies": (CPU,), "scale_up": FREE, "scale_down": FREE}
    return builders.group(**{**defaults, "expect_capacity": False, **kw})


def reps(n: int, prefix: str = "r") -> list[Replica]:
    return [rep(f"{prefix}{i}", created_at=OLD + i) for i in range(n)]


def run(g: GroupConfig, o: Observation, state: PlannerState | None = None):
    return plan(g, o, state or PlannerState(), o.at)


# ------------------------------------------------- 5. terminating replicas are replaced now


def test_5_terminating_replica_is_replaced_despite_scale_up_cooldown() -> None:
    g = group(policies=(HEAD3,), scale_up=ScalingBehavior(cooldown_seconds=600))
    metrics = {f"r{i}": ReplicaMetrics(1.0) for i in range(3)}
    metrics["r1"] = ReplicaMetrics(1.0, termination=1)
    d, _ = run(g, obs(reps(3), metrics), PlannerState(last_scale_up=NOW - 10))
    assert d.delete == ("r1",)
    assert d.create == 1, d.details  # the replacement does not wait for the cooldown


def test_5_terminating_replica_is_replaced_beyond_the_scale_up_step_limit() -> None:
    # One replica asks termination and the group also needs one more (free 2 of 7 wanted:
    # +2 on 2 healthy): the replacement is not part of the scale-up step (limit 1): 2 created.
    g = group(
        policies=(HeadroomPolicyConfig("free", 7.0),), scale_up=ScalingBehavior(max_step_replicas=1)
    )
    metrics = {f"r{i}": ReplicaMetrics(1.0) for i in range(3)}
    metrics["r1"] = ReplicaMetrics(1.0, termination=1)
    d, _ = run(g, obs(reps(3), metrics))
    assert d.delete == ("r1",)
    assert d.create == 2, d.details


def test_5_terminating_replica_is_replaced_when_the_policy_is_in_band() -> None:
    # tests/test_planner.py asserted the opposite (desired 2, nothing created).
    metrics = {"r1": ReplicaMetrics(termination=1)}
    d, _ = run(group(), obs(reps(3), metrics, {"cpu": 100.0}))
    assert d.delete == ("r1",)
    assert d.create == 1, d.details


def test_5_step_limit_bounds_deletions_with_terminating_replicas() -> None:
    # Three terminating replicas plus a step-1 scale-in deleted four in one cycle. Now:
    # one termination per cycle (default cap), and not replacing it is the scale-in step.
    g = group(scale_down=ScalingBehavior(max_step_replicas=1))
    metrics = {f"r{i}": ReplicaMetrics(termination=1) for i in range(3)}
    d, _ = run(g, obs(reps(5), metrics, {"cpu": 10.0}))
    assert len(d.delete) <= 2, d.delete
    assert len(d.delete) - d.create <= 1, d.details


# ------------------------------------------------- 7. never a warming-up victim


def test_7_newest_order_never_deletes_a_replica_in_warmup() -> None:
    young = rep("young", created_at=NOW - 5)  # in warm-up (60 s)
    replicas = reps(3) + [young]
    metrics = {r.id: ReplicaMetrics(4.0) for r in replicas}
    d, _ = run(group(scale_in_order="newest"), obs(replicas, metrics, {"cpu": 50.0}))
    assert d.desired == 2
    assert "young" not in d.delete, d.delete


def test_7_newest_order_never_deletes_a_warming_replica_without_samples() -> None:
    # A target-only group: no replica exports capacity; the newest is still warming up.
    young = rep("young", created_at=NOW - 5)
    d, _ = run(group(scale_in_order="newest"), obs(reps(3) + [young], signals={"cpu": 50.0}))
    assert d.direction == "down"
    assert "young" not in d.delete, d.delete


def test_7_headroom_scale_in_only_takes_idle_replicas() -> None:
    # r0 idle, r1 busy, young (warming) reports full capacity: only r0 may go.
    g = group(policies=(HeadroomPolicyConfig("free", 4.0),), scale_in_order="newest")
    replicas = [rep("r0", created_at=OLD), rep("r1", created_at=OLD + 1)]
    replicas.append(rep("young", created_at=NOW - 5))
    metrics = {"r0": ReplicaMetrics(4.0), "r1": ReplicaMetrics(0.0), "young": ReplicaMetrics(4.0)}
    d, _ = run(g, obs(replicas, metrics))
    assert d.delete == ("r0",), d.details


# ------------------------------------------------- 11. percent step limit, scale-down floors


def test_11_percent_scale_down_of_3_at_50_percent_removes_1() -> None:
    g = group(scale_down=ScalingBehavior(max_step_percent=50))
    d, _ = run(g, obs(reps(3), signals={"cpu": 10.0}))  # the policy wants 1
    assert (d.desired, len(d.delete)) == (2, 1), d.details


# ------------------------------------------------- 16. outage: failed replicas still replaced


def test_16_failed_replica_is_replaced_during_prometheus_outage() -> None:
    replicas = reps(2) + [rep("dead", ReplicaState.FAILED)]
    d, _ = run(group(min=1), obs(replicas, prometheus_ok=False))
    assert d.delete == ("dead",)
    assert d.create == 1, d.details
    assert d.desired == 3


def test_16_failed_replica_is_replaced_with_partial_data() -> None:
    g = group(policies=(CPU, TargetPolicyConfig("mem", "q", 100.0)))
    replicas = reps(3) + [rep("dead", ReplicaState.FAILED)]
    d, _ = run(g, obs(replicas, signals={"cpu": 100.0, "mem": None}))
    assert d.delete == ("dead",) and d.create == 1, d.details


def test_16_long_outage_does_not_drain_the_group() -> None:
    """One replica dies every cycle during an outage: the group stays at 3."""
    g = group(min=1, scale_up=ScalingBehavior(cooldown_seconds=600, max_step_replicas=1))
    replicas = {r.id: r for r in reps(3)}
    state = PlannerState(last_scale_up=NOW)
    serial = 0
    for cycle in range(6):
        now = NOW + 10 * cycle
        victim = sorted(replicas)[0]
        replicas[victim] = rep(victim, ReplicaState.FAILED, replicas[victim].created_at)
        d, state = plan(g, obs(list(replicas.values()), prometheus_ok=False, at=now), state, now)
        for rid in d.delete:
            del replicas[rid]
        for _ in range(d.create):
            serial += 1
            replicas[f"n{serial}"] = rep(f"n{serial}", created_at=now)
        healthy = [r for r in replicas.values() if r.state is not ReplicaState.FAILED]
        assert len(healthy) == 3, (cycle, d.details)


# ------------------------------------------------- 17. terminations are capped


def test_17_one_bad_exporter_does_not_empty_the_group() -> None:
    metrics = {f"r{i}": ReplicaMetrics(4.0, termination=1) for i in range(3)}
    d, _ = run(group(policies=(HEAD3,)), obs(reps(3), metrics))
    assert len(d.delete) == 1, d.delete  # max_terminations_per_cycle defaults to 1
    assert d.create >= 1


def test_17_termination_alone_never_takes_the_group_below_min() -> None:
    # min 3, 3 replicas, one asks termination: it stays until its replacement exists.
    metrics = {"r1": ReplicaMetrics(termination=1)}
    d, _ = run(group(min=3), obs(reps(3), metrics, {"cpu": 100.0}))
    assert d.delete == (), d.details
    assert d.create == 1
    # next cycle the replacement exists (building): now it may go
    replicas = reps(3) + [rep("new", ReplicaState.BUILDING, NOW)]
    d2, _ = run(group(min=3), obs(replicas, metrics, {"cpu": 100.0}))
    assert d2.delete == ("r1",)
