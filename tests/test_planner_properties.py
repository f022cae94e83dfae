"""Properties of the planner over arbitrary replicas, metrics, configs and cycle sequences.

The invariants are checked against facts recomputed here from the inputs, not against the
planner's own helpers, so a bug shared by both cannot hide.
"""

from __future__ import annotations

import dataclasses
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autoscaler.core.model import (
    Decision,
    Observation,
    PlannerState,
    Replica,
    ReplicaMetrics,
    ReplicaState,
)
from autoscaler.core.planner import plan, record_action
from autoscaler.core.spec import (
    GroupConfig,
    HeadroomPolicyConfig,
    ProviderConfig,
    ScalingBehavior,
    TargetPolicyConfig,
)

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEQUENCE_SETTINGS = settings(SETTINGS, max_examples=100)  # each example runs several cycles

BAD = st.sampled_from([float("nan"), float("inf"), float("-inf"), -1.0, -0.001])
GOOD = st.floats(min_value=0, max_value=20, allow_nan=False)
VALUE = st.one_of(st.none(), BAD, GOOD, GOOD, st.just(0.0))  # about half usable
STATE = st.sampled_from([ReplicaState.ACTIVE] * 4 + list(ReplicaState))
TERMINATION = st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.0, float("nan"), -1.0]))
POLICY_NAMES = ("p0", "p1", "p2")


@st.composite
def behaviors(draw: st.DrawFn) -> ScalingBehavior:
    return ScalingBehavior(
        cooldown_seconds=draw(st.sampled_from([0.0, 0.0, 30.0, 120.0, 600.0])),
        stabilization_seconds=draw(st.sampled_from([0.0, 45.0, 300.0])),
        max_step_replicas=draw(st.one_of(st.none(), st.integers(0, 5))),
        max_step_percent=draw(st.one_of(st.none(), st.sampled_from([10.0, 50.0, 100.0, 250.0]))),
        enabled=draw(st.sampled_from([True, True, True, False])),
    )


@st.composite
def policies(draw: st.DrawFn, name: str) -> HeadroomPolicyConfig | TargetPolicyConfig:
    if draw(st.booleans()):
        return HeadroomPolicyConfig(name=name, min_available=draw(st.floats(0, 30)))
    return TargetPolicyConfig(
        name=name,
        query="q",
        target=draw(st.floats(0.5, 10)),
        tolerance_up=draw(st.sampled_from([0.0, 0.1, 0.5])),
        tolerance_down=draw(st.sampled_from([0.0, 0.1, 0.5])),
    )


@st.composite
def groups(draw: st.DrawFn) -> GroupConfig:
    low = draw(st.integers(0, 4))
    high = draw(st.integers(low, 14))
    count = draw(st.integers(0, 3))
    return GroupConfig(
        name="g",
        provider=ProviderConfig("local"),
        min=low,
        max=high,
        replica_capacity=draw(st.sampled_from([0.5, 1.0, 4.0, 7.5])),
        policies=tuple(draw(policies(POLICY_NAMES[i])) for i in range(count)),
        scale_up=draw(behaviors()),
        scale_down=draw(behaviors()),
        warmup_seconds=draw(st.sampled_from([0.0, 60.0, 300.0])),
        fallback_replicas=draw(st.one_of(st.none(), st.integers(0, 20))),
        scale_in_order=draw(st.sampled_from(["oldest", "newest"])),
        max_replacements_per_cycle=draw(st.integers(0, 3)),
        max_terminations_per_cycle=draw(st.integers(0, 3)),
        termination_below_min=draw(st.booleans()),
        dry_run=draw(st.booleans()),
    )


