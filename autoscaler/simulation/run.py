"""The result of one replay: a per-tick timeline and the figures computed from it."""

from __future__ import annotations

from dataclasses import dataclass, field

from autoscaler.simulation.queueing import DEFAULT_SLO_SECONDS, fifo_queue

# A replica serves demand <= capacity * (1 + this): float noise is not under-provisioning.
_REL_EPS = 1e-9


@dataclass
class Timeline:
    """One row per simulation tick of `dt` seconds; events are counted in the tick they happen."""

    dt: float
    t: list[float] = field(default_factory=list)
    demand: list[float] = field(default_factory=list)
    active: list[int] = field(default_factory=list)
    building: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    desired: list[int] = field(default_factory=list)
    created: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)
    # The planner's decision code and reason on evaluation ticks ("" in between).
    code: list[str] = field(default_factory=list)
    reason: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Summary:
    policy: str
    trace: str
    simulated_seconds: float
    replica_hours: float  # cost: building + active + failed replicas, over time
    under_minutes: float  # time with demand above the active replicas' capacity
    under_area: float  # demand not served, integrated over time (e.g. requests)
    over_replica_hours: float  # active capacity above demand, in replicas, over time
    scale_ups: int  # evaluations (or oracle ticks) that created replicas
    scale_downs: int  # ... that removed healthy replicas
    created: int
    deleted: int
    wall_seconds: float = 0.0
    # The FIFO queue (autoscaler/simulation/queueing.py): what a user feels.
    slo_seconds: float = DEFAULT_SLO_SECONDS
    delayed_share: float = 0.0  # share of requests that waited longer than slo_seconds
    p99_wait: float = 0.0  # seconds
    mean_wait: float = 0.0  # seconds


@dataclass
class Run:
    summary: Summary
    timeline: Timeline
    per_replica: float


def short_of(demand: float, capacity: float) -> bool:
    """Demand above capacity by more than float noise: an under-provisioned tick."""
    return demand > capacity * (1 + _REL_EPS) + 1e-12


def summarize(
    policy: str,
    trace: str,
    tl: Timeline,
    per_replica: float,
    scale_ups: int,
    scale_downs: int,
    wall_seconds: float = 0.0,
    slo_seconds: float = DEFAULT_SLO_SECONDS,
) -> Summary:
    dt = tl.dt
    queue = fifo_queue(tl.demand, [a * per_replica for a in tl.active], dt, slo_seconds)
    alive = under_ticks = 0
    under_area = over = 0.0
    for d, a, b, f in zip(tl.demand, tl.active, tl.building, tl.failed, strict=True):
        alive += a + b + f
        cap = a * per_replica
        if short_of(d, cap):
            under_ticks += 1
            under_area += d - cap
        else:
            over += a - d / per_replica
    return Summary(
        policy=policy,
        trace=trace,
        simulated_seconds=dt * len(tl.t),
        replica_hours=alive * dt / 3600,
        under_minutes=under_ticks * dt / 60,
        under_area=under_area * dt,
        over_replica_hours=over * dt / 3600,
        scale_ups=scale_ups,
        scale_downs=scale_downs,
        created=sum(tl.created),
        deleted=sum(tl.deleted),
        wall_seconds=wall_seconds,
        slo_seconds=slo_seconds,
        delayed_share=queue.delayed_share,
        p99_wait=queue.p99_wait,
        mean_wait=queue.mean_wait,
    )
