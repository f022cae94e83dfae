"""Properties of the planner that issue #9 asked for, over arbitrary inputs and sequences.

- stabilization: a scale-down to d only if every recommendation in the down window is <= d;
- victims: never a replica inside warm-up, never a busy one in a headroom group;
- never above max, never below min;
- deletions bounded by the documented caps and the scale-down step;
- never down on missing data;
- failed and terminating replicas are replaced, within max.

Facts are recomputed here from the raw inputs (tests/test_planner_properties.py `_facts`),
never taken from the planner's helpers.
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import given
from hypothesis import strategies as st

from autoscaler.core.model import (
    Decision,
    Observation,
    PlannerState,
    Replica,
    ReplicaMetrics,
    ReplicaState,
)
from autoscaler.core.planner import plan
from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig, TargetPolicyConfig
from tests.test_planner_properties import (
    SEQUENCE_SETTINGS,
    SETTINGS,
    _facts,
    _limit,
    _usable,
    groups,
    observations,
    states,
)

NOW = 100_000.0


def _is_fallback(group: GroupConfig, d: Decision) -> bool:
    return group.fallback_replicas is not None and all(p.desired is None for p in d.proposals)


def _partial(d: Decision, facts: dict) -> bool:
    return any(p.desired is None or p.partial for p in d.proposals) or facts["missing"]


def _recommendation(group: GroupConfig, d: Decision, facts: dict) -> int:
    """The count this cycle recommends before damping, as docs/decisions.md defines it."""
    current, base = len(facts["healthy"]), facts["base"]
    with_data = [p.desired for p in d.proposals if p.desired is not None]
    if not with_data:
        rec = group.fallback_replicas if group.fallback_replicas is not None else base
    else:
        rec = max(with_data)
        if current <= rec < base:  # keeps every healthy replica: keeps the replacements
            rec = base
    return max(group.min, min(group.max, rec))


def check_bounds_and_victims(group: GroupConfig, obs: Observation, d: Decision) -> None:
    facts = _facts(group, obs)
    healthy = {r.id: r for r in facts["healthy"]}
    current, base = len(healthy), facts["base"]

    # never above max, never below min
    assert group.min <= d.desired <= group.max, d.details

    # victims: a replica still booting, or one past warm-up and, in a headroom group, idle
    # (where booting ones get no precedence), except to get down to max; never a serving
    # replica in warm-up
    deleted = [healthy[rid] for rid in d.delete if rid in healthy]
    headroom = any(isinstance(p, HeadroomPolicyConfig) for p in group.policies)
    idle_only = headroom and not _is_fallback(group, d)

    def may_go(r: Replica) -> bool:
        if r.state is ReplicaState.BUILDING and not idle_only:
            return True
        if obs.at - r.created_at < group.warmup_seconds:
            return False
        cap = obs.metrics.get(r.id, ReplicaMetrics()).capacity
        return not idle_only or (_usable(cap) and cap >= group.replica_capacity)  # type: ignore[operator]

    not_allowed = [r.id for r in deleted if not may_go(r)]
    assert len(not_allowed) <= max(0, current - group.max), (not_allowed, d.details)

    # deletions: terminating ones within their cap (and min), failed ones within theirs,
    # healthy ones only by a scale-in, whose net size change obeys the scale-down step
    term_deleted = [rid for rid in d.delete if rid in facts["term"]]
    failed_deleted = [rid for rid in d.delete if rid in facts["failed"]]
    assert len(term_deleted) <= group.max_terminations_per_cycle
    assert len(failed_deleted) <= group.max_replacements_per_cycle
    if not group.termination_below_min:
        running = sum(
            1 for r in obs.replicas if r.state in (ReplicaState.BUILDING, ReplicaState.ACTIVE)
        )
        assert running - len(term_deleted) >= min(group.min, running)
    assert len(deleted) == max(0, current - d.desired)
    if d.desired < base and base <= group.max:
        limit = _limit(group.scale_down, base, False)
        assert limit is None or base - d.desired <= limit, d.details
        bound = group.max_terminations_per_cycle + group.max_replacements_per_cycle
        assert limit is None or len(d.delete) <= bound + limit

    # missing data never shrinks the group; removed replicas are replaced (within max)
    if (_partial(d, facts) or not obs.prometheus_ok) and not _is_fallback(group, d):
        assert d.desired >= min(base, group.max), d.details
        if current <= group.max:
            assert not deleted, d.details
    if d.direction != "down":
        assert d.desired >= min(base, group.max), d.details
        assert d.create >= min(base, group.max) - current


@SETTINGS
@given(data=st.data())
def test_single_cycle_bounds_victims_and_replacements(data: st.DataObject) -> None:
    group = data.draw(groups())
    obs = data.draw(observations(NOW))
    d, _ = plan(group, obs, data.draw(states(NOW)), NOW)
    check_bounds_and_victims(group, obs, d)


@SEQUENCE_SETTINGS
@given(data=st.data())
def test_scale_down_only_to_the_highest_recommendation_of_the_window(
    data: st.DataObject,
) -> None:
    """Scale down to d only if every recommendation of the last down window is <= d."""
    group = data.draw(groups())
    window = data.draw(st.sampled_from([30.0, 100.0, 300.0]))
    group = dataclasses.replace(
        group, scale_down=dataclasses.replace(group.scale_down, stabilization_seconds=window)
    )
    now = NOW
    state = PlannerState()
    seen: list[tuple[float, int]] = []
    for _ in range(data.draw(st.integers(2, 8))):
        now += data.draw(st.sampled_from([5.0, 20.0, 60.0, 200.0]))
        obs = data.draw(observations(now))
        d, state = plan(group, obs, state, now)
        facts = _facts(group, obs)
        seen.append((now, _recommendation(group, d, facts)))
        check_bounds_and_victims(group, obs, d)
        if d.direction == "down" and facts["base"] <= group.max:
            recent = [r for t, r in seen if now - t < window]
            assert all(r <= d.desired for r in recent), (recent, d.details)


@SEQUENCE_SETTINGS
@given(data=st.data())
def test_outage_with_failures_never_shrinks_the_group(data: st.DataObject) -> None:
    """Prometheus down for a whole sequence, replicas failing: the group keeps its size.

    Decisions are applied as a provider would: deletes remove, creates add building
    replicas. Failed replicas beyond the per-cycle cap wait, but still count here.
    """
    group = data.draw(groups())
    group = dataclasses.replace(
        group,
        policies=(HeadroomPolicyConfig("p0", 4.0), TargetPolicyConfig("p1", "q", 1.0)),
        fallback_replicas=None,
    )
    n = data.draw(st.integers(0, 10))
    replicas = {
        f"r{i}": Replica(f"r{i}", "g", ReplicaState.ACTIVE, NOW - 5000 + i) for i in range(n)
    }
    size = lambda: sum(1 for r in replicas.values() if r.state is not ReplicaState.DELETING)  # noqa: E731
    floor = max(group.min, min(size(), group.max))
    state = data.draw(states(NOW))
    now, serial = NOW, 0
    for _ in range(data.draw(st.integers(1, 8))):
        now += data.draw(st.sampled_from([10.0, 60.0]))
        alive = sorted(rid for rid, r in replicas.items() if r.state is not ReplicaState.FAILED)
        for rid in (
            data.draw(st.lists(st.sampled_from(alive), max_size=2, unique=True)) if alive else []
        ):
            replicas[rid] = dataclasses.replace(replicas[rid], state=ReplicaState.FAILED)
        obs = Observation("g", now, tuple(replicas.values()), {}, {}, prometheus_ok=False)
        d, state = plan(group, obs, state, now)
        check_bounds_and_victims(group, obs, d)
        assert d.direction != "down" or size() > group.max, d.details
        for rid in d.delete:
            del replicas[rid]
        for _ in range(d.create):
            serial += 1
            replicas[f"n{serial}"] = Replica(f"n{serial}", "g", ReplicaState.BUILDING, now)
        assert size() >= floor, d.details


@SETTINGS
@given(data=st.data())
def test_terminating_replicas_are_replaced_in_the_same_cycle(data: st.DataObject) -> None:
    """Replicas asking for termination (up to the cap) go and come back in one cycle,
    whatever the cooldowns and steps say, unless a scale-in decided otherwise."""
    group = data.draw(groups())
    n = data.draw(st.integers(1, 10))
    asking = data.draw(st.integers(1, n))
    metrics = {
        f"r{i}": ReplicaMetrics(capacity=1.0, termination=1.0 if i < asking else 0.0)
        for i in range(n)
    }
    replicas = tuple(Replica(f"r{i}", "g", ReplicaState.ACTIVE, NOW - 5000 + i) for i in range(n))
    obs = Observation("g", NOW, replicas, metrics, {"p0": 1.0, "p1": 1.0, "p2": 1.0})
    d, _ = plan(group, obs, data.draw(states(NOW)), NOW)
    check_bounds_and_victims(group, obs, d)
    facts = _facts(group, obs)
    removed = len(facts["removed"])
    assert len([rid for rid in d.delete if rid in facts["term"]]) == removed
    if d.direction != "down":
        assert d.create >= min(removed, max(0, group.max - len(facts["healthy"])))
    assert math.isfinite(d.cooldown_remaining["up"])


@st.composite
def scale_in_cases(draw: st.DrawFn) -> tuple[GroupConfig, Observation]:
    """Full data and a policy that wants fewer: victims, steps and warm-up matter."""
    n = draw(st.integers(2, 12))
    replicas = tuple(
        Replica(f"r{i}", "g", ReplicaState.ACTIVE, NOW - draw(st.sampled_from([5, 30, 100, 5000])))
        for i in range(n)
    )
    metrics = {
        r.id: ReplicaMetrics(draw(st.sampled_from([0.0, 1.0, 4.0, 4.0, 9.0]))) for r in replicas
    }
    headroom = draw(st.booleans())
    policy = (
        HeadroomPolicyConfig("p0", draw(st.sampled_from([0.0, 2.0, 5.0])))
        if headroom
        else TargetPolicyConfig("p0", "q", 1.0, tolerance_up=0.0, tolerance_down=0.0)
    )
    base = draw(groups())
    down = dataclasses.replace(
        base.scale_down,
        cooldown_seconds=0.0,
        stabilization_seconds=0.0,
        enabled=True,
        max_step_percent=draw(st.sampled_from([None, 10.0, 34.0, 50.0, 70.0])),
    )
    group = dataclasses.replace(
        base,
        min=0,
        max=draw(st.integers(n - 2, n + 3)),
        replica_capacity=4.0,
        warmup_seconds=60.0,
        policies=(policy,),
        scale_down=down,
    )
    obs = Observation("g", NOW, replicas, metrics, {"p0": draw(st.floats(0.0, 0.9))})
    return group, obs


@SETTINGS
@given(case=scale_in_cases())
def test_scale_in_victims_and_steps(case: tuple[GroupConfig, Observation]) -> None:
    group, obs = case
    d, _ = plan(group, obs, PlannerState(), NOW)
    check_bounds_and_victims(group, obs, d)


@SEQUENCE_SETTINGS
@given(data=st.data())
def test_stabilization_over_signal_sequences(data: st.DataObject) -> None:
    """Same replicas, a target signal that moves: the down window is respected."""
    n = data.draw(st.integers(1, 10))
    replicas = tuple(Replica(f"r{i}", "g", ReplicaState.ACTIVE, NOW - 5000 + i) for i in range(n))
    metrics = {r.id: ReplicaMetrics(4.0) for r in replicas}
    window = data.draw(st.sampled_from([30.0, 100.0, 300.0]))
    group = dataclasses.replace(
        data.draw(groups()),
        min=0,
        max=40,
        policies=(TargetPolicyConfig("p0", "q", 1.0, tolerance_up=0.0, tolerance_down=0.0),),
    )
    group = dataclasses.replace(
        group,
        scale_down=dataclasses.replace(
            group.scale_down, stabilization_seconds=window, cooldown_seconds=0.0
        ),
    )
    now, state = NOW, PlannerState()
    seen: list[tuple[float, int]] = []
    for _ in range(data.draw(st.integers(2, 10))):
        now += data.draw(st.sampled_from([10.0, 40.0, 120.0]))
        value = data.draw(st.sampled_from([0.1, 0.3, 0.5, 0.8, 1.0, 1.5]))
        obs = Observation("g", now, replicas, metrics, {"p0": value})
        d, state = plan(group, obs, state, now)
        seen.append((now, _recommendation(group, d, _facts(group, obs))))
        if d.direction == "down":
            recent = [r for t, r in seen if now - t < window]
            assert all(r <= d.desired for r in recent), (recent, d.details)
            assert d.desired == max(recent) or d.code != "stabilizing"