@st.composite
def observations(draw: st.DrawFn, now: float) -> Observation:
    n = draw(st.integers(0, 12))
    replicas = []
    metrics = {}
    for i in range(n):
        rid = f"r{i}"
        replicas.append(
            Replica(
                id=rid,
                group="g",
                state=draw(STATE),
                created_at=now - draw(st.sampled_from([0.0, 10.0, 100.0, 1000.0, 5000.0])),
            )
        )
        if draw(st.integers(0, 3)):  # mostly scraped
            metrics[rid] = ReplicaMetrics(capacity=draw(VALUE), termination=draw(TERMINATION))
    signals = {name: draw(VALUE) for name in POLICY_NAMES if draw(st.integers(0, 3))}
    return Observation(
        group="g",
        at=now,
        replicas=tuple(replicas),
        metrics=metrics,
        signals=signals,
        prometheus_ok=draw(st.booleans()) or draw(st.booleans()),  # mostly up
    )


@st.composite
def states(draw: st.DrawFn, now: float) -> PlannerState:
    recs = draw(st.lists(st.tuples(st.floats(now - 600, now + 10), st.integers(0, 20)), max_size=6))
    past = st.one_of(st.none(), st.floats(now - 2000, now + 5))
    return PlannerState(
        recommendations=tuple(recs), last_scale_up=draw(past), last_scale_down=draw(past)
    )


def _usable(v: float | None) -> bool:
    return v is not None and math.isfinite(v) and v >= 0


def _by_age(replicas: list[Replica]) -> list[Replica]:
    return sorted(replicas, key=lambda r: (r.created_at, r.id))


def _facts(group: GroupConfig, obs: Observation) -> dict:
    """Recomputed independently from the raw inputs."""
    term = {
        r.id
        for r in obs.replicas
        if r.state is not ReplicaState.DELETING
        and obs.metrics.get(r.id) is not None
        and _usable(obs.metrics[r.id].termination)
        and obs.metrics[r.id].termination == 1
    }
    healthy = [
        r
        for r in obs.replicas
        if r.state in (ReplicaState.BUILDING, ReplicaState.ACTIVE) and r.id not in term
    ]
    exports = any(m.capacity is not None for m in obs.metrics.values())
    missing = exports and any(
        obs.at - r.created_at >= group.warmup_seconds
        and not _usable(obs.metrics.get(r.id, ReplicaMetrics()).capacity)
        for r in healthy
    )
    failed = [r for r in obs.replicas if r.state is ReplicaState.FAILED and r.id not in term]
    # terminations: capped per cycle, and (unless asked) never below min running
    running = sum(
        1 for r in obs.replicas if r.state in (ReplicaState.BUILDING, ReplicaState.ACTIVE)
    )
    n_term = min(len(term), group.max_terminations_per_cycle)
    if not group.termination_below_min:
        n_term = min(n_term, max(0, running - group.min))
    removed_term = [r.id for r in _by_age(list(obs.replicas)) if r.id in term][:n_term]
    removed_failed = [r.id for r in _by_age(failed)][: group.max_replacements_per_cycle]
    base = len(healthy) + len(removed_term) + len(removed_failed)
    return {
        "term": term,
        "healthy": healthy,
        "missing": missing,
        "failed": {r.id for r in failed},
        "removed": removed_term + removed_failed,
        "base": base,
    }


def _limit(b: ScalingBehavior, current: int, up: bool) -> int | None:
    limits = []
    if b.max_step_replicas is not None:
        limits.append(b.max_step_replicas)
    if b.max_step_percent is not None:
        share = current * b.max_step_percent / 100
        limits.append(math.ceil(share - 1e-9) if up else math.floor(share + 1e-9))
    return max(1, *limits) if limits else None


