"""Replay a demand trace through the planner the daemon runs, against a simulated provider.

Time advances in ticks of `dt` seconds (the largest step that divides the trace step,
the evaluation interval and the boot delay). Every tick the served capacity is compared
with the demand; every `interval_seconds` the planner decides, exactly as the daemon
would, from an Observation built like `observe` builds one:

- replicas: the simulated provider's list (building, active, failed);
- metrics: each ACTIVE replica reports `replica_capacity` = per_replica - its share of
  the demand (clipped at 0), in the group's slots (its `replica_capacity` slots stand
  for per_replica), and `replica_termination` = 0; booting replicas report none;
- signals: each target policy's query value is the utilization (see `Signal`);
- histories: each policy reading a history (predictive, quantile) gets the demand seen
  so far, as `observe` passes the history of its query live, and forecasts from it in
  the core.

The observed demand is the mean over the last `window_seconds` (default 60 s, like
`rate(x[1m])`; at least one tick), whatever the trace's step: a reactive policy sees the
past, never the tick it is deciding for.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence

from autoscaler.core.capacity import ceil_tolerant
from autoscaler.core.model import Observation, ReplicaMetrics, ReplicaState, SignalHistory
from autoscaler.core.planner import initial_state, plan, record_action
from autoscaler.core.spec import GroupConfig, SignalKind
from autoscaler.simulation.queueing import DEFAULT_SLO_SECONDS
from autoscaler.simulation.run import Run, Timeline, summarize
from autoscaler.simulation.sim_provider import SimProvider
from autoscaler.simulation.spec import PolicySpec, ReplicaModel, Signal
from autoscaler.simulation.trace import Trace

# The observed demand is its mean over this long, like the `rate(x[1m])` of a real query.
SENSOR_WINDOW_SECONDS = 60.0


def _seconds(x: float, what: str) -> int:
    if x <= 0 or abs(x - round(x)) > 1e-6:
        raise ValueError(f"{what} must be a positive whole number of seconds, got {x}")
    return int(round(x))


def tick_seconds(trace: Trace, model: ReplicaModel, intervals: Sequence[float]) -> int:
    """The largest tick that divides the trace step, the boot delay and every interval."""
    dt = _seconds(trace.step, "trace step")
    for i in intervals:
        dt = math.gcd(dt, _seconds(i, "interval"))
    if model.boot_delay > 0:
        dt = math.gcd(dt, _seconds(model.boot_delay, "boot delay"))
    return dt


def tick_demand(trace: Trace, dt: int) -> list[float]:
    """The trace's demand on the tick grid (each sample held over its step)."""
    per = int(round(trace.step)) // dt
    return [d for d in trace.demand for _ in range(per)]


