"""Headroom policy (SimpleScaleVM): keep at least `min_available` free resource slots.

Comparisons with `min_available` ignore float noise (0.1 + 0.2 + 1 + 1 - 2 is
0.2999999999999998, which is 0.3 here), and arithmetic that has no finite answer (a
shortfall of 1 over 5e-324-slot replicas, a sum of 1e308-slot replicas) is "not
computable": no proposal, never an exception.
"""

from __future__ import annotations

import math

from autoscaler.core.capacity import Assessment, below, ceil_count
from autoscaler.core.model import Code, Observation, Proposal
from autoscaler.core.spec import GroupConfig, HeadroomPolicyConfig


def _missing_note(a: Assessment) -> str:
    if not a.missing:
        return ""
    bad = f", {len(a.invalid)} invalid ({', '.join(a.invalid)})" if a.invalid else ""
    return f" ({len(a.missing)} of {a.current} replicas without data{bad})"


def propose(
    policy: HeadroomPolicyConfig, obs: Observation, group: GroupConfig, a: Assessment
) -> Proposal:
    name = policy.name
    if not obs.prometheus_ok:
        return Proposal(name, None, "prometheus query failed", Code.NO_DATA)
    slot = group.replica_capacity
    if not slot > 0:
        return Proposal(name, None, f"replica_capacity {slot} is not positive", Code.NO_DATA)
    need = policy.min_available
    if not (math.isfinite(slot) and math.isfinite(need)):
        reason = f"replica_capacity {slot:g}, min_available {need:g}: not both finite"
        return Proposal(name, None, reason, Code.NOT_COMPUTABLE)

    available, current, idle = a.available, a.current, a.idle
    if current > 0 and a.known == 0:
        bad = f", {len(a.invalid)} invalid" if a.invalid else ""
        reason = f"no valid capacity sample from {current} replicas{bad}"
        return Proposal(name, None, reason, Code.NO_DATA)
    if not math.isfinite(available):
        reason = f"free capacity of {a.known} replicas x {slot:g} slots overflows"
        return Proposal(name, None, reason, Code.NOT_COMPUTABLE)

    partial = bool(a.missing)
    note = _missing_note(a)
    if below(available, need):
        # A real shortfall needs at least one replica, however large a slot is.
        add = ceil_count((need - available) / slot)
        if add is None:
            reason = f"free {available:g} < min_available {need:g}: shortfall / {slot:g} overflows"
            return Proposal(name, None, reason, Code.NOT_COMPUTABLE)
        add = max(1, add)
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
    if policy.removes_only_idle:
        spare, what = len(idle), "idle"
    else:
        # Behind an even spread a removed replica's load moves to the others: the group
        # loses one slot of free capacity per replica removed, whichever goes.
        spare, what = current, "replicas"
    remove = _removable(available, need, slot, spare)
    if remove:
        return Proposal(
            name,
            current - remove,
            f"free {available:g} >= min_available {need:g} + {remove} {what} x {slot:g} "
            f"-> -{remove}",
            Code.HEADROOM_SURPLUS,
        )
    spare_note = "no idle replica to spare" if policy.removes_only_idle else "none to spare"
    return Proposal(
        name, current, f"free {available:g} >= min_available {need:g}, {spare_note}", Code.IN_BAND
    )


def _removable(available: float, need: float, slot: float, spare: int) -> int:
    """How many of `spare` replicas may go, each taking `slot` free capacity with it, so
    that what stays free still meets `need` (up to the noise of the subtraction, which is
    relative to `available`)."""
    if spare <= 0 or below(available - slot, need, available):
        return 0
    # Start from the arithmetic answer, then settle it with the tolerant comparison.
    estimate = (available - need) / slot
    remove = spare if not math.isfinite(estimate) else max(1, min(spare, int(estimate)))
    while remove > 1 and below(available - slot * remove, need, available):
        remove -= 1
    while remove < spare and not below(available - slot * (remove + 1), need, available):
        remove += 1
    return remove