def check(group: GroupConfig, obs: Observation, state: PlannerState, d: Decision) -> None:
    facts = _facts(group, obs)
    assert obs.terminating_ids() == facts["term"]  # the cached set is the recomputed one
    healthy_ids = {r.id for r in facts["healthy"]}
    current = len(healthy_ids)
    base = facts["base"]  # the size before this cycle's removals: what "hold" keeps
    assert d.current == current

    # limits
    assert group.min <= d.desired <= group.max
    assert d.create == max(0, d.desired - current)
    assert d.direction == ("up" if d.desired > base else "down" if d.desired < base else "hold")
    assert d.dry_run == group.dry_run

    # no scale-down on missing or partial data, unless forced by max: removed replicas
    # are replaced
    no_data_at_all = all(p.desired is None for p in d.proposals)
    uses_fallback = no_data_at_all and group.fallback_replicas is not None
    partial = any(p.desired is None or p.partial for p in d.proposals) or facts["missing"]
    if (partial or not obs.prometheus_ok) and not uses_fallback:
        assert d.desired >= min(base, group.max), d.details

    # step limits on the change from base, unless moving into [min, max]
    if d.desired != base:
        up = d.desired > base
        limit = _limit(group.scale_up if up else group.scale_down, base, up)
        forced = (base < group.min and d.desired == group.min) or (
            base > group.max and d.desired == group.max
        )
        assert limit is None or abs(d.desired - base) <= limit or forced, d.details

    # a disabled direction never moves, unless min/max force it
    if not group.scale_down.enabled:
        assert d.desired >= min(base, group.max), d.details
    if not group.scale_up.enabled:
        assert d.desired <= max(base, group.min), d.details

    # cooldowns: a move only when its cooldown is over, or forced by min/max
    if d.direction == "up" and base >= group.min:
        assert d.cooldown_remaining["up"] == 0
    if d.direction == "down" and base <= group.max:
        assert d.cooldown_remaining["down"] == 0

    # deletes: existing, not already deleting, no duplicates
    deletable = {r.id for r in obs.replicas if r.state is not ReplicaState.DELETING}
    assert len(set(d.delete)) == len(d.delete)
    assert set(d.delete) <= deletable
    deleted_healthy = set(d.delete) & healthy_ids
    if d.desired >= current:
        assert not deleted_healthy
    else:
        assert len(deleted_healthy) == current - d.desired
    # terminating and failed replicas: exactly the capped ones, oldest first
    assert [rid for rid in d.delete if rid not in healthy_ids] == facts["removed"]


@SETTINGS
@given(data=st.data())
def test_single_cycle_invariants(data: st.DataObject) -> None:
    now = 100_000.0
    group = data.draw(groups())
    obs = data.draw(observations(now))
    state = data.draw(states(now))
    decision, new_state = plan(group, obs, state, now)
    check(group, obs, state, decision)
    # deterministic
    assert plan(group, obs, state, now) == (decision, new_state)
    # state: only recent recommendations kept; actions are recorded by the caller once the
    # provider accepted them (record_action), never by the planner
    keep = max(group.scale_up.stabilization_seconds, group.scale_down.stabilization_seconds)
    assert all(now - keep < t <= now or t == now for t, _ in new_state.recommendations)
    assert (new_state.last_scale_up, new_state.last_scale_down) == (
        state.last_scale_up,
        state.last_scale_down,
    )
    recorded = record_action(new_state, decision.direction, now)
    if decision.direction == "up":
        assert recorded.last_scale_up == now
    if decision.direction == "down":
        assert recorded.last_scale_down == now


@SEQUENCE_SETTINGS
@given(data=st.data())
def test_cycle_sequences_keep_invariants(data: st.DataObject) -> None:
    group = data.draw(groups())
    now = 100_000.0
    state = data.draw(states(now))
    for _ in range(data.draw(st.integers(2, 6))):
        now += data.draw(st.sampled_from([1.0, 10.0, 30.0, 200.0]))
        obs = data.draw(observations(now))
        decision, state = plan(group, obs, state, now)
        state = record_action(state, decision.direction, now)
        check(group, obs, state, decision)