def default_initial(trace: Trace, model: ReplicaModel, target: float = 0.8) -> int:
    """Replicas running when the replay starts: enough for the first sensor window at `target`.

    The demand's mean over the first `SENSOR_WINDOW_SECONDS` (at least one sample), not
    its first sample: on a per-second trace that is one Poisson draw (the Azure trace
    starts at 1 request/s for a minute averaging 3.2), and a group sized to it starts
    with a backlog no policy caused.
    """
    n = max(1, min(len(trace.demand), int(SENSOR_WINDOW_SECONDS // trace.step)))
    first = sum(trace.demand[:n]) / n
    return max(1, ceil_tolerant(first / (model.per_replica * target)))


def effective_group(spec: PolicySpec) -> GroupConfig:
    """The group the planner sees: its policies plus the spec's predictive ones."""
    if not spec.predictive:
        return spec.group
    return dataclasses.replace(spec.group, policies=spec.group.policies + spec.predictive)


def replay(
    trace: Trace,
    spec: PolicySpec,
    model: ReplicaModel,
    *,
    initial: int | None = None,
    window_seconds: float = SENSOR_WINDOW_SECONDS,
    dt: int | None = None,
    slo_seconds: float = DEFAULT_SLO_SECONDS,
) -> Run:
    """Replay `trace` through the planner with `spec`; deterministic for the same inputs.

    A spec with its own `sensor_window_seconds` (a baseline defined by its sensor, such as
    `hpa-instant`) uses that instead of `window_seconds`; 0 there means one tick.
    """
    wall = time.perf_counter()
    if spec.sensor_window_seconds is not None:
        window_seconds = spec.sensor_window_seconds
    group = effective_group(spec)
    dt = dt or tick_seconds(trace, model, [spec.interval_seconds])
    every = _seconds(spec.interval_seconds, "interval") // dt
    if every * dt != _seconds(spec.interval_seconds, "interval"):
        raise ValueError(f"tick {dt}s does not divide interval {spec.interval_seconds}s")
    if not (window_seconds > 0 or spec.sensor_window_seconds == 0) or not math.isfinite(
        window_seconds
    ):
        raise ValueError(f"sensor window must be > 0 seconds, got {window_seconds}")
    window = max(1, int(round(window_seconds / dt)))
    demand = tick_demand(trace, dt)
    prefix = [0.0]
    for d in demand:
        prefix.append(prefix[-1] + d)

    per = model.per_replica
    start_level = prefix[min(len(demand), window)] / max(1, min(len(demand), window))
    n0 = default_initial(trace, model) if initial is None else initial
    n0 = max(group.min, min(group.max, n0))
    provider = SimProvider(group.name, model, trace.start, n0)
    state = initial_state(provider.list())
    targets = [p for p in group.policies if p.signal is SignalKind.INSTANT]
    # Predictive policies of the spec or of a --config group: both get the forecast.
    predictive = [p for p in group.policies if p.signal is SignalKind.HISTORY]
    history: list[tuple[float, float]] = []
    history_t: list[float] = []
    tl = Timeline(dt=float(dt))
    ups = downs = 0
    desired = n0
    # Replicas export replica_capacity only where a policy reads it (headroom): otherwise
    # booting replicas would look like replicas without data and block scale-in. The
    # planner is told so, as a user of such replicas would (`expect_capacity: false`).
    reports_capacity = any(p.reads_capacity for p in group.policies)
    if not reports_capacity:
        group = dataclasses.replace(group, expect_capacity=False)

    for k, d in enumerate(demand):
        now = trace.start + k * dt
        provider.advance(now)
        created = deleted = 0
        code = reason = ""
        if k % every == 0:
            lo = max(0, k - window)
            # before any past (k = 0) the sensor reads the level the group was sized for
            seen = (prefix[k] - prefix[lo]) / (k - lo) if k > lo else start_level
            replicas = provider.replicas()
            active = provider.active
            healthy = active + provider.building
            share = seen / active if active else 0.0
            # Free capacity in the group's slots: replica_capacity slots stand for `per`.
            slots = group.replica_capacity / per
            free = ReplicaMetrics(capacity=max(0.0, per - share) * slots, termination=0.0)
            metrics = (
                {r.id: free for r in replicas if r.state is ReplicaState.ACTIVE}
                if reports_capacity
                else {}
            )
            signals: dict[str, float | None] = {}
            denominator = active if spec.signal is Signal.UTILIZATION else healthy
            util = seen / (denominator * per) if denominator else None
            for p in targets:
                signals[p.name] = util
            histories: dict[str, SignalHistory] = {}
            if predictive:
                # As `observe` does live: the policy forecasts from the history itself.
                history.append((now, seen))
                history_t.append(now)
                past = SignalHistory(history_t, history, step=every * dt)
                histories = {p.name: past for p in predictive}
            obs = Observation(
                group=group.name,
                at=now,
                replicas=replicas,
                metrics=metrics,
                signals=signals,
                histories=histories,
            )
            decision, state = plan(group, obs, state, now)
            desired = decision.desired
            code, reason = str(decision.code), decision.reason
            if decision.delete:
                deleted = len(provider.delete(decision.delete).succeeded)
                if decision.desired < decision.current:
                    downs += 1
            if decision.create:
                created = len(provider.create(decision.create).succeeded)
                ups += 1
            # As the controller does: a cooldown starts once the provider accepted the action.
            accepted = created if decision.direction == "up" else deleted
            if accepted:
                state = record_action(state, decision.direction, now)
        tl.t.append(now)
        tl.demand.append(d)
        tl.active.append(provider.active)
        tl.building.append(provider.building)
        tl.failed.append(provider.failed)
        tl.desired.append(desired)
        tl.created.append(created)
        tl.deleted.append(deleted)
        tl.code.append(code)
        tl.reason.append(reason)

    wall = time.perf_counter() - wall
    summary = summarize(spec.name, trace.name, tl, per, ups, downs, wall, slo_seconds)
    return Run(summary=summary, timeline=tl, per_replica=per)
