"""Who goes: replicas asking for termination, then failed ones, then scale-in victims.

Pure: the assessment and the group's settings in, replica ids out.
"""

from __future__ import annotations

from collections.abc import Sequence

from autoscaler.core.capacity import Assessment
from autoscaler.core.model import Observation, Replica, ReplicaState
from autoscaler.core.spec import GroupConfig


def by_age(obs: Observation) -> list[Replica]:
    return sorted(obs.replicas, key=lambda r: (r.created_at, r.id))


def terminating(obs: Observation, a: Assessment) -> list[str]:
    """Replicas asking to be removed, oldest first."""
    return [r.id for r in by_age(obs) if r.id in a.terminating]


def failed(obs: Observation, a: Assessment) -> list[str]:
    """Failed replicas (to be replaced), oldest first."""
    return [
        r.id for r in by_age(obs) if r.state is ReplicaState.FAILED and r.id not in a.terminating
    ]


def scale_in(
    a: Assessment, group: GroupConfig, healthy: Sequence[Replica], count: int
) -> list[str]:
    """Most idle first, then those without a usable sample, ties by scale_in_order, then id."""
    sign = -1.0 if group.scale_in_order == "newest" else 1.0

    def key(r: Replica) -> tuple[int, float, float, str]:
        cap = a.capacity.get(r.id)
        if cap is None:
            return (1, 0.0, sign * r.created_at, r.id)
        return (0, -min(cap, group.replica_capacity), sign * r.created_at, r.id)

    return [r.id for r in sorted(healthy, key=key)[:count]]