@SEQUENCE_SETTINGS
@given(data=st.data())
def test_down_cooldown_is_respected_over_a_sequence(data: st.DataObject) -> None:
    """After any scale event, no scale-down inside the scale-down cooldown (within bounds)."""
    group = data.draw(groups())
    now = 100_000.0
    state = PlannerState()
    last_event: float | None = None
    for _ in range(data.draw(st.integers(2, 8))):
        now += data.draw(st.sampled_from([5.0, 20.0, 60.0]))
        obs = data.draw(observations(now))
        d, state = plan(group, obs, state, now)
        state = record_action(state, d.direction, now)  # as if the provider accepted it
        base = _facts(group, obs)["base"]  # forced down only from above max
        if d.direction == "down" and base <= group.max and last_event is not None:
            assert now - last_event >= group.scale_down.cooldown_seconds
        if d.direction != "hold":
            last_event = now


@SETTINGS
@given(data=st.data())
def test_partial_data_never_scales_down(data: st.DataObject) -> None:
    """Built so that data is partial and the policies often want less: never below current."""
    now = 100_000.0
    n = data.draw(st.integers(1, 10))
    replicas = tuple(
        Replica(f"r{i}", "g", ReplicaState.ACTIVE, now - data.draw(st.sampled_from([10, 5000])))
        for i in range(n)
    )
    metrics = {r.id: ReplicaMetrics(capacity=data.draw(GOOD)) for r in replicas}
    how = data.draw(st.sampled_from(["bad_sample", "no_sample", "silent_policy"]))
    old = [r.id for r in replicas if now - r.created_at > 60]
    if how != "silent_policy" and old:
        victim = data.draw(st.sampled_from(old))
        if how == "bad_sample":
            metrics[victim] = ReplicaMetrics(capacity=data.draw(BAD))
        else:
            del metrics[victim]
        if not any(m.capacity is not None for m in metrics.values()):
            return  # no replica exports capacity at all: not partial by definition
    headroom = HeadroomPolicyConfig("p0", min_available=data.draw(st.floats(0, 4)))
    tgt = TargetPolicyConfig("p1", "q", target=10.0, tolerance_down=0.0)
    pols: tuple = (headroom, tgt)
    signals: dict[str, float | None] = {"p1": data.draw(st.floats(0, 9.9))}  # wants fewer
    if how == "silent_policy" or not old:
        pols = (tgt, TargetPolicyConfig("p2", "q", target=10.0))
        signals["p2"] = data.draw(st.one_of(st.none(), BAD))
    group = GroupConfig(
        name="g",
        provider=ProviderConfig("local"),
        min=0,
        max=n + data.draw(st.integers(0, 5)),
        replica_capacity=4.0,
        policies=pols,
        scale_up=ScalingBehavior(),
        scale_down=ScalingBehavior(),
        warmup_seconds=60.0,
    )
    obs = Observation("g", now, replicas, metrics, signals)
    d, _ = plan(group, obs, PlannerState(), now)
    assert d.desired >= n and d.delete == (), d.details
    check(group, obs, PlannerState(), d)


@SEQUENCE_SETTINGS
@given(data=st.data())
def test_never_scales_down_when_scale_down_is_disabled(data: st.DataObject) -> None:
    """Whatever the policies, data and damping say, over whole sequences: no healthy replica
    is removed while at or below max; terminating and failed ones still are (and replaced)."""
    group = data.draw(groups())
    down = dataclasses.replace(group.scale_down, enabled=False)
    group = dataclasses.replace(group, scale_down=down)
    now = 100_000.0
    state = data.draw(states(now))
    for _ in range(data.draw(st.integers(1, 6))):
        now += data.draw(st.sampled_from([1.0, 30.0, 400.0]))
        obs = data.draw(observations(now))
        d, state = plan(group, obs, state, now)
        state = record_action(state, d.direction, now)
        facts = _facts(group, obs)
        healthy_ids = {r.id for r in facts["healthy"]}
        if facts["base"] <= group.max:
            assert d.desired >= facts["base"] and d.direction != "down", d.details
            assert not set(d.delete) & healthy_ids
        else:
            assert d.desired == group.max  # a hard limit still wins
        # terminating and failed replicas are still removed, and replaced within max
        assert [rid for rid in d.delete if rid not in healthy_ids] == facts["removed"]
