"""Headroom policy (SimpleScaleVM): keep at least `min_available` free resource slots.

Also home of the small observation helpers every policy and the planner share, so that
"healthy" and "usable capacity" mean exactly the same thing everywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from autoscaler.core.model import (
    Observation,
    Proposal,
    Replica,
    ReplicaMetrics,
    ReplicaState,
    usable,
)
from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig

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
class FreeCapacity:
    """How the headroom policy counts a group's free capacity."""

    available: float  # usable samples (capped at replica_capacity) + full slots in warm-up
    current: int  # healthy replicas
    known: int  # healthy replicas counted (in warm-up or with a usable sample)
    missing: int  # healthy replicas past warm-up without a usable sample
    idle: tuple[Replica, ...]  # past warm-up and fully free: the only scale-in candidates


def free_capacity(obs: Observation, group: GroupConfig) -> FreeCapacity:
    slot = group.replica_capacity
    healthy = healthy_replicas(obs)
    available = 0.0
    known = missing = 0
    idle: list[Replica] = []
    for r in healthy:
        if r.in_warmup(obs.at, group.warmup_seconds):
            available += slot  # a new replica is counted as fully free until it reports
            known += 1
            continue
        cap = capacity_sample(obs, r.id)
        if cap is None:
            missing += 1
            continue
        known += 1
        available += min(cap, slot)
        if cap >= slot:
            idle.append(r)
    return FreeCapacity(available, len(healthy), known, missing, tuple(idle))


def propose(policy: HeadroomPolicyConfig, obs: Observation, group: GroupConfig) -> Proposal:
    name = policy.name
    if not obs.prometheus_ok:
        return Proposal(name, None, "prometheus query failed", "no_data")
    slot = group.replica_capacity
    if not slot > 0:
        return Proposal(name, None, f"replica_capacity {slot} is not positive", "no_data")

    free = free_capacity(obs, group)
    available, current, missing, idle = free.available, free.current, free.missing, free.idle
    if current > 0 and free.known == 0:
        return Proposal(name, None, f"no usable capacity sample from {current} replicas", "no_data")

    partial = missing > 0
    need = policy.min_available
    note = f" ({missing} of {current} replicas without data)" if partial else ""
    if available < need:
        add = ceil_tolerant((need - available) / slot)
        return Proposal(
            name,
            current + add,
            f"free {available:g} < min_available {need:g} -> +{add}{note}",
            "headroom_short",
            partial,
        )
    if partial:
        return Proposal(
            name,
            current,
            f"free {available:g} >= min_available {need:g}, no scale-in with partial data{note}",
            "partial",
            True,
        )
    remove = 0
    while remove < len(idle) and available - slot * (remove + 1) >= need:
        remove += 1
    if remove:
        return Proposal(
            name,
            current - remove,
            f"free {available:g} >= min_available {need:g} + {remove} idle x {slot:g} -> -{remove}",
            "headroom_surplus",
        )
    return Proposal(
        name,
        current,
        f"free {available:g} >= min_available {need:g}, no idle replica to spare",
        "in_band",
    )
