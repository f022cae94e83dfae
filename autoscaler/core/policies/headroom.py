"""Headroom policy (SimpleScaleVM): keep at least `min_available` free resource slots."""

from __future__ import annotations

from autoscaler.core.capacity import Assessment, ceil_tolerant
from autoscaler.core.model import Code, Observation, Proposal
from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig


def propose(
    policy: HeadroomPolicyConfig, obs: Observation, group: GroupConfig, a: Assessment
) -> Proposal:
    name = policy.name
    if not obs.prometheus_ok:
        return Proposal(name, None, "prometheus query failed", Code.NO_DATA)
    slot = group.replica_capacity
    if not slot > 0:
        return Proposal(name, None, f"replica_capacity {slot} is not positive", Code.NO_DATA)

    available, current, missing, idle = a.available, a.current, len(a.missing), a.idle
    if current > 0 and a.known == 0:
        reason = f"no usable capacity sample from {current} replicas"
        return Proposal(name, None, reason, Code.NO_DATA)

    partial = missing > 0
    need = policy.min_available
    note = f" ({missing} of {current} replicas without data)" if partial else ""
    if available < need:
        add = ceil_tolerant((need - available) / slot)
        return Proposal(
            name,
            current + add,
            f"free {available:g} < min_available {need:g} -> +{add}{note}",
            Code.HEADROOM_SHORT,
            partial,
        )
    if partial:
        return Proposal(
            name,
            current,
            f"free {available:g} >= min_available {need:g}, no scale-in with partial data{note}",
            Code.PARTIAL,
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
            Code.HEADROOM_SURPLUS,
        )
    return Proposal(
        name,
        current,
        f"free {available:g} >= min_available {need:g}, no idle replica to spare",
        Code.IN_BAND,
    )
