"""One assessment per group and cycle: who counts, who is warming, who reports, what is free.

Every policy, the planner, the victim choice and the exported gauges read the same
`Assessment`, computed once by `assess`, so "healthy", "missing" and "free capacity" mean
exactly the same thing everywhere and nothing is recomputed later in the cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoscaler.core.model import Observation, Replica, ReplicaMetrics, ReplicaState, usable
from autoscaler.core.spec import GroupConfig

# Float noise must not add a replica: ceil(0.30000000000000004 / 0.1) would be 4.
_RELATIVE_EPSILON = 1e-9


def ceil_tolerant(x: float) -> int:
    """ceil() that ignores float noise just above an integer.

    Relative, not absolute: at 3e7 the noise of two orders of the same arithmetic is
    about 1e-8, which an absolute 1e-9 would read as one more replica.
    """
    return math.ceil(x - _RELATIVE_EPSILON * max(1.0, abs(x)))


def healthy_replicas(obs: Observation) -> list[Replica]:
    """Building or active replicas that do not ask for termination: the ones counted."""
    terminating = obs.terminating_ids()
    return [
        r
        for r in obs.replicas
        if r.state in (ReplicaState.BUILDING, ReplicaState.ACTIVE) and r.id not in terminating
    ]


def capacity_sample(obs: Observation, replica_id: str) -> float | None:
    """The replica's usable free-capacity sample, or None (missing, stale, NaN, inf, < 0)."""
    value = obs.metrics.get(replica_id, ReplicaMetrics()).capacity
    return value if usable(value) else None


@dataclass(frozen=True)
class Assessment:
    """A group's replicas and capacity as every decision step of one cycle sees them."""

    healthy: tuple[Replica, ...]  # building/active, not asking for termination: counted
    terminating: frozenset[str]  # asking to be removed (fresh replica_termination == 1)
    warming: frozenset[str]  # healthy and still inside warm-up
    capacity: dict[str, float]  # healthy replica id -> usable capacity sample (warming too)
    missing: tuple[str, ...]  # healthy, past warm-up, without a usable sample
    reporting: bool  # some replica of the group has a capacity sample, usable or not
    available: float  # usable samples (capped at replica_capacity) + full slots in warm-up
    known: int  # healthy replicas counted in `available` (warming or with a usable sample)
    idle: tuple[Replica, ...]  # past warm-up and fully free: the only headroom scale-in candidates

    @property
    def current(self) -> int:
        return len(self.healthy)

    @property
    def unreported(self) -> tuple[str, ...]:
        """Missing samples that block scale-in: only when the group's replicas export
        capacity at all, so a target-only group without a capacity gauge is not "partial"
        forever."""
        return self.missing if self.reporting else ()


def assess(obs: Observation, group: GroupConfig) -> Assessment:
    slot = group.replica_capacity
    healthy = healthy_replicas(obs)
    reporting = any(m.capacity is not None for m in obs.metrics.values())
    warming: set[str] = set()
    capacity: dict[str, float] = {}
    missing: list[str] = []
    available = 0.0
    idle: list[Replica] = []
    for r in healthy:
        cap = capacity_sample(obs, r.id)
        if cap is not None:
            capacity[r.id] = cap
        if r.in_warmup(obs.at, group.warmup_seconds):
            warming.add(r.id)
            available += slot  # a new replica is counted as fully free until it reports
            continue
        if cap is None:
            missing.append(r.id)
            continue
        available += min(cap, slot)
        if cap >= slot:
            idle.append(r)
    return Assessment(
        healthy=tuple(healthy),
        terminating=obs.terminating_ids(),
        warming=frozenset(warming),
        capacity=capacity,
        missing=tuple(missing),
        reporting=reporting,
        available=available,
        known=len(healthy) - len(missing),
        idle=tuple(idle),
    )


def available_capacity(obs: Observation, a: Assessment) -> float | None:
    """Free capacity as the headroom policy counts it; None when it cannot be known."""
    if not obs.prometheus_ok:
        return None
    return a.available if a.known or not a.current else None
